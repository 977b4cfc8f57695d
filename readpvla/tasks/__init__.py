"""The tasks, one package each, every one in the same shape.

======================  ==================================================================
file                    what it holds
======================  ==================================================================
``data.py``             the task's data: splits, where they live, batches
``loss.py``             the task loss (plus the alignment term of READ-PVLA)
``evaluate.py``         predictions, the task's real metrics, a predictor
``pretrain.py``         the backbones and their pretraining on the source split
``rows.py``             the table rows, per-method learning rates, the shared budget
``transfer.py``         one run (``run(job) -> record``) and the tables made of runs
``cli.py``              the task's commands
======================  ==================================================================

The grid, the records, resuming, executors (local processes or Ray), summaries, significance
marks and table files are not here: they live once in :mod:`readpvla.experiment`.

- :mod:`readpvla.tasks.tlg`: temporal language grounding (moment retrieval + highlight
  detection, QVHighlights metrics; the paper's Tables 1, 6, 8, 9).
- :mod:`readpvla.tasks.vls`: video-language summarisation (VG-BART / VG-T5, ROUGE; Tables 4, 5).
- :mod:`readpvla.tasks.retrieval`: text-video retrieval with a video CLIP (CLIP4Clip's metrics).
- :mod:`readpvla.tasks.recognition`: action recognition by video-text similarity to class
  prompts (zero-shot, few-shot, base-to-novel).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["recognition", "retrieval", "tlg", "vls"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"readpvla.tasks.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'readpvla.tasks' has no attribute {name!r}")
