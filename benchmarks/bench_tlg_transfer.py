"""Timing of the low-resource TLG transfer (prints; never asserts).

Default: one target-domain training run for every Table 1 method (same budget), on ``--threads``
CPU threads; prints the wall time per method, seconds per epoch and the READ-PVLA / Adapter ratio.

    python benchmarks/bench_tlg_transfer.py                     # dog, seed 0, crossmodal
    python benchmarks/bench_tlg_transfer.py --table --workers 2 # the full default Table 1, timed
    python benchmarks/bench_tlg_transfer.py --sweep-lambda      # how LAMBDA was chosen (val splits)
    python benchmarks/bench_tlg_transfer.py --sweep-lr          # how HPARAMS lrs were chosen
    python benchmarks/bench_tlg_transfer.py --step              # READ-PVLA / READ per step

``--step`` times training steps (forward, loss, backward, AdamW) of READ, READ-PVLA with every
block's OT problems in one batched solve (``ot.alignment_losses``, what training runs), READ-PVLA
with one solve per block (the previous loop, for comparison) and the Adapter, interleaved on the
same batches, best of ``--repeats``; it prints the ratios to READ side by side (target: READ-PVLA
<= 1.15x READ).

Sweeps select on the *validation* splits (best-epoch MR-full-mAP, the early-stopping criterion),
never on the test splits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from readpvla.backbones.checkpoint import load_backbone
from readpvla.tasks import tlg


def one_domain(args: argparse.Namespace) -> None:
    backbone = load_backbone(args.checkpoint or tlg.default_checkpoint(args.backbone))
    print(f"backbone {args.backbone}, domain {args.domain}, seed {args.seed}, "
          f"{torch.get_num_threads()} torch thread(s), settings {tlg.QUICK}")
    print(f"{'method':>12s} {'#params':>16s} {'seconds':>8s} {'epochs':>7s} {'s/epoch':>8s} "
          f"{'test mAP':>9s}")
    rows = {}
    for label in tlg.TABLE1_ROWS:
        r = tlg.run_one(backbone, label, args.domain, args.seed, tlg.QUICK, args.data)
        per_epoch = r["seconds"] / r["epochs_run"]
        rows[label] = (r["seconds"], per_epoch)
        print(f"{label:>12s} {r['params']:>16s} {r['seconds']:8.2f} {r['epochs_run']:7d} "
              f"{per_epoch:8.3f} {r['test']['MR-full-mAP']:9.2f}", flush=True)
    total = sum(s for s, _ in rows.values())
    ratio = rows["READ-PVLA"][0] / rows["Adapter"][0]
    ratio_epoch = rows["READ-PVLA"][1] / rows["Adapter"][1]
    print(f"all methods: {total:.1f} s for one domain and one seed")
    print(f"READ-PVLA / Adapter wall time: {ratio:.2f}x (per epoch: {ratio_epoch:.2f}x)")
    n = len(tlg.DOMAINS) * 3
    print(f"extrapolated default table (6 domains x 3 seeds, 1 process): {total * n / 60:.1f} min")
    if torch.get_num_threads() != 1:
        print("(test mAP here with several torch threads; the tables run one thread per run, and a "
              "last-digit difference can move early stopping, so some rows differ from them)")


def table(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    payload = tlg.run_transfer(args.backbone, out_dir=args.out, data_dir=args.data,
                               checkpoint=args.checkpoint, workers=args.workers)
    wall = time.perf_counter() - t0
    print((Path(args.out) / "table1.md").read_text())
    print(f"default Table 1 ({len(payload['runs'])} runs, {args.workers} worker(s)): "
          f"{wall / 60:.1f} min (target <= 10 min)")


def step_time(args: argparse.Namespace) -> None:
    import copy
    import timeit
    import warnings
    from functools import partial

    from torch.utils.data import DataLoader

    from readpvla import ot, peft
    from readpvla.data import collate_tlg

    backbone = load_backbone(args.checkpoint or tlg.default_checkpoint(args.backbone))
    root = Path(args.data) if args.data else tlg.default_data_dir()
    train = tlg.dataset(root, f"{args.domain}_train")
    batches = list(DataLoader(train, batch_size=tlg.QUICK.batch_size, shuffle=False,
                              collate_fn=collate_tlg))[:args.steps]
    lam = tlg.LAMBDA[args.backbone]
    st = tlg.QUICK

    def per_block_alignment(out, align="pvla", mass=st.mass, tau=st.tau, max_iter=st.max_iter,
                            tol=st.tol):  # the loop that training ran before alignment_losses
        kw = {"tau": tau, "max_iter": max_iter, "tol": tol, "mass": mass}
        return torch.stack([ot.alignment_loss(hv, hl, out.mask_v, out.mask_l, method=align, **kw)
                            for hv, hl in zip(out.h_v, out.h_l)]).mean()

    def make(label: str, per_block: bool = False):
        v = tlg.ROWS[label]
        torch.manual_seed(0)
        model = peft.apply(copy.deepcopy(backbone), v.config())
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        fn = partial(tlg.tlg_loss, lam=lam, align=v.align, mass=st.mass, tau=st.tau,
                     max_iter=st.max_iter, tol=st.tol)

        def run():
            for batch in batches:
                if per_block:
                    out = tlg.forward_batch(model, batch)
                    task, _ = model.task_loss(out, batch)
                    loss = task + lam * per_block_alignment(out)
                else:
                    loss, _ = fn(model, batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return run

    cases = {"READ": make("READ"), "READ-PVLA (one solve)": make("READ-PVLA"),
             "READ-PVLA (per block)": make("READ-PVLA", per_block=True),
             "Adapter": make("Adapter")}
    best = {k: float("inf") for k in cases}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ot.ConvergenceWarning)
        for fn in cases.values():
            fn()  # warm-up
        for _ in range(args.repeats):  # interleaved: the machine's noise hits every case alike
            for k, fn in cases.items():
                best[k] = min(best[k], timeit.timeit(fn, number=1) / len(batches))
    print(f"training step (forward + loss + backward + AdamW), {args.backbone}, {args.domain}, "
          f"{len(batches)} batches of {st.batch_size}, {torch.get_num_threads()} thread(s), "
          f"best of {args.repeats}; PVLA: tau {st.tau}, mass {st.mass}, max_iter {st.max_iter}, "
          f"tol {st.tol}")
    print(f"{'row':>24s} {'ms/step':>9s} {'/ READ':>8s}")
    for k, t in best.items():
        print(f"{k:>24s} {t * 1e3:9.2f} {t / best['READ']:8.2f}x")
    print(f"READ-PVLA / READ per step: {best['READ-PVLA (one solve)'] / best['READ']:.2f}x "
          f"(target <= 1.15x; one solve per block: "
          f"{best['READ-PVLA (per block)'] / best['READ']:.2f}x)")


def _val_scores(args, configs: list[tuple[str, float | None, float | None]]) -> dict:
    """Mean best-epoch validation MR-full-mAP over the domains and seeds, per (label, lam, lr):
    a sweep is a list of jobs (one per config, domain and seed) for the shared grid runner."""
    import dataclasses

    from readpvla import experiment as ex

    jobs, config_of = [], {}
    for label, lam, lr in configs:
        scale = lr / tlg.HPARAMS[tlg.ROWS[label].method]["lr"] if lr is not None else 1.0
        settings = dataclasses.replace(tlg.QUICK, lam=lam, lr_scale=scale)
        for job in tlg.jobs(args.backbone, [label], list(tlg.DOMAINS), args.seeds, settings,
                            args.data, args.checkpoint):
            config_of[job] = (label, lam, lr)
            jobs.append(job)
    scores: dict = {}
    for job, rec in zip(jobs, ex.run_grid(jobs, workers=args.workers, progress=True)):
        scores.setdefault(config_of[job], []).append(rec["val_best"])
    return {k: statistics.fmean(v) for k, v in scores.items()}


def sweep_lambda(args: argparse.Namespace) -> None:
    grid = (0.01, 0.1, 1.0)
    scores = _val_scores(args, [("READ-PVLA", lam, None) for lam in grid] + [("READ", None, None)])
    print(f"READ-PVLA, {args.backbone}: best-epoch validation MR-full-mAP, mean over 6 domains x "
          f"seeds {args.seeds} (settings {tlg.QUICK})")
    for lam in grid:
        print(f"  lambda {lam:>5}: {scores[('READ-PVLA', lam, None)]:6.2f}")
    print(f"  READ (no alignment): {scores[('READ', None, None)]:6.2f}")


def sweep_lr(args: argparse.Namespace) -> None:
    grid = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 5e-2, 1e-1)
    labels = ("Full", "Partial", "Bias", "Proj", "LoRA", "Prompt", "Adapter", "READ")
    scores = _val_scores(args, [(label, None, lr) for label in labels for lr in grid])
    print(f"best-epoch validation MR-full-mAP (mean over 6 domains, seeds {args.seeds}) per "
          f"learning rate, {args.backbone} (settings {tlg.QUICK})")
    print(f"{'method':>10s} " + " ".join(f"{lr:>8g}" for lr in grid))
    for label in labels:
        print(f"{label:>10s} " + " ".join(f"{scores[(label, None, lr)]:8.2f}" for lr in grid))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", choices=sorted(tlg.BACKBONES), default="crossmodal")
    ap.add_argument("--domain", default="dog", choices=list(tlg.DOMAINS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 cores here)")
    ap.add_argument("--workers", type=int, default=2,
                    help="worker processes for --table and the sweeps (1 torch thread each)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="runs/bench_tlg_transfer")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--table", action="store_true")
    mode.add_argument("--sweep-lambda", action="store_true")
    mode.add_argument("--sweep-lr", action="store_true")
    mode.add_argument("--step", action="store_true", help="time training steps (see docstring)")
    ap.add_argument("--steps", type=int, default=8, help="--step: batches per timing")
    ap.add_argument("--repeats", type=int, default=5, help="--step: timings per case (best)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.table:
        table(args)
    elif args.sweep_lambda:
        sweep_lambda(args)
    elif args.sweep_lr:
        sweep_lr(args)
    elif args.step:
        step_time(args)
    else:
        one_domain(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
