"""The experiment layer every task shares: a table is a grid of runs.

- :mod:`.grid`: :class:`Job` (one run as data), :func:`run_job`, :func:`run_grid` (records
  written as runs finish, ``resume``, failures reported after the others land).
- :mod:`.executors`: where runs execute, ``"local"`` (this process or spawned processes) or
  ``"ray"`` (a Ray cluster), behind one ``map_unordered``.
- :mod:`.tables`: :class:`TableSpec`, :func:`summarize` (mean ± std over seeds, the ``‡`` marks),
  :func:`format_table` (Markdown), :func:`write_table` (JSON + Markdown, atomic).

A task (``readpvla.tasks.<task>``) brings only what is its own: ``run(job) -> record`` and its
rows, settings and table specs.
"""

from .executors import LocalExecutor, RayExecutor, make_executor
from .grid import (
    GridError,
    Job,
    RecordFile,
    check_grid,
    check_writable,
    run_grid,
    run_job,
    task_module,
)
from .tables import (
    Column,
    TableSpec,
    compare_runs,
    format_table,
    mean_std,
    significance,
    spec_of,
    summarize,
    table_payload,
    write_table,
)

__all__ = [
    "Column",
    "GridError",
    "Job",
    "LocalExecutor",
    "RayExecutor",
    "RecordFile",
    "TableSpec",
    "check_grid",
    "check_writable",
    "compare_runs",
    "format_table",
    "make_executor",
    "mean_std",
    "run_grid",
    "run_job",
    "significance",
    "spec_of",
    "summarize",
    "table_payload",
    "task_module",
    "write_table",
]
