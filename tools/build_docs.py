"""Build the docs site from nbs/ without Quarto: `python tools/build_docs.py [--out _site]`.

Where Quarto is installed, `nbdev_docs` stays the normal path (it writes `_docs/`). Quarto cannot
be installed everywhere (not from PyPI, apt or npm), so this script builds an equivalent static
site from the same notebook processing:

1. nbdev 2's docs processors (`nbdev.processors.FilterDefaults`, what `nbdev_proc_nbs` runs on
   each notebook): frontmatter from the `# Title` / `> description` cell, `show_doc` cells added
   after exported definitions, `#| hide` / `#| export` cells removed, links to documented names.
   Like nbdev it executes only import, export and `show_doc` cells (in-process, `IN_TEST=1`);
   unlike nbdev's docs build it also skips cells flagged with a test flag from settings.ini
   (`#| slow`, `#| gpu`). `#| eval: false` cells are not run, and saved outputs are kept.
   The processed notebooks go to `--proc` (default: `.cache/build_docs/_proc`, git-ignored).
2. nbconvert's HTML exporter, with the template in tools/docs/templates/forge (JupyterLab's
   `lab` template plus a sidebar linking every page, in the order and sections of `nbs/sidebar.yml`;
   page titles from the notebooks' `# Title`). The Quarto cell options that nbdev leaves for Quarto are applied
   here (`echo: false`, `output: false`, `include: false`, `code-fold`), links to `.ipynb`/`.qmd`
   files and absolute links to the doc site (settings.ini `doc_host` + `doc_baseurl`) are made
   relative, and pages are named as Quarto names them (`api/01_config.ipynb` -> `api/config.html`).
3. Saved ipywidgets render offline: the site carries its own copy of the widget manager
   (`embed.js` of the npm package `@jupyter-widgets/html-manager`, the 1.x line that goes with
   ipywidgets 8), taken from `.cache/npm/` (run `npm pack` there once; this script does it when
   the tarball is missing and npm is on PATH), and pages with widget state load it from there.
   Nothing on the pages is loaded from a CDN (no require.js, MathJax or Mermaid).

Needs nbdev 2.4.14, nbconvert >= 7 and ipywidgets (the `docs` extra).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "tools" / "docs" / "templates"
SITE_CSS = ROOT / "tools" / "docs" / "site.css"
HTML_MANAGER = "@jupyter-widgets/html-manager"
HTML_MANAGER_VERSION = "1.0.15"  # the 1.x line is the one for ipywidgets 8 (widget protocol 2)
NPM_CACHE = ROOT / ".cache" / "npm"
WIDGET_DIR = "_static/html-manager"  # where the site keeps embed.js and its fonts
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


# ---------------------------------------------------------------- pages
def page_name(nb: Path, nbs: Path) -> str:
    "The page Quarto (and so nbdev's doc links) gives `nb`: numeric prefix dropped, `.html`."
    rel = nb.relative_to(nbs)
    return rel.with_name(re.sub(r"^\d+_", "", rel.stem) + ".html").as_posix()


def site_contents(nbs: Path) -> list[tuple[str | None, Path]]:
    """`(section, notebook)` for each page of the site, in the order of `nbs/sidebar.yml` (the sidebar
    nbdev_docs uses too: `custom_sidebar = True`); `section` is `None` for top-level pages. Raises
    `SystemExit` naming a listed notebook that does not exist."""
    import yaml
    spec = yaml.safe_load((nbs / "sidebar.yml").read_text(encoding="utf-8"))["website"]["sidebar"]["contents"]
    out: list[tuple[str | None, Path]] = []
    def add(entry, section):
        if isinstance(entry, dict):
            for e in entry.get("contents", []): add(e, entry.get("section", section))
            return
        p = nbs / entry
        if not p.is_file(): raise SystemExit(f"build_docs: {nbs / 'sidebar.yml'} lists {entry}, which does not exist")
        out.append((section, p))
    for entry in spec: add(entry, None)
    return out


def find_notebooks(nbs: Path) -> list[Path]:
    "Notebooks of the site in sidebar order (`site_contents`)."
    return [p for _, p in site_contents(nbs)]


# ---------------------------------------------------------------- step 1: nbdev processing (worker side)
def _retire_shell(shell) -> None:
    "Drop a notebook's IPython shell now: its atexit clean-up (a gc pass and a history write per shell) costs seconds."
    import atexit
    atexit.unregister(shell.atexit_operations)
    hm = getattr(shell, "history_manager", None)
    thread = getattr(hm, "save_thread", None)
    if thread is not None:
        atexit.unregister(thread.stop)
        thread.stop()


def _docs_filter():
    "nbdev's `FilterDefaults` with `exec_show_docs` replaced by one that skips test-flagged cells."
    from fastcore.basics import nested_idx
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, exec_show_docs

    flags = set(re.split(r"[\s|,]+", get_config().get("tst_flags", ""))) - {""}  # nbdev splits on spaces; accept | too

    class exec_docs(exec_show_docs):
        "`exec_show_docs` without `#| slow`/`#| gpu` cells and without widgets from an earlier notebook."
        def begin(self):
            try:
                from ipywidgets import Widget
                Widget.close_all()
            except ImportError: pass
            super().begin()

        def __call__(self, cell):
            if flags & set(getattr(cell, "directives_", None) or {}): return
            return super().__call__(cell)

        def end(self):
            super().end()
            if not nested_idx(self.nb.metadata, "widgets", WIDGET_STATE, "state"):
                self.nb.metadata.pop("widgets", None)
            if getattr(self, "k", None) is not None: _retire_shell(self.k)

    class DocsFilter(FilterDefaults):
        def procs(self):
            return [exec_docs if p is exec_show_docs else p for p in super().procs()]

    return DocsFilter()


def process_notebook(src: str, dst: str, quiet: bool = False) -> tuple[str, float]:
    "Run nbdev's docs processors on notebook `src` and write the result to `dst`."
    import warnings

    from execnb.nbio import read_nb, write_nb
    from nbdev.config import get_config
    get_config()  # read (and cache) settings.ini from here, before moving to the notebook's folder
    t0, cwd, in_test = time.time(), os.getcwd(), os.environ.get("IN_TEST")
    os.environ["IN_TEST"] = "1"
    try:
        # cells run from the notebook's folder, as under nbdev_test
        os.chdir(Path(src).parent)
        nb = read_nb(src)
        with warnings.catch_warnings():
            if quiet: warnings.simplefilter("ignore")  # nbdev's "imports and other code" advice
            _docs_filter()(nb)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        write_nb(nb, dst)
    finally:
        os.chdir(cwd)
        if in_test is None: os.environ.pop("IN_TEST", None)
        else: os.environ["IN_TEST"] = in_test
    return src, time.time() - t0


def process_all(nbs: list[Path], src_root: Path, proc: Path, workers: int, quiet: bool = False) -> dict[Path, float]:
    "Process every notebook (in this process, or in `workers` spawned processes); stop at the first failure."
    jobs = [(str(nb), str(proc / nb.relative_to(src_root)), quiet) for nb in nbs]
    out: dict[Path, float] = {}

    def fail(src: str, e: BaseException):
        traceback.print_exception(e)
        raise SystemExit(f"build_docs: nbdev processing of {Path(src).name} failed: {e!r}") from e

    if workers <= 1:
        for job in jobs:
            try: out[Path(job[0])] = process_notebook(*job)[1]
            except Exception as e: fail(job[0], e)
        return out
    # Spawned workers (fresh interpreters, like nbdev's `proc_nbs`) import this file by module name.
    if str(Path(__file__).parent) not in sys.path: sys.path.insert(0, str(Path(__file__).parent))
    import build_docs
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
        futs = {job[0]: ex.submit(build_docs.process_notebook, *job) for job in jobs}
        for src, fut in futs.items():
            try: out[Path(src)] = fut.result()[1]
            except Exception as e: fail(src, e)
    return out


# ---------------------------------------------------------------- step 2: Quarto options -> nbconvert
_OPT = re.compile(r"^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
_QUARTO_LINK_ATTRS = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)\{([^}\n]*)\}")


def _md_link_attrs(text: str) -> str:
    "Quarto's `[text](url){target=\"_blank\" ...}` as plain HTML (mistune shows the braces verbatim)."
    def sub(m: re.Match) -> str:
        target = ' target="_blank" rel="noopener"' if "_blank" in m[3] else ""
        return f'<a class="source-link" href="{html.escape(m[2])}"{target}>{html.escape(m[1])}</a>'
    return _QUARTO_LINK_ATTRS.sub(sub, text)


def _cell_options(src: str) -> tuple[dict[str, str], str]:
    "Leading `#| key: value` lines of a code cell, and the source without them."
    lines, opts = src.splitlines(), {}
    while lines and (m := _OPT.match(lines[0])):
        opts[m[1]] = m[2].strip("'\"")
        lines.pop(0)
    return opts, "\n".join(lines)


def _false(v: str | None) -> bool: return str(v).lower() == "false"


def prepare_for_html(nb) -> tuple[dict, bool]:
    "Apply the Quarto options nbdev leaves for Quarto; return (frontmatter, has_widget_state)."
    import nbformat
    fm: dict = {}
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("---"):
            import yaml
            body = cell.source.strip().strip("-")
            fm = yaml.safe_load(body) or {}
            continue
        if cell.cell_type == "markdown":
            cell.source = _md_link_attrs(cell.source)
        elif cell.cell_type == "code":
            opts, cell.source = _cell_options(cell.source)
            if _false(opts.get("include")): continue
            tags = list(cell.metadata.get("tags", []))
            if _false(opts.get("echo")): tags.append("remove_input")
            if _false(opts.get("output")): cell.outputs = []
            if "code-fold" in opts and not _false(opts["code-fold"]):
                cell.metadata["forge_fold"] = {"open": opts["code-fold"] == "show",
                                               "summary": opts.get("code-summary", "Code")}
            if re.match(r"\s*show_doc\(", cell.source): tags.append("showdoc")
            for out in cell.outputs:
                md = out.get("data", {}).get("text/markdown")
                if md is not None:
                    out["data"]["text/markdown"] = _md_link_attrs(md if isinstance(md, str) else "".join(md))
            if not cell.source.strip() and not cell.outputs: continue
            if tags: cell.metadata["tags"] = tags
        cells.append(cell)
    title, desc = fm.get("title"), fm.get("description")
    if title:
        head = f"# {title}" + (f"\n\n> {desc}" if desc else "")
        head_cell = nbformat.v4.new_markdown_cell(head)
        head_cell.metadata["tags"] = ["page-title"]
        cells.insert(0, head_cell)
    for i, cell in enumerate(cells): cell["id"] = f"c{i:03d}"  # cells nbdev adds get random ids
    nb.cells = cells
    has_widgets = bool(((nb.metadata.get("widgets") or {}).get(WIDGET_STATE) or {}).get("state"))
    if not has_widgets: nb.metadata.pop("widgets", None)
    return fm, has_widgets


# ---------------------------------------------------------------- step 2b: links and anchors in the HTML
_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.I)
_HEADING_ID = re.compile(r'<h([1-6]) id="([^"]+)"')


def _rel(target: str, page: str) -> str:
    "`target` (site-root relative) as seen from `page` (site-root relative)."
    return os.path.relpath(target, os.path.dirname(page) or ".").replace(os.sep, "/")


def fix_links(text: str, page: str, pages_by_src: dict[str, str], doc_url: str) -> str:
    "Rewrite hrefs: doc-site URLs and `.ipynb`/`.qmd`/`.md` links to relative page links."
    def sub(m: re.Match) -> str:
        href = html.unescape(m[2])
        path, frag = (href.split("#", 1) + [""])[:2]
        if doc_url and path.startswith(doc_url):
            path = path[len(doc_url):].lstrip("/") or "index.html"
            path = _rel(path, page)
        elif not re.match(r"^[a-z][a-z0-9+.-]*:|^/|^#", href, re.I) and path:
            stem, ext = os.path.splitext(path)
            if ext in (".ipynb", ".qmd", ".md"):
                src = os.path.normpath(os.path.join(os.path.dirname(page), stem)).replace(os.sep, "/")
                target = pages_by_src.get(src) or re.sub(r"(^|/)\d+_", r"\1", src) + ".html"
                path = _rel(target, page)
        else:
            return m[0]
        new = path + (f"#{frag}" if frag else "")
        return m[1] + html.escape(new) + m[3]
    return _HREF.sub(sub, text)


def add_anchor_aliases(text: str) -> str:
    "nbconvert keeps the heading's case in its id; Quarto (and nbdev's links) lower-case it."
    seen = set(re.findall(r'\sid="([^"]+)"', text))
    def sub(m: re.Match) -> str:
        low = m[2].lower()
        if low == m[2] or low in seen: return m[0]
        seen.add(low)
        return f'<span class="anchor-alias" id="{low}"></span>' + m[0]
    return _HEADING_ID.sub(sub, text)


def toc_html(text: str) -> str:
    "An in-page table of contents from the page's h2 headings."
    items = []
    for hid, inner in re.findall(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', text, re.S):
        label = re.sub(r"<[^>]+>", "", inner).replace("¶", "").strip()
        items.append(f'<li><a href="#{hid}">{label}</a></li>')
    return f'<ul class="forge-toc">{"".join(items)}</ul>' if items else ""


# ---------------------------------------------------------------- step 3: the widget manager
def html_manager_tarball(cache: Path = NPM_CACHE, version: str = HTML_MANAGER_VERSION) -> Path:
    "The npm tarball of `@jupyter-widgets/html-manager@version`, fetched with `npm pack` if missing."
    tgz = cache / f"jupyter-widgets-html-manager-{version}.tgz"
    if tgz.exists(): return tgz
    npm = shutil.which("npm")
    cmd = ["npm", "pack", f"{HTML_MANAGER}@{version}", "--pack-destination", str(cache)]
    if not npm:
        raise SystemExit(f"build_docs: {tgz} is missing and npm is not installed; run: {' '.join(cmd)}")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if not tgz.exists(): raise SystemExit(f"build_docs: `{' '.join(cmd)}` did not write {tgz}")
    return tgz


def copy_widget_manager(tgz: Path, dest: Path) -> None:
    "embed.js (the self-contained widget manager, no require.js) and the fonts it loads."
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as tf:
        for member in tf.getmembers():
            name = member.name
            if not (member.isfile() and name.startswith("package/dist/")): continue
            base = name.rsplit("/", 1)[1]
            fonts = (".woff", ".woff2", ".ttf", ".eot", ".svg")
            if base in ("embed.js", "embed.js.LICENSE.txt") or base.endswith(fonts):
                (dest / base).write_bytes(tf.extractfile(member).read())
            elif name == "package/LICENSE":
                (dest / "LICENSE").write_bytes(tf.extractfile(member).read())


# ---------------------------------------------------------------- the build
MARKER = ".build_docs"  # in every folder this script writes, so that it only ever empties its own


def _fresh_dir(d: Path) -> None:
    "Empty `d` for a new build, refusing a folder this script did not make (`--out .` must not wipe the repo)."
    if d.exists() and any(d.iterdir()):
        if not (d / MARKER).exists() or d == ROOT or d in ROOT.parents:
            raise SystemExit(f"build_docs: {d} exists and was not made by tools/build_docs.py; choose another folder")
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / MARKER).write_text("written by tools/build_docs.py; the next build empties this folder\n")


def build(out: Path, proc: Path | None = None, workers: int | None = None, quiet: bool = False) -> dict:
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from nbdev.config import get_config
    import nbformat

    t0 = time.time()
    os.chdir(ROOT)
    cfg = get_config()
    nbs_path = Path(cfg.nbs_path)
    out = out.resolve()
    proc = (proc or ROOT / ".cache" / "build_docs" / "_proc").resolve()
    notebooks = find_notebooks(nbs_path)
    if not notebooks: raise SystemExit(f"build_docs: no notebooks in {nbs_path}")
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    # 1. nbdev processing
    _fresh_dir(proc)
    # One process by default: importing torch/transformers once is most of the work, and a
    # worker each pays it again (on 2 cores: 9 s in-process against 30 s with 2 workers).
    workers = workers or 1
    proc_times = process_all(notebooks, nbs_path, proc, workers, quiet)
    t1 = time.time()
    say(f"processed {len(notebooks)} notebooks with nbdev in {t1 - t0:.1f}s ({workers} workers) -> {proc}")
    say("  " + ", ".join(f"{p.stem} {t:.1f}s" for p, t in proc_times.items()))

    # 2. pages
    sections = {p: sec for sec, p in site_contents(nbs_path)}
    pages = []
    pages_by_src = {}
    for nb_path in notebooks:
        rel = nb_path.relative_to(nbs_path)
        pages_by_src[rel.with_suffix("").as_posix()] = page_name(nb_path, nbs_path)
    prepared = []
    for nb_path in notebooks:
        nb = nbformat.read(proc / nb_path.relative_to(nbs_path), as_version=4)
        fm, has_widgets = prepare_for_html(nb)
        name = page_name(nb_path, nbs_path)
        title = str(fm.get("title") or nb_path.stem)
        pages.append({"href": name, "title": title, "src": nb_path.relative_to(nbs_path).as_posix(),
                      "section": sections[nb_path]})
        prepared.append((nb_path, nb, name, title, has_widgets))

    _fresh_dir(out)
    exporter = HTMLExporter(template_name="forge", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input_prompt=True, exclude_output_prompt=True, theme="light")
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}), enabled=True)
    # The site never loads anything from a CDN: these are overridden in the template, but be sure.
    exporter.require_js_url = exporter.mathjax_url = exporter.mermaid_js_url = ""
    doc_url = (cfg.get("doc_host", "") + cfg.get("doc_baseurl", "")).rstrip("/") + "/"
    site_title = cfg.get("title", cfg.get("lib_name", ""))
    widget_pages = []
    for nb_path, nb, name, title, has_widgets in prepared:
        prefix = "../" * name.count("/")  # from the page's folder back to the site root
        exporter.widget_renderer_url = f"{prefix}{WIDGET_DIR}/embed.js"
        nav = [{**p, "url": _rel(p["href"], name), "active": p["href"] == name} for p in pages]
        resources = {"metadata": {"name": title},
                     "forge_site": {"nav": nav, "title": site_title,
                                    "prefix": prefix, "page_title": title,
                                    "src": f"nbs/{nb_path.relative_to(nbs_path).as_posix()}",
                                    "widgets": has_widgets, "widget_js": exporter.widget_renderer_url,
                                    "home": _rel("index.html", name)}}
        nb.metadata["title"] = f"{title} – {site_title}" if title != site_title else site_title
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        body = fix_links(body, name, pages_by_src, doc_url)
        body = add_anchor_aliases(body)
        body = body.replace("<!--FORGE_TOC-->", toc_html(body))
        dest = out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(body, encoding="utf-8")
        if has_widgets: widget_pages.append(name)

    # 3. assets
    static = out / "_static"
    static.mkdir(exist_ok=True)
    shutil.copy2(SITE_CSS, static / "site.css")
    if widget_pages: copy_widget_manager(html_manager_tarball(), out / WIDGET_DIR)
    for f in nbs_path.rglob("*"):
        rel = f.relative_to(nbs_path)
        if f.is_file() and f.suffix.lower() in ASSET_SUFFIXES and not any(p.startswith(("_", ".")) for p in rel.parts):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out / rel)
    (out / "pages.json").write_text(json.dumps(pages, indent=1), encoding="utf-8")
    (out / ".nojekyll").write_text("")
    t2 = time.time()
    on = ", ".join(widget_pages) or "none"
    say(f"wrote {len(pages)} pages to {out} in {t2 - t1:.1f}s (widgets on: {on}); total {t2 - t0:.1f}s")
    return {"out": out, "pages": pages, "widget_pages": widget_pages, "proc_times": proc_times,
            "seconds": t2 - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="_site", help="site folder (default: _site)")
    ap.add_argument("--proc", default=None, help="processed notebooks (default: .cache/build_docs/_proc)")
    ap.add_argument("--workers", type=int, default=None, help="processes for the nbdev step (default: 1, in-process)")
    ap.add_argument("--fetch-only", action="store_true",
                    help=f"only fetch {HTML_MANAGER}@{HTML_MANAGER_VERSION} into .cache/npm (for CI)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.fetch_only:
        print(html_manager_tarball())
        return
    out = Path(a.out) if Path(a.out).is_absolute() else Path.cwd() / a.out
    proc = None if a.proc is None else (Path(a.proc) if Path(a.proc).is_absolute() else Path.cwd() / a.proc)
    build(out, proc, a.workers, a.quiet)


if __name__ == "__main__":
    sys.exit(main())
