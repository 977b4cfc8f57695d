"""The ``readpvla`` command line. Each subcommand imports only what it needs.

    readpvla info                               versions, device, where the data samples are
    readpvla run-notebooks [--out DIR] [--full] execute the notebook series, write the report
    readpvla eval-tlg --pred P.jsonl --gt G.jsonl   QVHighlights metrics (standard brief keys)
    readpvla pretrain-tlg / transfer-tlg            TLG backbones, Table 1 and ablations
    readpvla pretrain-vls --backbone bart|t5        pretrain a VG backbone (synthetic How2)
    readpvla transfer-vls --backbone bart [--full]  Tables 4/5: every method, ROUGE
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace, list[str]], int]


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


def _pretrain_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tlg import pretrain_main

    return pretrain_main(rest)


def _transfer_tlg(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.tlg import transfer_main

    return transfer_main(rest)


def _pretrain_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.vls import main as vls_main

    return vls_main(["pretrain", *rest])


def _transfer_vls(args: argparse.Namespace, rest: list[str]) -> int:
    from readpvla.vls import main as vls_main

    return vls_main(["transfer", *rest])


#: subcommand -> (help, handler); handlers parse their own arguments from ``rest``
COMMANDS: dict[str, tuple[str, Handler]] = {
    "info": ("versions and device", _info),
    "run-notebooks": ("execute the notebook series headless and write the report", _run_notebooks),
    "eval-tlg": ("QVHighlights moment retrieval / highlight detection metrics", _eval_tlg),
    "pretrain-tlg": ("pretrain a TLG backbone on the synthetic source split", _pretrain_tlg),
    "transfer-tlg": ("low-resource TLG transfer, all methods (Table 1) and ablations", _transfer_tlg),
    "pretrain-vls": ("pretrain VG-BART / VG-T5 on the synthetic How2 source split", _pretrain_vls),
    "transfer-vls": ("low-resource VLS transfer, all methods (Tables 4/5)", _transfer_vls),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``readpvla`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="readpvla", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, _) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    return COMMANDS[command][1](argparse.Namespace(command=command), rest)


if __name__ == "__main__":
    sys.exit(main())
