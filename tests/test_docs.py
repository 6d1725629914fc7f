"""The docs site without a browser: what `tools/build_docs.py` puts on each page, checked on the notebooks.

- `nbs/sidebar.yml` lists every notebook once (it is the sidebar of the site, in its order);
- the build's rules on a small notebook: what runs, what shows, how links are rewritten;
- no page leaves a sentence hanging: a paragraph ending with ":" is followed on the page by what it
  introduces (a code cell or an output, a list, a table, a code block), not by more prose.

The pages are read as the build sees them (`page_blocks`): nbdev's docs processors, without running any
cell, then the Quarto options the build applies (`build_docs.prepare_for_html`). So `#| hide`,
`#| export` (but not `#| exports`, whose source is shown) and `#| include: false` cells show nothing,
and the `show_doc` cell nbdev adds after an exported public name shows its signature. The checks in a
real browser are in tests/browser/test_docs_site.py."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
sys.path.insert(0, str(ROOT / "tools"))
import build_docs  # noqa: E402

CONTENTS = build_docs.site_contents(NBS)
SITE_NBS = [p for _, p in CONTENTS]
IDS = [p.relative_to(NBS).with_suffix("").as_posix() for p in SITE_NBS]


def test_sidebar_lists_every_notebook_once():
    "nbs/sidebar.yml is the one list of pages: every notebook in nbs/ is in it, once."
    on_disk = sorted(p.relative_to(NBS).as_posix() for p in NBS.rglob("*.ipynb")
                     if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts))
    listed = [p.relative_to(NBS).as_posix() for p in SITE_NBS]
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)


# ---------------------------------------------------------------- the build's rules, on a small notebook
def _cell(kind: str, src: str, outputs: list | None = None) -> dict:
    c = {"cell_type": kind, "id": f"x{abs(hash(src)) % 10**8}", "metadata": {}, "source": src}
    if kind == "code": c.update(execution_count=None, outputs=outputs or [])
    return c


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _write_nb(path: Path, cells: list[dict]) -> Path:
    kernel = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernel},
                                "cells": cells}), encoding="utf-8")
    return path


def test_build_rules_on_a_small_notebook(tmp_path):
    "What runs and what shows: `slow`/`eval: false` cells are not run and keep their saved output."
    import nbformat

    src = _write_nb(tmp_path / "nbs" / "11_sample.ipynb", [
        _cell("markdown", "# Sample page\n\n> One line of description."),
        _cell("code", "#| hide\nfrom nbdev.showdoc import show_doc"),
        _cell("code", "#| export\ndef public_fn(x: int) -> int:\n    \"Double `x`.\"\n    return 2 * x"),
        _cell("markdown", "## Section\n\nSee [callbacks](02_callbacks.ipynb#x) and "
              "[profiles](https://forge-nb.github.io/forge_nb/config.html#get_profile)."),
        _cell("code", "#| slow\nimport os\nraise RuntimeError('a slow cell ran')", [_stream("saved slow output\n")]),
        _cell("code", "#| eval: false\nimport os\nraise RuntimeError('an eval: false cell ran')",
              [_stream("saved eval-false output\n")]),
        _cell("code", "#| echo: false\nprint('only the output')", [_stream("only the output\n")]),
        _cell("code", "#| include: false\nx = 1"),
    ])
    dst = tmp_path / "proc" / "11_sample.ipynb"
    build_docs.process_notebook(str(src), str(dst), quiet=True)  # raises if a slow / eval: false cell ran
    out = nbformat.read(dst, as_version=4)
    fm, has_widgets = build_docs.prepare_for_html(out)
    assert fm["title"] == "Sample page" and fm["description"] == "One line of description." and not has_widgets
    sources = [c.source for c in out.cells]
    assert sources[0].startswith("# Sample page") and not any("#|" in s for s in sources)
    assert not any("show_doc\n" in s or s.startswith("from nbdev") for s in sources), "hidden cell shown"
    assert not any("x = 1" in s for s in sources), "include: false cell shown"
    texts = ["".join(o.get("text", "")) for c in out.cells if c.cell_type == "code" for o in c.outputs]
    assert "saved slow output\n" in texts and "saved eval-false output\n" in texts
    doc = next(c for c in out.cells if "showdoc" in c.metadata.get("tags", []))
    md = doc.outputs[0]["data"]["text/markdown"]
    assert "### public_fn" in md and "public_fn(" in md and "remove_input" in doc.metadata["tags"]
    echo = next(c for c in out.cells if c.source.startswith("print('only the output')"))
    assert "remove_input" in echo.metadata["tags"]
    html = ('<a href="02_callbacks.ipynb#x">a</a><a href="https://forge-nb.github.io/forge_nb/config.html#get_profile">b</a>'
            '<a href="notes.qmd">c</a><a href="https://example.org/x.ipynb">d</a><a href="#Section">e</a>')
    fixed = build_docs.fix_links(html, "sample.html", {"02_callbacks": "callbacks.html"}, "https://forge-nb.github.io/forge_nb/")
    assert re.findall(r'href="([^"]*)"', fixed) == ["callbacks.html#x", "config.html#get_profile", "notes.html",
                                                   "https://example.org/x.ipynb", "#Section"]


# ---------------------------------------------------------------- a page, as a reader sees it
def _page_cells(path: Path) -> list:
    """The cells of notebook `path` as its page shows them, without running anything: nbdev's docs processors
    (`show_doc` cells added, `#| hide`/`#| export` sources removed, `exports` cells kept) less the one that
    executes cells, then `build_docs.prepare_for_html` (the Quarto options: `include: false`, `echo: false` …)."""
    import tempfile

    import nbformat
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults, exec_show_docs

    class NoExec(FilterDefaults):
        def procs(self): return [p for p in super().procs() if p is not exec_show_docs]

    nb = read_nb(path)
    for i, c in enumerate(nb.cells): c.metadata["forge_src_idx"] = i  # the cell's index in the notebook
    NoExec()(nb)
    for c in nb.cells: c.pop("has_sd", None)  # nbdev's mark on the `show_doc` cells it adds: not nbformat
    with tempfile.TemporaryDirectory() as d:
        write_nb(nb, Path(d) / path.name)
        nb = nbformat.read(Path(d) / path.name, as_version=4)
    build_docs.prepare_for_html(nb)
    return nb.cells


def _shows_something(cell) -> bool:
    "Does a code cell of the page show anything: its source, an output, or (`show_doc`) a signature once built?"
    tags = cell.metadata.get("tags", [])
    return "showdoc" in tags or bool(cell.outputs) or (bool(cell.source.strip()) and "remove_input" not in tags)


def _inline_text(tokens: list[dict]) -> str:
    "The text of mistune inline tokens, code spans in backticks."
    out = []
    for t in tokens:
        if t["type"] == "codespan": out.append(f"`{t['raw']}`")
        elif "children" in t: out.append(_inline_text(t["children"]))
        else: out.append(t.get("raw", ""))
    return "".join(out)


def page_blocks(path: Path) -> list[tuple[str, str, int]]:
    """The page of notebook `path` as a sequence of `(kind, text, notebook cell index)`: each top-level markdown
    block (`paragraph`, `heading`, `list`, `table`, `block_code`, …; text for paragraphs and headings) and one
    `("shown", "", i)` for each code cell that shows something (`_shows_something`)."""
    import mistune
    md = mistune.create_markdown(renderer="ast", plugins=["table", "strikethrough", "math"])
    out: list[tuple[str, str, int]] = []
    for cell in _page_cells(path):
        i = cell.metadata.get("forge_src_idx", -1)  # -1: a cell nbdev added (`show_doc`)
        if cell.cell_type == "code":
            if _shows_something(cell): out.append(("shown", "", i))
        elif cell.cell_type == "markdown":
            for b in md(cell.source):
                if b["type"] == "blank_line": continue
                text = _inline_text(b.get("children", [])) if b["type"] in ("paragraph", "heading") else ""
                out.append((b["type"], text.strip(), i))
    return out


def hanging_colons(path: Path) -> list[str]:
    """Paragraphs of the page that end with ":" and are followed by more prose (a paragraph or a heading) or by
    nothing at all, with no code, output, list, table or code block between them: one line for each."""
    blocks = page_blocks(path)
    out = []
    for k, (kind, text, i) in enumerate(blocks):
        if kind != "paragraph" or not text.endswith(":"): continue
        nxt = blocks[k + 1] if k + 1 < len(blocks) else ("end of page", "", -1)
        if nxt[0] in ("paragraph", "heading", "end of page"):
            out.append(f"cell {i}: {text[-90:]!r} is followed by {nxt[0]} {nxt[1][:60]!r}")
    return out


def test_hanging_colons_are_found(tmp_path, monkeypatch):
    "The check itself, on a small notebook: what counts as shown between a colon and the next prose."
    monkeypatch.chdir(ROOT)  # nbdev reads settings.ini from here
    nb = _write_nb(tmp_path / "nbs" / "sample.ipynb", [
        _cell("markdown", "# Sample\n\n> A page."),
        _cell("markdown", "Ends with a colon, then a code cell:"),
        _cell("code", "1 + 1", [{"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
                                 "execution_count": None}]),
        _cell("markdown", "Ends with a colon, then a hidden cell:"),          # found: hidden
        _cell("code", "#| hide\nx = 1"),
        _cell("markdown", "Prose right after. A list:\n\n- one\n- two\n\nA paragraph:\n\nAnother paragraph."),  # found
        _cell("markdown", "An exported private helper:"),                      # found: #| export shows nothing
        _cell("code", "#| export\ndef _f(): pass"),
        _cell("markdown", "An exported public function:"),                     # its show_doc is shown
        _cell("code", "#| export\ndef g():\n    \"Doc.\"\n    pass"),
        _cell("markdown", "Its private helper, source shown:"),
        _cell("code", "#| exports\ndef _h(): pass"),
        _cell("markdown", "A cell the page leaves out:"),                       # found: include: false
        _cell("code", "#| include: false\ny = 2"),
        _cell("markdown", "## A heading\n\nThe last words:"),                  # found: end of page
    ])
    found = hanging_colons(nb)
    assert [f.split(":", 1)[0] for f in found] == ["cell 3", "cell 5", "cell 6", "cell 12", "cell 14"], found
    assert "is followed by paragraph 'Prose right after" in found[0] and "end of page" in found[-1]


@pytest.mark.parametrize("nb", SITE_NBS, ids=IDS)
def test_no_hanging_colon(nb, monkeypatch):
    "A paragraph that ends with ':' introduces something the page shows next, not more prose."
    monkeypatch.chdir(ROOT)
    found = hanging_colons(nb)
    where = nb.relative_to(ROOT)
    assert not found, f"{where}: a paragraph ends with ':' and nothing is shown after it:\n" + "\n".join(found)
