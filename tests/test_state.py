"""Edge cases of `forge_nb.state` (the story and the main examples are in nbs/api/11_state.ipynb)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock  # tests/fakes.py (pytest puts tests/ on sys.path)

from forge_nb.state import PipelineStage, PipelineState, StateError, StateManager, state_progress_callback


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[StateManager, list[int]]:
    """A manager whose saves are recorded (the `training_step` at each save)."""
    m = StateManager(tmp_path / ".mcp-forge")
    saved: list[int] = []
    orig = m.save_state

    def save(s: PipelineState) -> None:
        saved.append(s.training_step)
        orig(s)
    monkeypatch.setattr(m, "save_state", save)
    return m, saved


def test_stage_values_are_lowercase_names() -> None:
    names = ["IDLE", "INSPECTING", "SYNTHESIZING", "QC_VALIDATING", "TRAINING", "VALIDATING",
             "EXPORTING", "COMPLETE", "FAILED"]
    assert [s.name for s in PipelineStage] == names
    assert all(s.value == s.name.lower() for s in PipelineStage)
    assert PipelineStage("qc_validating") is PipelineStage.QC_VALIDATING
    assert PipelineStage.TRAINING == "training" and f"{PipelineStage.TRAINING}" == "training"


def test_new_state_defaults() -> None:
    s = PipelineState()
    assert s.stage is PipelineStage.IDLE
    assert (s.training_progress, s.training_loss, s.training_step, s.training_total_steps) == (0.0, None, 0, 0)
    assert s.history == [] and s.error is None
    assert s.created_at == s.updated_at and s.created_at.endswith("+00:00")
    assert PipelineState().history is not s.history  # no shared mutable default


def test_stage_history() -> None:
    s = PipelineState()
    s.update_stage(PipelineStage.QC_VALIDATING)
    s.update_stage(PipelineStage.TRAINING)
    s.update_stage("complete")
    assert s.stage is PipelineStage.COMPLETE
    assert [h["stage"] for h in s.history] == ["qc_validating", "training", "complete"]
    assert all(set(h) == {"stage", "at"} for h in s.history)
    assert [h["at"] for h in s.history] == sorted(h["at"] for h in s.history)
    assert s.updated_at == s.history[-1]["at"]


def test_update_stage_error_handling() -> None:
    s = PipelineState()
    s.error = "boom"
    s.update_stage(PipelineStage.FAILED)
    assert s.error == "boom"  # FAILED keeps the error set before
    s.update_stage(PipelineStage.TRAINING)
    assert s.error is None  # other stages clear it
    s.update_stage(PipelineStage.FAILED, error="CUDA out of memory")
    assert (s.stage, s.error) == (PipelineStage.FAILED, "CUDA out of memory")
    with pytest.raises(StateError, match="'stage'"):
        s.update_stage("flying")
    assert s.stage is PipelineStage.FAILED and len(s.history) == 3


def test_to_dict_from_dict_round_trip() -> None:
    s = PipelineState(model_family="smollm2-135m", profile="fast_dev", training_data_path="d.jsonl",
                      output_dir="out", lora_adapter_path="out/adapter")
    s.update_stage(PipelineStage.TRAINING)
    s.training_loss, s.training_progress, s.training_step, s.training_total_steps = 1.5, 0.5, 5, 10
    d = s.to_dict()
    assert d["stage"] == "training" and type(d["stage"]) is str
    json.dumps(d)  # JSON-ready
    assert PipelineState.from_dict(d) == s
    d["history"].append({"stage": "x", "at": "y"})
    assert len(s.history) == 1  # to_dict copies


def test_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    s = PipelineState.from_dict({"stage": "exporting", "added_in_v9": {"x": 1}, "profile": "balanced"})
    assert (s.stage, s.profile, s.training_step) == (PipelineStage.EXPORTING, "balanced", 0)
    assert PipelineState.from_dict({}).stage is PipelineStage.IDLE


def test_from_dict_accepts_int_for_float() -> None:
    s = PipelineState.from_dict({"training_progress": 1, "training_loss": 2})
    assert s.training_progress == 1 and s.training_loss == 2


@pytest.mark.parametrize("key,value", [
    ("stage", "nope"), ("stage", 3), ("stage", None), ("training_step", "3"), ("training_step", 1.5),
    ("training_step", True), ("training_progress", "0.5"), ("profile", 7), ("history", {"a": 1}),
    ("history", ["training"]), ("created_at", None),
])
def test_from_dict_bad_value_names_field(key: str, value: Any) -> None:
    with pytest.raises(StateError, match=repr(key)):
        PipelineState.from_dict({key: value})


def test_from_dict_not_a_mapping() -> None:
    with pytest.raises(StateError, match="JSON object"):
        PipelineState.from_dict([1, 2])  # type: ignore[arg-type]


def test_state_error_is_value_error() -> None:
    assert issubclass(StateError, ValueError)


def test_default_state_dir() -> None:
    m = StateManager()
    assert m.state_dir == Path(".mcp-forge") and m.state_file == Path(".mcp-forge/state.json")
    assert StateManager("x/y").state_file == Path("x/y/state.json")


def test_round_trip_save_load(tmp_path: Path) -> None:
    m = StateManager(tmp_path / "a" / "b" / ".mcp-forge")  # parents are created
    assert m.load_state() is None
    s = PipelineState(model_family="qwen-2.5", profile="balanced", training_loss=float("0.125"))
    s.update_stage(PipelineStage.TRAINING)
    m.save_state(s)
    assert m.load_state() == s
    s.update_stage(PipelineStage.COMPLETE)
    m.save_state(s)  # overwrite
    loaded = m.load_state()
    assert loaded == s and loaded is not s
    assert sorted(p.name for p in m.state_dir.iterdir()) == ["state.json"]


def test_save_is_atomic_when_replace_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = StateManager(tmp_path)
    s = PipelineState(profile="fast_dev")
    m.save_state(s)
    before = m.state_file.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    s.update_stage(PipelineStage.TRAINING)
    with pytest.raises(OSError, match="disk full"):
        m.save_state(s)
    assert m.state_file.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_save_is_atomic_when_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = StateManager(tmp_path)
    m.save_state(PipelineState(profile="fast_dev"))
    before = m.state_file.read_bytes()

    def fail(fd: int) -> None:
        raise OSError("I/O error")
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="I/O error"):
        m.save_state(PipelineState(profile="max_quality"))
    assert m.state_file.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_save_unserialisable_leaves_nothing(tmp_path: Path) -> None:
    m = StateManager(tmp_path / "s")
    s = PipelineState()
    s.history.append({"stage": "training", "at": object()})
    with pytest.raises(TypeError):
        m.save_state(s)
    assert not m.state_file.exists()
    assert not m.state_dir.exists() or list(m.state_dir.iterdir()) == []


def test_saved_file_is_readable_json(tmp_path: Path) -> None:
    m = StateManager(tmp_path)
    m.save_state(PipelineState(error="ünïcode ✓"))
    data = json.loads(m.state_file.read_text(encoding="utf-8"))
    assert data["error"] == "ünïcode ✓" and data["stage"] == "idle"


def test_corrupt_file_raises_state_error_with_path_and_line(tmp_path: Path) -> None:
    m = StateManager(tmp_path)
    m.state_file.write_text('{"stage": "training",\n"profile": }\n')
    with pytest.raises(StateError) as ei:
        m.load_state()
    msg = str(ei.value)
    assert str(m.state_file) in msg and "line 2" in msg
    assert isinstance(ei.value.__cause__, json.JSONDecodeError)


def test_empty_file_is_corrupt(tmp_path: Path) -> None:
    m = StateManager(tmp_path)
    m.state_file.write_text("")
    with pytest.raises(StateError, match="line 1"):
        m.load_state()


def test_bad_value_in_file_names_path_and_field(tmp_path: Path) -> None:
    m = StateManager(tmp_path)
    m.state_file.write_text(json.dumps({"stage": "warp_speed"}))
    with pytest.raises(StateError) as ei:
        m.load_state()
    assert str(m.state_file) in str(ei.value) and "'stage'" in str(ei.value)


def test_clear(tmp_path: Path) -> None:
    m = StateManager(tmp_path / "st")
    m.clear()  # nothing there: fine
    m.save_state(PipelineState())
    (m.state_dir / "adapters").mkdir()
    m.clear()
    assert m.load_state() is None and not m.state_file.exists()
    assert (m.state_dir / "adapters").is_dir()


def test_importing_state_does_not_import_transformers() -> None:
    code = "import sys, forge_nb.state; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_throttling(counted: tuple[StateManager, list[int]]) -> None:
    m, saved = counted
    clock, s = FakeClock(), PipelineState()
    fn = state_progress_callback(m, s, min_interval=2.0, clock=clock)
    for t, step in [(0.0, 1), (0.5, 2), (1.0, 3), (2.5, 4)]:
        clock.t = t
        fn(step, 10, step / 10, 3.0 - step, step / 10)
        assert s.training_step == step  # memory follows every call
    assert saved == [1, 4]
    assert (s.training_total_steps, s.training_progress, s.training_loss) == (10, 0.4, -1.0)
    clock.t = 4.0  # 1.5 s after the last save: still throttled
    fn(5, 10, 0.5, 0.5, 0.5)
    assert saved == [1, 4]
    clock.t = 4.5  # exactly min_interval later: saves
    fn(6, 10, 0.6, 0.5, 0.6)
    assert saved == [1, 4, 6]


def test_final_step_always_saved(counted: tuple[StateManager, list[int]]) -> None:
    m, saved = counted
    clock, s = FakeClock(), PipelineState()
    fn = state_progress_callback(m, s, min_interval=60.0, clock=clock)
    fn(1, 3, 1 / 3, 2.0, 0.3)
    clock.t = 0.1
    fn(2, 3, 2 / 3, 1.5, 0.6)
    clock.t = 0.2
    fn(3, 3, 1.0, 1.0, 1.0)
    clock.t = 0.3
    fn(3, 3, 1.0, None, 1.0)  # the end-of-training summary log: saved again, loss kept
    assert saved == [1, 3, 3]
    loaded = m.load_state()
    assert loaded is not None
    assert (loaded.training_step, loaded.training_total_steps, loaded.training_progress) == (3, 3, 1.0)
    assert loaded.training_loss == 1.0


def test_zero_interval_saves_every_call(counted: tuple[StateManager, list[int]]) -> None:
    m, saved = counted
    fn = state_progress_callback(m, PipelineState(), min_interval=0.0, clock=FakeClock())
    for step in range(1, 4):
        fn(step, 10, step / 10, None, 0.0)
    assert saved == [1, 2, 3]


def test_progress_updates_updated_at(tmp_path: Path) -> None:
    s = PipelineState(created_at="2000-01-01T00:00:00+00:00")
    assert s.updated_at == "2000-01-01T00:00:00+00:00"
    state_progress_callback(StateManager(tmp_path), s)(1, 2, 0.5, 1.0, 0.5)
    assert s.updated_at > s.created_at


def test_negative_interval_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_interval"):
        state_progress_callback(StateManager(tmp_path), PipelineState(), min_interval=-1.0)


def test_default_clock_is_real(tmp_path: Path) -> None:
    m, s = StateManager(tmp_path), PipelineState()
    fn = state_progress_callback(m, s, min_interval=3600.0)  # time.monotonic
    fn(1, 100, 0.01, 2.0, 0.0)
    fn(2, 100, 0.02, 1.9, 0.0)  # within an hour of the first: not saved
    loaded = m.load_state()
    assert loaded is not None and loaded.training_step == 1
