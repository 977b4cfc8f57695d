"""Jobs, run records and the grid runner that every task's tables share.

A table is a grid of runs, one per (row, split, seed): a row is a method (or an ablation of it), a
split a target domain (TLG) or test split (VLS), a seed one initialisation and data order. A
:class:`Job` says everything one run needs, as plain data, so any executor can run it anywhere
(DomainBed's "jobs as data"); :func:`run_job` runs one through its task
(``readpvla.tasks.<task>.run(job)``) and returns its *record*: the key, the test metrics, the
parameter counts, the task's own details, the seconds it took, or the error it raised.

::

    from readpvla.experiment import Job, run_grid
    jobs = [Job("tlg", row, domain, seed, backbone="crossmodal", checkpoint=..., data_dir=...,
                settings=tlg.QUICK) for row in rows for domain in domains for seed in seeds]
    records = run_grid(jobs, executor="local", workers=2, records="out/runs.jsonl", resume=True)

:func:`run_grid` writes each record to a JSON-lines file the moment its run finishes, so an
interrupted grid loses only the runs in flight, and ``resume=True`` takes the finished ones from
that file instead of running them again. A run that raises does not stop the others: they all
land, then :class:`GridError` lists the failures.

Determinism: on CPU every run uses one torch thread whatever the executor or the caller's thread
count (float sums depend on the thread count, and early stopping turns a last-digit difference
into another epoch), so on one machine the records are the same bit for bit for any executor and
any number of workers. Another machine's CPU kernels give other last digits (DESIGN.md fact 7).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GridError", "Job", "RecordFile", "check_grid", "check_writable", "run_grid",
           "run_job", "task_module"]

Key = tuple[str, str, int]


@dataclass(frozen=True)
class Job:
    """One run of a table: everything it needs, as plain (picklable, JSON-able) data.

    Attributes:
        task: the task package, ``readpvla.tasks.<task>`` (``"tlg"``, ``"vls"``).
        row: the table row (a key of the task's ``ROWS``).
        split: the target domain or split the run trains and is tested on.
        seed: the run's seed (adapter initialisation, data order, dropout).
        backbone: the backbone's short name (``"crossmodal"``, ``"bart"``, ...).
        checkpoint: the pretrained backbone's folder (readable where the job runs).
        data_dir: the task's data folder (readable where the job runs).
        settings: the task's frozen settings dataclass (budget, PVLA settings, ...).
        device: ``"cpu"`` or ``"cuda[:N]"``.
    """

    task: str
    row: str
    split: str
    seed: int
    backbone: str
    checkpoint: str
    data_dir: str
    settings: Any
    device: str = "cpu"

    @property
    def key(self) -> Key:
        """``(row, split, seed)``: the job's place in its table."""
        return (self.row, self.split, int(self.seed))

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a stored record to stand for this job (all but the key and the
        device, which changes where a run goes, not what it computes)."""
        return {"task": self.task, "backbone": self.backbone, "checkpoint": self.checkpoint,
                "data_dir": self.data_dir, "settings": dataclasses.asdict(self.settings)}


class GridError(RuntimeError):
    """Some runs of a grid failed; the others finished and were written.

    Attributes:
        failed: the failed runs' records (``row``, ``split``, ``seed``, ``error``, ``traceback``).
        records: every record, in job order (failed ones included).
    """

    def __init__(self, failed: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
        self.failed, self.records = failed, records
        lines = [f"{r['row']} / {r['split']} / seed {r['seed']}: {r['error']}" for r in failed]
        super().__init__(f"{len(failed)} of {len(records)} runs failed (the others finished):\n  "
                         + "\n  ".join(lines))


def task_module(task: str) -> Any:
    """The task package ``readpvla.tasks.<task>`` (``ValueError`` for an unknown task)."""
    if not isinstance(task, str) or not task.isidentifier():
        raise ValueError(f"not a task name: {task!r}")
    try:
        return importlib.import_module(f"readpvla.tasks.{task}")
    except ModuleNotFoundError as e:
        if e.name == f"readpvla.tasks.{task}":
            raise ValueError(f"unknown task {task!r} (no readpvla.tasks.{task})") from None
        raise


def run_job(job: Job) -> dict[str, Any]:
    """Run one job through its task and return its record (never raises for the run's own error).

    The record is ``{"row", "split", "seed", **task.run(job), "seconds"}``, or, if the run
    raised, ``{"row", "split", "seed", "error", "traceback"}``. On CPU the run uses one torch
    thread (restored afterwards).
    """
    import torch

    head = {"row": job.row, "split": job.split, "seed": int(job.seed)}
    threads = torch.get_num_threads()
    on_cpu = not str(job.device).startswith("cuda")
    t0 = time.perf_counter()
    try:
        if on_cpu:
            torch.set_num_threads(1)
        record = task_module(job.task).run(job)
    except Exception as e:  # the grid reports it; the other runs go on
        return {**head, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    finally:
        if on_cpu:
            torch.set_num_threads(threads)
    return {**head, **record, "seconds": round(time.perf_counter() - t0, 3)}


def check_grid(rows: Sequence[str], known_rows: Sequence[str], splits: Sequence[str],
               known_splits: Sequence[str], seeds: Sequence[int]) -> None:
    """Refuse a grid with unknown or no rows, unknown or no domains, or no seeds (``ValueError``
    naming what is known), before anything runs."""
    unknown = [r for r in rows if r not in known_rows]
    if unknown or not rows:
        raise ValueError(f"unknown row(s) {unknown}; known: {list(known_rows)}")
    bad = [d for d in splits if d not in known_splits]
    if bad or not splits:
        raise ValueError(f"unknown domain(s) {bad}; known: {list(known_splits)}")
    if not seeds:
        raise ValueError("seeds is empty")


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and make sure a file can be written there, before any work is
    done (``ValueError`` naming the folder otherwise)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to {folder}: {e.strerror or e}") from None
    return folder


class RecordFile:
    """Run records as JSON lines ``{"fingerprint": ..., "record": ...}``, appended and flushed to
    disk as each run finishes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(fingerprint, record)`` of every line; the last line, if an interrupted write cut it
        short, is ignored; any other malformed line raises ``ValueError`` naming file and line."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                fp, rec = entry["fingerprint"], entry["record"]
                (rec["row"], rec["split"], int(rec["seed"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                if i == len(lines):  # the write that was interrupted: that run did not finish
                    break
                raise ValueError(f"{self.path}:{i}: not a run record ({e})") from None
            out.append((fp, rec))
        return out

    def reset(self, entries: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()) -> None:
        """Rewrite the file (atomically) with ``entries`` only: empty by default; on resume, the
        entries :meth:`read` found, which drops a line an interrupted write cut short."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps({"fingerprint": fp, "record": rec}) + "\n"
                               for fp, rec in entries), encoding="utf-8")
        os.replace(tmp, self.path)

    def append(self, fingerprint: dict[str, Any], record: dict[str, Any]) -> None:
        """Add one record (flushed and fsynced: it survives a crash right after)."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"fingerprint": fingerprint, "record": record}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _fp_text(fp: dict[str, Any]) -> str:
    return json.dumps(fp, sort_keys=True)


def _finished(records: RecordFile, jobs: Sequence[Job]) -> dict[tuple[str, Key], dict[str, Any]]:
    """The stored records that stand for ``jobs`` (same fingerprint and key, without an error);
    a stored run of a job's key made with another fingerprint raises. The file keeps every
    complete line (a cut-short last line is dropped)."""
    wanted = {(_fp_text(j.fingerprint()), j.key) for j in jobs}
    keys = {j.key for j in jobs}
    done = {}
    entries = records.read()
    for fp, rec in entries:
        key = (rec["row"], rec["split"], int(rec["seed"]))
        ident = (_fp_text(fp), key)
        if ident in wanted:
            if "error" not in rec:
                done[ident] = rec
        elif key in keys and len({_fp_text(j.fingerprint()) for j in jobs}) == 1:
            raise ValueError(
                f"{records.path}: run {key} was made with other settings than this grid's "
                f"({fp} vs {jobs[0].fingerprint()}); use another output folder or --overwrite")
    records.reset(entries)
    return done


def run_grid(jobs: Sequence[Job], executor: str | Any = "local", *, workers: int = 1,
             address: str | None = None, records: str | Path | None = None,
             resume: bool = False, progress: bool = True,
             log: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every job (each :func:`run_job`) and return their records in job order.

    Args:
        jobs: the grid (keys must be unique).
        executor: ``"local"`` (this machine: in this process, or ``workers`` spawned processes),
            ``"ray"`` (tasks on a Ray cluster, see :mod:`readpvla.experiment.executors`), or an
            executor object.
        workers: local worker processes (``executor="local"``; 1 = in this process).
        address: the Ray cluster (``executor="ray"``; None starts a local Ray on this machine,
            ``"auto"`` joins the one ``ray start`` started).
        records: a JSON-lines file that gets each record when its run finishes.
        resume: take runs already in ``records`` (same job fingerprint and key) instead of running
            them again; without it ``records`` is started afresh.
        progress: a tqdm bar over the runs.
        log: called with each record as it arrives.

    Raises:
        ValueError: duplicated keys, an unwritable ``records`` folder, or records made with other
            settings (on ``resume``).
        GridError: after every other run finished, if some runs raised.
    """
    from tqdm.auto import tqdm

    from .executors import make_executor

    jobs = list(jobs)
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("a grid's (row, split, seed) keys must be unique")
    for j in jobs:
        task_module(j.task)  # an unknown task fails here, before any run
    ex = make_executor(executor, workers=workers, address=address)
    store = RecordFile(records) if records is not None else None
    done: dict[tuple[str, Key], dict[str, Any]] = {}
    if store is not None:
        check_writable(store.path.parent)
        if resume:
            done = _finished(store, jobs)
        else:
            store.reset()
    ident = [(_fp_text(j.fingerprint()), j.key) for j in jobs]
    todo = [i for i, k in enumerate(ident) if k not in done]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="runs", disable=not progress)
    results: dict[int, dict[str, Any]] = {}
    try:
        for i, rec in ex.map_unordered(run_job, [jobs[i] for i in todo]):
            idx = todo[i]
            if isinstance(rec, BaseException):  # the process running it was lost
                j = jobs[idx]
                rec = {"row": j.row, "split": j.split, "seed": int(j.seed),
                       "error": f"run lost: {type(rec).__name__}: {rec}",
                       "traceback": "".join(traceback.format_exception(rec))}
            results[idx] = rec
            if store is not None:
                store.append(jobs[idx].fingerprint(), rec)
            bar.update()
            if log is not None:
                log(rec)
    finally:
        bar.close()
    out = [results[i] if i in results else done[k] for i, k in enumerate(ident)]
    failed = [r for r in out if "error" in r]
    if failed:
        raise GridError(failed, out)
    return out
