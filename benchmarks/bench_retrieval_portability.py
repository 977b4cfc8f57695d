"""How far do retrieval transfer numbers move when only the CPU's float kernels change? (prints only)

The same retrieval runs (rows x domains x seeds, the shipped settings and learning rates) in fresh
processes under other kernel settings (``ATEN_CPU_CAPABILITY=default | avx2`` and the native one,
with the matching MKL / oneDNN limits), one torch thread each, as "another machine" would run
them. Prints, per run, t2v R@1 under each setting, the largest cross-setting difference, and
beside them the seed-to-seed standard deviation of the same rows in the shipped table: the
tolerance :data:`readpvla.tasks.retrieval.shipped.RERUN_TOLERANCE` is set from these numbers.

    python benchmarks/bench_retrieval_portability.py                  # RAP, LoRA, Full on flat, seed 0
    python benchmarks/bench_retrieval_portability.py --rows RAP READ --domains flat dark
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_portability import SETTINGS  # the same kernel settings as the TLG benchmark


def worker(args: argparse.Namespace) -> None:
    """Run every (row, domain, seed) here and print the records' t2v R@1 as JSON."""
    import torch

    from readpvla.tasks import retrieval

    torch.set_num_threads(1)
    settings = retrieval.TransferSettings(lrs=tuple(retrieval.shipped_lrs(args.temporal).items()))
    backbone = retrieval.load(args.temporal)
    out = []
    for d in args.domains:
        for s in args.seeds:
            for r in args.rows:
                rec = retrieval.run_one(backbone, r, d, s, settings)
                out.append({"row": r, "split": d, "seed": s, "t2v_R1": rec["test"]["t2v_R1"]})
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temporal", default="frames")
    ap.add_argument("--rows", nargs="+", default=["RAP", "LoRA", "Full"])
    ap.add_argument("--domains", nargs="+", default=["flat"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0
    from readpvla.tasks import retrieval

    t0 = time.perf_counter()
    argv = [sys.executable, __file__, "--worker", "--temporal", args.temporal, "--rows", *args.rows,
            "--domains", *args.domains, "--seeds", *map(str, args.seeds)]
    procs = {}
    for name in args.settings:  # the settings run side by side, one process (one thread) each
        env = {**os.environ, **SETTINGS[name]}
        for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "DNNL_MAX_CPU_ISA"):
            if k not in SETTINGS[name]:
                env.pop(k, None)
        procs[name] = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    results = {}
    for name, p in procs.items():
        out, _ = p.communicate()
        if p.returncode:
            print(f"{name}: worker failed ({p.returncode})", file=sys.stderr)
            return 1
        results[name] = json.loads(out.strip().splitlines()[-1])
    shipped = retrieval.shipped_table(args.temporal)
    spread = []
    print(f"t2v R@1 of the same runs under each kernel setting ({args.temporal}; "
          f"{time.perf_counter() - t0:.0f} s)")
    print(f"{'row':>10s} {'domain':>6s} seed " + " ".join(f"{s:>8s}" for s in args.settings)
          + "  max-min  shipped seed std")
    for i, rec in enumerate(results[args.settings[0]]):
        vals = [results[s][i]["t2v_R1"] for s in args.settings]
        spread.append(max(vals) - min(vals))
        std = "n/a"
        if shipped is not None and rec["row"] in shipped["rows"]:
            std = f"{shipped['rows'][rec['row']]['per_split'][rec['split']]['t2v_R1']['std']:.2f}"
        print(f"{rec['row']:>10s} {rec['split']:>6s} {rec['seed']:4d} "
              + " ".join(f"{v:8.2f}" for v in vals) + f"  {spread[-1]:7.2f}  {std:>8s}")
    print(f"cross-setting spread: mean {statistics.mean(spread):.2f}, max {max(spread):.2f} "
          f"(one test caption = {100 / 192:.2f} points of R@1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
