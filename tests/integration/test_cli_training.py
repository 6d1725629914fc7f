"""`forge-nb train` end to end on the CPU, no mocks: the embedded SmolLM2-135M and the shipped example data,
a step or two each (the edge cases without training are in tests/test_cli.py)."""
import json

from forge_nb.cli import main
from forge_nb.example_data import example_data_path
from forge_nb.state import PipelineStage, StateManager


def test_train_then_status(tmp_path, capsys):
    data = tmp_path / "two.jsonl"
    data.write_text("\n".join(example_data_path().read_text().splitlines()[:2]) + "\n")
    state_dir = tmp_path / ".mcp-forge"
    code = main(["train", "--data", str(data), "--max-steps", "2", "--max-seq-length", "1024",
                 "--state-dir", str(state_dir), "--loss-check-rows", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "done: 2 steps" in out
    assert "loss on 1 training conversation, base model -> adapter" in out and "tool-call" in out
    run = json.loads((state_dir / "adapters" / "run.json").read_text())
    assert run["loss_check"]["rows"] == 1 and run["config"]["loss_check_rows"] == 1
    adapter = state_dir / "adapters" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    state = StateManager(state_dir).load_state()
    assert state.stage == PipelineStage.COMPLETE and state.training_progress == 1.0
    assert state.lora_adapter_path == str(adapter) and state.training_step == 2 and state.training_loss is not None
    assert [h["stage"] for h in state.history] == ["qc_validating", "training", "complete"]
    assert main(["status", "--state-dir", str(state_dir)]) == 0
    status = capsys.readouterr().out
    assert "stage:    complete" in status and "100%" in status and str(adapter) in status
    assert main(["status", "--state-dir", str(state_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lora_adapter_path"] == str(adapter)


def test_mixed_file_trains_in_skip_mode_and_stops_in_strict(tmp_path, capsys):
    "Good and broken rows together: skip mode trains on the good ones and records the rest; strict mode stops."
    good = example_data_path().read_text().splitlines()[:2]
    data = tmp_path / "mixed.jsonl"
    bad_role = '{"messages": [{"role": "bot", "content": "x"}]}'
    data.write_text("\n".join([good[0], "{not json", bad_role, good[1]]) + "\n")
    out = tmp_path / "out"
    code = main(["train", "--data", str(data), "--max-steps", "1", "--max-seq-length", "1024",
                 "--state-dir", str(tmp_path / "s"), "--output-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["rows_used"] == 2 and run["data"]["skipped_by_reason"] == {"not_json": 1, "bad_role": 1}
    report = json.loads((out / "data_report.json").read_text())
    assert [d["line"] for d in report["dropped"]] == [2, 3]
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--strict", "--state-dir", str(tmp_path / "s2")]) == 2
    assert f"{data}:2: not JSON" in capsys.readouterr().err
