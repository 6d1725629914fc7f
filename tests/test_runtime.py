"""Edge cases of `forge_nb.runtime` (the story and the main examples are in nbs/api/00_runtime.ipynb)."""
import json

import pytest

from forge_nb import engine as E
from forge_nb import runtime as R


def test_run_record_helpers(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc")
    assert E.file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    E.write_json_atomic(tmp_path / "sub" / "r.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == {"x": [1, 2]}
    assert E.library_versions(("torch", "no-such-pkg-q"))["no-such-pkg-q"] is None
    mem = E.peak_memory()
    assert 0.05 < mem["peak_rss_gib"] < 64  # this process holds at least torch: tens of MiB, well under the machine


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    E.write_json_atomic(target, {"v": 1})
    monkeypatch.setattr(R.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        E.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
