"""The recognition command line: ``readpvla transfer-recognition`` (the backbones come from
``readpvla pretrain-videoclip``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .data import DOMAINS
from .pretrain import TEMPORAL
from .rows import ABLATIONS, PROTOCOLS, QUICK, ROWS, SHOTS, TABLE_ROWS
from .transfer import run_shots, run_transfer, table_stem

__all__ = ["transfer_main"]


def transfer_main(argv: list[str] | None = None) -> int:
    """``readpvla transfer-recognition [--protocol fewshot|base2novel|zeroshot|supervised]
    [--temporal T] [--shots K ...] [--ablations NAME] [--rows R ...] [--domains D ...]
    [--seeds S ...] [--out DIR] [--executor local|ray] ...``

    One table per call (:func:`~.transfer.run_transfer`); ``--shots`` with several K (few-shot
    only) runs each K's table, then one with a column per K (:func:`~.transfer.run_shots`).
    ``--ablations NAME`` takes the rows of an ablation (:data:`~.rows.ABLATIONS`)."""
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
    cli.add_grid_arguments(ap)
    a = ap.parse_args(argv)
    if len(set(a.shots)) != len(a.shots):
        ap.error(f"--shots repeats a value: {a.shots}")
    if len(a.shots) > 1 and a.protocol != "fewshot":
        ap.error(f"several --shots are for --protocol fewshot (got {a.protocol})")
    out = Path(a.out)
    settings = replace(QUICK, protocol=a.protocol, epochs=a.epochs)
    stems = [table_stem(a.temporal, replace(settings, shots=k), a.ablations) for k in a.shots]
    cli.check_grid_arguments(a, ap, [out / f"runs_{s}.jsonl" for s in stems])
    check_writable(out)
    grid = {"checkpoint": a.checkpoint, "workers": a.workers, "executor": a.executor,
            "address": a.address, "resume": a.resume, "verbose": True}
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
