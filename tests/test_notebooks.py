"""The notebooks as tests and as docs: each runs the way `nbdev_test` does (cells flagged `slow`/`gpu`
and `#| eval: false` skipped), so their examples and asserts are part of the suite; and each is saved
with its outputs (nbdev's convention, what the docs site shows): every example cell has one, no output
shows a machine path or is large (`tools/run_notebooks.py` saves and checks them)."""
import copy
import json
import sys
from pathlib import Path

import pytest
from nbdev import test as nbdev_test

ROOT = Path(__file__).resolve().parent.parent
NBS_DIR = ROOT / "nbs"
NBS = sorted(p for p in NBS_DIR.rglob("*.ipynb")
             if not any(part.startswith((".", "_")) for part in p.relative_to(NBS_DIR).parts))
IDS = [p.relative_to(NBS_DIR).with_suffix("").as_posix() for p in NBS]
sys.path.insert(0, str(ROOT / "tools"))
import run_notebooks  # noqa: E402


@pytest.mark.parametrize("nb", NBS, ids=IDS)
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, _ = nbdev_test.test_nb(nb, skip_flags=["slow", "gpu"], force_flags=[], do_print=False)
    assert ok, f"{nb.name} failed: run `nbdev_test --path {nb.relative_to(ROOT)}` to see why"


@pytest.mark.parametrize("nb", NBS, ids=IDS)
def test_notebook_is_valid(nb):
    "Each notebook is valid nbformat 4 (what Jupyter, nbdev and the docs build read)."
    import nbformat
    nbformat.validate(nbformat.read(nb, as_version=4))


@pytest.mark.parametrize("nb", NBS, ids=IDS)
def test_saved_outputs(nb):
    problems = run_notebooks.output_problems(json.loads(nb.read_text(encoding="utf-8")), nb.name)
    assert not problems, "\n".join(problems) + f"\nre-run: python tools/run_notebooks.py {nb.relative_to(ROOT)}"


def test_notebooks_stay_small():
    size = sum(p.stat().st_size for p in NBS)
    assert size <= run_notebooks.MAX_NBS_BYTES, f"nbs/ holds {size:,} bytes of notebooks"


def _cell(src: str, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "source": src, "outputs": outputs or [], "metadata": {}, "execution_count": None}


def _text(t: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": t}


def test_output_check_finds_each_problem():
    "The check itself: what counts as an example cell, and each kind of problem it reports."
    ok = {"cells": [_cell("#| export\ndef f(): pass"), _cell("#| hide\nfrom x import y"), _cell("import os"),
                    _cell("#| gpu\ntrain()"), _cell("#| eval: false\n!pip install x"), _cell("f()", [_text("3\n")]),
                    {"cell_type": "markdown", "source": "# T", "metadata": {}}]}
    assert run_notebooks.output_problems(ok) == []
    bad = copy.deepcopy(ok)
    bad["cells"] += [_cell("#| slow\nf()"), _cell("g()", [_text("saved in /tmp/abc/run.json\n")]),
                     _cell("h()", [_text("x" * (run_notebooks.MAX_CELL_TEXT + 1))]),
                     _cell("k()", [{"output_type": "error", "ename": "ValueError", "evalue": "", "traceback": []}])]
    problems = run_notebooks.output_problems(bad, "nb")
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == ["no", "output", "40001", "saved"], problems
    assert "cell 7" in problems[0] and "/tmp/abc" in problems[1]


def test_design_notes_module_map_matches_the_code():
    "The module map saved in the design notes (names per module, imports) is what the code has now."
    import ast
    import importlib
    import re

    import forge_nb
    nb = json.loads((ROOT / "nbs" / "explanations" / "02_design.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and "def uses(" in "".join(c["source"]))
    text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    saved = re.findall(r"^\s*\d+ (\w+)\s+(\d+) names\s+uses: (.*)$", text, re.M)
    assert [m for m, _, _ in saved] == list(forge_nb.MODULES), "re-run nbs/explanations/02_design.ipynb"
    for mod, names, used in saved:
        src = (ROOT / "forge_nb" / f"{mod}.py").read_text(encoding="utf-8")
        found = {n.module.rpartition(".")[2] for n in ast.walk(ast.parse(src))
                 if isinstance(n, ast.ImportFrom) and n.module}
        want = ", ".join(m for m in forge_nb.MODULES if m in found) or "-"
        assert (int(names), used.strip()) == (len(importlib.import_module(f"forge_nb.{mod}").__all__), want), \
            f"{mod}: the saved map is stale; run python tools/run_notebooks.py nbs/explanations/02_design.ipynb"
