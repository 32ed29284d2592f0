# Two entry points (see README.md): `make demo` and `make test`. Both set up .venv first,
# and reuse it when nothing it was built from has changed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
RUN_DIR ?= runs/demo

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) tools/install_lava.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	# the pinned CPU torch first: a bare torch requirement would pull a CUDA build
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) torch==2.13.0
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[export,bench,dev]'
	$(BIN)/python tools/install_lava.py
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m esl_train.demo --out $(RUN_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs
