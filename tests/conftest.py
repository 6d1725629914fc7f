"""Shared fixtures: the embedded model's tokenizer (loaded once), a JSONL writer and `TrainingArguments`
for driving callbacks. Tests under `integration/` (real CPU training) and `browser/` (real Chromium) get
the markers of the same names, so `pytest -m "not integration and not browser"` is the fast loop."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from families import FAMILIES, make_family  # tests/ is on sys.path


@pytest.fixture(scope="session")
def smol_tok() -> Any:
    """The embedded SmolLM2-135M tokenizer, fixed and checked by `load_tokenizer`.

    Session-scoped: tests that change it must work on a `copy.deepcopy`."""
    from forge_nb.models import load_tokenizer

    return load_tokenizer("smollm2-135m")


Line = str | bytes | dict


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """`write_jsonl(lines, name="data.jsonl") -> Path`: one line per item.

    A `dict` is written with `json.dumps`, a `str` as UTF-8 text, `bytes` verbatim (so a test
    can write invalid UTF-8). Each item is followed by `b"\\n"`."""

    def write(lines: Iterable[Line], name: str = "data.jsonl") -> Path:
        out = bytearray()
        for item in lines:
            if isinstance(item, dict): out += json.dumps(item, ensure_ascii=False).encode("utf-8")
            elif isinstance(item, str): out += item.encode("utf-8")
            elif isinstance(item, bytes): out += item
            else: raise TypeError(f"write_jsonl: unsupported line type {type(item).__name__}")
            out += b"\n"
        path = tmp_path / name
        path.write_bytes(bytes(out))
        return path

    return write


@pytest.fixture(scope="module")
def args(tmp_path_factory: pytest.TempPathFactory) -> Any:
    "`transformers.TrainingArguments` for driving callbacks by hand (no training, nothing reported)."
    from transformers import TrainingArguments
    return TrainingArguments(output_dir=str(tmp_path_factory.mktemp("out")), report_to=[])


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, smol_tok: Any) -> tuple[str, Any]:
    "`(name, tokenizer)` for each model family of `families.FAMILIES` (a test using it runs once per family)."
    return request.param, make_family(smol_tok, request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    "Mark the tests by folder: `integration/` → `integration`, `browser/` → `browser`."
    for item in items:
        parts = Path(str(item.fspath)).parts
        for folder in ("integration", "browser"):
            if folder in parts: item.add_marker(getattr(pytest.mark, folder))
