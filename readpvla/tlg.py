"""Temporal language grounding: moved to :mod:`readpvla.tasks.tlg` (this name re-exports it, so
``from readpvla import tlg`` and ``import readpvla.tlg`` keep working)."""

from readpvla.tasks.tlg import *  # noqa: F403
from readpvla.tasks.tlg import __all__, __doc__  # noqa: F401
