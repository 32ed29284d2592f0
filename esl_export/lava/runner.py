"""Run an exported network in Lava on test digits and compare it with PyTorch.

``run_artifact`` is what ``esl-run`` does; ``run_model`` exports a model.pt first
(the README's main job calls it). Accuracy is Lava's prediction against the labels;
agreement is Lava's prediction against the PyTorch model's on the same samples (for
rate-coded input PyTorch's own Bernoulli draw is fed to Lava, so both see the same
spikes); steps per second count simulator steps over the time spent inside Lava's
run calls (compilation excluded, reported apart).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esl_export import single_spike_dt as sdt
from esl_export.lava import artifact as art_mod
from esl_export.lava.artifact import Artifact, ArtifactError
from esl_export.lava.build import Inputs, LavaNetwork, SimOutput


@dataclass
class RunResult:
    """One streamed Lava run over ``samples`` test digits."""

    config: str
    samples: int
    predictions: np.ndarray
    labels: np.ndarray
    accuracy: float
    pytorch_predictions: np.ndarray | None
    pytorch_accuracy: float | None
    agreement: float | None
    steps: int
    steps_per_s: float
    sim_seconds: float
    compile_seconds: float
    wall_seconds: float
    quantization: list[dict[str, float]] | None
    output: SimOutput

    def summary(self) -> str:
        """The lines esl-run prints."""
        lines = [f"Lava {self.config}: accuracy {100 * self.accuracy:.2f}% on {self.samples} test digits"]
        if self.pytorch_accuracy is not None and self.agreement is not None:
            lines.append(f"PyTorch:        accuracy {100 * self.pytorch_accuracy:.2f}%; Lava agrees with "
                         f"PyTorch on {100 * self.agreement:.2f}% of the digits")
        else:
            lines.append("PyTorch:        not compared (source model not available)")
        if (self.predictions < 0).any():
            lines.append(f"no output spike in the window for {int((self.predictions < 0).sum())} digit(s)")
        lines.append(f"speed: {self.steps_per_s:,.0f} steps/s ({self.steps} steps in "
                     f"{self.sim_seconds:.1f} s; compile {self.compile_seconds:.1f} s, "
                     f"wall {self.wall_seconds:.1f} s)")
        if self.quantization:
            worst = max(q["weight_rel_rms"] for q in self.quantization)
            per = ", ".join(f"{q['weight_rel_rms']:.4f}" for q in self.quantization)
            lines.append(f"fixed_pt quantisation: 8-bit weights, relative RMS weight error per stage {per} "
                         f"(worst {worst:.4f}); threshold error <= "
                         f"{max(q.get('vth_rel', 0.0) for q in self.quantization):.2e}")
        return "\n".join(lines)


# ------------------------------------------------------------------ inputs and outputs


def encode(art: Artifact, x: np.ndarray, input_seq: np.ndarray | None = None,
           rng: np.random.Generator | None = None) -> Inputs:
    """The SampleSource form of raw samples ``x`` [N, ...] (or of a given per-step
    input sequence ``input_seq`` [T, N, ...], e.g. PyTorch's rate-coded draw)."""
    x = np.asarray(x, np.float64)
    N = x.shape[0]
    enc = art.input["encoding"]
    kind = enc.get("kind")
    if art.kind == "single-spike":
        steps = sdt.input_steps(enc, x, float(art.time["dt"]), float(art.time["tau_syn"]),
                                art.steps_per_sample)
        return Inputs(steps.astype(np.float64), "latency")
    T = art.steps_per_sample
    if input_seq is not None:
        seq = np.asarray(input_seq, np.float64).reshape(T, N, -1)
        return Inputs(np.ascontiguousarray(seq.transpose(1, 0, 2)), "sequence")
    flat = x.reshape(N, -1)
    if kind == "direct":
        return Inputs(flat, "hold", T)
    if kind == "rate":
        rng = rng or np.random.default_rng(0)
        draw = (rng.random((N, T, flat.shape[1])) < np.clip(flat, 0, 1)[:, None, :]).astype(np.float64)
        return Inputs(draw, "sequence")
    if kind == "frames":
        return Inputs(flat.reshape(N, T, -1), "sequence")
    raise ArtifactError(f"cannot encode {kind!r} input")


def predictions(art: Artifact, out: SimOutput) -> np.ndarray:
    """Class per sample: argmax of the readout sums, or the earliest output spike (−1: none)."""
    if out.sums is not None:
        return out.sums.argmax(axis=1)
    return sdt.first_spike_class(out.first[-1])


def simulate(art: Artifact, x: np.ndarray, config: str = "floating_pt", *,
             input_seq: np.ndarray | None = None, record: bool = False, connections: str = "auto",
             sparse_model: str = "fast", progress: bool = False, chunk_samples: int = 25) -> SimOutput:
    """Build the Lava network for these samples, stream them all, stop Lava."""
    inputs = encode(art, x, input_seq)
    net = LavaNetwork(art, inputs, config, record=record, connections=connections,
                      sparse_model=sparse_model)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=inputs.n_samples, desc=f"Lava {config}", unit="digit")
    try:
        def tick(k: int) -> None:
            if bar is not None:
                bar.update(k - bar.n)

        return net.run(chunk_samples=chunk_samples, progress=tick)
    finally:
        if bar is not None:
            bar.close()


# ------------------------------------------------------------------ the PyTorch side


def pytorch_side(model: Any, x: np.ndarray, batch: int = 100) -> tuple[np.ndarray, np.ndarray | None]:
    """PyTorch's predictions on ``x`` and, for LIF models, the input sequence it used
    ([T, N, ...]; for rate coding that is its own Bernoulli draw)."""
    import torch

    preds, seqs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(np.asarray(x[i:i + batch]), dtype=torch.float32)
            if hasattr(model, "layer_spikes"):
                rec = model.layer_spikes(xb)
                seqs.append(rec["input"].double().numpy())
                preds.append(model.predict(rec["output"]).numpy())
            else:
                preds.append(model.predict(model(xb)).numpy())
    return np.concatenate(preds), (np.concatenate(seqs, axis=1) if seqs else None)


def _test_digits(art: Artifact, samples: int, data: str | None, data_dir: str | None,
                 offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from esl_train.data import load_data

    name = data or art.source.get("dataset") or "mnist-embedded"
    splits = load_data(name, data_dir)
    n = len(splits.test.y)
    if samples < 1 or offset < 0 or offset + samples > n:
        raise ArtifactError(f"{name} has {n} test samples; asked for {samples} from {offset}")
    x = splits.test.x[offset:offset + samples].numpy()
    if int(np.prod(x.shape[1:])) != art.n_in:
        raise ArtifactError(f"{name} samples have {int(np.prod(x.shape[1:]))} values, the export takes "
                            f"{art.n_in}")
    return x, splits.test.y[offset:offset + samples].numpy()


def run_artifact(export: str | Path | Artifact, samples: int = 200, config: str = "floating_pt", *,
                 model_path: str | Path | None = None, compare: bool = True, data: str | None = None,
                 data_dir: str | None = None, offset: int = 0, progress: bool = True,
                 sparse_model: str = "fast") -> RunResult:
    """Stream ``samples`` test digits through an export in Lava and compare with PyTorch.

    The PyTorch model is the export's source checkpoint (``model_path`` overrides the
    path in the manifest; its sha256 must match); ``compare=False`` skips it.
    """
    from esl_train.checkpoint import CheckpointError, load_model

    wall0 = time.perf_counter()
    art = export if isinstance(export, Artifact) else art_mod.read(export)
    x, y = _test_digits(art, samples, data, data_dir, offset)
    torch_preds = seq = None
    if compare:
        path = Path(model_path) if model_path is not None else Path(str(art.source.get("path", "")))
        if model_path is not None or path.is_file():
            if not path.is_file():
                raise ArtifactError(f"{path}: no such model file")
            if art_mod.sha256_file(path) != art.source.get("sha256"):
                raise ArtifactError(f"{path}: not the checkpoint this export was made from (sha256 differs)")
            try:
                model, _ = load_model(path)
            except CheckpointError as exc:
                raise ArtifactError(str(exc)) from None
            torch_preds, seq = pytorch_side(model, x)
    out = simulate(art, x, config, input_seq=seq if art.input["encoding"].get("kind") == "rate" else None,
                   progress=progress, sparse_model=sparse_model)
    preds = predictions(art, out)
    return RunResult(
        config=config, samples=samples, predictions=preds, labels=y,
        accuracy=float(np.mean(preds == y)),
        pytorch_predictions=torch_preds,
        pytorch_accuracy=None if torch_preds is None else float(np.mean(torch_preds == y)),
        agreement=None if torch_preds is None else float(np.mean(torch_preds == preds)),
        steps=out.steps, steps_per_s=out.steps_per_s, sim_seconds=out.sim_seconds,
        compile_seconds=out.compile_seconds, wall_seconds=time.perf_counter() - wall0,
        quantization=None if out.fixed is None else [f.error for f in out.fixed],
        output=out,
    )


def export_model(model_path: str | Path, out_dir: str | Path, dt: float = sdt.DEFAULT_DT,
                 window: float = sdt.DEFAULT_WINDOW) -> Artifact:
    """Lower model.pt and write its Lava export (what ``esl-export --target lava`` does)."""
    from esl_export.lower import lower_file

    model, out = Path(model_path), Path(out_dir)
    if model.exists() and (out.resolve() == model.resolve() or out.resolve() in model.resolve().parents):
        raise ArtifactError(f"{out}: would overwrite the input {model}; choose another output folder")
    graph, ckpt = lower_file(model_path)
    meta = ckpt.meta
    source = {"path": str(model_path), "sha256": art_mod.sha256_file(model_path),
              "model": ckpt.arch.get("name"), "arch": ckpt.arch, "dataset": meta.get("dataset"),
              "test_accuracy": meta.get("test_acc"), "density": meta.get("density"),
              "package_version": meta.get("package_version")}
    art = art_mod.from_graph(graph, art_mod.jsonable(source), dt=dt, window=window)
    art_mod.write(art, out_dir)
    return art


def run_model(model_path: str | Path, samples: int = 200, config: str = "floating_pt", *,
              out_dir: str | Path | None = None, dt: float = sdt.DEFAULT_DT, progress: bool = True,
              data: str | None = None, data_dir: str | None = None) -> RunResult:
    """Export ``model_path`` to Lava (into ``out_dir``, or a temporary folder) and run
    ``samples`` test digits through it; the result has ``accuracy``,
    ``pytorch_accuracy``, ``agreement`` and ``steps_per_s`` (see RunResult.summary)."""
    if out_dir is not None:
        export_model(model_path, out_dir, dt=dt)
        return run_artifact(out_dir, samples, config, model_path=model_path, progress=progress,
                            data=data, data_dir=data_dir)
    with tempfile.TemporaryDirectory(prefix="esl-lava-") as tmp:
        export_model(model_path, Path(tmp) / "lava", dt=dt)
        return run_artifact(Path(tmp) / "lava", samples, config, model_path=model_path,
                            progress=progress, data=data, data_dir=data_dir)
