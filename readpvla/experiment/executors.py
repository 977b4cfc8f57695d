"""Where a grid's runs execute: interchangeable executors behind one call.

Every executor has ``map_unordered(fn, jobs)``, which yields ``(index, fn(jobs[index]))`` as each
run finishes (the grid writes the record at once), or ``(index, exception)`` when the process
that ran it was lost (a killed worker Ray could not retry, a crashed local worker process): the
grid records that run as failed and the others go on. ``fn`` is :func:`readpvla.experiment.run_job`:
a module-level function, so it reaches spawned processes and Ray workers by name.

- :class:`LocalExecutor` (``executor="local"``, the default, no extra package): the runs one after
  the other in this process (``workers=1``), or in ``workers`` spawned processes.
- :class:`RayExecutor` (``executor="ray"``, needs ``pip install 'readpvla[cluster]'``): one Ray
  task per run with its own resources (``num_cpus=1``; ``num_gpus=1`` when the job's device is
  CUDA), on the cluster at ``address`` (``"auto"``: the one ``ray start --head`` started on this
  machine; ``"ray://host:10001"``: a remote head through Ray Client, which with token
  authentication needs ``RAY_AUTH_MODE=token`` and the cluster's token here) or, with
  ``address=None``, on a Ray instance started here for the grid and stopped after it. A worker or
  node that dies loses only the run it held: Ray runs it again (``max_retries``). A run that raises
  is not retried: its record carries the error and the other runs go on.

What runs where (Ray): the driver (your ``readpvla transfer-tlg ...`` process) builds the jobs,
collects the records and writes the files; every run loads the backbone checkpoint and the data
from the paths in its job (``job.checkpoint``, ``job.data_dir``; a checkpoint once per worker
process). Only the job (a few hundred bytes) and its record travel through Ray; no code or data is
uploaded. The workers import ``readpvla`` from the driver's clone (``PYTHONPATH``: inherited from
the driver by a local instance, in the job's runtime environment on a cluster,
:func:`ray_runtime_env`) or, where that path does not exist, from their own install. So on a
cluster the clone and the data must be readable at the same paths on every node (a shared
filesystem, or the same clone of readpvla, with its shipped ``data_samples/``, at the same path on
every node), and the workers' Python must have readpvla's dependencies.

A local Ray (``address=None``) listens on 127.0.0.1 only and reports no usage statistics
(:func:`init_ray`). Each Ray worker runs one run at a time with one torch thread (Ray sets
``OMP_NUM_THREADS=1`` for a one-CPU task, and :func:`~readpvla.experiment.run_job` pins torch to
one thread), so on one machine the records equal the local executor's bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["LocalExecutor", "RayExecutor", "init_ray", "make_executor", "ray_runtime_env",
           "usable_cpus"]


class LocalExecutor:
    """Runs on this machine: in this process (``workers == 1``, or any job on CUDA) or in
    ``workers`` spawned worker processes (CPU)."""

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        on_cuda = any(str(getattr(j, "device", "cpu")).startswith("cuda") for j in jobs)
        if self.workers == 1 or on_cuda or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(job)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=ctx) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            try:
                for fut in as_completed(futures):
                    try:
                        result = fut.result()
                    except Exception as e:  # the worker process died (BrokenProcessPool, ...)
                        result = e
                    yield futures[fut], result
            finally:  # an interrupt: drop the queued runs, wait only for the running ones
                for fut in futures:
                    fut.cancel()


# -- Ray -------------------------------------------------------------------------------------------
# What a run needs from the driver's environment (offline switches, the CPU kernel pin of
# DESIGN.md fact 7, the cache folder, the hash seed), passed on to the workers.
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ATEN_CPU_CAPABILITY", "READPVLA_CACHE",
                  "PYTHONHASHSEED")


def _readpvla_root() -> str:
    """The folder that holds the ``readpvla`` package the driver imports (the clone, or
    site-packages)."""
    import readpvla

    return os.path.dirname(os.path.dirname(os.path.abspath(readpvla.__file__)))


def ray_runtime_env() -> dict[str, Any]:
    """The Ray ``runtime_env`` of a grid on a cluster (a local instance inherits the same
    variables from the driver): the workers import ``readpvla`` from the driver's clone
    (``PYTHONPATH`` = the clone first, then the driver's ``PYTHONPATH``; nothing for a readpvla
    installed in site-packages) and get the driver's offline / kernel / cache / hash-seed
    variables. Nothing is uploaded: the path must exist on every node (the same clone, or a shared
    filesystem), else the workers' own ``readpvla`` install is used.
    """
    root = _readpvla_root()
    if os.path.basename(root) in ("site-packages", "dist-packages"):
        root = ""  # an installed readpvla: the workers' Python has its own (never put a foreign
        # site-packages, maybe of another Python, before theirs)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {"PYTHONPATH": path, **{k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}}
    return {"env_vars": env}


@contextlib.contextmanager
def _local_only(env: dict[str, str]) -> Iterator[None]:
    """While a local Ray starts: ``env`` set (the processes Ray starts, its workers among them,
    inherit it), no usage-stats reporting, and every Ray process (GCS, raylet, object store,
    workers) listening on 127.0.0.1 only, not on the machine's network address.

    Ray picks the loopback address where it does not support clusters (its
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch, read when ``ray`` is imported, so it is also set
    on the imported constant). Everything is put back afterwards, so a later ``address="auto"`` in
    this process finds a real cluster.
    """
    import ray._private.ray_constants as rc

    env = {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0"), **env,
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_flag = getattr(rc, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(env)
    if saved_flag is not None:
        rc.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_flag is not None:
            rc.ENABLE_RAY_CLUSTER = saved_flag


def usable_cpus() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


#: tries to start a local Ray when its node times out during start-up (a loaded machine)
_START_ATTEMPTS = 3


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect this process to Ray the way a grid does (``ray.init``).

    ``address=None`` starts a new local instance (``address="local"``, so a ``RAY_ADDRESS`` in
    the environment does not redirect it) with ``num_cpus`` CPUs (default :func:`usable_cpus`),
    listening on 127.0.0.1 only, without dashboard or usage stats; its processes inherit the
    variables of :func:`ray_runtime_env` (so the workers Ray starts ahead serve the grid at once).
    Any other ``address`` (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.1:6379"``) joins that
    cluster, with :func:`ray_runtime_env` as the job's runtime environment. The workers' output is
    not forwarded either way (a run's error comes back in its record). A local start that times
    out (Ray waits a fixed 30 s for its raylet, which a loaded machine can exceed) is tried again,
    up to :data:`_START_ATTEMPTS` times.
    """
    import ray

    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "configure_logging": False}
    if address is None:
        with _local_only(ray_runtime_env()["env_vars"]):
            for attempt in range(_START_ATTEMPTS):
                try:
                    ray.init(address="local", num_cpus=num_cpus or usable_cpus(), **kw)
                    break
                except Exception as e:  # Ray raises a bare Exception for this
                    # Ray waits a fixed 30 s for its raylet; a loaded machine can take longer
                    if "timed out during startup" not in str(e) or attempt + 1 == _START_ATTEMPTS:
                        raise
                    ray.shutdown()
    else:
        if num_cpus is not None:
            raise ValueError("num_cpus is for a local Ray (address=None); a cluster has its own")
        try:
            ray.init(address=address, runtime_env=ray_runtime_env(), **kw)
        except ConnectionError as e:
            if str(address).startswith("ray://") and "RAY_AUTH_MODE" not in os.environ:
                raise ConnectionError(
                    f"{e} (a cluster with token authentication, the default of recent Ray, "
                    "needs RAY_AUTH_MODE=token here, with its token in RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token)") from e
            raise


def _task_name(job: Any) -> str:
    """The Ray task's name (``ray list tasks``, the dashboard): ``task:row/split/seed``."""
    key = getattr(job, "key", None)
    return f"{getattr(job, 'task', 'run')}:{'/'.join(map(str, key))}" if key else "run"


def _for_ray(job: Any) -> Any:
    """A job as a Ray task sees it: Ray gives a task its GPU as the only visible one, so a job
    pinned to ``cuda:N`` runs on ``cuda`` (the device is not part of a job's fingerprint)."""
    device = str(getattr(job, "device", "cpu"))
    if device.startswith("cuda:") and dataclasses.is_dataclass(job):
        return dataclasses.replace(job, device="cuda")
    return job


def _check_resources(resources: dict[str, float], need_gpu: bool) -> None:
    """Refuse a grid that the cluster could never schedule (Ray would wait for ever)."""
    if resources.get("CPU", 0) < 1:
        raise ValueError(f"the Ray cluster has no CPU for the runs (resources: {resources})")
    if need_gpu and resources.get("GPU", 0) < 1:
        raise ValueError("some jobs are on CUDA but the Ray cluster has no GPU "
                         f"(resources: {resources}); use device='cpu' or a cluster with GPUs")


class RayExecutor:
    """One Ray task per run (see the module docstring).

    Args:
        address: ``None`` (start a local Ray here with ``num_cpus`` CPUs and stop it after the
            grid), ``"auto"`` (the cluster ``ray start`` runs on this machine), or a cluster
            address (``"ray://head:10001"``, ``"10.0.0.1:6379"``). If this process is already
            connected to Ray (``ray.init`` was called), the grid runs there and leaves it running.
        num_cpus: CPUs of the local instance when ``address`` is None (default: usable cores).
        max_retries: how often Ray reruns a run whose worker process or node died. A run that
            raises is never rerun (its record carries the error).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 max_retries: int = 3) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ValueError("executor 'ray' needs the ray package: pip install "
                             "'readpvla[cluster]' (or pip install ray)")
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int)
                                     or num_cpus < 1):
            raise ValueError(f"num_cpus must be a positive integer, got {num_cpus!r}")
        if num_cpus is not None and address is not None:
            raise ValueError("num_cpus is for a local Ray (address=None); a cluster has its own")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.address, self.num_cpus, self.max_retries = address, num_cpus, max_retries

    def _start(self) -> bool:
        """Connect to (or start) Ray; True if this call connected (so the grid disconnects, which
        also stops a local instance it started)."""
        import ray

        if ray.is_initialized():
            return False
        init_ray(self.address, self.num_cpus)
        return True

    def map_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        if not jobs:
            return
        import ray

        gpus = [1 if str(getattr(job, "device", "cpu")).startswith("cuda") else 0
                for job in jobs]
        started = self._start()
        refs: dict[Any, int] = {}
        try:
            _check_resources(ray.cluster_resources(), any(gpus))
            remote = ray.remote(fn)
            for i, job in enumerate(jobs):
                ref = remote.options(num_cpus=1, num_gpus=gpus[i], max_retries=self.max_retries,
                                     retry_exceptions=False, name=_task_name(job)
                                     ).remote(_for_ray(job))
                refs[ref] = i
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    index = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:  # lost for good (retries used up)
                        result = e
                    yield index, result
        finally:
            # an interrupt, an error, or a run lost for good: cancel what is left (queued runs
            # never start, cancelled runs are not retried), then disconnect if this call
            # connected (which also stops a local instance it started). A running run's worker
            # is killed (force): a KeyboardInterrupt raised inside it instead can land in the
            # middle of an import (torch imports parts lazily during the first run) and leave the
            # worker with a half-imported module that fails every later run it gets.
            for ref in refs:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished, or the cluster is gone
                    pass
            if started:
                ray.shutdown()


def make_executor(executor: str | Any = "local", *, workers: int = 1,
                  address: str | None = None) -> Any:
    """An executor by name (``"local"`` or ``"ray"``), or ``executor`` itself if it already has
    ``map_unordered``."""
    if hasattr(executor, "map_unordered"):
        return executor
    if executor == "local":
        if address is not None:
            raise ValueError("address is for executor='ray'")
        return LocalExecutor(workers)
    if executor == "ray":
        return RayExecutor(address)
    raise ValueError(f"executor must be 'local' or 'ray', got {executor!r}")
