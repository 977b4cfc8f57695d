"""The main job: execute the notebook series headless (papermill) and write one report.

    readpvla run-notebooks [--out runs/latest] [--full] [--only 01 03] [-p seed 1 ...]

Every ``notebooks/NN_*.ipynb`` runs in order into ``OUT/notebooks/``; the outputs of the cells
tagged ``report`` (tables, numbers, figures) are gathered into ``OUT/report.html`` (self-contained:
plotly.js is inlined, no network) and ``OUT/report.md`` (text and tables), with each notebook's
wall time and the series total. A failing notebook is reported (with its error) and the others
still run; the exit code is then 1.
"""

from __future__ import annotations

import functools
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    name: str
    title: str
    seconds: float
    ok: bool
    error: str = ""
    outputs: list[dict] = field(default_factory=list)  # outputs of the cells tagged "report"


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks of ``folder`` in order (``only``: keep those whose name starts so)."""
    books = sorted(folder.glob(NOTEBOOK_GLOB))
    if only:
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
    return books


def _title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def _report_outputs(nb: dict) -> list[dict]:
    outs = []
    for cell in nb.get("cells", []):
        if "report" in cell.get("metadata", {}).get("tags", []):
            outs.extend(o for o in cell.get("outputs", []) if o.get("output_type") != "error")
    return outs


def run_notebook(src: Path, dst: Path, parameters: dict, timeout: int) -> NotebookRun:
    """Execute one notebook with papermill; never raises for a notebook's own failure."""
    import nbformat
    import papermill as pm

    t0 = time.perf_counter()
    ok, error = True, ""
    try:
        pm.execute_notebook(
            str(src), str(dst), parameters=parameters, kernel_name="python3",
            cwd=str(src.parent), progress_bar=False, execution_timeout=timeout,
        )
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's error
        ok, error = False, f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - t0
    nb = nbformat.read(str(dst), as_version=4) if dst.exists() else {"cells": []}
    return NotebookRun(src.name, _title(nb, src.stem), seconds, ok, error, _report_outputs(nb))


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    # CommonMark + GitHub tables, as Jupyter renders a Markdown output; raw HTML is escaped
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> str:
    """A Markdown output (tables, headings, captions) as HTML; each table sits in a box that
    scrolls on its own if it is wider than the page, so the page never scrolls sideways."""
    body = _markdown().render(text)
    return (body.replace("<table>", '<div class="table-wrap"><table>')
            .replace("</table>", "</table></div>"))


def load_run(path: Path, seconds: float = 0.0) -> NotebookRun:
    """A notebook executed earlier (e.g. a committed one) as a :class:`NotebookRun`, to write a
    report from outputs that already exist."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    error = f"{errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else ""
    return NotebookRun(path.name, _title(nb, path.stem), seconds, not errors, error,
                       _report_outputs(nb))


def _output_html(out: dict) -> str:
    data = out.get("data", {})
    if out.get("output_type") == "stream":
        return f"<pre>{html.escape(''.join(out.get('text', '')))}</pre>"
    if "application/vnd.plotly.v1+json" in data:
        import plotly.io as pio

        fig = pio.from_json(json.dumps(data["application/vnd.plotly.v1+json"]))
        return pio.to_html(fig, full_html=False, include_plotlyjs=False)
    if "text/html" in data:
        return "".join(data["text/html"])
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"]}"/>'
    if "text/markdown" in data:
        return markdown_html("".join(data["text/markdown"]))
    if "text/plain" in data:
        return f"<pre>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


def _output_md(out: dict) -> str:
    data = out.get("data", {})
    if out.get("output_type") == "stream":
        return "```\n" + "".join(out.get("text", "")).rstrip() + "\n```"
    if "text/markdown" in data:
        return "".join(data["text/markdown"])
    if "application/vnd.plotly.v1+json" in data:
        return "*(interactive figure: see report.html)*"
    if "text/plain" in data:
        return "```\n" + "".join(data["text/plain"]).rstrip() + "\n```"
    return ""


REPORT_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 12px}"
    "table{border-collapse:collapse;margin:6px 0;font-size:14px}"
    "td,th{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}"
    ".table-wrap{max-width:100%;overflow-x:auto}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere}"
    "img,.plotly-graph-div{max-width:100%}"
)


def write_report(runs: list[NotebookRun], out: Path, parameters: dict) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out``."""
    import plotly.offline

    total = sum(r.seconds for r in runs)
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.title)}</td>"
        f"<td>{r.seconds:.1f}</td><td>{'ok' if r.ok else 'FAILED'}</td></tr>" for r in runs)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>readpvla report</title>",
        f"<script>{plotly.offline.get_plotlyjs()}</script>",
        f"<style>{REPORT_CSS}</style>",
        "</head><body><h1>readpvla: notebook series report</h1>",
        f"<p>parameters: <code>{html.escape(json.dumps(parameters))}</code></p>",
        "<table><tr><th>notebook</th><th>title</th><th>wall time (s)</th><th>status</th></tr>",
        rows, f"<tr><td colspan=2><b>total</b></td><td><b>{total:.1f}</b></td><td></td></tr>",
        "</table>",
    ]
    md = ["# readpvla: notebook series report", "",
          f"parameters: `{json.dumps(parameters)}`", "",
          "| notebook | title | wall time (s) | status |", "|---|---|---:|---|"]
    md += [f"| {r.name} | {r.title} | {r.seconds:.1f} | {'ok' if r.ok else 'FAILED'} |"
           for r in runs]
    md += [f"| **total** | | **{total:.1f}** | |", ""]
    for r in runs:
        parts.append(f"<h2>{html.escape(r.title)} <small>({html.escape(r.name)})</small></h2>")
        md += [f"## {r.title} ({r.name})", ""]
        if not r.ok:
            parts.append(f"<pre style='color:#a00'>{html.escape(r.error[-3000:])}</pre>")
            md += ["```", r.error[-3000:], "```", ""]
        for o in r.outputs:
            parts.append(_output_html(o))
            text = _output_md(o)
            if text:
                md += [text, ""]
    parts.append("</body></html>")
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text("\n".join(parts))
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (papermill's
    ``inspect_notebook``: name -> ``{"inferred_type_name", "default", "help"}``)."""
    import papermill as pm

    return pm.inspect_notebook(str(path))


def main(argv: list[str] | None = None) -> int:
    """``readpvla run-notebooks``: run the series, write the report, print where it is."""
    from readpvla.cli import Parser, positive_int

    ap = Parser(prog="readpvla run-notebooks", description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    ap.add_argument("--out", type=Path, default=Path("runs/latest"))
    ap.add_argument("--full", action="store_true", help="the full experiments (quick=False)")
    ap.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 01 03")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"), help="papermill parameter for every notebook")
    ap.add_argument("--timeout", type=positive_int, default=1800, help="per-cell timeout (s)")
    args = ap.parse_args(argv)
    books = find_notebooks(args.notebooks, args.only)
    if not books:
        ap.error(f"no notebooks matching {NOTEBOOK_GLOB}"
                 + (f" and {args.only}" if args.only else "") + f" in {args.notebooks}")
    declared = {b.name: notebook_parameters(b) for b in books}
    known = sorted({name for params in declared.values() for name in params})
    unknown = sorted({k for k, _ in args.parameter} - set(known))
    if unknown:  # papermill would inject it silently and every notebook would ignore it
        ap.error(f"unknown parameter(s) {', '.join(unknown)}; these notebooks take "
                 f"{', '.join(known)}")
    parameters = {"quick": not args.full}
    parameters.update({k: _parse_value(v) for k, v in args.parameter})
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        (args.out / "notebooks").mkdir(parents=True, exist_ok=True)
        probe = args.out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        ap.error(f"cannot write to {args.out}: {e.strerror or e}")
    runs = []
    for src in books:
        print(f"running {src.name} ...", flush=True)
        mine = {k: v for k, v in parameters.items() if k in declared[src.name]}
        run = run_notebook(src.resolve(), (args.out / "notebooks" / src.name).resolve(),
                           mine, args.timeout)
        print(f"  {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s"
              + ("" if run.ok else f": {run.error.splitlines()[0][:300]}"), flush=True)
        runs.append(run)
    html_path, md_path = write_report(runs, args.out, parameters)
    print(f"series total {sum(r.seconds for r in runs):.1f} s")
    print(f"report: {html_path.resolve()}\n        {md_path.resolve()}")
    return 0 if all(r.ok for r in runs) else 1
