"""The tour's training cell in a real JupyterLab: a JupyterLab server on 127.0.0.1 (a free
port, a token, a temporary root folder) and headless Chromium (Debian's, driven by Playwright) run
a copy of nbs/tour.ipynb from the top through its training cell, with `max_steps` cut to
`STEPS`, while a MutationObserver in the page records every state the progress widget shows.

Checked: the widget appears in the cell's output; while training runs its step text and its bar
advance (at least two different steps of `1..STEPS` shown, the bar's width following the step)
and its loss text appears and changes; it ends in the done state (`done: STEPS/STEPS steps`, a full
green bar, a mean loss, no ETA); the saved notebook has no error output and every cell ran.

Nothing is timed: the timeouts below only stop a hung run (`$FORGE_NB_LAB_TIMEOUT` seconds for the
training cell, default 2700). A screenshot of the notebook goes to `$FORGE_NB_LAB_SHOTS` (default:
the test's temporary folder). Without Chromium, Playwright or JupyterLab the module is skipped,
except under CI (`CI` set), where it fails.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_tools import CHROMIUM, CHROMIUM_ARGS, browser_tools

pytestmark = pytest.mark.integration  # and `browser`, by its folder (conftest)

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "nbs" / "tour.ipynb"
NB_NAME = "tour.ipynb"
STEPS = 3  # 3, not 2: the loss shown while running then changes between two redraws a whole step apart
TRAIN_TIMEOUT_S = float(os.environ.get("FORGE_NB_LAB_TIMEOUT", 2700))
START_TIMEOUT_S = 300.0  # server up, kernel idle: a few seconds on a quiet machine

MISSING, _tools_present = browser_tools("JupyterLab browser test", jupyterlab="pip install jupyterlab",
                                        jupyterlab_widgets="pip install ipywidgets")
if not MISSING:
    from playwright.sync_api import Page, sync_playwright


# ---------------------------------------------------------------- the notebook
def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _not_run_here(cell: dict) -> bool:
    "A `#| eval: false` cell (for Colab) or a `#| gpu` cell: not run on a CPU by nbdev_test or here."
    return re.search(r"^#\|\s*(eval:\s*false|gpu)\s*$", _source(cell), re.M) is not None


def tour_through_training(steps: int = STEPS) -> dict:
    """nbs/tour.ipynb up to and including its training cell, with `max_steps=12` replaced by
    `max_steps={steps}`, the `#| eval: false` and `#| gpu` cells left out (nbdev_test does not run them
    either), outputs cleared, and the python3 kernel named so JupyterLab does not ask for one."""
    nb = json.loads(TOUR.read_text(encoding="utf-8"))
    cells = nb["cells"]
    train = [i for i, c in enumerate(cells)
             if c["cell_type"] == "code" and "engine.train()" in _source(c) and not _not_run_here(c)]
    assert len(train) == 1, f"{TOUR.name}: expected one CPU training cell (`engine.train()`), found {len(train)}"
    cell = cells[train[0]]
    src = _source(cell)
    assert src.count("max_steps=12") == 1, (
        f"{TOUR.name}: the training cell no longer says `max_steps=12`; update this test:\n{src}")
    cell["source"] = src.replace("max_steps=12", f"max_steps={steps}")
    kept = []
    for c in cells[: train[0] + 1]:
        if _not_run_here(c): continue
        if c["cell_type"] == "code": c.update(outputs=[], execution_count=None)
        kept.append(c)
    nb["cells"] = kept
    nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                                   "language": "python"}
    return nb


def test_tour_copy_has_the_training_cell_cut_short():
    nb = tour_through_training()
    code = [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    assert f"max_steps={STEPS}," in code[-1] and "engine.train()" in code[-1]
    assert not any("max_steps=12" in s or "pip install" in s for s in code)
    assert any("data_report(" in s for s in code) and any(s.lstrip().startswith("import") for s in code)


# ---------------------------------------------------------------- the JupyterLab server
@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path  # the server's root folder, holding NB_NAME
    log: Path
    proc: subprocess.Popen

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> object:
        req = urllib.request.Request(self.url + path.lstrip("/"), method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        try: return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError: return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    "Processes below `pid` (Linux `/proc`): the kernels, which jupyter_client starts in sessions of their own."
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try: ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _die_with_parent() -> None:
    """In the server's process before exec (Linux): SIGTERM when pytest dies, so a killed run leaves no server (its
    kernels follow it)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError): pass


def _stop(lab: Lab) -> None:
    "Shut the server down with its kernels; then end whatever of it is left (its process group, its kernels' groups)."
    started = [lab.proc.pid, *_descendants(lab.proc.pid)]
    if lab.proc.poll() is None:
        try: lab.api("api/shutdown", method="POST")
        except OSError: pass
        try: lab.proc.wait(timeout=30)
        except subprocess.TimeoutExpired: pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for p in started if Path(f"/proc/{p}").exists()]
        for p in left:
            try:
                if os.getpgid(p) == p: os.killpg(p, sig)  # a group leader: the server, a kernel
                else: os.kill(p, sig)
            except (ProcessLookupError, PermissionError): pass
        if not left: break
        try: lab.proc.wait(timeout=10)
        except subprocess.TimeoutExpired: pass
        time.sleep(1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """A JupyterLab server on 127.0.0.1 serving a folder with the shortened tour; its own
    settings (no news, no workspace restore, no virtual scrolling); stopped with its kernels at the end."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    (root / NB_NAME).write_text(json.dumps(tour_through_training(), indent=1), encoding="utf-8")
    settings = base / "settings"
    quiet = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                "checkForUpdates": False},
             "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}
    for rel, value in quiet.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value), encoding="utf-8")
    # The server inherits this environment (FORGE_NB_CACHE for the embedded model, HF_*_OFFLINE,
    # OMP_NUM_THREADS...); the kernel's `python` is this interpreter; the widget must not be switched off.
    env = {k: v for k, v in os.environ.items() if k != "FORGE_NB_WIDGET" and not k.startswith("JUPYTER")}
    env.update(PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               PYTHONUNBUFFERED="1")
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--allow-root"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, log, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}", pytrace=False)
            try:
                lab.api("api/status", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer on {lab.url}:\n{lab.log_tail()}", pytrace=False)
                time.sleep(0.5)
        yield lab
    finally:
        _stop(lab)


def _wait_kernel_idle(lab: Lab, page: Page, timeout: float) -> dict:
    """The notebook's session once its kernel reports `idle` (polls the server's REST API). Waits with
    `page.wait_for_timeout`, not `time.sleep`: Playwright's sync API handles the page's events only inside its calls."""
    deadline, sessions = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        assert lab.proc.poll() is None, f"jupyter lab exited:\n{lab.log_tail()}"
        sessions = lab.api("api/sessions")
        for s in sessions:
            if s.get("path", "").endswith(NB_NAME) and (s.get("kernel") or {}).get("execution_state") == "idle":
                return s
        page.wait_for_timeout(500)
    raise AssertionError(f"no idle kernel for {NB_NAME} after {timeout:.0f}s: {sessions}\n{lab.log_tail()}")


# ---------------------------------------------------------------- the widget, as the page shows it
# Records every distinct state of the training widget in a notebook output: the bar's width and classes,
# the label (title and headline) and the stats line (`ProgressTracker.details`). The widget is the VBox
# holding the loss curve (`loss_svg`'s `aria-label`): the cell's outputs also hold other progress bars
# (transformers' "Loading weights" tqdm bar is an ipywidgets bar in Jupyter too).
WIDGET_BOX = '.jp-Notebook .jp-OutputArea-output .widget-vbox:has(svg[aria-label="training loss"])'
OBSERVE = """(sel) => {
  const rec = window.__forgeWidget = {snaps: [], done: false, busy: false, finished: false};
  const text = el => el ? el.textContent.replace(/\\s+/g, ' ').trim() : null;
  const read = () => {
    // the run is finished once a cell was queued or running (`[*]:`) and none is any more (an error stops Run All)
    const pending = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                    .some(e => e.textContent.trim() === '[*]:');
    if (pending) rec.busy = true;
    rec.finished = rec.busy && !pending;
    const box = document.querySelector(sel);
    const hbar = box && box.querySelector('.widget-hprogress');
    if (!hbar) return;
    const fill = hbar.querySelector('.progress-bar');
    const htmls = [...box.querySelectorAll('.widget-html')];
    const snap = {width: fill ? fill.style.width : null, cls: fill ? fill.className : null,
                  label: text(htmls[0]), stats: text(htmls[1]), svg: !!(htmls[2] && htmls[2].querySelector('svg'))};
    const last = rec.snaps[rec.snaps.length - 1];
    if (last && last.width === snap.width && last.cls === snap.cls && last.label === snap.label
        && last.stats === snap.stats) return;
    rec.snaps.push(snap);
    if (snap.label && snap.label.includes('done:')) rec.done = true;
  };
  new MutationObserver(read).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true, attributeFilter: ['style', 'class']});
  read();
}"""

HEAD_RUNNING = re.compile(r"step (\d+)/(\d+) \(\d+%\)")
HEAD_DONE = re.compile(r"done: (\d+)/(\d+) steps")


def _stats(snap: dict) -> dict[str, str]:
    "The stats line as `{name: value}`: `loss`, `mean loss`, `ETA`, `elapsed`..."
    out = {}
    for part in (snap.get("stats") or "").split(" | "):
        m = re.match(r"(ETA|elapsed|epoch|loss|smoothed|eval loss|mean loss|lr) (\S+)$", part.strip())
        if m: out[m[1]] = m[2]
    return out


def _percent(snap: dict) -> float:
    m = re.fullmatch(r"([\d.]+)%", snap.get("width") or "")
    assert m, f"bar width {snap.get('width')!r}"
    return float(m[1])


def _shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("FORGE_NB_LAB_SHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_training_widget_advances_and_finishes(lab, tmp_path):
    shots = _shots_dir(tmp_path)
    errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as pw:
        # Nothing leaves the machine: Chromium resolves no host name but 127.0.0.1 (a Playwright route
        # would hold every request until Python next calls into Playwright, which stalls JupyterLab).
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("request", lambda r: r.url.startswith((lab.url, lab.url.replace("http", "ws", 1), "data:", "blob:"))
                or outside.append(r.url))
        try:
            page.goto(f"{lab.url}lab/tree/{NB_NAME}?token={lab.token}", wait_until="load", timeout=120_000)
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=120_000)
            _wait_kernel_idle(lab, page, START_TIMEOUT_S)
            page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
                state="attached", timeout=START_TIMEOUT_S * 1000)
            page.evaluate(OBSERVE, WIDGET_BOX)
            _menu(page, "Run", "runmenu:run-all", "notebook:run-all-cells")
            # Every cell ran (or one failed, which stops Run All): the widget should be done by then.
            page.wait_for_function("() => window.__forgeWidget.finished", polling=500, timeout=TRAIN_TIMEOUT_S * 1000)
            widget = page.locator(WIDGET_BOX)
            if widget.count(): widget.first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "lab-tour-done.png"))
            snaps = page.evaluate("window.__forgeWidget.snaps")
            # Save from the browser and read the notebook back: what ran, and no error outputs.
            _save(page, lab.root / NB_NAME)
        except Exception:
            page.screenshot(path=str(shots / "lab-tour-failed.png"))
            print(f"\nscreenshot: {shots / 'lab-tour-failed.png'}\njupyter lab log:\n{lab.log_tail()}")
            raise
        finally:
            ctx.close()
            browser.close()

    print(f"\nwidget states seen ({len(snaps)}), screenshot {shots / 'lab-tour-done.png'}:")
    for s in snaps: print(f"  [{s['width']:>8} {s['cls'].split('-')[-1]:>7}] {s['label']} || {s['stats']}")
    _check_saved_notebook(lab.root / NB_NAME)
    _check_widget(snaps)
    assert not errors, "\n".join(errors)
    assert not outside, f"JupyterLab requested URLs outside the server: {outside}"


def _menu(page: Page, menu: str, *commands: str) -> None:
    "Click the first of `commands` in a menu of the menu bar (Lumino menu items carry `data-command`)."
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^\s*{menu}\s*$")).click()
    item = page.locator(", ".join(f'.lm-Menu-item[data-command="{c}"]' for c in commands)).first
    item.wait_for(state="visible")
    item.click()


def _save(page: Page, path: Path, timeout: float = 120) -> None:
    "File > Save Notebook, then wait until the file on disk is newer and reads as JSON."
    before = path.stat().st_mtime_ns
    _menu(page, "File", "docmanager:save")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.stat().st_mtime_ns > before and json.loads(path.read_text(encoding="utf-8")): return
        except (OSError, ValueError): pass
        assert time.monotonic() < deadline, f"{path.name} was not saved"
        page.wait_for_timeout(500)


def _check_widget(snaps: list[dict]) -> None:
    """What the page showed, state by state. Each widget trait (bar value, bar style, label, stats) reaches
    the page in a message of its own, so a state may mix old and new values (the bar already at the next
    step, the label not yet): the checks compare sequences, never the bar with the label of one state."""
    assert snaps, "no progress widget appeared in the notebook's output"
    done = [i for i, s in enumerate(snaps) if s["label"] and HEAD_DONE.search(s["label"])]
    assert done, f"the widget never showed its done state: {[s['label'] for s in snaps]}"
    during = snaps[: done[0]]  # every state before the label first says done
    running = [s for s in during if s["label"] and HEAD_RUNNING.search(s["label"])]
    assert running, f"the widget never showed a running step: {[s['label'] for s in snaps]}"
    steps = []
    for s in running:
        step, total = map(int, HEAD_RUNNING.search(s["label"]).groups())
        assert total == STEPS, s["label"]
        steps.append(step)
    # the step text and the bar advance while it runs
    assert steps == sorted(steps), f"the step went backwards: {steps}"
    assert len({k for k in steps if k >= 1}) >= 2, f"the step text did not advance while running: {steps}"
    widths = [_percent(s) for s in during]
    assert widths == sorted(widths), f"the bar went backwards: {widths}"
    assert len(set(widths)) >= 2, f"the bar did not advance while running: {widths}"
    for k in set(steps):
        assert any(abs(w - 100 * k / STEPS) < 0.5 for w in widths), \
            f"step {k}/{STEPS} shown, but no bar at it: {widths}"
    assert any("progress-bar-info" in s["cls"] for s in running), "the bar was never the running (info) colour"
    assert any(re.fullmatch(r"\d+:\d\d", _stats(s).get("ETA", "")) for s in running), "no ETA shown while running"
    # the loss text appears and changes while it runs
    losses = [_stats(s)["loss"] for s in running if "loss" in _stats(s)]
    assert losses, f"no loss shown while running: {[s['stats'] for s in running]}"
    assert len(set(losses)) >= 2, f"the loss text did not change while running: {losses}"
    assert all(s["svg"] for s in snaps), "the loss curve (SVG) is missing"
    # the done state, and it stays: nothing redraws the widget back to running
    assert all(i in done for i in range(done[0], len(snaps))), f"states after done: {snaps[done[0]:]}"
    final = snaps[-1]
    assert HEAD_DONE.search(final["label"]).groups() == (str(STEPS), str(STEPS)), final["label"]
    assert "stopped early" not in final["label"]
    assert "progress-bar-success" in final["cls"] and _percent(final) == 100.0, final
    stats = _stats(final)
    assert "loss" in stats and "mean loss" in stats and "ETA" not in stats, final["stats"]


# States recorded from a run in JupyterLab 4.6 (title "smollm2-135m · LoRA · fast_dev" left out).
RECORDED = [
    ("0%", "info", "waiting for training to start", "epoch 0.00 | elapsed ?"),
    ("0%", "info", "step 0/3 (0%)", "epoch 0.00 | elapsed 0:00 | ETA ?"),
    ("33.3333%", "info", "step 0/3 (0%)", "epoch 0.00 | elapsed 0:00 | ETA ?"),
    ("33.3333%", "info", "step 1/3 (33%)", "epoch 0.25 | elapsed 0:33 | ETA 1:07"),
    ("66.6667%", "info", "step 2/3 (67%)",
     "epoch 0.50 | loss 0.9192 | smoothed 0.9192 | lr 2.00e-04 | 82 tok/s | elapsed 1:07 | ETA 0:33"),
    ("100%", "info", "step 3/3 (100%)",
     "epoch 0.75 | loss 0.8189 | smoothed 0.8664 | lr 1.33e-04 | 85 tok/s | elapsed 1:39 | ETA 0:00"),
    ("100%", "success", "step 3/3 (100%)",
     "epoch 0.75 | loss 1.0925 | smoothed 0.9499 | mean loss 0.9436 | lr 6.67e-05 | elapsed 1:39 | ETA 0:00"),
    ("100%", "success", "done: 3/3 steps",
     "epoch 0.75 | loss 1.0925 | smoothed 0.9499 | mean loss 0.9436 | lr 6.67e-05 | elapsed 1:39"),
]


def _snaps(rows: list[tuple[str, str, str, str]]) -> list[dict]:
    return [{"width": w, "cls": f"progress-bar progress-bar-{c}", "label": f"Training {h}", "stats": st, "svg": True}
            for w, c, h, st in rows]


def test_widget_checks_on_recorded_states():
    "The checks of the browser test pass on a recorded run and catch a widget that does not advance or finish."
    if STEPS != 3: pytest.skip("recorded with STEPS = 3")
    _check_widget(_snaps(RECORDED))
    frozen_loss = [(w, c, h, re.sub(r"\| loss [\d.]+ ", "| loss 0.9192 ", st)) for w, c, h, st in RECORDED]
    for bad, why in [(RECORDED[:-1], "done state"), (RECORDED[:3] + RECORDED[-1:], "did not advance"),
                     (frozen_loss, "loss text did not change"), (RECORDED + RECORDED[3:4], "states after done")]:
        with pytest.raises(AssertionError, match=why): _check_widget(_snaps(bad))


def _check_saved_notebook(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errs = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    tracebacks = "\n\n".join("\n".join(o.get("traceback", [])) for o in errs)
    assert not errs, "error output:\n" + re.sub(r"\x1b\[[0-9;]*m", "", tracebacks)
    assert all(c.get("execution_count") for c in code), "a code cell did not run"
    train = code[-1]
    assert "engine.train()" in _source(train)
    views = [o for o in train["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, f"the training cell's outputs have no widget view: {[o.get('output_type') for o in train['outputs']]}"
