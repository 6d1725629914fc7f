"""The docs site in a real browser: `tools/build_docs.py` builds it once into a temporary folder,
a loopback HTTP server serves it, and headless Chromium (Debian's `/usr/bin/chromium`, driven by
Playwright) opens every page.

Checked: the index page shows the README's title and its "Set up and run" section; the sidebar
lists every notebook (index first) and each page opens (HTTP 200) with the notebook's title and
`##` headings and a rendered `show_doc` signature for an exported name; clicking sidebar links
navigates; no relative link points at a missing file; nothing is loaded from outside the site;
the saved ipywidgets progress bars (nbs/api/10_progress.ipynb, nbs/tour.ipynb) render offline; the
tour page shows every step of its run with its output; every example cell of every page shows its output.
The checks that need no browser (the sidebar lists every notebook once, the build's rules on a small
notebook, no paragraph left hanging on a colon) are in tests/test_docs.py.

One screenshot per page goes to `<tmp>/screenshots/` (or `$FORGE_NB_DOCS_SHOTS`).
`$FORGE_NB_DOCS_SITE` reuses a site already built there instead of building one.
Without Chromium or Playwright the module is skipped, except under CI (`CI` set), where it fails.
"""
from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from browser_tools import CHROMIUM, CHROMIUM_ARGS, browser_tools

ROOT = Path(__file__).resolve().parents[2]
NBS = ROOT / "nbs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# A public function or class that each of these pages must show with its signature.
MUST_SHOW = {"api/01_config": "get_profile", "api/12_engine": "TrainingEngine"}


MISSING, _tools_present = browser_tools("docs-site browser test", nbconvert="pip install nbconvert")
if not MISSING:
    from playwright.sync_api import Page, expect, sync_playwright


# ---------------------------------------------------------------- what the notebooks say the site must show
def _markdown_lines(nb: dict) -> list[str]:
    "Lines of the notebook's markdown cells, outside fenced code blocks."
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown": continue
        fenced = False
        for line in "".join(cell["source"]).splitlines():
            if line.lstrip().startswith(("```", "~~~")): fenced = not fenced
            elif not fenced: out.append(line)
    return out


def _exported_names(nb: dict) -> set[str]:
    "Public functions and classes defined in the notebook's `#| export` cells."
    names = set()
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code" or not re.match(r"\s*#\|\s*exports?\s*$", src.splitlines()[0] if src else ""):
            continue
        try: tree = ast.parse(src)
        except SyntaxError: continue
        names |= {n.name for n in tree.body
                  if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                  and not n.name.startswith("_")}
    return names


def _expected_pages() -> list[dict]:
    "The pages the site must have, in sidebar order (`nbs/sidebar.yml`, read by `tools/build_docs.py`)."
    sys.path.insert(0, str(ROOT / "tools"))
    import build_docs
    pages = []
    for section, p in build_docs.site_contents(NBS):
        nb = json.loads(p.read_text(encoding="utf-8"))
        lines = _markdown_lines(nb)
        stem = p.relative_to(NBS).with_suffix("").as_posix()
        title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), p.stem)
        h2 = [ln[3:].strip() for ln in lines if ln.startswith("## ")]
        first = "".join("".join(c["source"]) for c in nb["cells"][:3])
        showdoc = not re.search(r"skip_showdoc:\s*true", first)
        pages.append({"stem": stem, "file": re.sub(r"(^|/)\d+_", r"\1", stem) + ".html", "title": title, "h2": h2,
                      "section": section, "exports": _exported_names(nb) if showdoc else set(), "nb": nb})
    return pages


PAGES = _expected_pages()
API_PAGES = [p for p in PAGES if p["stem"] != "index"]


def _plain(md: str) -> str:
    "Markdown heading text as the browser shows it (no backticks, emphasis or link targets)."
    md = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)
    return re.sub(r"[`*]", "", md).strip()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs_site")


@pytest.fixture(scope="module")
def site(workdir) -> Path:
    "The built site: built once for this module (or `$FORGE_NB_DOCS_SITE`)."
    if os.environ.get("FORGE_NB_DOCS_SITE"):
        out = Path(os.environ["FORGE_NB_DOCS_SITE"]).resolve()
        assert (out / "index.html").exists(), f"FORGE_NB_DOCS_SITE={out} has no index.html"
        return out
    out = workdir / "site"
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), "--out", str(out),
                        "--proc", str(workdir / "proc"), "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    took = time.time() - t0
    assert r.returncode == 0, f"tools/build_docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    print(f"\ndocs site built in {took:.1f}s -> {out}")  # ~10-15 s on 2 quiet cores (not asserted: no timed tests)
    return out


@pytest.fixture(scope="module")
def base_url(site):
    "The site over HTTP on 127.0.0.1 (an ephemeral port), as a host would serve it."
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def shots(workdir) -> Path:
    d = Path(os.environ.get("FORGE_NB_DOCS_SHOTS") or workdir / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(workdir, base_url):
    "A headless Chromium with a new, empty profile; requests that leave the site are aborted and kept."
    blocked: list[str] = []
    profile = workdir / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith(base_url) or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        ctx.route("**/*", route)
        ctx.blocked = blocked
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser):
    "A new tab; fails the test on uncaught page errors and on failed (4xx/5xx) requests."
    pg = browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"))
    yield pg
    pg.close()
    assert not errors, "\n".join(errors)
    assert not browser.blocked, f"the site loads from outside itself: {browser.blocked}"


def _open(page: Page, base_url: str, file: str):
    resp = page.goto(base_url + file, wait_until="load")
    assert resp is not None and resp.ok, f"{file}: {resp and resp.status}"
    return resp


def _active_href(page: Page) -> str:
    "The absolute URL of the sidebar's active link."
    return page.locator("nav.forge-sidebar li.active > a").evaluate("e => e.href")


# ---------------------------------------------------------------- tests
def test_index_page(page, base_url, shots):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    title = next(ln[2:].strip() for ln in readme.splitlines() if ln.startswith("# "))
    _open(page, base_url, "index.html")
    expect(page.locator("main h1").first).to_have_text(re.compile(rf"^\s*{re.escape(title)}\W*$"))
    assert page.title().startswith(title)
    setup = page.locator("main h2", has_text="Set up and run")
    expect(setup).to_be_visible()
    # the section's body is there too: the install command the README gives
    expect(page.locator("main pre", has_text="pip install").first).to_be_visible()
    page.screenshot(path=str(shots / "index.png"))


def test_nav_lists_every_notebook(page, base_url):
    _open(page, base_url, "index.html")
    links = page.locator("nav.forge-sidebar ul.forge-nav > li > a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    texts = [links.nth(i).inner_text().strip() for i in range(links.count())]
    assert hrefs == [p["file"] for p in PAGES]
    assert texts == [_plain(p["title"]) for p in PAGES]


@pytest.mark.parametrize("pg", API_PAGES, ids=[p["stem"] for p in API_PAGES])
def test_api_page(page, base_url, shots, pg):
    _open(page, base_url, pg["file"])
    expect(page.locator("main h1").first).to_have_text(re.compile(rf"^\s*{re.escape(_plain(pg['title']))}\W*$"))
    assert _active_href(page) == base_url + pg["file"]
    shown = [t.replace("¶", "").strip() for t in page.locator("main h2").all_inner_texts()]
    missing = [h for h in map(_plain, pg["h2"]) if h not in shown]
    assert not missing, f"{pg['file']}: headings missing {missing}; shown {shown}"
    if pg["exports"]:
        docs = page.locator(".celltag_showdoc")
        names = [t.replace("¶", "").strip() for t in docs.locator("h3").all_inner_texts()]
        documented = [n for n in names if n in pg["exports"]]
        assert documented, f"{pg['file']}: no show_doc for any of {sorted(pg['exports'])} (h3s: {names})"
        want = MUST_SHOW.get(pg["stem"], documented[0])
        assert want in names, f"{pg['file']}: no show_doc for {want}"
        card = docs.filter(has=page.locator("h3", has_text=re.compile(rf"^\s*{re.escape(want)}\W*$"))).first
        signature = card.locator("pre").first
        expect(signature).to_be_visible()
        expect(signature).to_contain_text(f"{want}(")
    page.screenshot(path=str(shots / f"{pg['stem'].replace('/', '-')}.png"))


def test_nav_links_navigate(page, base_url):
    _open(page, base_url, "index.html")
    by_stem = {p["stem"]: p for p in PAGES}
    for stem in ("api/01_config", "api/12_engine", "index"):
        target = by_stem[stem]
        links = page.locator("nav.forge-sidebar ul.forge-nav > li > a")
        hrefs = links.evaluate_all("els => els.map(e => e.href)")
        links.nth(hrefs.index(base_url + target["file"])).click()
        page.wait_for_url(base_url + target["file"])
        expect(page.locator("main h1").first).to_contain_text(_plain(target["title"]))
        assert _active_href(page) == base_url + target["file"]
    # an in-page table-of-contents link under the active page scrolls to its heading
    toc = page.locator("nav.forge-sidebar .forge-toc a").first
    href = toc.get_attribute("href")
    toc.click()
    assert page.url.endswith(href)
    expect(page.locator(f"[id='{href[1:]}']")).to_be_in_viewport()


def test_no_broken_local_links(page, base_url, site):
    broken = []
    for pg in PAGES:
        _open(page, base_url, pg["file"])
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        for href in hrefs:
            url = urlparse(urljoin(page.url, href))
            if not url.geturl().startswith(base_url): continue  # external (GitHub source links etc.)
            path = unquote(url.path).lstrip("/") or "index.html"
            if not (site / path).is_file(): broken.append(f"{pg['file']}: {href}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def _widget_page(stem: str) -> dict:
    "The page of notebook `stem`, which must carry a saved widget view and the widget state."
    p = next(p for p in PAGES if p["stem"] == stem)
    nb = p["nb"]
    views = any(WIDGET_VIEW in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    state = ((nb.get("metadata", {}).get("widgets") or {}).get(WIDGET_STATE) or {}).get("state")
    assert views and state, f"nbs/{stem}.ipynb has no saved widget view and state: run tools/run_notebooks.py on it"
    return p


def _rendered_widget(page: Page, base_url: str, site: Path, file: str):
    "Open `file` and wait for its first progress-bar widget, drawn by the site's own widget manager."
    loaded: list[str] = []
    page.on("response", lambda r: loaded.append(r.url))
    _open(page, base_url, file)
    assert (site / "_static/html-manager/embed.js").is_file()
    bar = page.locator(".jupyter-widgets.widget-hprogress, .widget-hprogress").first
    bar.wait_for(state="visible", timeout=20_000)
    assert any(u.endswith("_static/html-manager/embed.js") for u in loaded), "the local widget manager was not loaded"
    bar.scroll_into_view_if_needed()
    expect(bar.locator(".progress-bar")).to_be_visible()
    box = bar.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 5, box
    return bar


def test_saved_widget_renders(page, base_url, site, shots):
    pg = _widget_page("api/10_progress")
    _rendered_widget(page, base_url, site, pg["file"])
    page.screenshot(path=str(shots / "api-progress-widget.png"))


def _outputs_with(page: Page, text: str):
    return page.locator(".jp-OutputArea-output").filter(has_text=text)


def test_tour_page_shows_a_whole_run(page, base_url, site, shots):
    "The tour as the docs show it: every step of a real run with what it produced."
    pg = _widget_page("tour")
    _rendered_widget(page, base_url, site, pg["file"])
    expect(page.locator(".widget-html", has_text=re.compile(r"done: (\d+)/\1 steps")).first).to_be_visible()
    for what, text in (("data report", "rows read"), ("row as trained", "⟦"), ("run record", "final_loss"),
                       ("loss check", "tool-call"), ("generated call", "<tool_call>"), ("evaluation", "name accuracy")):
        found = _outputs_with(page, text)
        assert found.count(), f"tour.html shows no {what} (no output with {text!r})"
        expect(found.first).to_be_visible()
    table = _outputs_with(page, "name accuracy").first.inner_text()
    assert re.search(r"metric\s+base\s+adapter\s+change", table), table
    chart = page.locator(".jp-OutputArea-output img").last
    chart.scroll_into_view_if_needed()
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 200, "the chart image did not load"
    page.screenshot(path=str(shots / "tour.png"), full_page=True)


_CODE_CELLS = """() => [...document.querySelectorAll('.jp-CodeCell')].map(c => ({
    input: (c.querySelector('.jp-InputArea') || {innerText: ''}).innerText,
    outputs: c.querySelectorAll('.jp-OutputArea-output').length}))"""


def _plain_code(src: str) -> str:
    "A cell's code as the page shows it (nbdev drops `#|` directives and `%` magics), without white space."
    return re.sub(r"\s+", "", "\n".join(ln for ln in src.splitlines() if not ln.startswith(("#|", "%"))))


@pytest.mark.parametrize("pg", API_PAGES, ids=[p["stem"] for p in API_PAGES])
def test_example_cells_show_their_outputs(page, base_url, pg):
    "Each example cell of the notebook is on its page with the output it produced (`show_doc` cells: test_api_page)."
    sys.path.insert(0, str(ROOT / "tools"))
    import run_notebooks
    examples = [_plain_code(src) for c in pg["nb"]["cells"] if run_notebooks.is_example(c)
                and not (src := "".join(c["source"])).lstrip().startswith("show_doc(")]
    _open(page, base_url, pg["file"])
    shown = {_plain_code(c["input"]): c["outputs"] for c in page.evaluate(_CODE_CELLS)}
    missing = [src[:60] for src in examples if not shown.get(src)]
    assert not missing, f"{pg['file']}: example cells without a visible output: {missing}"
