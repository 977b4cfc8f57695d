"""The ``readpvla`` command line. Each subcommand imports only what it needs.

    readpvla info                               versions, device, where the data samples are
    readpvla run-notebooks [--out DIR] [--full] execute the notebook series, write the report
    readpvla eval-tlg --pred P.jsonl --gt G.jsonl   QVHighlights metrics (standard brief keys)
             [--group-by FIELD]                     ... also per value of a GT field (e.g. kind)
    readpvla eval-retrieval --sim S.npy [--dsl]     text-video retrieval metrics (CLIP4Clip's)
    readpvla pretrain-tlg / transfer-tlg            TLG backbones, Table 1 and ablations
    readpvla pretrain-vls --backbone bart|t5        pretrain a VG backbone (synthetic How2)
    readpvla transfer-vls --backbone bart [--full]  Tables 4/5: every method, ROUGE
    readpvla tune-vls / probe-vls                   VLS equal effort; mechanism probes
    readpvla pretrain-videoclip --temporal frames   pretrain the video CLIP (rendered videos)
    readpvla transfer-retrieval / transfer-recognition   text-video retrieval, action recognition
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[argparse.Namespace, list[str]], int]


# -- shared by every subcommand's parser ----------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``prog: error: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds)."""
    return _int_at_least(0, text)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def device(text: str) -> str:
    """argparse type: ``cpu``, ``cuda`` or ``cuda:N`` that exists on this machine."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA device on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"unsupported device {text!r} (cpu, cuda, cuda:N)")
    return text


def existing_dir(text: str) -> str:
    """argparse type: a folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    return text


def existing_file(text: str) -> str:
    """argparse type: a file that exists."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def add_tuning_arguments(ap: Parser, out: str) -> None:
    """The options every equal-effort tuning command shares (``tune-tlg``, ``tune-vls``): the
    test runs' seeds, stopping after the selection, the output folder."""
    ap.add_argument("--seeds", nargs="+", type=nonnegative_int, default=[0, 1, 2],
                    help="seeds of the test runs (tuning uses seed 0)")
    ap.add_argument("--tune-only", action="store_true", help="stop after the selection")
    ap.add_argument("--out", default=out)


def add_grid_arguments(ap: Parser) -> None:
    """The options every table command shares: where runs execute and what happens to finished
    runs already in the output folder."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="local: this machine (--workers processes); ray: one Ray task per run")
    ap.add_argument("--workers", type=positive_int, default=max(1, cores or 1),
                    help="local worker processes, one torch thread each (default: the usable CPU "
                         "cores; on one machine the numbers do not depend on it)")
    ap.add_argument("--address", default=None,
                    help="Ray cluster address (--executor ray): 'auto' joins the cluster that "
                         "`ray start --head` runs here, ray://HOST:10001 a remote one; default: "
                         "start a local Ray for this command")
    ap.add_argument("--resume", action="store_true",
                    help="keep the runs already finished in the output folder (each run's record "
                         "is written there as it finishes)")
    ap.add_argument("--overwrite", action="store_true",
                    help="start again, discarding the runs already finished there")
    ap.add_argument("--device", type=device, default="cpu")


def check_grid_arguments(a: argparse.Namespace, ap: Parser, records: list[Path]) -> None:
    """Refuse option clashes, and finished runs in ``records`` that neither ``--resume`` nor
    ``--overwrite`` says what to do with (they are never discarded silently)."""
    if a.resume and a.overwrite:
        ap.error("--resume and --overwrite exclude each other")
    if a.address is not None and a.executor != "ray":
        ap.error("--address is for --executor ray")
    if a.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            ap.error("--executor ray needs the ray package: pip install 'readpvla[cluster]'")
    for path in records:
        if path.is_file() and path.stat().st_size and not (a.resume or a.overwrite):
            ap.error(f"{path} holds finished runs; pass --resume to continue them or "
                     "--overwrite to start again (or choose another output folder)")


def refuse_overwrite(path: Path, what: str, overwrite: bool, parser: Parser) -> None:
    """Stop with one line if ``path`` already holds ``what`` and ``--overwrite`` was not given."""
    if path.exists() and any(path.iterdir() if path.is_dir() else [path]) and not overwrite:
        parser.error(f"{path} already holds {what}; pass --overwrite to replace it, or choose "
                     "another --out")


def _info(args: argparse.Namespace, rest: list[str]) -> int:
    import platform

    import torch

    import readpvla

    print(f"readpvla {readpvla.__version__}  python {platform.python_version()}  "
          f"torch {torch.__version__}  cuda={'yes' if torch.cuda.is_available() else 'no'}")
    return 0


def _run_notebooks(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.report import main as report_main

    return report_main(rest)


def _eval_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.metrics.tlg import tlg_main

    return tlg_main(rest)


def _eval_retrieval(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.metrics.retrieval import retrieval_main

    return retrieval_main(rest)


def _tune_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.tlg import tune_main

    return tune_main(rest)


def _tune_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.vls import tune_main

    return tune_main(rest)


def _probe_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.vls import probe_main

    return probe_main(rest)


def _pretrain_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.tlg import pretrain_main

    return pretrain_main(rest)


def _transfer_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.tlg import transfer_main

    return transfer_main(rest)


def _pretrain_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.vls import pretrain_main

    return pretrain_main(rest)


def _transfer_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.vls import transfer_main

    return transfer_main(rest)


def _pretrain_videoclip(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.retrieval import pretrain_main

    return pretrain_main(rest)


def _transfer_retrieval(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.retrieval import transfer_main

    return transfer_main(rest)


def _transfer_recognition(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tasks.recognition import transfer_main

    return transfer_main(rest)


def _retable(args: argparse.Namespace, rest: list[str]) -> int:
    """``readpvla retable TABLE.json [--delta ROW] [--column HEADER] [--harmonic X Y]
    [--no-marks] [--out DIR]``: a stored table made again from its own stored runs (nothing
    retrained) with a "Δ vs ROW" column (95% paired bootstrap interval,
    :func:`readpvla.experiment.retable`; ``--harmonic`` for a column that is the harmonic mean
    of two per-item metrics' means, base-to-novel HM: ``--column HM --harmonic base novel``)."""
    import json

    from readpvla import experiment as ex

    ap = Parser(prog="readpvla retable",
                description="Rebuild a stored table (JSON + Markdown beside it) from its stored "
                            "runs with a 'Δ vs ROW' interval column; nothing is retrained.")
    ap.add_argument("table", type=existing_file, help="the table's JSON (its .md beside it)")
    ap.add_argument("--delta", metavar="ROW", help="the reference row (its key in the JSON's "
                                                   "rows; default: keep the stored one)")
    ap.add_argument("--column", metavar="HEADER", default=None,
                    help="the column compared (default the first 'avg' column, else the first)")
    ap.add_argument("--harmonic", nargs=2, metavar=("X", "Y"), default=None,
                    help="the column is the harmonic mean of the item means of per-item "
                         "metrics X and Y (base-to-novel HM: --harmonic base novel)")
    ap.add_argument("--no-marks", action="store_true", help="drop the ‡ significance marks")
    ap.add_argument("--out", default=None, help="write there instead of beside the input")
    ap.add_argument("--n-boot", type=positive_int, default=2000)
    a = ap.parse_args(rest)
    src = Path(a.table)
    md_path = src.with_suffix(".md")
    if not md_path.is_file():
        ap.error(f"no Markdown beside the table: {md_path}")
    try:
        payload = json.loads(src.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        ap.error(f"{src}: not JSON ({e})")
    if not isinstance(payload, dict) or "runs" not in payload or "rows" not in payload:
        ap.error(f"{src}: not a stored table (no 'rows' and 'runs')")
    out = Path(a.out) if a.out is not None else src.parent
    ex.check_writable(out)
    delta = None
    if a.harmonic is not None and a.delta is None:
        ap.error("--harmonic needs --delta ROW")
    if a.delta is not None:
        keys = [r["row"] for r in payload["rows"].values()]
        if a.delta not in keys:
            ap.error(f"--delta {a.delta!r} is not a row of the table; rows: {keys}")
        try:
            delta = ex.Delta(a.delta, a.column, n_boot=a.n_boot,
                             harmonic=tuple(a.harmonic) if a.harmonic else None)
        except ValueError as e:
            ap.error(str(e))
    try:
        new, md = ex.retable(payload, md_path.read_text(encoding="utf-8"), delta=delta,
                             marks=not a.no_marks)
    except ValueError as e:
        ap.error(str(e))
    ex.write_table(out, src.stem, new, md)
    print(md)
    return 0


#: subcommand -> (help, handler); handlers parse their own arguments from ``rest``
COMMANDS: dict[str, tuple[str, Handler]] = {
    "info": ("versions and device", _info),
    "run-notebooks": ("execute the notebook series headless and write the report", _run_notebooks),
    "eval-tlg": ("QVHighlights moment retrieval / highlight detection metrics", _eval_tlg),
    "eval-retrieval": ("text-video retrieval R@1/5/10, MdR, MnR (CLIP4Clip's evaluation)",
                       _eval_retrieval),
    "pretrain-tlg": ("pretrain a TLG backbone on the synthetic source split", _pretrain_tlg),
    "transfer-tlg": ("low-resource TLG transfer, all methods (Table 1) and ablations", _transfer_tlg),
    "tune-tlg": ("TLG equal-effort tuning (size x lr on validation), Pareto points, Table 1",
                 _tune_tlg),
    "pretrain-vls": ("pretrain VG-BART / VG-T5 on the synthetic How2 source split", _pretrain_vls),
    "transfer-vls": ("low-resource VLS transfer, all methods (Tables 4/5)", _transfer_vls),
    "tune-vls": ("VLS equal-effort tuning (size x lr on validation ROUGE-L), Pareto points, table",
                 _tune_vls),
    "probe-vls": ("VLS mechanism probes: clip order, PVLA alignment, READ-PVLA sensitivity",
                  _probe_vls),
    "pretrain-videoclip": ("pretrain the offline video CLIP on the rendered source split",
                           _pretrain_videoclip),
    "transfer-retrieval": ("text-video retrieval transfer on the rendered target domains",
                           _transfer_retrieval),
    "transfer-recognition": ("few-shot action recognition on the rendered target domains",
                             _transfer_recognition),
    "retable": ("rebuild a stored table from its runs with a 'Δ vs ROW' interval column",
                _retable),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``readpvla`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = Parser(prog="readpvla", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, _) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    try:
        return COMMANDS[command][1](argparse.Namespace(command=command), rest)
    except KeyboardInterrupt:
        print(f"readpvla {command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # bad input or files: one line (READPVLA_DEBUG=1: trace)
        if os.environ.get("READPVLA_DEBUG"):
            raise
        print(f"readpvla {command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
