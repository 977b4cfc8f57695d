"""The experiment layer every task shares: a table is a grid of runs.

- :mod:`.grid`: :class:`Job` (one run as data), :func:`run_job`, :func:`run_grid` (records
  written as runs finish, ``resume``, failures reported after the others land).
- :mod:`.executors`: where runs execute, ``"local"`` (this process or spawned processes) or
  ``"ray"`` (a Ray cluster), behind one ``map_unordered``.
- :mod:`.tables`: :class:`TableSpec`, :func:`summarize` (mean ± std over seeds, the ``‡`` marks,
  ``Δ vs reference [lo, hi]`` with :class:`Delta`), :func:`format_table` (Markdown),
  :func:`write_table` (JSON + Markdown, atomic).
- :mod:`.intervals`: :func:`paired_bootstrap` / :func:`compare_rows` (the difference of two rows
  with a paired bootstrap interval over test items and seeds), :func:`paired_bootstrap_hm` /
  :func:`compare_rows_hm` (the same for a harmonic mean of two item means, base-to-novel HM),
  :func:`difference_in_differences` (a row's lead over another under a treatment minus under
  the control: the mechanism probes),
  :func:`interval_vs_seeds` ("how many seeds do I need?").
- :mod:`.rates`: :func:`load_lrs`, the chosen learning rates a task's protocol wrote.
- :mod:`.tuning`: the equal-effort protocol (the same number of tuning runs for every row over
  size x learning rate, chosen on validation) and the accuracy-vs-parameters Pareto frontier.

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
from .intervals import (
    Interval,
    NoItemScores,
    SeedCurve,
    compare_rows,
    compare_rows_hm,
    difference_in_differences,
    interval_vs_seeds,
    item_scores,
    paired_bootstrap,
    paired_bootstrap_hm,
)
from .rates import load_lrs
from .tables import (
    Column,
    Delta,
    TableSpec,
    compare_runs,
    deltas,
    format_table,
    mean_std,
    note_of,
    retable,
    significance,
    spec_of,
    summarize,
    table_payload,
    verify_table,
    write_json,
    write_table,
)

__all__ = [
    "Column",
    "Delta",
    "GridError",
    "Interval",
    "Job",
    "LocalExecutor",
    "NoItemScores",
    "RayExecutor",
    "RecordFile",
    "SeedCurve",
    "TableSpec",
    "check_grid",
    "check_writable",
    "compare_rows",
    "compare_rows_hm",
    "difference_in_differences",
    "compare_runs",
    "deltas",
    "format_table",
    "interval_vs_seeds",
    "item_scores",
    "make_executor",
    "mean_std",
    "paired_bootstrap",
    "paired_bootstrap_hm",
    "run_grid",
    "run_job",
    "load_lrs", "note_of", "retable", "significance",
    "spec_of",
    "summarize",
    "table_payload", "verify_table",
    "task_module",
    "write_json",
    "write_table",
]
