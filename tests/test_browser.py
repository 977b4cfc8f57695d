"""In a real browser: notebooks 02 and 03 in JupyterLab and in Notebook 7, the plan explorer's
controls, notebook 09's figures, and the HTML report (issue 16).

What a new user does: open the notebook in JupyterLab, Run All, move the explorer's controls,
save, reload. Headless Chromium drives a JupyterLab server started here (127.0.0.1, a token, a temp
copy of the notebooks); the report is opened from disk with the network off.

Needs Debian's ``chromium`` + ``chromium-driver`` and ``selenium`` (the ``test`` extra). Without
them every test here skips with one line saying what is missing; ``.ci/run`` installs the browser
and sets ``READPVLA_BROWSER_TESTS=required``, which turns that skip into a failure. Screenshots of
every step go to ``$READPVLA_SCREENSHOTS`` (default: a pytest temp folder); a failure names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
WINDOW = (1400, 1000)
PAIR = "1200002"  # the query of the issue: 11 tokens, 61 clips
# Notebook 7.6's keyboard-shortcut plugin reads `.schema` of a plugin whose settings are not
# loaded; it throws on every page load, an empty notebook included, before any cell runs.
NB7_KNOWN_ERRORS = ("Cannot read properties of undefined (reading 'schema')",)


# --------------------------------------------------------------------------- what is needed
def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        return ("needs Debian chromium + chromium-driver (apt-get install -y chromium "
                "chromium-driver); not found: "
                + ", ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p))
    for module, extra in (("selenium", "test"), ("jupyterlab", "notebooks"), ("notebook", "notebooks")):
        try:
            __import__(module)
        except ImportError:
            return f"needs the Python package {module!r} (pip install -e '.[{extra}]')"
    return None


@pytest.fixture(scope="module")
def browser_ready():
    why = _missing()
    if why:
        if os.environ.get("READPVLA_BROWSER_TESTS") == "required":
            pytest.fail(f"browser tests required here but {why}")
        pytest.skip(f"browser test {why}")


# --------------------------------------------------------------------------- screenshots
class Steps:
    """Numbered screenshots of each step, and the browser console collected along the way."""

    def __init__(self, folder: Path):
        self.folder, self.n, self.console = folder, 0, []
        self.driver = None

    def shot(self, name: str, element=None) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}_{name}.png"
        if element is not None:
            element.screenshot(str(path))
        else:
            self.driver.save_screenshot(str(path))
        return path

    def logs(self) -> list[dict]:
        """The console entries since the last call (also written to console.log)."""
        new = self.driver.get_log("browser")
        self.console += new
        with open(self.folder / "console.log", "a") as f:
            f.writelines(json.dumps(e) + "\n" for e in new)
        return new

    @contextlib.contextmanager
    def recording(self, test: str):
        """On a failure: one more screenshot, and the error names the screenshot folder."""
        try:
            yield self
        except Exception as e:
            with contextlib.suppress(Exception):
                self.shot(f"{test}_FAILED")
                self.logs()
            e.add_note(f"screenshots of each step and console.log: {self.folder}")
            raise


@pytest.fixture(scope="module")
def steps(browser_ready, tmp_path_factory):
    env = os.environ.get("READPVLA_SCREENSHOTS")
    folder = Path(env) if env else tmp_path_factory.mktemp("browser-screens")
    folder.mkdir(parents=True, exist_ok=True)
    return Steps(folder)


# --------------------------------------------------------------------------- browser, servers
@pytest.fixture(scope="module")
def driver(browser_ready, steps):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-background-networking",
                "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver"))
    drv = webdriver.Chrome(options=opts, service=service)
    try:
        drv.set_window_size(*WINDOW)
        steps.driver = drv
        yield drv
    finally:
        with contextlib.suppress(Exception):
            drv.quit()
        proc = getattr(service, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


class Server:
    """A Jupyter server (``python -m jupyterlab`` or ``python -m notebook``) in its own process
    group, bound to 127.0.0.1 with a token, on a temp root; always torn down."""

    def __init__(self, app: str, root: Path, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token, self.root = secrets.token_hex(16), root
        self.url = f"http://127.0.0.1:{self.port}"
        private = root.parent / f".jupyter-{app}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0",
                   JUPYTER_CONFIG_DIR=str(private / "config"),
                   JUPYTERLAB_SETTINGS_DIR=str(private / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(private / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(private / "runtime"))
        # no "get notified about Jupyter news?" toast over the screenshots (the server is offline)
        news = private / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        cmd = [sys.executable, "-m", app, "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait(self._up, 90, f"{app} server on {self.url} (log: {log})")
        except BaseException:
            self.stop()
            raise

    def _api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the Jupyter server exited with {self.proc.returncode}")
        try:
            return self._api("/api/status") is not None
        except OSError:
            return False

    def page(self, path: str) -> str:
        return f"{self.url}/{path}?token={self.token}"

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(Exception):
            for k in self._api("/api/kernels"):
                self._api(f"/api/kernels/{k['id']}", "DELETE")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.shutdown_kernels()
            with contextlib.suppress(Exception):
                self._api("/api/shutdown", "POST")  # also stops the kernels it started
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def workdir(browser_ready, tmp_path_factory):
    """A temp copy of notebooks 02, 03, 06 and 09 (and 03 again for Notebook 7), with the data
    beside."""
    root = tmp_path_factory.mktemp("jupyter") / "root"
    (root / "notebooks").mkdir(parents=True)
    for name in ("02_partial_ot.ipynb", "03_pvla_loss.ipynb", "06_video_language_summarisation.ipynb",
                 "09_msta.ipynb"):
        shutil.copy(NOTEBOOKS / name, root / "notebooks" / name)
    shutil.copy(NOTEBOOKS / "03_pvla_loss.ipynb", root / "notebooks" / "03_pvla_loss_nb7.ipynb")
    (root / "data_samples").symlink_to(REPO / "data_samples")  # the notebooks read ../data_samples
    return root


@pytest.fixture(scope="module")
def lab(workdir, steps):
    server = Server("jupyterlab", workdir, steps.folder / "jupyterlab.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def notebook7(workdir, steps):
    server = Server("notebook", workdir, steps.folder / "notebook7.log")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- page helpers
def _wait(pred, timeout: float, what: str, every: float = 0.25):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


# the notebook on screen (JupyterLab keeps other tabs in the page, hidden)
PANEL = ("const panel = [...document.querySelectorAll('.jp-NotebookPanel')]"
         ".find(p => p.getBoundingClientRect().width > 0);")


def _js(driver, body: str, *args):
    return driver.execute_script(PANEL + body, *args)


def _kernel_idle(driver) -> bool:
    return _js(driver, "const e = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');"
                       "return !!e && e.getAttribute('data-status') === 'idle';")


def _dirty(driver) -> bool:
    return driver.execute_script(
        "return document.querySelectorAll('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty').length > 0")


def _open(driver, server: Server, path: str) -> None:
    driver.get(server.page(path))
    _wait(lambda: _kernel_idle(driver), 120, f"{path} open with an idle kernel")


def _menu(driver, top: str, command: str) -> None:
    from selenium.webdriver.common.by import By

    bar = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == top]
    assert bar, f"no {top!r} menu"
    bar[0].click()
    item = _wait(lambda: driver.find_elements(By.CSS_SELECTOR,
                                              f'.lm-Menu-item[data-command="{command}"]'),
                 10, f"menu item {command}")
    item[0].click()


def _prompts(driver) -> list[str]:
    return _js(driver, "return [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                       ".map(e => e.textContent.trim());")


def _run_all(driver, steps: Steps, name: str) -> float:
    """Clear every output, Run All from the menu, wait until each code cell has run and the
    kernel is idle; returns the seconds it took."""
    _menu(driver, "Edit", "editmenu:clear-all")
    _wait(lambda: _js(driver, "return panel.querySelectorAll('.jp-OutputArea-output').length") == 0,
          10, "cleared outputs")
    t0 = time.monotonic()
    _menu(driver, "Run", "runmenu:run-all")

    def done():
        return _kernel_idle(driver) and all(re.fullmatch(r"\[\d+\]:", p) for p in _prompts(driver))

    _wait(done, 600, f"Run All of {name}", every=0.5)
    seconds = time.monotonic() - t0
    steps.shot(f"{name}_after_run_all")
    return seconds


def _expected_figures(path: Path) -> int:
    """Plotly figures the notebook shows: its plotly outputs, plus one per live widget output
    (the plan explorer holds one ``FigureWidget``)."""
    nb = nbformat.read(str(path), as_version=4)
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return sum(PLOTLY in o.get("data", {}) for o in outs) + sum(WIDGET in o.get("data", {}) for o in outs)


def _check_outputs(driver, steps: Steps, name: str, n_figures: int) -> None:
    """No error output, no widget error, and every plotly figure drawn (scrolled into view) with
    something in it (a trace or, for a diagram, a shape)."""
    errors = _js(driver, "return [...panel.querySelectorAll("
                         "'[data-mime-type=\"application/vnd.jupyter.error\"]')].map(e => e.textContent)")
    assert not errors, f"{name}: error outputs {errors}"
    stderr = _js(driver, "return [...panel.querySelectorAll("
                         "'[data-mime-type=\"application/vnd.jupyter.stderr\"]')].map(e => e.textContent)")
    assert not [s for s in stderr if re.search(r"Error|Traceback|Exception", s)], stderr
    text = _js(driver, "return panel.textContent")  # innerText skips cells scrolled out of view
    assert "Error displaying widget" not in text, f"{name}: a widget failed to display"
    n = _js(driver, "return panel.querySelectorAll('.js-plotly-plot').length")
    assert n == n_figures, f"{name}: {n} plotly figures on the page, expected {n_figures}"
    for i in range(n):
        fig = _js(driver, "const g = panel.querySelectorAll('.js-plotly-plot')[arguments[0]];"
                          "g.scrollIntoView({block: 'center'});"
                          "const r = g.getBoundingClientRect();"
                          "return {w: r.width, h: r.height, svg: g.querySelectorAll('.main-svg').length,"
                          " traces: (g._fullData || []).length"
                          "         + ((g._fullLayout || {}).shapes || []).length};", i)
        assert fig["w"] > 200 and fig["h"] > 200 and fig["svg"] and fig["traces"], (name, i, fig)


def _check_02_figures(driver) -> None:
    """Notebook 02: both point-cloud plans colour the video and the language points alike, and the
    log axes read 10^-4, not the SI prefixes "100μ", "1n"."""
    figs = _js(driver, """return [...panel.querySelectorAll('.js-plotly-plot')].map(g => ({
        colours: Object.fromEntries(g._fullData.filter(t => t.name === 'video' || t.name === 'language')
                                    .map(t => [t.name, t.marker.color])),
        log_ticks: [...g.querySelectorAll('.xtick text, .ytick text')].map(t => t.textContent)
                   .filter(() => g._fullLayout.xaxis.type === 'log')}));""")
    clouds = [f["colours"] for f in figs if f["colours"]]
    assert len(clouds) == 2 and clouds[0] == clouds[1], clouds
    ticks = [t for f in figs for t in f["log_ticks"]]
    assert ticks and not [t for t in ticks if re.search(r"[μnmk]$", t)], ticks


FIGURE_BOXES = """
const out = [];
for (const g of panel.querySelectorAll('.js-plotly-plot')) {
  g.scrollIntoView({block: 'center'});
  const area = g.closest('.jp-OutputArea-output').getBoundingClientRect();
  const svg = g.querySelector('.main-svg').getBoundingClientRect();
  const title = g.querySelector('.gtitle');
  const t = title ? title.getBoundingClientRect() : null;
  const texts = [...g.querySelectorAll('.textpoint text, .annotation-text, .g-xtitle text,'
                                       + ' .g-ytitle text, .legendtext')]
      .map(e => e.getBoundingClientRect()).filter(r => r.width > 0);
  out.push({title: title ? title.textContent : '', area_right: area.right,
            svg: [svg.left, svg.top, svg.right, svg.bottom],
            title_box: t ? [t.left, t.top, t.right, t.bottom] : null,
            texts_out: texts.filter(r => r.left < svg.left - 1 || r.right > svg.right + 1
                                         || r.top < svg.top - 1 || r.bottom > svg.bottom + 1).length,
            subplot_titles: [...g.querySelectorAll('.annotation-text')].map(e => e.textContent)});
}
return out;
"""


def _check_figures_fit(driver, name: str) -> list[dict]:
    """Every plotly figure fits its output area (no sideways scroll inside the notebook), and
    its title, axis titles, legend entries, marker labels and annotations lie inside the figure
    (nothing cut off at an edge)."""
    figs = _js(driver, FIGURE_BOXES)
    for i, f in enumerate(figs):
        assert f["svg"][2] <= f["area_right"] + 1, (name, i, "wider than the output area", f)
        if f["title_box"]:
            (tl, tt, tr, _), (sl, st, sr, _) = f["title_box"], f["svg"]
            assert sl <= tl and tr <= sr and st <= tt, (name, i, "title cut off", f)
        assert f["texts_out"] == 0, (name, i, "text outside the figure", f)
    return figs


def _severe(entries: list[dict], known: tuple[str, ...] = ()) -> list[str]:
    return [e["message"] for e in entries
            if e["level"] == "SEVERE" and not any(k in e["message"] for k in known)]


# --------------------------------------------------------------------------- the explorer
EXPLORER = "const box = panel.querySelector('.widget-vbox');"
HEATMAP = EXPLORER + """
const g = box.querySelector('.js-plotly-plot');
const L = g._fullLayout, z = g.data[0].z;
const ticks = sel => [...g.querySelectorAll(sel)].map(t => t.textContent);
const mb = g.querySelector('.modebar-container'), svg = g.querySelector('.main-svg');
const title = g.querySelector('.gtitle');
const rect = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
return {rows: z.length, cols: z[0].length, mass: [...z].reduce((s, r) => s + [...r].reduce((a, b) => a + b, 0), 0),
        x: {type: L.xaxis3.type, range: L.xaxis3.range, categories: (L.xaxis3._categories || []).length,
            ticks: ticks('.x3tick text')},
        y: {type: L.yaxis3.type, range: L.yaxis3.range, categories: (L.yaxis3._categories || []).length},
        title: title ? title.textContent : '', title_box: title ? rect(title) : null,
        plot_top: rect(svg)[1] + L._size.t,
        svg_box: rect(svg), modebar_box: mb ? rect(mb.querySelector('.modebar') || mb) : null,
        status: box.querySelector('.widget-html').innerText,
        readouts: [...box.querySelectorAll('.widget-readout')].map(e => e.innerText)};
"""


def _heatmap(driver) -> dict:
    return _js(driver, HEATMAP)


def _pairs() -> dict[str, tuple[int, int, list[str]]]:
    """qid -> (N_V clips, N_L tokens, tokens) of the explorer's four pairs (notebook 03: the first
    four test queries of the default domain), computed here, not read from the page."""
    from readpvla.backbones.text_encoder import tokens
    from readpvla.data import load_tlg

    test = load_tlg(REPO / "data_samples" / "tlg", "dog_test")
    return {str(s.qid): (len(s.video), len(s.text), tokens([s.query])[0]) for s in (test[i] for i in range(4))}


def _pick_pair(driver, qid: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    box = _js(driver, EXPLORER + "return box;")
    select = Select(box.find_element(By.CSS_SELECTOR, "select"))
    names = [o.text for o in select.options]
    select.select_by_index(next(i for i, t in enumerate(names) if t.startswith(f"{qid}:")))


def _check_pair(driver, qid: str, pairs: dict, what: str) -> dict:
    """The explorer shows exactly this pair's N_V x N_L cells, each token in its own column."""
    n_v, n_l, toks = pairs[qid]
    h = _wait(lambda: (lambda h: h if (h["rows"], h["cols"]) == (n_v, n_l) else None)(_heatmap(driver)),
              15, f"{what}: a {n_v} x {n_l} plan for {qid}")
    assert h["x"]["type"] == "linear" and h["y"]["type"] == "linear", (what, h["x"], h["y"])
    assert h["x"]["categories"] == 0 and h["y"]["categories"] == 0, (what, h)
    assert h["x"]["range"] == [-0.5, n_l - 0.5], (what, h["x"]["range"])  # no blank bands
    assert h["y"]["range"] == [n_v - 0.5, -0.5], (what, h["y"]["range"])
    assert h["x"]["ticks"] == toks, (what, h["x"]["ticks"], toks)  # repeated tokens kept apart
    assert h["title"].startswith(f"{qid}:"), (what, h["title"])
    # the whole title is inside the figure and clear of the modebar
    (tl, tt, tr, tb), (sl, _, sr, _) = h["title_box"], h["svg_box"]
    assert sl <= tl and tr <= sr, (what, "title cut off", h["title_box"], h["svg_box"])
    assert tb <= h["plot_top"], (what, "title over the plots", h["title_box"], h["plot_top"])
    if h["modebar_box"]:
        ml, mt, mr, mbot = h["modebar_box"]
        overlap = tl < mr and ml < tr and tt < mbot + 26 and mt < tb  # 26 px: a visible modebar
        assert not overlap, (what, "title under the modebar", h["title_box"], h["modebar_box"])
    return h


def _move_mass(driver, key) -> None:
    from selenium.webdriver.common.by import By

    box = _js(driver, EXPLORER + "return box;")
    slider = [s for s in box.find_elements(By.CSS_SELECTOR, ".widget-slider")
              if s.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == "mass"][0]
    handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    handle.click()
    handle.send_keys(key)


def _explorer_into_view(driver, steps: Steps, name: str):
    box = _wait(lambda: _js(driver, EXPLORER + "return box && box.querySelector('.js-plotly-plot')"
                                               " && box;"), 60, "the plan explorer")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    time.sleep(0.5)
    steps.shot(name, box)
    return box


def _first_cost(driver) -> str:
    """The PVLA loss that section 3.2 prints (the explorer starts on the same pair and values)."""
    m = re.search(r"PVLA loss <T, C> = ([0-9.]+)", _js(driver, "return panel.textContent"))
    assert m, "section 3.2's output not found"
    return m.group(1)


# --------------------------------------------------------------------------- the tests
def test_notebooks_02_03_run_all_and_the_explorer_in_jupyterlab(lab, driver, steps):
    pairs = _pairs()
    first = next(iter(pairs))
    with steps.recording("jupyterlab"):
        timings = {}
        for name in ("02_partial_ot", "03_pvla_loss"):
            _open(driver, lab, f"lab/tree/notebooks/{name}.ipynb")
            # the kernel's name and language land in the notebook's metadata a moment after it
            # connects (JupyterLab flags the tab for a moment, then compares with the file); a
            # kernelspec other than the kernel's leaves the notebook modified
            time.sleep(3)
            assert not _dirty(driver), f"{name}: opening the notebook marked it modified"
            timings[name] = _run_all(driver, steps, name)
            _check_outputs(driver, steps, name, _expected_figures(NOTEBOOKS / f"{name}.ipynb"))
            if name == "02_partial_ot":
                _check_02_figures(driver)
            assert not _severe(steps.logs()), _severe(steps.console)

        # the explorer starts on 3.2's pair and values: same tau (0.05, not 0.0501), same cost
        start = _check_pair(driver, first, pairs, "explorer at start")
        _explorer_into_view(driver, steps, "explorer_start")
        assert start["readouts"][:2] == ["0.05", "0.5"], start["readouts"]
        assert f"cost <T, C> = {_first_cost(driver)} " in start["status"], start["status"]
        assert abs(start["mass"] - 0.5) < 1e-4, start["mass"]

        # a pair change: exactly that pair's cells, no stale categories; and back again
        _pick_pair(driver, PAIR)
        _check_pair(driver, PAIR, pairs, "after a pair change")
        _explorer_into_view(driver, steps, "explorer_after_pair_change")
        _pick_pair(driver, first)
        _check_pair(driver, first, pairs, "after changing back")
        _pick_pair(driver, PAIR)
        before = _check_pair(driver, PAIR, pairs, "after a second pair change")

        # the mass slider: one step left changes the plan and the status line within seconds
        from selenium.webdriver.common.keys import Keys

        _move_mass(driver, Keys.ARROW_LEFT)
        moved = _wait(lambda: (lambda h: h if h["status"] != before["status"]
                               and abs(h["mass"] - 0.45) < 1e-4 else None)(_heatmap(driver)),
                      5, "the plan and status line after one step of the mass slider")
        assert "mass 0.45" in moved["status"] and moved["readouts"][1] == "0.45", moved
        _explorer_into_view(driver, steps, "explorer_after_mass_step")

        # save, reload: the explorer comes back showing the current plan, not a placeholder
        _menu(driver, "File", "docmanager:save")
        _wait(lambda: not _dirty(driver), 10, "the save")
        driver.refresh()
        _wait(lambda: _kernel_idle(driver), 120, "the notebook after a reload")
        _explorer_into_view(driver, steps, "explorer_after_reload")
        after = _check_pair(driver, PAIR, pairs, "after a reload")
        assert after["status"] == moved["status"], (after["status"], moved["status"])
        assert abs(after["mass"] - 0.45) < 1e-4 and after["readouts"] == moved["readouts"]
        assert not _severe(steps.logs()), _severe(steps.console)
        lab.shutdown_kernels()
        print(f"Run All in JupyterLab: {timings}")


def test_notebook_09_run_all_and_its_figures_in_jupyterlab(lab, driver, steps):
    """Notebook 09 (MSTA) as a user runs it: Run All, no error, every figure drawn and inside
    its output area, the shipped tables' figures with one panel per shipped backbone."""
    from readpvla.tasks import recognition as rec

    name = "09_msta"
    with steps.recording("notebook09"):
        # a workspace of its own: JupyterLab would otherwise restore the tabs of the earlier
        # test, whose kernels are shut down, and their widget outputs would fail to find their
        # models ("widget model not found") while this notebook runs
        _open(driver, lab, f"lab/workspaces/nb09/tree/notebooks/{name}.ipynb")
        time.sleep(3)
        assert not _dirty(driver), f"{name}: opening the notebook marked it modified"
        seconds = _run_all(driver, steps, name)
        _check_outputs(driver, steps, name, _expected_figures(NOTEBOOKS / f"{name}.ipynb"))
        figs = _check_figures_fit(driver, name)
        shipped = set(rec.shipped_tables())
        b2n = [t for t in rec.TEMPORAL if f"recognition_base2novel_{t}_K16" in shipped]
        trade = [f for f in figs if f["title"].startswith("Base-to-novel recognition")]
        assert len(trade) == (1 if b2n else 0), [f["title"] for f in figs]
        if trade:  # one panel per shipped backbone, each titled
            assert [f"{t} backbone" for t in b2n] == [
                a for a in trade[0]["subplot_titles"] if a.endswith("backbone")], trade[0]
        steps.shot(f"{name}_figures")
        assert not _severe(steps.logs()), _severe(steps.console)
        lab.shutdown_kernels()
        print(f"Run All of notebook 09 in JupyterLab: {seconds:.1f} s, {len(figs)} figures")


def test_notebook_06_run_all_and_its_pareto_figures_in_jupyterlab(lab, driver, steps):
    """Notebook 06 (VLS) as a user runs it: Run All, no error, every figure drawn and inside its
    output area, one accuracy-vs-parameters figure per shipped hard-target Pareto file (this
    notebook's backbone first), and the shipped probe tables rendered as tables."""
    name = "06_video_language_summarisation"
    shipped = [b for b in ("bart", "t5")
               if (REPO / "data_samples" / "how2" / "results" / f"pareto_vls_hard_{b}.json").exists()]
    probes = [b for b in ("bart", "t5")
              if (REPO / "data_samples" / "how2" / "results" / f"probes_vls_hard_{b}.md").exists()]
    with steps.recording("notebook06"):
        _open(driver, lab, f"lab/workspaces/nb06/tree/notebooks/{name}.ipynb")
        time.sleep(3)
        assert not _dirty(driver), f"{name}: opening the notebook marked it modified"
        seconds = _run_all(driver, steps, name)
        _check_outputs(driver, steps, name, _expected_figures(NOTEBOOKS / f"{name}.ipynb"))
        figs = _check_figures_fit(driver, name)
        pareto = [f["title"] for f in figs if "ROUGE-1 vs trainable parameters" in f["title"]]
        assert [t.split(",")[0] for t in pareto] == [f"VG-{b.upper()}" for b in shipped], pareto
        headings = _js(driver, "return [...panel.querySelectorAll('.jp-RenderedMarkdown h3')]"
                               ".map(h => h.textContent)")
        tables = _js(driver, "return panel.querySelectorAll('.jp-RenderedMarkdown table').length")
        shown = [h for h in headings if h.startswith("Shipped run: Does PVLA align")]
        assert len(shown) == len(probes), headings
        assert tables >= 3 * len(probes) + len(shipped), tables
        steps.shot(f"{name}_figures")
        assert not _severe(steps.logs()), _severe(steps.console)
        lab.shutdown_kernels()
        print(f"Run All of notebook 06 in JupyterLab: {seconds:.1f} s, {len(figs)} figures")


def test_notebook_03_and_its_explorer_in_notebook7(notebook7, driver, steps):
    pairs = _pairs()
    with steps.recording("notebook7"):
        _open(driver, notebook7, "notebooks/notebooks/03_pvla_loss_nb7.ipynb")
        seconds = _run_all(driver, steps, "nb7_03_pvla_loss")
        _check_outputs(driver, steps, "Notebook 7: 03", _expected_figures(NOTEBOOKS / "03_pvla_loss.ipynb"))
        _pick_pair(driver, PAIR)
        _check_pair(driver, PAIR, pairs, "Notebook 7, after a pair change")
        _explorer_into_view(driver, steps, "nb7_explorer_after_pair_change")
        assert not _severe(steps.logs(), NB7_KNOWN_ERRORS), _severe(steps.console, NB7_KNOWN_ERRORS)
        notebook7.shutdown_kernels()
        print(f"Run All in Notebook 7: {seconds:.1f} s")


def test_report_tables_are_tables_and_fit_the_page(driver, steps, tmp_path):
    """report.html from the committed notebooks' report cells, opened from disk with no network."""
    from selenium.webdriver.common.by import By

    from readpvla.report import find_notebooks, load_run, write_report

    runs = [load_run(p) for p in find_notebooks(NOTEBOOKS)]
    # one separator row per Markdown table (an output may hold several tables)
    n_md_tables = sum(len(re.findall(r"^\|-", "".join(o.get("data", {}).get("text/markdown", "")),
                                     flags=re.M))
                      for r in runs for o in r.outputs)
    n_figures = sum(PLOTLY in o.get("data", {}) for r in runs for o in r.outputs)
    html, _ = write_report(runs, tmp_path, {"quick": True})
    with steps.recording("report"):
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                      upload_throughput=0)
        try:
            driver.get(html.as_uri())
            _wait(lambda: driver.execute_script(
                "return document.readyState === 'complete' && "
                "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0"), 60, "the report")
            page = driver.execute_script(
                "return {inner: window.innerWidth, client: document.documentElement.clientWidth,"
                " scroll: document.documentElement.scrollWidth,"
                " tables: document.querySelectorAll('table').length,"
                " pipes: [...document.querySelectorAll('pre')].filter(p => p.textContent.includes('|---')).length,"
                " figures: document.querySelectorAll('.js-plotly-plot').length,"
                " cut: [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right"
                "      > document.documentElement.clientWidth).length}")
            assert page["inner"] == WINDOW[0], page
            assert page["pipes"] == 0 and page["tables"] == 1 + n_md_tables, page  # + the timings
            assert page["scroll"] <= page["client"], f"the page scrolls sideways: {page}"
            assert page["cut"] == 0, page
            assert page["figures"] == n_figures, page
            header = driver.find_elements(By.XPATH, "//h3[contains(., 'Shipped full run: Table 1')]")
            assert header, "Table 1's heading is not a heading"
            table = header[0].find_element(By.XPATH, "following::table[1]")
            assert [th.text for th in table.find_elements(By.CSS_SELECTOR, "th")][:2] == [
                "Method", "#params (M)"]
            driver.execute_script("arguments[0].scrollIntoView()", header[0])
            steps.shot("report_table1")
            assert not _severe(steps.logs()), _severe(steps.console)
            print(f"report at {WINDOW[0]} px: {page}")
        finally:
            driver.set_network_conditions(offline=False, latency=0, download_throughput=-1,
                                          upload_throughput=-1)
