"""The recognition command line: ``readpvla transfer-recognition`` (the backbones come from
``readpvla pretrain-videoclip``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .data import DOMAINS
from .pretrain import TEMPORAL
from .rows import ABLATIONS, PROTOCOLS, QUICK, ROWS, SHOTS, TABLE_ROWS
from .select import FACTORS, select_lr
from .transfer import run_shots, run_transfer, table_stem

__all__ = ["transfer_main"]


def transfer_main(argv: list[str] | None = None) -> int:
    """``readpvla transfer-recognition [--protocol fewshot|base2novel|zeroshot|supervised]
    [--temporal T] [--shots K ...] [--ablations NAME] [--rows R ...] [--domains D ...]
    [--seeds S ...] [--out DIR] [--select-lr | --select-lr-only | --lrs FILE]
    [--executor local|ray] ...``

    One table per call (:func:`~.transfer.run_transfer`); ``--shots`` with several K (few-shot
    only) runs each K's table, then one with a column per K (:func:`~.transfer.run_shots`).
    ``--ablations NAME`` takes the rows of an ablation (:data:`~.rows.ABLATIONS`). ``--lrs FILE``
    trains each row at a stored selection's rate (the shipped tables:
    ``data_samples/rendered/results/lr_selection_recognition_frames.json``); ``--select-lr``
    first runs the learning-rate protocol (:mod:`~.select`)."""
    ap = cli.Parser(prog="readpvla transfer-recognition",
                    description="Action recognition transfer on the rendered target domains: "
                                "few-shot, base-to-novel, zero-shot or fully supervised.")
    ap.add_argument("--protocol", choices=PROTOCOLS, default=QUICK.protocol,
                    help="fewshot: K-shot set; base2novel: base classes of a K-shot set, then "
                         "base / novel / HM; zeroshot: seen classes of a K-shot set, then the "
                         "unseen classes; supervised: the whole training split")
    ap.add_argument("--temporal", choices=TEMPORAL, default="frames")
    ap.add_argument("--shots", type=int, nargs="+", choices=SHOTS, default=[QUICK.shots],
                    metavar="K", help=f"K of the K-shot sets, of {list(SHOTS)}; several K: "
                                      "few-shot only, one table per K and one over K")
    ap.add_argument("--ablations", choices=list(ABLATIONS), default=None, metavar="NAME",
                    help=f"an ablation's rows instead of the main table's ({', '.join(ABLATIONS)})")
    ap.add_argument("--rows", nargs="+", default=None, choices=list(ROWS), metavar="ROW",
                    help=f"rows (default all: {', '.join(TABLE_ROWS)})")
    ap.add_argument("--domains", nargs="+", default=None, choices=list(DOMAINS))
    ap.add_argument("--seeds", nargs="+", type=cli.nonnegative_int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=cli.positive_int, default=QUICK.epochs)
    ap.add_argument("--out", default="runs/recognition")
    ap.add_argument("--checkpoint", type=cli.existing_dir,
                    help="video CLIP checkpoint (default the shipped one of --temporal)")
    lr = ap.add_mutually_exclusive_group()
    lr.add_argument("--select-lr", action="store_true",
                    help="choose each row's learning rate on a hold-out of the training split "
                         "first (writes OUT/lr_selection_recognition_TEMPORAL.json), then run "
                         "the table with them")
    lr.add_argument("--select-lr-only", action="store_true",
                    help="only run the learning-rate selection")
    lr.add_argument("--lrs", metavar="FILE", type=cli.existing_file,
                    help="use the learning rates of a stored selection "
                         "(lr_selection_recognition_TEMPORAL.json)")
    ap.add_argument("--lr-domain", choices=list(DOMAINS), default="flat",
                    help="the domain whose training split holds the hold-out")
    ap.add_argument("--lr-factors", nargs="+", type=cli.positive_float, default=list(FACTORS),
                    metavar="F", help="multiples of each row's base rate to try "
                                      "(default 1/3 1 3 10)")
    cli.add_grid_arguments(ap)
    a = ap.parse_args(argv)
    if len(set(a.shots)) != len(a.shots):
        ap.error(f"--shots repeats a value: {a.shots}")
    if len(a.shots) > 1 and a.protocol != "fewshot":
        ap.error(f"several --shots are for --protocol fewshot (got {a.protocol})")
    out = Path(a.out)
    settings = replace(QUICK, protocol=a.protocol, epochs=a.epochs)
    stems = [table_stem(a.temporal, replace(settings, shots=k), a.ablations) for k in a.shots]
    selecting = a.select_lr or a.select_lr_only
    cli.check_grid_arguments(
        a, ap, ([] if a.select_lr_only else [out / f"runs_{s}.jsonl" for s in stems])
        + ([out / f"runs_lr_selection_recognition_{a.temporal}.jsonl"] if selecting else []))
    check_writable(out)
    grid = {"checkpoint": a.checkpoint, "workers": a.workers, "executor": a.executor,
            "address": a.address, "resume": a.resume, "verbose": True}
    lrs = a.lrs
    if selecting:
        sel = select_lr(a.temporal, a.rows, a.lr_domain, a.lr_factors, 0, out, a.device,
                        settings=settings, **grid)
        print(json.dumps({"lr_selection": str(out / f"lr_selection_recognition_{a.temporal}"
                                                    ".json"), "lrs": sel["lrs"]}, indent=2))
        if a.select_lr_only:
            return 0
        lrs = sel["lrs"]
    grid["lrs"] = lrs
    if len(a.shots) > 1:
        run_shots(a.temporal, a.rows, a.domains, a.seeds, out, a.device, shots=a.shots,
                  ablations=a.ablations, settings=settings, **grid)
        name = "recognition" + (f"_{a.ablations}" if a.ablations else "")
        print((out / f"{name}_{a.temporal}_shots.md").read_text(encoding="utf-8"))
        return 0
    run_transfer(a.temporal, a.rows, a.domains, a.seeds, out, a.device, shots=a.shots[0],
                 ablations=a.ablations, settings=settings, **grid)
    print((out / f"{stems[0]}.md").read_text(encoding="utf-8"))
    return 0
