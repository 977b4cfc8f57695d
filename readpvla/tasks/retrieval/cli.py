"""The retrieval command lines: ``readpvla pretrain-videoclip`` and ``readpvla
transfer-retrieval`` (``readpvla eval-retrieval`` scores a similarity matrix:
:func:`readpvla.metrics.retrieval.retrieval_main`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .data import DOMAINS
from .pretrain import PRETRAIN, TEMPORAL, pretrain
from .rows import ABLATION_ROWS, QUICK, ROWS, TABLE_ROWS
from .transfer import FACTORS, run_transfer, select_lr

__all__ = ["pretrain_main", "transfer_main"]


def pretrain_main(argv: list[str] | None = None) -> int:
    """``readpvla pretrain-videoclip --temporal frames|spatiotemporal [--out DIR] ...``"""
    ap = cli.Parser(prog="readpvla pretrain-videoclip",
                    description="Pretrain the offline video CLIP on the rendered source split.")
    ap.add_argument("--temporal", choices=TEMPORAL, default="frames")
    ap.add_argument("--out", help="checkpoint directory (default runs/pretrain-videoclip/"
                                  "TEMPORAL; the shipped ones are data_samples/rendered/"
                                  "checkpoints/video_clip_TEMPORAL)")
    ap.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    ap.add_argument("--epochs", type=cli.positive_int, default=PRETRAIN.epochs)
    ap.add_argument("--batch-size", type=cli.positive_int, default=PRETRAIN.batch_size)
    ap.add_argument("--lr", type=cli.positive_float, default=PRETRAIN.lr)
    ap.add_argument("--seed", type=cli.nonnegative_int, default=0)
    ap.add_argument("--device", type=cli.device, default="cpu")
    a = ap.parse_args(argv)
    out = Path(a.out) if a.out else Path("runs") / "pretrain-videoclip" / a.temporal
    cli.refuse_overwrite(out, "a checkpoint", a.overwrite, ap)
    check_writable(out)  # before training, not after
    settings = replace(PRETRAIN, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr)
    _, res = pretrain(a.temporal, out, settings, seed=a.seed, device=a.device)
    print(json.dumps({"out": str(out), "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                      "seconds": round(res.wall_time, 1),
                      "source_test_t2v_R1": res.best_metric}, indent=2))
    return 0


def transfer_main(argv: list[str] | None = None) -> int:
    """``readpvla transfer-retrieval [--temporal T] [--rows R ...] [--domains D ...]
    [--seeds S ...] [--out DIR] [--dsl] [--select-lr | --lrs FILE] [--executor local|ray] ...``

    ``--select-lr`` first runs the learning-rate protocol (:func:`~.transfer.select_lr`: base x
    ``--lr-factors`` per row on ``--lr-domain``'s validation hold-out, written to
    ``OUT/lr_selection_TEMPORAL.json``), then the table at the chosen rates; ``--lrs FILE`` uses
    a stored selection; ``--select-lr-only`` stops after the selection."""
    ap = cli.Parser(prog="readpvla transfer-retrieval",
                    description="Text-video retrieval transfer on the rendered target domains.")
    ap.add_argument("--temporal", choices=TEMPORAL, default="frames")
    ap.add_argument("--rows", nargs="+", default=None, choices=list(ROWS), metavar="ROW",
                    help=f"rows (default all: {', '.join(TABLE_ROWS)})")
    ap.add_argument("--domains", nargs="+", default=None, choices=list(DOMAINS))
    ap.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=cli.positive_int, default=QUICK.epochs)
    ap.add_argument("--dsl", action="store_true", help="dual softmax at test time")
    ap.add_argument("--out", default="runs/retrieval")
    ap.add_argument("--ablations", action="store_true",
                    help=f"RAP's ablation table instead (rows RAP, {', '.join(ABLATION_ROWS)}; "
                         "files retrieval_ablations_TEMPORAL.*), at RAP's learning rate")
    ap.add_argument("--checkpoint", type=cli.existing_dir,
                    help="video CLIP checkpoint (default the shipped one of --temporal)")
    lr = ap.add_mutually_exclusive_group()
    lr.add_argument("--select-lr", action="store_true",
                    help="choose each row's learning rate on a validation hold-out first "
                         "(writes OUT/lr_selection_TEMPORAL.json), then run the table with them")
    lr.add_argument("--select-lr-only", action="store_true",
                    help="only run the learning-rate selection")
    lr.add_argument("--lrs", metavar="FILE", help="use the learning rates of a stored selection "
                                         "(lr_selection_TEMPORAL.json)")
    ap.add_argument("--lr-domain", choices=list(DOMAINS), default="flat",
                    help="the domain whose training split holds the validation hold-out")
    ap.add_argument("--lr-factors", nargs="+", type=cli.positive_float, default=list(FACTORS),
                    metavar="F", help="multiples of each row's base rate to try "
                                      "(default 1/3 1 3)")
    cli.add_grid_arguments(ap)
    a = ap.parse_args(argv)
    out = Path(a.out)
    selecting = a.select_lr or a.select_lr_only
    name = "retrieval_ablations" if a.ablations else "retrieval"
    if a.ablations and a.rows is None:
        a.rows = ["RAP", *ABLATION_ROWS]  # RAP itself is the reference row
    cli.check_grid_arguments(a, ap, ([] if a.select_lr_only
                                     else [out / f"runs_{name}_{a.temporal}.jsonl"])
                             + ([out / f"runs_lr_selection_{a.temporal}.jsonl"]
                                if selecting else []))
    check_writable(out)
    settings = replace(QUICK, epochs=a.epochs, dsl=a.dsl)
    grid = {"checkpoint": a.checkpoint, "workers": a.workers, "executor": a.executor,
            "address": a.address, "resume": a.resume, "verbose": True}
    lrs = a.lrs
    if selecting:
        sel = select_lr(a.temporal, a.rows, a.lr_domain, a.lr_factors, 0, out, a.device,
                        settings=settings, **grid)
        print(json.dumps({"lr_selection": str(out / f"lr_selection_{a.temporal}.json"),
                          "lrs": sel["lrs"]}, indent=2))
        if a.select_lr_only:
            return 0
        lrs = sel["lrs"]
    run_transfer(a.temporal, a.rows, a.domains, a.seeds, out, a.device, settings=settings,
                 lrs=lrs, name=name, **grid)
    print((out / f"{name}_{a.temporal}.md").read_text(encoding="utf-8"))
    return 0
