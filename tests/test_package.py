"""The package's shape: modules in layers (no cycle, no upward import), one home for each public
name, and the lazy top-level namespace built from the modules' `__all__`."""
import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import forge_nb

PKG = Path(forge_nb.__file__).parent


def _tree(mod: str) -> ast.Module:
    return ast.parse((PKG / f"{mod}.py").read_text(encoding="utf-8"))


def imported_modules(mod: str) -> set[str]:
    "The forge_nb modules that `mod` imports anywhere (top level, inside functions, under TYPE_CHECKING)."
    out = set()
    for node in ast.walk(_tree(mod)):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 1: out |= {name.split(".")[0]} if name else {a.name for a in node.names}
            elif name.startswith("forge_nb."): out.add(name.split(".")[1])
            elif name == "forge_nb": out |= {a.name for a in node.names if a.name in forge_nb.MODULES}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("forge_nb.")}
    return out & set(forge_nb.MODULES)


def test_modules_lists_every_module():
    on_disk = {p.stem for p in PKG.glob("*.py")} - {"__init__", "_modidx"}
    assert sorted(forge_nb.MODULES) == sorted(on_disk)


@pytest.mark.parametrize("mod", forge_nb.MODULES)
def test_no_upward_import(mod):
    "Each module imports only modules before it in `MODULES`: the graph is layered, so it has no cycle."
    below = set(forge_nb.MODULES[:forge_nb.MODULES.index(mod)])
    above = imported_modules(mod) - below
    assert not above, f"{mod} imports {sorted(above)}, which are not below it"


def test_the_import_check_sees_upward_and_local_imports(tmp_path, monkeypatch):
    "The check itself: a relative import inside a function and an absolute one are both found."
    (tmp_path / "m.py").write_text("from .rows import DataError\n"
                                   "def f():\n    from forge_nb.engine import TrainingEngine\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path)
    assert imported_modules("m") == {"rows", "engine"}


def _all(mod: str) -> list[str]:
    node = next(n for n in _tree(mod).body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
    return ast.literal_eval(node.value)


def test_each_public_name_has_one_home():
    counts = Counter(n for mod in forge_nb.MODULES for n in _all(mod))
    assert not [n for n, k in counts.items() if k > 1]
    assert not set(counts) & set(forge_nb.MODULES), "a public name equal to a module name would be shadowed"


def test_package_namespace_is_built_from_all():
    names = {n: f"forge_nb.{mod}" for mod in forge_nb.MODULES[:-1] for n in _all(mod)}
    assert forge_nb._public_names() == names
    assert set(names) <= set(dir(forge_nb))
    from forge_nb.toolcalls import parse_tool_calls
    assert forge_nb.parse_tool_calls is parse_tool_calls
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        forge_nb.nope  # noqa: B018


def test_lines_fit_in_120_columns():
    "The column limit of ruff.toml (`line-length`), on the exported code, but for the `__all__` line nbdev writes."
    long = [f"{p.name}:{i}" for p in sorted(PKG.glob("*.py")) if p.name != "_modidx.py"
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > 120 and not line.startswith("__all__ = [")]
    assert not long, f"lines over 120 columns (fix them in the notebooks): {long}"


def test_import_is_light():
    "`import forge_nb` and the config load neither torch nor transformers."
    code = "import sys, forge_nb; forge_nb.TrainingConfig(); assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
