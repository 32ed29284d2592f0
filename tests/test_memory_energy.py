"""Memory mode (esl_energy.memory): every term against a hand computation on a tiny network,
the equivalent QNN and its break-even spike rate, the CLI, and the YAML memory fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from esl_energy import MeasuredOps
from esl_energy.cli import main
from esl_energy.memory import INCLUDED, activation_bits, break_even, price_traffic, traffic
from esl_export.lower import lower
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.models import build_model
from hw_targets import TargetError, load_platform_file, load_platforms

MASK0 = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)  # fan-out 2, 3, 2, 1

CITE = {"status": "derived", "source": "a test", "derivation": "round numbers"}
TABLE: dict[str, Any] = {
    "name": "memchip", "description": "round prices for hand computation", "kind": "asic",
    "connection_op": "ac",
    "energy": {"ac": {"joules": 1e-12, **CITE}, "mac": {"joules": 4e-12, **CITE},
               "neuron_update": {"joules": 2e-12, **CITE}},
    "memory": {"word": {"weight_bits": 8, "state_bits": 16, **CITE},
               "read": {"per_bit": [{"bytes": 1, "joules": 1e-13}], **CITE},
               "write": {"per_bit": [{"bytes": 1, "joules": 2e-13}], **CITE}},
}


@pytest.fixture(scope="module")
def tiny() -> Any:
    """A 4-3-2 rate-coded LIF net (T = 2), layer 0 masked to 7 of 12 synapses, and one sample's
    hand-made activity."""
    model = build_model({"name": "mlp-lif", "sizes": [4, 3, 2], "T": 2, "encoding": "rate"})
    with torch.no_grad():
        model.fc[0].weight.copy_(0.5 * MASK0)
        model.fc[1].weight.fill_(0.5)
    graph = lower(model, {"fc.0.weight": MASK0})
    activity = {"input": torch.tensor([[[1.0, 0, 1, 0]], [[1, 1, 0, 0]]]),
                "lif.0": torch.tensor([[[0.0, 0, 1]], [[1, 0, 1]]])}
    return model, graph, MeasuredOps(graph)(activity)


def _platform(tmp_path: Path, doc: dict[str, Any] = TABLE) -> Any:
    path = tmp_path / "memchip.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_platform_file(path)


def test_the_run_counts_events_and_the_qnns_active_inputs(tiny: Any) -> None:
    _, _, count = tiny
    l0, l1 = count.layers
    # layer 0: events 2 + 2; ops (2 + 2) + (2 + 3); inputs active at some step: 0, 1, 2
    assert (l0.events, l0.ops, l0.active_inputs, l0.active_ops) == (4, 9, 3, 7)
    # layer 1: hidden spikes 1 + 2, each to 2 outputs; active neurons 0 and 2
    assert (l1.events, l1.ops, l1.active_inputs, l1.active_ops) == (3, 6, 2, 4)


def test_every_snn_term_by_hand(tiny: Any, tmp_path: Path) -> None:
    _, graph, count = tiny
    snn, _ = traffic(graph, count, 8, 16)
    e = price_traffic(snn, _platform(tmp_path))
    t = e.terms
    assert t["synaptic"] == pytest.approx(15 * 1e-12)  # 9 + 6 SOPs
    assert t["neuron"] == pytest.approx(6 * 2e-12)  # 3 LIF neurons x 2 steps
    # weights: layer 0 is masked, so 8 + ceil(log2(3)) = 10 bits a read; layer 1 dense, 8
    assert t["weight_read"] == pytest.approx((9 * 10 + 6 * 8) * 1e-13)
    # membranes: a read-modify-write per synaptic op (15) and per neuron update (6), 16 bits
    assert t["state_read"] == pytest.approx((15 + 6) * 16 * 1e-13)
    assert t["state_write"] == pytest.approx((15 + 6) * 16 * 2e-13)
    # events: 4 into layer 0 and 3 into layer 1, 2-bit addresses, written and read
    assert t["events"] == pytest.approx((4 + 3) * 2 * 3e-13)
    assert t["static"] is None and e.unpriced == ["static"]
    assert e.joules == pytest.approx(145.8e-12)
    assert e.counts["weight_read"] == {"count": 15, "bits": 138}
    assert e.counts["events"] == {"count": 7, "bits": 14} and e.counts["neuron"]["count"] == 6
    rows = dict(e.layers)  # per layer: a term a row has no part in is "-", never a zero
    assert rows["fc.0"]["neuron"] == "-" and rows["lif.0"]["weight_read"] == "-"
    assert rows["lif.0"]["state_read"] == pytest.approx(6 * 16 * 1e-13)


def test_every_qnn_term_by_hand(tiny: Any, tmp_path: Path) -> None:
    _, graph, count = tiny
    _, qnn = traffic(graph, count, 8, 16)
    assert qnn.activation_bits == activation_bits(2) == 2
    t = price_traffic(qnn, _platform(tmp_path)).terms
    assert t["synaptic"] == pytest.approx((7 + 4) * min(4e-12, 2 * 1e-12))  # shift-and-add is cheaper
    assert t["neuron"] == pytest.approx(3 * 2e-12)  # one activation per hidden neuron
    assert t["weight_read"] == pytest.approx((7 * 10 + 4 * 8) * 1e-13)
    assert t["state_read"] == pytest.approx((11 + 3) * 16 * 1e-13)
    assert t["state_write"] == pytest.approx((11 + 3) * 16 * 2e-13)
    # activations: dense 2-bit vectors (4x2 and 3x2 bits) beat (address, value) pairs
    assert t["events"] == pytest.approx((8 + 6) * 3e-13)


def test_break_even_rate_by_hand(tiny: Any, tmp_path: Path) -> None:
    _, graph, count = tiny
    snn, qnn = traffic(graph, count, 8, 16)
    be = break_even(snn, qnn, _platform(tmp_path))
    assert snn.spike_rate == pytest.approx(7 / 14)  # 7 events over 4x2 + 3x2 input-steps
    # SNN = 40.8 pJ fixed (neuron updates and their membrane accesses) + 105 pJ per measured rate
    assert be.snn_joules == pytest.approx(145.8e-12) and be.qnn_joules == pytest.approx(109.6e-12)
    assert be.rate == pytest.approx(0.5 * (109.6 - 40.8) / 105)
    assert be.why == "leaves out (unpriced for both): static"


def test_included_and_unpriced_terms_are_never_zero(tiny: Any) -> None:
    _, graph, count = tiny
    tn, loihi, v100 = load_platforms("truenorth-merolla2014,loihi,v100")
    snn, qnn = traffic(graph, count, 8, 16)
    everything = price_traffic(snn, tn)
    assert everything.terms["synaptic"] == pytest.approx(15 * 26e-12)
    assert all(everything.terms[k] == INCLUDED for k in ("neuron", "weight_read", "events", "static"))
    assert everything.joules == pytest.approx(15 * 26e-12)
    li = price_traffic(snn, loihi).terms
    assert li["weight_read"] == INCLUDED and li["events"] == pytest.approx(7 * 1.7e-12)
    assert li["static"] is None
    gpu = price_traffic(snn, v100)
    assert gpu.terms["weight_read"] is None and "weight_read" in gpu.unpriced
    assert price_traffic(qnn, loihi).joules is None  # no multiply-accumulate on Loihi's table
    assert break_even(snn, qnn, loihi).rate is None


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def lif_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [784, 40, 10], "T": 4, "encoding": "rate"})
    path = tmp_path_factory.mktemp("mem") / "lif.pt"
    save_checkpoint(make_checkpoint(model, meta={"dataset": "mnist-embedded"}), path)
    return path


def test_memory_mode_from_the_cli(capsys: pytest.CaptureFixture[str], lif_file: Path) -> None:
    rc = main([str(lif_file), "--mode", "connections,measured,memory", "--platforms",
               "cmos45nm,truenorth-merolla2014,loihi", "--samples", "20", "--compare-qnn",
               "--format", "json"])
    items = json.loads(capsys.readouterr().out)
    assert rc == 0 and [i["mode"] for i in items] == ["connections", "measured", "memory"]
    measured, memory = items[1], items[2]
    assert memory["sops"] == measured["sops"]  # one run serves both modes
    cm = memory["memory"]["cmos45nm"]
    assert memory["energy"]["cmos45nm"]["joules"] == pytest.approx(
        sum(v for v in cm.values() if isinstance(v, float)))
    assert cm["weight_read"] > cm["synaptic"]  # a 32-bit SRAM read costs more than an FP32 add
    assert memory["memory"]["truenorth-merolla2014"]["static"] == "included"
    assert memory["qnn"]["activation_bits"] == 3
    be = memory["break_even"]["cmos45nm"]
    assert 0 < be["break_even_rate"] < 1 and be["spike_rate"] > 0
    assert memory["break_even"]["loihi"]["break_even_rate"] is None
    rc = main([str(lif_file), "--mode", "memory", "--platforms", "cmos45nm", "--samples", "10", "--layers"])
    text = capsys.readouterr().out
    assert rc == 0 and "weight_read (J)" in text and "lif.0" in text and "unpriced" in text


@pytest.mark.parametrize("argv, expected", [
    (["--mode", "measured", "--compare-qnn"], "--compare-qnn compares under memory mode"),
    (["--mode", "memory", "--samples", "0"], "--samples must be a positive number"),
])
def test_memory_cli_bad_input_gives_one_line(capsys: pytest.CaptureFixture[str], lif_file: Path,
                                             argv: list[str], expected: str) -> None:
    rc = main([str(lif_file), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expected in err[0] and "Traceback" not in err[0]


def test_a_latency_coded_network_has_no_equivalent_qnn(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    model = build_model({"name": "mlp-single-spike", "sizes": [784, 20, 10]})
    path = tmp_path / "single.pt"
    save_checkpoint(make_checkpoint(model), path)
    rc = main([str(path), "--mode", "memory", "--samples", "5", "--compare-qnn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "latency-coded" in err[0]


# --------------------------------------------------------------------------- YAML memory fields


def _with(**memory: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(TABLE))
    for key, value in memory.items():
        if value is ...:
            doc["memory"].pop(key)
        else:
            doc["memory"][key] = value
    return doc


BAD_MEMORY = {
    "empty": ({**TABLE, "memory": {}}, "memory: is empty"),
    "unknown_key": (_with(dram={"joules": 1}), "memory.dram: unknown key"),
    "bits_zero": (_with(word={"weight_bits": 0, "state_bits": 16, **CITE}), "memory.word.weight_bits"),
    "bits_float": (_with(word={"weight_bits": 8, "state_bits": 16.5, **CITE}), "memory.word.state_bits"),
    "no_word": (_with(word=...), "memory.read: needs memory.word"),
    "not_a_list": (_with(read={"per_bit": 1e-13, **CITE}), "memory.read.per_bit"),
    "sizes_decrease": (_with(read={"per_bit": [{"bytes": 64, "joules": 1e-13}, {"bytes": 8, "joules": 1e-13}],
                                   **CITE}), "memory.read.per_bit[1].bytes: sizes must increase"),
    "bytes_text": (_with(write={"per_bit": [{"bytes": "8KB", "joules": 1e-13}], **CITE}),
                   "memory.write.per_bit[0].bytes"),
    "negative_joules": (_with(write={"per_bit": [{"bytes": 8, "joules": -1e-13}], **CITE}),
                        "memory.write.per_bit[0].joules"),
    "uncited": (_with(event={"joules": 1e-12}), "memory.event.status: missing required field"),
    "unknown_term": (_with(included={"terms": ["dram"], **CITE}), "memory.included.terms[0]"),
    "repeated_term": (_with(included={"terms": ["events", "events"], **CITE}), "repeats a term"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMORY))
def test_bad_memory_fields_fail_on_one_line(tmp_path: Path, case: str) -> None:
    doc, expected = BAD_MEMORY[case]
    with pytest.raises(TargetError) as exc:
        _platform(tmp_path, doc)
    message = str(exc.value)
    assert expected in message and "\n" not in message and "memchip.yaml" in message


def test_sized_prices_interpolate_in_log_log() -> None:
    (cmos,) = load_platforms("cmos45nm")
    assert cmos.memory is not None and cmos.memory.read is not None
    read = cmos.memory.read.per_bit
    assert read(8192) == pytest.approx(10e-12 / 64) and read(1 << 20) == pytest.approx(100e-12 / 64)
    assert read(100) == read(8192) and read(1 << 30) == read(1 << 20)  # the ends hold outside
    assert read(16384) == pytest.approx((10e-12 / 64) * 2 ** 0.5)  # halfway in log size: geometric mean


def test_only_layers_fed_by_spikes_scale_with_the_spike_rate() -> None:
    model = build_model({"name": "mlp-lif", "sizes": [4, 3, 2], "T": 2, "encoding": "direct"})
    graph = lower(model)
    count = MeasuredOps(graph)({"input": torch.tensor([[[0.5, 0, 0.2, 0]], [[0.5, 0, 0.2, 0]]]),
                                "lif.0": torch.tensor([[[0.0, 0, 1]], [[1, 0, 1]]])})
    snn, qnn = traffic(graph, count, 8, 16)
    assert [lt.scales for lt in snn.layers if lt.kind == "connection"] == [False, True]
    assert [lt.op for lt in qnn.layers if lt.kind == "connection"] == ["mac", "qmac"]  # analog pixels: a MAC
    assert snn.spike_rate == pytest.approx(3 / (3 * 2))  # the hidden layer's spikes only
