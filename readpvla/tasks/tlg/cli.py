"""The TLG command lines: ``readpvla pretrain-tlg``, ``readpvla transfer-tlg`` and ``readpvla
tune-tlg``."""

from __future__ import annotations

import json
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .data import DOMAINS
from .evaluate import TABLE_METRIC
from .pretrain import BACKBONES, pretrain
from .rows import ABLATIONS, ROWS, TABLE1_ROWS
from .transfer import run_ablations, run_transfer

__all__ = ["pretrain_main", "transfer_main", "tune_main"]


def pretrain_main(argv: list[str] | None = None) -> int:
    """``readpvla pretrain-tlg --backbone crossmodal [--out DIR] [--data DIR] [--epochs N]
    [--no-video-positions] ...``"""
    ap = cli.Parser(prog="readpvla pretrain-tlg",
                    description="Pretrain a TLG backbone on the synthetic source split.")
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="crossmodal")
    ap.add_argument("--out", help="checkpoint directory (default: runs/pretrain-tlg/BACKBONE; "
                                  "the shipped one is data_samples/tlg/checkpoints/BACKBONE)")
    ap.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    ap.add_argument("--data", help="folder with source_train/source_val (regenerated if missing)")
    ap.add_argument("--epochs", type=cli.positive_int)
    ap.add_argument("--lr", type=cli.positive_float)
    ap.add_argument("--batch-size", type=cli.positive_int)
    ap.add_argument("--max-minutes", type=cli.positive_float)
    ap.add_argument("--seed", type=cli.nonnegative_int, default=0)
    ap.add_argument("--device", type=cli.device, default="cpu")
    ap.add_argument("--no-video-positions", action="store_true",
                    help="crossmodal only: no clip positions, a backbone that cannot see clip "
                         "order (the order-blind control of tlg.probe_order)")
    a = ap.parse_args(argv)
    if a.no_video_positions and a.backbone != "crossmodal":
        ap.error("--no-video-positions is for --backbone crossmodal")
    out = Path(a.out) if a.out else Path("runs") / "pretrain-tlg" / a.backbone
    cli.refuse_overwrite(out, "a checkpoint", a.overwrite, ap)
    check_writable(out)  # before training, not after
    model, res = pretrain(a.backbone, a.data, out, epochs=a.epochs, lr=a.lr,
                          batch_size=a.batch_size, max_minutes=a.max_minutes, seed=a.seed,
                          device=a.device,
                          **({"video_positions": False} if a.no_video_positions else {}))
    best = res.history[res.best_epoch - 1] if res.best_epoch else {}
    print(json.dumps({"out": str(out), "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                      "seconds": round(res.wall_time, 1),
                      "source_val_" + TABLE_METRIC: best.get("metric")}, indent=2))
    return 0


def _data_and_grid_arguments(ap: cli.Parser) -> None:
    """``--data``, ``--checkpoint`` and the grid options every TLG table command shares."""
    ap.add_argument("--data", type=cli.existing_dir,
                    help="target splits folder (default data_samples/tlg)")
    ap.add_argument("--checkpoint", type=cli.existing_dir,
                    help="backbone checkpoint folder (default the shipped one)")
    cli.add_grid_arguments(ap)


def transfer_main(argv: list[str] | None = None) -> int:
    """``readpvla transfer-tlg [--backbone B] [--methods M ...] [--domains D ...] [--seeds S ...]
    [--full] [--ablations] [--sensitivity] [--out DIR] [--executor local|ray] [--workers N] [--address A]
    [--resume | --overwrite]``"""
    ap = cli.Parser(prog="readpvla transfer-tlg",
                    description="Low-resource TLG transfer: Table 1 (+ ablations).")
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="crossmodal")
    ap.add_argument("--methods", nargs="+", default=None, choices=list(ROWS), metavar="METHOD",
                    help=f"rows (default {', '.join(TABLE1_ROWS)}; also the ablation rows and "
                         "the sized rows of the tuning protocol, e.g. 'READ (bottleneck=8)')")
    ap.add_argument("--domains", nargs="+", default=None, choices=list(DOMAINS))
    ap.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1, 2])
    ap.add_argument("--full", action="store_true", help="the fuller budget (quick=False)")
    ap.add_argument("--ablations", action="store_true", help="also Tables 6, 8, 9")
    ap.add_argument("--sensitivity", action="store_true",
                    help="also READ-PVLA's sensitivity table (lambda, mass, k, cell, lr; one "
                         "knob at a time, vs the adapter): sensitivity_BACKBONE.md")
    ap.add_argument("--out", default="runs/tlg_transfer")
    _data_and_grid_arguments(ap)
    a = ap.parse_args(argv)
    out = Path(a.out)
    cli.check_grid_arguments(a, ap, [out / "runs_table1.jsonl"]
                             + ([out / "runs_ablations.jsonl"] if a.ablations else [])
                             + ([out / f"runs_sensitivity_{a.backbone}.jsonl"]
                                if a.sensitivity else []))
    check_writable(out)
    common = {"domains": a.domains, "seeds": a.seeds, "quick": not a.full, "out_dir": out,
              "device": a.device, "data_dir": a.data, "checkpoint": a.checkpoint,
              "workers": a.workers, "verbose": True, "resume": a.resume,
              "executor": a.executor, "address": a.address}
    run_transfer(a.backbone, a.methods, **common)
    print((out / "table1.md").read_text(encoding="utf-8"))
    if a.ablations:
        run_ablations(a.backbone, **common)
        for t in sorted(ABLATIONS):
            print((out / f"table{t}.md").read_text(encoding="utf-8"))
    if a.sensitivity:
        from .sensitivity import run_sensitivity

        run_sensitivity(a.backbone, **common)
        print((out / f"sensitivity_{a.backbone}.md").read_text(encoding="utf-8"))
    return 0


def tune_main(argv: list[str] | None = None) -> int:
    """``readpvla tune-tlg [--backbone B] [--rows R ...] [--domains D ...] [--seeds S ...]
    [--tune-only] [--out DIR] [--executor local|ray] [--workers N] [--resume | --overwrite]``:
    the equal-effort protocol (:mod:`readpvla.tasks.tlg.tuning`), then the test runs of every
    size (the Pareto points) and Table 1 at the chosen settings."""
    from .tuning import pareto, tune

    ap = cli.Parser(prog="readpvla tune-tlg",
                    description="Equal effort per method: size x learning rate chosen on the "
                                "validation split with the same number of runs for every row, "
                                "then every size on the test split (Pareto points) and Table 1 "
                                "at the chosen settings.")
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="crossmodal")
    ap.add_argument("--rows", nargs="+", default=list(TABLE1_ROWS), choices=list(TABLE1_ROWS),
                    metavar="ROW", help=f"Table 1 rows (default all: {', '.join(TABLE1_ROWS)})")
    ap.add_argument("--domains", nargs="+", default=None, choices=list(DOMAINS))
    cli.add_tuning_arguments(ap, "runs/tlg_tuning")
    _data_and_grid_arguments(ap)
    a = ap.parse_args(argv)
    out = Path(a.out)
    cli.check_grid_arguments(a, ap, [out / f"runs_tuning_tlg_{a.backbone}.jsonl"]
                             + ([] if a.tune_only else [out / f"runs_pareto_tlg_{a.backbone}.jsonl"]))
    check_writable(out)
    common = {"data_dir": a.data, "checkpoint": a.checkpoint, "device": a.device,
              "workers": a.workers, "executor": a.executor, "address": a.address,
              "resume": a.resume, "verbose": True}
    sel = tune(a.backbone, a.rows, a.domains, out, **common)
    print(json.dumps(sel["chosen"], indent=2))
    if not a.tune_only:
        pareto(a.backbone, sel, a.seeds, out, **common)
        print((out / f"table1_tuned_{a.backbone}.md").read_text(encoding="utf-8"))
    return 0
