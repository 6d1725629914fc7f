"""Run every notebook in nbs/ the way `nbdev_test` does (cells flagged `slow`/`gpu` skipped,
`#| eval: false` skipped), so the notebooks' own examples and asserts are part of the suite."""
from pathlib import Path

import pytest
from nbdev import test as nbdev_test

NBS = sorted((Path(__file__).resolve().parent.parent / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, _ = nbdev_test.test_nb(nb, skip_flags=["slow", "gpu"], force_flags=[], do_print=False)
    assert ok, f"{nb.name} failed: run `nbdev_test --path nbs/{nb.name}` to see why"


def test_notebooks_exist():
    names = {p.stem for p in NBS}
    assert {"00_config", "01_data", "02_callbacks", "03_state", "04_models", "05_engine", "06_cli", "07_example_data", "08_gpu_benchmark", "09_evaluate", "10_widgets", "11_walkthrough", "index"} <= names
