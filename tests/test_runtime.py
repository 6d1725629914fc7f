"""Edge cases of `forge_nb.runtime` (the story and the main examples are in nbs/api/00_runtime.ipynb)."""
import json
import os
import stat

import pytest

from forge_nb import runtime as R


def test_run_record_helpers(tmp_path):
    import torch  # noqa: F401  (the peak memory below includes it)
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc")
    assert R.file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    R.write_json_atomic(tmp_path / "sub" / "r.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == {"x": [1, 2]}
    assert R.library_versions(("torch", "no-such-pkg-q"))["no-such-pkg-q"] is None
    mem = R.peak_memory()
    assert 0.05 < mem["peak_rss_gib"] < 64  # this process holds at least torch: tens of MiB, well under the machine


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    R.write_json_atomic(target, {"v": 1})
    monkeypatch.setattr(R.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        R.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def _record_fsyncs(monkeypatch):
    "Record each `os.fsync` as `(kind, inode)`, kind 'dir' or 'file', and let it through."
    seen, real = [], os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        seen.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real(fd)
    monkeypatch.setattr(R.os, "fsync", fsync)
    return seen


def test_write_text_atomic_flushes_the_file_and_its_folder(tmp_path, monkeypatch):
    seen = _record_fsyncs(monkeypatch)
    p = R.write_text_atomic(tmp_path / "sub" / "state.json", "{}")
    assert seen == [("file", p.stat().st_ino), ("dir", p.parent.stat().st_ino)]  # the file first, then the rename


def test_fsync_dir_is_best_effort(tmp_path, monkeypatch):
    R._fsync_dir(tmp_path / "missing")  # cannot be opened: no error
    monkeypatch.setattr(R.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("not supported")))
    R._fsync_dir(tmp_path)  # the flush fails: no error
    monkeypatch.delattr(R.os, "O_DIRECTORY")  # a system that cannot open folders (Windows)
    monkeypatch.setattr(R.os, "open", lambda *a: pytest.fail("a folder must not be opened"))
    R._fsync_dir(tmp_path)


def test_atomic_folder_writes_dest(tmp_path):
    dest = tmp_path / "a" / "model"
    with R.atomic_folder(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"12")
        assert not dest.exists()
    assert (dest / "sub" / "w.bin").read_bytes() == b"12"
    assert [p.name for p in dest.parent.iterdir()] == ["model"]


def test_atomic_folder_failure_leaves_no_dest_and_no_temporary_folder(tmp_path):
    with pytest.raises(RuntimeError, match="half-way"):
        with R.atomic_folder(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("half-way")
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(R.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        with R.atomic_folder(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_keeps_a_folder_another_process_finished_first(tmp_path):
    dest = tmp_path / "model"
    with R.atomic_folder(dest) as tmp:
        (tmp / "config.json").write_text("ours")
        dest.mkdir()
        (dest / "config.json").write_text("theirs")  # another process renames its folder into place first
    assert (dest / "config.json").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # our temporary folder is gone


def test_atomic_folder_onto_a_file_raises(tmp_path):
    (tmp_path / "model").write_text("not a folder")
    with pytest.raises(OSError):
        with R.atomic_folder(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
    assert (tmp_path / "model").read_text() == "not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_folder_flushes_every_file_then_renames(tmp_path, monkeypatch):
    seen = _record_fsyncs(monkeypatch)
    dest = tmp_path / "model"
    with R.atomic_folder(dest) as tmp:
        (tmp / "sub").mkdir()
        for name in ("config.json", "sub/w.bin"): (tmp / name).write_text(name)
    files = {(dest / n).stat().st_ino for n in ("config.json", "sub/w.bin")}
    assert {i for k, i in seen if k == "file"} == files
    dirs = [i for k, i in seen if k == "dir"]
    assert {(dest / "sub").stat().st_ino, dest.stat().st_ino} <= set(dirs)  # the folders, before the rename
    assert dirs[-1] == tmp_path.stat().st_ino  # and last the parent, after the rename
