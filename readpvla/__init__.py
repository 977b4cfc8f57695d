"""readpvla: a workbench for parameter-efficient transfer learning of video-language transformers.

Sub-packages (imported lazily, so ``import readpvla`` stays fast):

- :mod:`readpvla.peft`      READ and the baseline adapters; one way to apply / count / save / load.
- :mod:`readpvla.ot`        partial optimal transport (batched Sinkhorn) and the PVLA loss.
- :mod:`readpvla.backbones` the frozen models adapters go into.
- :mod:`readpvla.data`      QVHighlights-format data and the synthetic benchmarks.
- :mod:`readpvla.metrics`   moment retrieval / highlight detection metrics, ROUGE.
- :mod:`readpvla.tasks`     one package per task (``tasks.tlg``, ``tasks.vls``), all in one shape.
- :mod:`readpvla.experiment` the grid of runs, records, executors (local, Ray), tables.
- :mod:`readpvla.train`     the one training loop.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["peft", "ot", "backbones", "data", "metrics", "train", "viz", "tasks", "experiment",
           "tlg", "vls", "report", "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        module = importlib.import_module(f"readpvla.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'readpvla' has no attribute {name!r}")
