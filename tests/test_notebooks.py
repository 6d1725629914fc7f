"""Run every notebook in nbs/ the way `nbdev_test` does (cells flagged `slow`/`gpu` skipped,
`#| eval: false` skipped), so the notebooks' own examples and asserts are part of the suite."""
from pathlib import Path

import pytest
from nbdev import test as nbdev_test

NBS_DIR = Path(__file__).resolve().parent.parent / "nbs"
NBS = sorted(p for p in NBS_DIR.rglob("*.ipynb") if not any(part.startswith((".", "_")) for part in p.relative_to(NBS_DIR).parts))


@pytest.mark.parametrize("nb", NBS, ids=[p.relative_to(NBS_DIR).with_suffix("").as_posix() for p in NBS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, _ = nbdev_test.test_nb(nb, skip_flags=["slow", "gpu"], force_flags=[], do_print=False)
    assert ok, f"{nb.name} failed: run `nbdev_test --path {nb.relative_to(NBS_DIR.parent)}` to see why"
