"""The VLS command lines: ``readpvla pretrain-vls``, ``transfer-vls``, ``tune-vls`` and
``probe-vls``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .pretrain import BACKBONES, PretrainConfig, pretrain
from .rows import METHODS, TARGETS, TransferConfig
from .transfer import run_transfer

__all__ = ["main", "pretrain_main", "probe_main", "transfer_main", "tune_main"]


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """``readpvla pretrain-vls --backbone bart|t5 [--out DIR] [--steps N] ...``"""
    p = cli.Parser(prog="readpvla pretrain-vls",
                   description="Pretrain VG-BART / VG-T5 on the synthetic How2 source split.")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    p.add_argument("--out", default=None,
                   help="checkpoint folder (default runs/pretrain-vls/vg_BACKBONE; the shipped "
                        "one is data_samples/how2/checkpoints/vg_BACKBONE)")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help="default: PRETRAIN_STEPS[backbone]")
    p.add_argument("--time-limit", type=cli.positive_float, default=PretrainConfig.time_limit_s)
    p.add_argument("--seed", type=cli.nonnegative_int, default=0)
    p.add_argument("--threads", type=cli.positive_int, default=None)
    p.add_argument("--device", type=cli.device, default="cpu")
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else Path("runs") / "pretrain-vls" / f"vg_{a.backbone}"
    cli.refuse_overwrite(out, "a checkpoint", a.overwrite, p)
    check_writable(out)  # before training, not after
    cfg = replace(PretrainConfig(), steps=a.steps, time_limit_s=a.time_limit)
    pretrain(a.backbone, out, cfg, seed=a.seed, threads=a.threads, device=a.device)
    return 0


def transfer_main(argv: Sequence[str] | None = None) -> int:
    """``readpvla transfer-vls [--backbone B] [--methods M ...] [--seeds S ...] [--full | --medium]
    [--select-by-rouge] [--target target|hard] [--out-dir DIR] [--executor local|ray] [--workers N] [--address A] [--resume | --overwrite]``
    """
    t = cli.Parser(prog="readpvla transfer-vls",
                   description="Low-resource VLS transfer over all methods (Tables 4/5).")
    t.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    t.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    t.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1])
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--full", action="store_true", help="the full protocol instead of quick")
    budget.add_argument("--medium", action="store_true",
                        help="the shipped tables' budget (250 steps, greedy, 200 test videos)")
    t.add_argument("--select-by-rouge", action="store_true",
                   help="model selection by validation ROUGE-L with the untuned start as a "
                        "candidate (100 validation videos, every 50 steps) instead of the "
                        "budget's rule")
    t.add_argument("--target", choices=TARGETS, default="target",
                   help="the shipped low-resource split, or the hard one (paraphrased "
                        "summaries, more steps only the video names)")
    t.add_argument("--out-dir", default="runs/vls")
    t.add_argument("--threads", type=cli.positive_int, default=1,
                   help="torch threads of the zero-shot scoring (each run uses one)")
    cli.add_grid_arguments(t)
    a = t.parse_args(argv)
    out = Path(a.out_dir)
    config = (TransferConfig.medium() if a.medium else TransferConfig.full() if a.full
              else TransferConfig.quick())
    if a.select_by_rouge:
        config = replace(config, n_val=100, eval_every=min(50, config.steps), select="rouge")
    config = replace(config, target=a.target)
    cli.check_grid_arguments(a, t, [out / f"runs_{config.stem(a.backbone)}.jsonl"])
    check_writable(out)
    rep = run_transfer(a.backbone, a.methods, a.seeds, quick=not a.full, config=config, out_dir=out,
                       threads=a.threads, device=a.device, workers=a.workers,
                       executor=a.executor, address=a.address, resume=a.resume, progress=True)
    print(rep["markdown"])
    return 0


def tune_main(argv: Sequence[str] | None = None) -> int:
    """``readpvla tune-vls [--backbone B] [--methods M ...] [--seeds S ...] [--target T] [--tune-only]
    [--out DIR] [--executor local|ray] [--workers N] [--resume | --overwrite]``: the
    equal-effort protocol (:mod:`readpvla.tasks.vls.tuning`), then the test runs of every size
    (the Pareto points) and the table at the chosen settings."""
    import json

    from .tuning import pareto, tune

    t = cli.Parser(prog="readpvla tune-vls",
                   description="Equal effort per method: size x learning rate chosen on "
                               "validation ROUGE-L with the same number of runs for every row, "
                               "then every size on the test split (Pareto points) and the table "
                               "at the chosen settings.")
    t.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    t.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    t.add_argument("--target", choices=TARGETS, default="target")
    cli.add_tuning_arguments(t, "runs/vls_tuning")
    cli.add_grid_arguments(t)
    a = t.parse_args(argv)
    out = Path(a.out)
    config = replace(TransferConfig.tuning(), target=a.target)
    stem = config.stem(a.backbone)
    cli.check_grid_arguments(a, t, [out / f"runs_tuning_{stem}.jsonl"]
                             + ([] if a.tune_only else [out / f"runs_pareto_{stem}.jsonl"]))
    check_writable(out)
    common = {"device": a.device, "workers": a.workers, "executor": a.executor,
              "address": a.address, "resume": a.resume}
    sel = tune(a.backbone, a.methods, out, config=config, **common)
    print(json.dumps(sel["chosen"], indent=2))
    if not a.tune_only:
        pareto(a.backbone, sel, a.seeds, out, **common)
        print((out / f"{stem}_tuned.md").read_text(encoding="utf-8"))
    return 0


def probe_main(argv: Sequence[str] | None = None) -> int:
    """``readpvla probe-vls [--backbone B] [--seeds S ...] [--tables T ...] [--out DIR]
    [--executor local|ray] [--workers N] [--resume | --overwrite]``: the mechanism probes
    (:func:`readpvla.tasks.vls.probes.run_probes`): clip order, PVLA alignment, READ-PVLA's
    sensitivity, on the hard target."""
    from .probes import PROBE_CONFIG, run_probes

    t = cli.Parser(prog="readpvla probe-vls",
                   description="Mechanism probes on VLS (hard target): does READ carry clip "
                               "order (shuffled clips as the treatment), does PVLA align "
                               "(plan mass on the clips of the step a word names), and "
                               "READ-PVLA's sensitivity to lambda, mass, k and the rate.")
    t.add_argument("--backbone", choices=sorted(BACKBONES), default="bart")
    t.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1, 2])
    t.add_argument("--tables", nargs="+", choices=["order", "alignment", "sensitivity"],
                   default=["order", "alignment", "sensitivity"])
    t.add_argument("--out", default="runs/vls_probes")
    cli.add_grid_arguments(t)
    a = t.parse_args(argv)
    out = Path(a.out)
    cli.check_grid_arguments(a, t, [out / f"runs_probes_{PROBE_CONFIG.stem(a.backbone)}.jsonl"])
    res = run_probes(a.backbone, a.seeds, out, device=a.device, workers=a.workers,
                     executor=a.executor, address=a.address, resume=a.resume, tables=a.tables)
    print(res["markdown"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m readpvla.vls pretrain ...`` / ``transfer ...`` (the older spelling of
    ``readpvla pretrain-vls`` / ``transfer-vls``)."""
    argv = list(argv) if argv is not None else []
    if not argv or argv[0] not in ("pretrain", "transfer"):
        p = cli.Parser(prog="python -m readpvla.vls")
        p.error("the first argument must be 'pretrain' or 'transfer'")
    return (pretrain_main if argv[0] == "pretrain" else transfer_main)(argv[1:])
