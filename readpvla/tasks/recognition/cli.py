"""The recognition command line: ``readpvla transfer-recognition`` (the backbones come from
``readpvla pretrain-videoclip``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from readpvla import cli
from readpvla.experiment import check_writable

from .data import DOMAINS
from .pretrain import TEMPORAL
from .rows import QUICK, ROWS, SHOTS, TABLE_ROWS
from .transfer import run_transfer

__all__ = ["transfer_main"]


def transfer_main(argv: list[str] | None = None) -> int:
    """``readpvla transfer-recognition [--temporal T] [--shots K] [--rows R ...]
    [--domains D ...] [--seeds S ...] [--out DIR] [--executor local|ray] ...``"""
    ap = cli.Parser(prog="readpvla transfer-recognition",
                    description="Few-shot action recognition on the rendered target domains.")
    ap.add_argument("--temporal", choices=TEMPORAL, default="frames")
    ap.add_argument("--shots", type=int, choices=SHOTS, default=QUICK.shots)
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
    out = Path(a.out)
    stem = f"recognition_{a.temporal}_K{a.shots}"
    cli.check_grid_arguments(a, ap, [out / f"runs_{stem}.jsonl"])
    check_writable(out)
    run_transfer(a.temporal, a.rows, a.domains, a.seeds, out, a.device,
                 settings=replace(QUICK, shots=a.shots, epochs=a.epochs),
                 checkpoint=a.checkpoint, workers=a.workers, executor=a.executor,
                 address=a.address, resume=a.resume, verbose=True)
    print((out / f"{stem}.md").read_text(encoding="utf-8"))
    return 0
