"""report.html: Markdown outputs (the tables of notebooks 04-06) become HTML tables."""

from __future__ import annotations

from pathlib import Path

from readpvla.report import NotebookRun, find_notebooks, load_run, markdown_html, write_report

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TABLE = """### Table 8: recurrent architecture

| Method | #params (M) | Dog | Avg. |
|---|---|---:|---:|
| RNN | 0.0043 (0.58%) | 24.31 ± 1.20 | 24.31 |
| GRU <b>x</b> | 0.0051 (0.69%) | 23.90 | 23.90 |

MR-full-mAP (%) on the test split, mean ± std over seeds [0, 1, 2]; backbone `crossmodal`.
"""


def test_markdown_tables_become_html_tables_in_a_box_that_scrolls_by_itself():
    out = markdown_html(TABLE)
    assert "<h3>Table 8: recurrent architecture</h3>" in out
    assert out.count('<div class="table-wrap"><table>') == 1 and "</table></div>" in out
    assert "<th>Method</th>" in out and '<td style="text-align:right">24.31 ± 1.20</td>' in out
    assert "<p>MR-full-mAP" in out and "<code>crossmodal</code>" in out
    assert "|---" not in out and "<pre>" not in out
    assert "GRU &lt;b&gt;x&lt;/b&gt;" in out  # raw HTML in a Markdown output is shown, not run


def test_report_renders_markdown_outputs_and_wraps_long_text(tmp_path):
    out = {"output_type": "display_data", "metadata": {},
           "data": {"text/markdown": TABLE, "text/plain": "<IPython.core.display.Markdown object>"}}
    long_line = {"output_type": "stream", "name": "stdout", "text": "x" * 3000 + "\n"}
    run = NotebookRun("05_ablations.ipynb", "Ablations", 1.0, True, outputs=[out, long_line])
    html, md = write_report([run], tmp_path, {"quick": True})
    page = html.read_text()
    assert page.count("<table>") == 2  # the timings table and Table 8
    assert "pre{white-space:pre-wrap" in page and ".table-wrap{max-width:100%;overflow-x:auto}" in page
    assert "| RNN | 0.0043 (0.58%)" in md.read_text()  # report.md keeps the Markdown


def test_a_report_from_the_committed_notebooks_has_their_tables():
    runs = [load_run(p) for p in find_notebooks(NOTEBOOKS, ["04", "05"])]
    assert [r.ok for r in runs] == [True, True]
    tables = sum(markdown_html("".join(o["data"]["text/markdown"])).count("<table>")
                 for r in runs for o in r.outputs if "text/markdown" in o.get("data", {}))
    # 04: Table 1 (this run, shipped); 05: Tables 6, 8, 9 (this run, shipped), the 10-seed
    # Table 1, the shipped order probe (a table per backbone and the difference in
    # differences), the shipped alignment probe (the live probe's cell has no "report" tag) and
    # the shipped sensitivity table, and the shipped equal-effort Table 1 of each backbone
    assert tables == 16
