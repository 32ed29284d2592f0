"""Run an exported network in Lava on test digits and compare it with its source.

``run_artifact`` is what ``esl-run`` does for a Lava folder; ``run_model`` exports a
model.pt first (the README's main job calls it). Accuracy is Lava's prediction against
the labels; agreement is Lava's prediction against the reference's (the PyTorch model,
or the graph's reference executor for a NIR source) on the same samples, fed the
reference's own rate-coded draw; steps per second count simulator steps over the time
spent inside Lava's run calls (compilation excluded, reported apart).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_export import single_spike_dt as sdt
from esl_export.lava import artifact as art_mod
from esl_export.lava.artifact import Artifact, ArtifactError
from esl_export.lava.build import Inputs, LavaNetwork, SimOutput
from esl_export.runs import RunReport, RunRequest, prepare, pytorch_side
from esl_export.sources import Source, load_source

__all__ = ["RunResult", "export_graph", "export_model", "pytorch_side", "run_artifact", "run_model",
           "simulate"]


@dataclass
class RunResult(RunReport):
    """One streamed Lava run over ``samples`` test digits."""

    config: str
    steps: int
    steps_per_s: float
    sim_seconds: float
    compile_seconds: float
    wall_seconds: float
    quantization: list[dict[str, float]] | None
    output: SimOutput

    def detail_lines(self) -> list[str]:
        lines = [f"speed: {self.steps_per_s:,.0f} steps/s ({self.steps} steps in "
                 f"{self.sim_seconds:.1f} s; compile {self.compile_seconds:.1f} s, "
                 f"wall {self.wall_seconds:.1f} s)"]
        if self.quantization:
            worst = max(q["weight_rel_rms"] for q in self.quantization)
            per = ", ".join(f"{q['weight_rel_rms']:.4f}" for q in self.quantization)
            lines.append(f"fixed_pt quantisation: 8-bit weights, relative RMS weight error per stage {per} "
                         f"(worst {worst:.4f}); threshold error <= "
                         f"{max(q.get('vth_rel', 0.0) for q in self.quantization):.2e}")
        return lines


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
             sparse_model: str = "fast", progress: bool = False, chunk_samples: int = 25,
             seed: int = 0) -> SimOutput:
    """Build the Lava network for these samples, stream them all, stop Lava. Rate-coded
    input without ``input_seq`` is drawn from a generator seeded with ``seed``."""
    inputs = encode(art, x, input_seq, np.random.default_rng(seed))
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


def run_artifact(export: str | Path | Artifact, samples: int = 200, config: str = "floating_pt", *,
                 model_path: str | Path | None = None, compare: bool = True, data: str | None = None,
                 data_dir: str | None = None, offset: int = 0, progress: bool = True,
                 sparse_model: str = "fast", seed: int = 0) -> RunResult:
    """Stream ``samples`` test digits through an export in Lava and compare with its source.

    The source is the one the manifest records (``model_path`` names another path to it;
    its sha256 must match); ``compare=False`` skips it.
    """
    wall0 = time.perf_counter()
    art = export if isinstance(export, Artifact) else art_mod.read(export)
    req = RunRequest(samples, offset, data, data_dir, model_path, compare, progress, seed)
    x, y, _, ref = prepare(art.source, req, art.n_in)
    seq = ref.seq if ref is not None and art.input["encoding"].get("kind") == "rate" else None
    out = simulate(art, x, config, input_seq=seq, progress=progress, sparse_model=sparse_model, seed=seed)
    return RunResult(
        f"Lava {config}", "Lava", samples, predictions(art, out), y,
        None if ref is None else ref.name, None if ref is None else ref.predictions,
        config=config, steps=out.steps, steps_per_s=out.steps_per_s, sim_seconds=out.sim_seconds,
        compile_seconds=out.compile_seconds, wall_seconds=time.perf_counter() - wall0,
        quantization=None if out.fixed is None else [f.error for f in out.fixed], output=out,
    )


def export_graph(source: Source, out_dir: str | Path, dt: float = sdt.DEFAULT_DT,
                 window: float = sdt.DEFAULT_WINDOW) -> Artifact:
    """Write the Lava export of a source's graph (what ``esl-export --target lava`` does)."""
    art = art_mod.from_graph(source.graph, art_mod.jsonable(source.manifest_entry()), dt=dt, window=window)
    art_mod.write(art, out_dir)
    return art


def export_model(model_path: str | Path, out_dir: str | Path, dt: float = sdt.DEFAULT_DT,
                 window: float = sdt.DEFAULT_WINDOW) -> Artifact:
    """Lower a model.pt (or read a NIR file) and write its Lava export."""
    from esl_export.files import refuse_input

    refuse_input(Path(out_dir), Path(model_path), ArtifactError)
    return export_graph(load_source(model_path), out_dir, dt=dt, window=window)


def run_model(model_path: str | Path, samples: int = 200, config: str = "floating_pt", *,
              out_dir: str | Path | None = None, dt: float = sdt.DEFAULT_DT, progress: bool = True,
              data: str | None = None, data_dir: str | None = None, compare: bool = True) -> RunResult:
    """Export ``model_path`` (a model.pt or NIR file) to Lava (into ``out_dir``, or a
    temporary folder) and run ``samples`` test digits through it; the result has
    ``accuracy``, ``pytorch_accuracy``, ``agreement`` and ``steps_per_s`` (see
    RunResult.summary)."""
    if out_dir is not None:
        export_model(model_path, out_dir, dt=dt)
        return run_artifact(out_dir, samples, config, model_path=model_path, progress=progress,
                            data=data, data_dir=data_dir, compare=compare)
    with tempfile.TemporaryDirectory(prefix="esl-lava-") as tmp:
        export_model(model_path, Path(tmp) / "lava", dt=dt)
        return run_artifact(Path(tmp) / "lava", samples, config, model_path=model_path,
                            progress=progress, data=data, data_dir=data_dir, compare=compare)
