"""Run a notebook headless with papermill, with non-default and with bad parameters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from readpvla.report import find_notebooks, run_notebook, write_report

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _stdout(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _errors(path: Path) -> list[dict]:
    nb = nbformat.read(str(path), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.parametrize("book", find_notebooks(NOTEBOOKS), ids=lambda p: p.name)
def test_every_notebook_has_a_parameters_cell(book):
    nb = nbformat.read(str(book), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "seed" in tagged[0].source and "quick" in tagged[0].source
    assert book.stat().st_size <= 2_000_000
    assert not _errors(book), "committed with an error output"


def test_non_default_parameters_run_and_change_the_output(tmp_path):
    run = run_notebook(NOTEBOOKS / "01_read_adapter.ipynb", tmp_path / "01.ipynb",
                       {"cell": "gru", "seed": 1, "bottleneck": 3}, timeout=600)
    assert run.ok, run.error
    out = _stdout(tmp_path / "01.ipynb")
    assert "cell=gru  k=3" in out
    # the GRU closed form for k = 3 on MiniLM: 6 * (384*3 + 3 + 3*384 + 3 * (2*9 + 2*3)) = 14,274
    assert "closed form READ (gru): 14,274" in out
    html, md = write_report([run], tmp_path / "report", {"cell": "gru"})
    assert "01_read_adapter" in md.read_text() and html.stat().st_size > 1000


@pytest.mark.parametrize("params, message", [
    ({"cell": "transformer"}, "parameter cell='transformer' is not one of ['rnn', 'gru', 'lstm']"),
    ({"bottleneck": -4}, "parameter bottleneck=-4 must be a number in [1, 384]"),
])
def test_bad_parameter_stops_with_a_clear_message(tmp_path, params, message):
    run = run_notebook(NOTEBOOKS / "01_read_adapter.ipynb", tmp_path / "bad.ipynb", params,
                       timeout=600)
    assert not run.ok
    errors = _errors(tmp_path / "bad.ipynb")
    assert len(errors) == 1 and errors[0]["ename"] == "ValueError"
    assert errors[0]["evalue"] == message
    # stopped in the checks right after the parameters, not deep inside torch
    assert all("torch" not in line for line in errors[0]["traceback"][-3:])
