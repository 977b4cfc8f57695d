"""Build the committed notebooks from their jupytext twins and execute them in place.

    python notebooks/build.py            # every NN_*.py
    python notebooks/build.py 01 03      # only those

Each ``NN_topic.py`` (jupytext "percent" format: reviewable, diffable, ruff-able) becomes
``NN_topic.ipynb`` with its outputs, executed by papermill with the default parameters, so a
reader sees the results without running anything and nbval has outputs to compare against.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill as pm

HERE = Path(__file__).resolve().parent


def build(src: Path) -> float:
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild does not rewrite every cell
        cell["id"] = f"cell-{i:03d}"
    dst = src.with_suffix(".ipynb")
    nbformat.write(nb, dst)
    t0 = time.perf_counter()
    pm.execute_notebook(str(dst), str(dst), kernel_name="python3", cwd=str(HERE),
                        progress_bar=False)
    out = nbformat.read(dst, as_version=4)
    out.metadata.pop("papermill", None)  # keep diffs small: no timing metadata
    out.metadata.pop("widgets", None)  # live widget state (MBs of JS): re-created when run
    for cell in out.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(out, dst)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    srcs = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if argv:
        srcs = [s for s in srcs if any(s.name.startswith(a) for a in argv)]
    for src in srcs:
        print(f"{src.name}: {build(src):.1f} s, {src.with_suffix('.ipynb').stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
