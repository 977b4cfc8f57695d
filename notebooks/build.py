"""Build the committed notebooks from their jupytext twins and execute them in place.

    python notebooks/build.py            # every NN_*.py
    python notebooks/build.py 01 03      # only those
    python notebooks/build.py --kernelspec-only [01 ...]   # only the kernelspec metadata

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


KERNEL = "python3"


def kernelspec(name: str = KERNEL) -> dict:
    """The notebook metadata of the installed kernel ``name``, as Jupyter writes it on open.

    JupyterLab and Notebook 7 replace a notebook's kernelspec by the running kernel's (display name
    "Python 3 (ipykernel)", from ``ipykernel install``); any other value marks a freshly opened
    notebook as modified.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
        display, language = spec.display_name, spec.language
    except NoSuchKernel:  # not installed here: ipykernel's own default
        display, language = "Python 3 (ipykernel)", "python"
    return {"display_name": display, "language": language, "name": name}


def build(src: Path) -> float:
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = kernelspec()
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild does not rewrite every cell
        cell["id"] = f"cell-{i:03d}"
    dst = src.with_suffix(".ipynb")
    nbformat.write(nb, dst)
    t0 = time.perf_counter()
    pm.execute_notebook(str(dst), str(dst), kernel_name=KERNEL, cwd=str(HERE),
                        progress_bar=False)
    out = nbformat.read(dst, as_version=4)
    out.metadata.pop("papermill", None)  # keep diffs small: no timing metadata
    out.metadata.pop("widgets", None)  # live widget state (MBs of JS): re-created when run
    for cell in out.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(out, dst)
    return time.perf_counter() - t0


def set_kernelspec(dst: Path) -> bool:
    """Rewrite only the kernelspec of a built notebook (no execution); True if it changed."""
    nb = nbformat.read(dst, as_version=4)
    if nb.metadata.get("kernelspec") == kernelspec():
        return False
    nb.metadata["kernelspec"] = kernelspec()
    nbformat.write(nb, dst)
    return True


def main(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    only_spec = "--kernelspec-only" in argv
    argv = [a for a in argv if a != "--kernelspec-only"]
    srcs = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if argv:
        srcs = [s for s in srcs if any(s.name.startswith(a) for a in argv)]
    if only_spec:
        for src in srcs:
            changed = set_kernelspec(src.with_suffix(".ipynb"))
            print(f"{src.with_suffix('.ipynb').name}: kernelspec {'set' if changed else 'already set'}")
        return 0
    for src in srcs:
        print(f"{src.name}: {build(src):.1f} s, {src.with_suffix('.ipynb').stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
