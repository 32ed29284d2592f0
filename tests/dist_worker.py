"""Run under torchrun by tests/test_distributed.py: ESL training in N processes.

After every mask update (once rank 0's decision is broadcast) each rank records a digest
of every mask, explored mask and model tensor, and the active counts; at the end it writes
them to ``OUT/rank{r}.json``. Then an interrupted-and-resumed run of the same command
must end with the same weights as the uninterrupted one.

    torchrun --standalone --nproc_per_node=2 tests/dist_worker.py OUT GROW
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path

import torch

from esl_train import train as train_mod
from esl_train.checkpoint import load_model
from esl_train.data import load_data
from esl_train.distributed import setup, sync_sparsifier, teardown
from esl_train.esl import ESLConfig, esl_factory
from esl_train.train import Interrupted, TrainConfig, evaluate, train


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def main() -> None:
    out, grow, single = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    ctx = setup("cpu")
    records: list[dict] = []
    seen_batches: list[str] = []

    def recording_sync(c, sparsifier, opt):  # the loop's sync, then what every rank now holds
        seconds = sync_sparsifier(c, sparsifier, opt)
        records.append({
            "t": sparsifier.t,
            "active": {n: int(m.sum()) for n, m in sparsifier.masks.items()},
            "masked_nonzero": sum(int((p.detach() * ~sparsifier.masks[n]).count_nonzero())
                                  for n, p in sparsifier.params.items()),
            "masks": {n: digest(m) for n, m in sparsifier.masks.items()},
            "explored": {n: digest(m) for n, m in sparsifier.explored.items()},
            "model": {n: digest(v) for n, v in _model_state.items()},
        })
        return seconds

    train_mod.sync_sparsifier = recording_sync
    original_step = train_mod.train_step

    def recording_step(model, opt, x, y, *args, **kwargs):  # which samples this rank trained on
        seen_batches.append(digest(x))
        return original_step(model, opt, x, y, *args, **kwargs)

    train_mod.train_step = recording_step
    data = load_data("mnist-embedded", limit=300)
    arch = {"name": "mlp-lif", "sizes": [784, 48, 10], "T": 3}

    def cfg(name: str) -> TrainConfig:
        return TrainConfig(out=str(out / name / "model.pt"), epochs=3, batch_size=30, lr=2e-3, seed=5,
                           save_every=4)

    def factory(seed: int):
        make = esl_factory(ESLConfig(eps=10, grow=grow, t_iter=2, t_end=40, seed=seed, verbose=False))

        def tracked(model, opt):  # remember the model whose tensors the digests cover
            _model_state.update(model.state_dict())
            return make(model, opt)
        return tracked

    # each rank seeds its sparsifier differently: only rank 0's broadcast decision can make
    # the masks agree, at the start and after every update
    result = train(arch, data, cfg("full"), sparsifier_factory=factory(5 + ctx.rank), progress=False,
                   ctx=ctx)
    full_records = list(records)
    ref = train(arch, data, cfg("ref"), sparsifier_factory=factory(5), progress=False, ctx=ctx)
    with contextlib.suppress(Interrupted):
        train(arch, data, cfg("resumed"), sparsifier_factory=factory(5), progress=False, ctx=ctx,
              stop_after_steps=17)
    resumed = train(arch, data, cfg("resumed"), sparsifier_factory=factory(5), progress=False, ctx=ctx,
                    resume=True)
    same = all(torch.equal(a, b) for a, b in zip(ref.checkpoint.state_dict.values(),
                                                    resumed.checkpoint.state_dict.values(), strict=True))
    # a checkpoint of a single-process run, evaluated with the test split sharded over the ranks
    one, _ = load_model(single)
    _, single_acc = evaluate(one, data.test, ctx=ctx)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({
        "single_acc": single_acc,
        "records": full_records, "batches": seen_batches[:5], "test_acc": result.test_acc,
        "resumed_equal": same, "resumed_test_acc": resumed.test_acc}))
    teardown(ctx)


_model_state: dict[str, torch.Tensor] = {}

if __name__ == "__main__":
    main()
