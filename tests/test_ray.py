"""The Ray executor on a tiny TLG grid: the same records as the local executor, a killed worker
loses only its own run (Ray runs it again), a run that raises is reported while the others land,
and an interrupted grid resumes.

The module starts one local 2-CPU Ray instance for the grid tests (``ray_cluster``) and stops it at
the end; the executor must leave an instance it did not start running. One test before it lets the
executor start (and stop) its own instance. Skipped where ``ray`` is not installed (the ``cluster``
and ``dev`` extras install it).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tlg_toy import TINY_SETTINGS, make_toy  # noqa: E402

import readpvla  # noqa: E402
from readpvla import experiment as ex  # noqa: E402
from readpvla.experiment import executors  # noqa: E402
from readpvla.tasks import tlg  # noqa: E402

VARIANTS, DOMAINS, SEEDS = ["READ-PVLA", "Adapter"], ["dog", "gym"], [0, 1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny two-domain TLG dataset and tiny checkpoints (tests/tlg_toy.py)."""
    return make_toy(tmp_path_factory.mktemp("tlg_ray"))


def grid_jobs(toy) -> list[ex.Job]:
    return tlg.jobs("crossmodal", VARIANTS, DOMAINS, SEEDS, TINY_SETTINGS, toy,
                    toy / "ckpt" / "crossmodal")


def strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module")
def local_records(toy):
    """The reference: every run in this process, one after the other."""
    return strip(ex.run_grid(grid_jobs(toy), "local", workers=1, progress=False))


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray instance that the tests (not the executor) start and stop."""
    assert not ray.is_initialized()
    executors.init_ray(num_cpus=2)  # = ray.init(address="local", num_cpus=2, ...) on 127.0.0.1
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


# -- the executor's own local instance ------------------------------------------------------------
def test_executor_starts_its_own_local_ray_and_stops_it(toy):
    """address=None: a loopback-only instance, readpvla from this clone, one thread per worker;
    stopped after the grid. (First in the module: ``ray_cluster`` is not running yet.)"""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")

    def probe(job):
        import os

        import ray
        import torch

        import readpvla

        return {"readpvla": readpvla.__file__, "gcs": ray.get_runtime_context().gcs_address,
                "omp": os.environ.get("OMP_NUM_THREADS"), "pythonpath": os.environ["PYTHONPATH"],
                "threads": torch.get_num_threads(), "usage": os.environ.get(
                    "RAY_USAGE_STATS_ENABLED"), "device": job.device}

    env_before = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                                                 "RAY_USAGE_STATS_ENABLED")}
    out = list(executors.RayExecutor(num_cpus=1).map_unordered(probe, grid_jobs(toy)[:1]))
    assert not ray.is_initialized()  # it started the instance, so it stopped it
    [(i, seen)] = out
    assert i == 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(readpvla.__file__)))
    assert Path(seen["readpvla"]).resolve() == Path(readpvla.__file__).resolve()
    assert seen["pythonpath"].split(os.pathsep)[0] == root
    assert seen["gcs"].startswith("127.0.0.1:")  # loopback only
    assert seen["usage"] == (env_before["RAY_USAGE_STATS_ENABLED"] or "0")
    assert seen["omp"] == "1" and seen["threads"] == 1 and seen["device"] == "cpu"
    assert {k: os.environ.get(k) for k in env_before} == env_before  # put back after init


# -- grids on a running instance -----------------------------------------------------------------
def test_ray_records_equal_local_records(toy, local_records, ray_cluster):
    assert ray_cluster.startswith("127.0.0.1:")
    records = ex.run_grid(grid_jobs(toy), "ray", progress=False)
    assert strip(records) == local_records  # bit for bit: one torch thread per run either way
    assert ray.is_initialized()  # the executor did not start this instance: left running


def test_killed_worker_loses_only_its_own_run(toy, local_records, ray_cluster, tmp_path,
                                              monkeypatch):
    """The worker process holding one run is SIGKILLed before the run finishes (its first attempt
    only, marked by a file); Ray runs that job again in a new worker, the other runs are not
    touched, and every record lands, equal to the local ones."""
    victim, marker, attempts = ("Adapter", "dog", 1), tmp_path / "killed", tmp_path / "attempts"

    def crash_once(job):
        import os
        import signal

        from readpvla.experiment.grid import run_job

        with open(attempts, "a") as f:
            f.write(f"{job.row}/{job.split}/{job.seed} {os.getpid()}\n")
        if job.key == victim:
            try:
                with open(marker, "x") as f:  # the first attempt only
                    f.write(str(os.getpid()))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return run_job(job)

    import readpvla.experiment.grid as grid

    monkeypatch.setattr(grid, "run_job", crash_once)
    path = tmp_path / "runs.jsonl"
    records = ex.run_grid(grid_jobs(toy), "ray", records=path, progress=False)
    assert strip(records) == local_records
    assert len(path.read_text().splitlines()) == len(local_records)
    tries = [line.split() for line in attempts.read_text().splitlines()]
    runs = [key for key, _ in tries]
    assert runs.count("Adapter/dog/1") == 2, tries  # killed once, run again
    assert all(runs.count(k) == 1 for k in runs if k != "Adapter/dog/1"), tries
    pids = [pid for key, pid in tries if key == "Adapter/dog/1"]
    assert marker.read_text() == pids[0] and pids[1] != pids[0]  # another worker process
    assert ray.is_initialized()


def test_failed_run_is_reported_while_the_others_land(toy, local_records, ray_cluster, tmp_path):
    jobs = grid_jobs(toy)
    jobs[2] = dataclasses.replace(jobs[2], checkpoint=str(tmp_path / "no-such-checkpoint"))
    path = tmp_path / "runs.jsonl"
    with pytest.raises(ex.GridError) as e:
        ex.run_grid(jobs, "ray", records=path, progress=False)
    [failed] = e.value.failed
    assert (failed["row"], failed["split"], failed["seed"]) == jobs[2].key
    assert "no-such-checkpoint" in failed["error"] and "Traceback" in failed["traceback"]
    assert jobs[2].row in str(e.value)
    good = [r for r in strip(e.value.records) if "error" not in r]
    assert good == local_records[:2] + local_records[3:]
    written = {(r["row"], r["split"], r["seed"]): r for _, r in ex.RecordFile(path).read()}
    assert len(written) == len(jobs)  # every run landed, the failed one with its error
    assert strip([written[j.key] for j in jobs]) == strip(e.value.records)


def test_interrupted_ray_grid_resumes(toy, local_records, ray_cluster, tmp_path, monkeypatch):
    """Ctrl-C after two records: the pending runs are cancelled, the two stay on disk, and
    ``resume=True`` runs only the others."""
    jobs, path = grid_jobs(toy), tmp_path / "runs.jsonl"
    seen = []

    def interrupt_after_two(rec):
        seen.append(rec)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.run_grid(jobs, "ray", records=path, progress=False, log=interrupt_after_two)
    assert len(path.read_text().splitlines()) == 2
    assert ray.is_initialized()
    deadline = time.monotonic() + 60  # the cancelled runs give their CPUs back
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2
    ran = tmp_path / "ran"

    def counted(job):
        from readpvla.experiment.grid import run_job

        with open(ran, "a") as f:
            f.write(f"{job.row}/{job.split}/{job.seed}\n")
        return run_job(job)

    import readpvla.experiment.grid as grid

    monkeypatch.setattr(grid, "run_job", counted)
    resumed = ex.run_grid(jobs, "ray", records=path, resume=True, progress=False)
    assert strip(resumed) == local_records
    done_first = {f"{r['row']}/{r['split']}/{r['seed']}" for r in seen}
    again = ran.read_text().splitlines()
    assert len(again) == len(jobs) - 2 and not done_first & set(again)
    assert len(path.read_text().splitlines()) == len(jobs)


def test_make_executor_and_errors(toy, ray_cluster):
    assert isinstance(ex.make_executor("ray"), ex.RayExecutor)
    assert ex.make_executor("ray", address="auto").address == "auto"
    with pytest.raises(ValueError, match="num_cpus must be a positive integer"):
        ex.RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="num_cpus is for a local Ray"):
        ex.RayExecutor("auto", num_cpus=2)
    with pytest.raises(ValueError, match="max_retries"):
        ex.RayExecutor(max_retries=-1)
    assert list(ex.RayExecutor().map_unordered(len, [])) == []  # nothing to run: no Ray started
    job = ex.Job("tlg", "READ", "dog", 0, "crossmodal", "ckpt", "data", TINY_SETTINGS, "cuda:1")
    assert executors._for_ray(job).device == "cuda"  # Ray shows a task its GPU as the only one
    assert executors._for_ray(dataclasses.replace(job, device="cpu")).device == "cpu"
    assert executors._task_name(job) == "tlg:READ/dog/0"
    if not ray.cluster_resources().get("GPU"):  # refused, not left waiting for ever
        with pytest.raises(ValueError, match="no GPU"):
            ex.run_grid([dataclasses.replace(grid_jobs(toy)[0], device="cuda")], "ray",
                        progress=False)


def test_a_local_start_that_times_out_is_tried_again(monkeypatch):
    """Ray waits a fixed 30 s for its raylet; on a loaded machine init_ray tries again (and gives
    up after _START_ATTEMPTS, with Ray's error); other errors are not retried."""
    calls = []

    def fake_init(**kw):
        calls.append(kw)
        if len(calls) < 2:
            raise Exception("The current node timed out during startup. This could happen ...")

    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    executors.init_ray(num_cpus=1)
    assert len(calls) == 2 and calls[0]["address"] == "local"
    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: (calls.append(kw), (_ for _ in ()).throw(
        Exception("The current node timed out during startup"))))
    with pytest.raises(Exception, match="timed out during startup"):
        executors.init_ray(num_cpus=1)
    assert len(calls) == executors._START_ATTEMPTS
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(ValueError("other")))
    with pytest.raises(ValueError, match="other"):
        executors.init_ray(num_cpus=1)
