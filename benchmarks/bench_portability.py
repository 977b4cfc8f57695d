"""How far do TLG transfer numbers move when only the CPU's float kernels change? (prints only)

A run's numbers are bit-exact on one machine but not across machines (DESIGN.md fact 7): another
CPU takes other vectorised kernels, so sums differ in the last digits, training trajectories drift
apart, and a selection rule that compares validation numbers (early stopping) can pick another
epoch. This script simulates "another machine" by running the same runs in fresh processes under
other kernel settings (``ATEN_CPU_CAPABILITY=default | avx2 | avx512`` where the CPU has it, and
``MKL_ENABLE_INSTRUCTIONS`` / ``DNNL_MAX_CPU_ISA`` for the BLAS/oneDNN paths), records every epoch's
validation and test MR-full-mAP, and then replays several epoch-selection rules on the same
trajectories:

- ``best``:  the best validation epoch with early stopping (patience), the old protocol;
- ``last``:  the weights after the fixed epoch budget (no selection);
- ``best+d``: the best validation epoch, an improvement counting only above ``d`` mAP.

For each rule it prints the spread of the test metric across kernel settings (max - min per run,
then the mean / max over runs) beside the seed-to-seed standard deviation of the same rule: a rule
is robust when the cross-kernel spread is small against the seed spread.

    python benchmarks/bench_portability.py                         # 9 methods x dog x seed 0
    python benchmarks/bench_portability.py --domains dog gym --seeds 0 1 --out runs/portability
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "DNNL_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "DNNL_MAX_CPU_ISA": "SSE41"},
}


def trajectories(args: argparse.Namespace) -> None:
    """Worker mode: every (variant, domain, seed) run with per-epoch val and test metrics."""
    import torch

    from readpvla.backbones.checkpoint import load_backbone
    from readpvla.tasks import tlg

    torch.set_num_threads(1)
    # whole trajectories (no early stopping): the selection rules are replayed on them
    settings = dataclasses.replace(tlg.QUICK, patience=None)
    backbone = load_backbone(args.checkpoint or tlg.default_checkpoint(args.backbone))
    out = []
    for d in args.domains:
        for s in args.seeds:
            for v in args.variants:
                rec = tlg.run_one(backbone, v, d, s, settings, args.data, trace=True)
                out.append({k: rec[k] for k in ("row", "split", "seed", "history")})
    json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "runs": out},
              sys.stdout)


def select(history: list[dict], rule: str, patience: int = 5) -> float:
    """Replay an epoch-selection rule on a run's per-epoch (val, test) history."""
    if rule == "last":
        return history[-1]["test"]
    delta = float(rule.split("+")[1]) if "+" in rule else 0.0
    best, best_test, bad = None, None, 0
    for h in history:
        if best is None or h["val"] > best + delta:
            best, best_test, bad = h["val"], h["test"], 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best_test


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="crossmodal")
    ap.add_argument("--variants", nargs="+", default=None)
    ap.add_argument("--domains", nargs="+", default=["dog"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out", default=None, help="folder for the raw trajectories (JSON)")
    ap.add_argument("--load", default=None, help="replay rules on trajectories saved with --out")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from readpvla.tasks import tlg

    args.variants = args.variants or list(tlg.TABLE1_ROWS)
    if args.worker:
        trajectories(args)
        return 0
    runs: dict[str, dict] = {}
    if args.load:
        runs = json.loads(Path(args.load, "trajectories.json").read_text())
    else:
        cmd = [sys.executable, __file__, "--worker", "--backbone", args.backbone,
               "--variants", *args.variants, "--domains", *args.domains,
               "--seeds", *map(str, args.seeds)]
        for opt in ("data", "checkpoint"):
            if getattr(args, opt):
                cmd += [f"--{opt}", getattr(args, opt)]
        procs = {}
        t0 = time.perf_counter()
        for name in args.settings:  # in parallel: one process (one thread) per setting
            env = {**os.environ, **SETTINGS[name], "OMP_NUM_THREADS": "1"}
            procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        for name, p in procs.items():
            stdout, _ = p.communicate()
            if p.returncode:
                raise SystemExit(f"setting {name} failed ({p.returncode})")
            runs[name] = json.loads(stdout)
        print(f"{len(args.settings)} settings x {len(runs[args.settings[0]]['runs'])} runs in "
              f"{time.perf_counter() - t0:.0f} s")
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            Path(args.out, "trajectories.json").write_text(json.dumps(runs))
    names = list(runs)
    print("settings:", ", ".join(f"{n} ({runs[n]['capability']})" for n in names))
    rules = ["best", "best+1", "best+2", "last"]
    keyed = {n: {(r["row"], r["split"], r["seed"]): r["history"] for r in runs[n]["runs"]}
             for n in names}
    keys = list(keyed[names[0]])
    print(f"\n{'rule':>8s} {'mean spread':>12s} {'max spread':>11s} {'runs moved':>11s} "
          f"{'seed std':>9s} {'mean test':>10s}   (test MR-full-mAP across kernel settings)")
    for rule in rules:
        spreads, moved = [], 0
        for k in keys:
            vals = [select(keyed[n][k], rule) for n in names]
            spreads.append(max(vals) - min(vals))
            moved += spreads[-1] > 0
        # seed-to-seed std of the same rule on the first setting, per (variant, domain)
        groups: dict[tuple, list[float]] = {}
        for (v, d, s) in keys:
            groups.setdefault((v, d), []).append(select(keyed[names[0]][(v, d, s)], rule))
        stds = [statistics.stdev(g) for g in groups.values() if len(g) > 1]
        seed_std = f"{statistics.fmean(stds):9.2f}" if stds else f"{'-':>9s}"
        mean_test = statistics.fmean(select(keyed[names[0]][k], rule) for k in keys)
        print(f"{rule:>8s} {statistics.fmean(spreads):12.2f} {max(spreads):11.2f} "
              f"{moved:5d}/{len(keys):<5d} {seed_std} {mean_test:10.2f}")
    print("\nper run (test MR-full-mAP under each setting, rules best | last):")
    for k in keys:
        b = " ".join(f"{select(keyed[n][k], 'best'):6.2f}" for n in names)
        la = " ".join(f"{select(keyed[n][k], 'last'):6.2f}" for n in names)
        print(f"  {k[0]:>10s} {k[1]:>8s} s{k[2]}: {b} | {la}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
