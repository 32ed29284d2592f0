"""The Lava back end: export a lowered model to files, build Lava processes from them,
stream test digits through the network and compare with PyTorch.

- ``artifact``: the framework-neutral export (manifest.json + one .npz per stage)
- ``build``: Lava processes from an artifact (floating_pt and fixed_pt)
- ``runner``: ``run_artifact`` (esl-run), ``export_model``, ``run_model``
- ``procs``: the custom Lava processes (imports no torch)

Names are imported lazily so that Lava's model discovery, which imports this
package as the parent of ``procs``, pulls in nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunResult", "export_model", "run_artifact", "run_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from esl_export.lava import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'esl_export.lava' has no attribute {name!r}")
