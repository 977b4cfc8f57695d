"""Wall time of a TLG table with the local executor and with Ray, side by side (prints; never
asserts).

Default: the default Table 1 (``tlg.run_transfer("crossmodal")``: 9 methods x 6 domains x 3 seeds,
QUICK budget) once with ``executor="local", workers=2`` and once with ``executor="ray"`` on a local
Ray instance with 2 CPUs (started and stopped inside the timed span, as a user's
``--executor ray`` does), then Ray's overhead as a ratio, and whether the two gave the same
records (they should, bit for bit: one torch thread per run either way).

    python benchmarks/bench_grid.py                                   # ~17 min on 2 cores
    python benchmarks/bench_grid.py --domains dog --seeds 0           # 9 runs, a quick check
    python benchmarks/bench_grid.py --domains dog --seeds 0 --repeat 3  # alternated, medians
    python benchmarks/bench_grid.py --methods Proj READ-PVLA --domains dog gym --seeds 0 1
    python benchmarks/bench_grid.py --only ray --address auto         # a running `ray start`

Output files (tables, run records) go to a temporary folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from readpvla.experiment import executors
from readpvla.tasks import tlg


def records_of(folder: Path) -> dict:
    """The run records of ``folder/runs_table1.jsonl`` by key, without their timings."""
    out = {}
    for line in (folder / "runs_table1.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)["record"]
        out[(rec["row"], rec["split"], rec["seed"])] = {k: v for k, v in rec.items()
                                                        if k != "seconds"}
    return out


def timed(args: argparse.Namespace, executor: str, out: Path) -> dict:
    """One table with one executor: wall seconds (and, for a local Ray, its start-up alone)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    kw = dict(methods=args.methods, domains=args.domains, seeds=args.seeds, out_dir=out,
              data_dir=args.data, checkpoint=args.checkpoint, progress=args.progress,
              executor=executor)
    startup = None
    t0 = time.perf_counter()
    if executor == "local":
        tlg.run_transfer(args.backbone, workers=args.workers, **kw)
    elif args.address is not None:
        tlg.run_transfer(args.backbone, address=args.address, **kw)
    else:
        import ray

        executors.init_ray(num_cpus=args.workers)  # what executor="ray" starts, with 2 CPUs
        startup = time.perf_counter() - t0
        try:
            tlg.run_transfer(args.backbone, **kw)
        finally:
            ray.shutdown()
    wall = time.perf_counter() - t0
    recs = records_of(out)
    busy = sum(json.loads(line)["record"].get("seconds", 0.0) for line in
               (out / "runs_table1.jsonl").read_text(encoding="utf-8").splitlines())
    return {"wall": wall, "startup": startup, "runs": len(recs), "records": recs,
            "run_seconds": busy, "load_before": load}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", choices=sorted(tlg.BACKBONES), default="crossmodal")
    ap.add_argument("--methods", nargs="+", default=list(tlg.TABLE1_ROWS), choices=list(tlg.ROWS))
    ap.add_argument("--domains", nargs="+", default=list(tlg.DOMAINS), choices=list(tlg.DOMAINS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2,
                    help="local worker processes, and the CPUs of the local Ray (default 2)")
    ap.add_argument("--only", choices=("local", "ray"), help="time one executor only")
    ap.add_argument("--address", default=None,
                    help="Ray cluster to use instead of a local instance (e.g. auto)")
    ap.add_argument("--data", default=None, help="target splits (default data_samples/tlg)")
    ap.add_argument("--checkpoint", default=None, help="backbone checkpoint (default shipped)")
    ap.add_argument("--out", default=None, help="keep the output here (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="time each executor this many times, alternating (medians compared)")
    ap.add_argument("--progress", action="store_true", help="tqdm bars")
    args = ap.parse_args(argv)

    n = len(args.methods) * len(args.domains) * len(args.seeds)
    print(f"TLG Table 1 grid: {len(args.methods)} methods x {len(args.domains)} domains x "
          f"{len(args.seeds)} seeds = {n} runs, backbone {args.backbone}, QUICK budget; "
          f"{args.workers} local workers / Ray CPUs; {executors.usable_cpus()} usable cores",
          flush=True)
    which = [args.only] if args.only else ["local", "ray"]
    res: dict[str, list[dict]] = {e: [] for e in which}
    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        for rep in range(args.repeat):  # alternated, so a busy spell on a shared machine hits both
            for executor in which:
                r = timed(args, executor, root / f"{executor}-{rep}")
                res[executor].append(r)
                extra = (f" (Ray start-up {r['startup']:.1f} s, the grid "
                         f"{r['wall'] - r['startup']:.1f} s)" if r["startup"] is not None else "")
                print(f"{executor:>5s}: {r['wall']:8.1f} s wall{extra}; {r['runs']} runs, "
                      f"{r['run_seconds']:.0f} s inside runs ({r['run_seconds'] / r['wall']:.2f} "
                      f"runs busy on average); load average before {r['load_before']:.2f}",
                      flush=True)
    if len(res) == 2:
        med = {e: statistics.median(r["wall"] for r in rs) for e, rs in res.items()}
        label = "median " if args.repeat > 1 else ""
        print(f"ray / local {label}wall time: {med['ray'] / med['local']:.3f}x "
              f"({med['ray']:.1f} s / {med['local']:.1f} s)", end="")
        ups = [r["startup"] for r in res["ray"] if r["startup"] is not None]
        if ups:
            grid_only = statistics.median(r["wall"] - r["startup"] for r in res["ray"])
            print(f"; without Ray's start-up ({statistics.median(ups):.1f} s): "
                  f"{grid_only / med['local']:.3f}x", end="")
        print()
    runs = [r["records"] for rs in res.values() for r in rs]
    if len(runs) > 1:
        same = all(r == runs[0] for r in runs[1:])
        print(f"records identical across executors and repeats (all but 'seconds'): {same}")
        if not same:
            diff = sorted({k for r in runs[1:] for k in runs[0] if runs[0][k] != r.get(k)})
            print(f"  differing runs: {diff[:10]}{' ...' if len(diff) > 10 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
