"""Shared fixtures: the embedded model's tokenizer (loaded once) and a JSONL writer; and what the
real-browser tests share (Debian's chromium driven by Playwright, skipped locally without it, failing under CI)."""
from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest


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


# ---------------------------------------------------------------- real-browser tests
# Debian's Chromium (`apt-get install -y chromium`), driven by Playwright; never `playwright install`.
CHROMIUM = os.environ.get("FORGE_NB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def browser_test_missing(**modules: str) -> list[str]:
    """What a real-browser test lacks: Playwright, each of `modules` (`name="how to install"`) that is not
    installed, and the Chromium executable `CHROMIUM`. Empty when everything is there."""
    needs = {"playwright": "pip install playwright; no `playwright install`", **modules}
    out = [f"{name} ({hint})" for name, hint in needs.items() if importlib.util.find_spec(name) is None]
    if not Path(CHROMIUM).exists(): out.append(f"{CHROMIUM} (apt-get install -y chromium)")
    return out


def browser_tools(what: str, **modules: str) -> tuple[list[str], Any]:
    """For a real-browser test module: `(missing, fixture)`. Skips the whole module when something is
    missing (`browser_test_missing`) outside CI; under CI the returned autouse fixture (assign it to a
    module-level name) fails each test instead, so the rest of the suite still runs."""
    missing = browser_test_missing(**modules)
    if missing and not IN_CI: pytest.skip(f"{what} needs: " + "; ".join(missing), allow_module_level=True)

    @pytest.fixture(scope="module", autouse=True)
    def _tools_present() -> None:
        "Under CI the browser tools must be there: each test fails (the rest of the suite still runs)."
        if missing: pytest.fail("CI must install: " + "; ".join(missing), pytrace=False)

    return missing, _tools_present


@pytest.fixture(scope="module")
def args(tmp_path_factory: pytest.TempPathFactory) -> Any:
    "`transformers.TrainingArguments` for driving callbacks by hand (no training, nothing reported)."
    from transformers import TrainingArguments
    return TrainingArguments(output_dir=str(tmp_path_factory.mktemp("out")), report_to=[])

