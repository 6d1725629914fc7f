"""What the real-browser tests share: Debian's Chromium (`apt-get install -y chromium`) driven by
Playwright (never `playwright install`); skipped locally when something is missing, failing under CI."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

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
