"""The `forge-nb` command: parsing, status, bad input (short message, exit 2, FAILED state), and a
real one-step training run through the CLI."""
import json
import shutil
import subprocess
import pytest

from forge_nb.cli import build_parser, main
from forge_nb.example_data import example_data_path
from forge_nb.state import PipelineStage, StateManager


def run_cli(*args):
    "Run the installed `forge-nb` console script."
    exe = shutil.which("forge-nb")
    assert exe, "the forge-nb console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True)


def test_defaults():
    a = build_parser().parse_args(["train"])
    assert (a.data, a.model, a.profile, a.output_dir, a.max_steps, a.backend, str(a.state_dir)) == \
        (None, "smollm2-135m", "fast_dev", None, None, "auto", ".mcp-forge")


def test_unknown_profile_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--profile", "turbo"])
    assert e.value.code == 2 and "fast_dev" in capsys.readouterr().err


def test_missing_data_file(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nope.jsonl"), "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.jsonl" in err and "data_path" in err and "Traceback" not in err


def test_bad_row_strict_names_file_line_field_and_marks_failed(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    good = example_data_path().read_text().splitlines()[0]
    data.write_text(good + "\n" + '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]}\n')
    code = main(["train", "--data", str(data), "--strict", "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}:2: messages[1].tool_calls[0].function.name: tool call without a function name" in err
    state = StateManager(tmp_path / "s").load_state()
    assert state.stage == PipelineStage.FAILED and "function name" in state.error
    assert [h["stage"] for h in state.history] == ["qc_validating", "failed"]


def test_console_script_bad_input_has_no_traceback(tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    r = run_cli("check-data", str(data))
    assert r.returncode == 2 and "no usable conversations: the file is empty" in r.stderr and "Traceback" not in r.stderr


def test_status_without_a_run(tmp_path, capsys):
    assert main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "no run recorded" in capsys.readouterr().out


def test_corrupt_state_is_reported(tmp_path, capsys):
    (tmp_path / "state.json").write_text("{oops")
    assert main(["status", "--state-dir", str(tmp_path)]) == 2
    assert "state.json" in capsys.readouterr().err


def test_check_data_report(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(example_data_path().read_text() + "not json\n")
    assert main(["check-data", str(data)]) == 0
    out = capsys.readouterr().out
    n = len(example_data_path().read_text().splitlines())
    assert f"{n + 1} rows read, {n} kept, 1 dropped (not_json: 1)" in out and "template: hermes" in out


@pytest.mark.integration
def test_train_then_status(tmp_path, capsys):
    data = tmp_path / "two.jsonl"
    data.write_text("\n".join(example_data_path().read_text().splitlines()[:2]) + "\n")
    state_dir = tmp_path / ".mcp-forge"
    code = main(["train", "--data", str(data), "--max-steps", "2", "--max-seq-length", "1024", "--state-dir", str(state_dir),
                 "--loss-check-rows", "1"])
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


def test_os_errors_are_short_messages(tmp_path, capsys):
    "An unreadable state file (here a folder) is an error message with exit 2, not a traceback."
    (tmp_path / "state.json").mkdir()
    assert main(["status", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "state.json" in err and "Traceback" not in err


def test_all_rows_bad_names_lines(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{oops\n{"messages": []}\n')
    assert main(["check-data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "all 2 rows are invalid, e.g. line 1: not JSON" in err and "line 2: messages: missing or empty" in err


@pytest.mark.integration
def test_mixed_file_trains_in_skip_mode_and_stops_in_strict(tmp_path, capsys):
    "Good and broken rows together: skip mode trains on the good ones and records the rest; strict mode stops."
    good = example_data_path().read_text().splitlines()[:2]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join([good[0], "{not json", '{"messages": [{"role": "bot", "content": "x"}]}', good[1]]) + "\n")
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


@pytest.mark.parametrize("how, code, error", [("sigterm", 143, "terminated (SIGTERM)"), ("ctrl-c", 130, "interrupted")])
def test_stopped_training_leaves_a_failed_state(tmp_path, monkeypatch, capsys, how, code, error):
    "SIGTERM (a real signal to this process) or Ctrl-C while training: a short message, the exit code, state FAILED."
    import os
    import signal

    from forge_nb.engine import TrainingEngine

    def stop(self, *a, **k):
        if how == "sigterm": os.kill(os.getpid(), signal.SIGTERM)
        else: raise KeyboardInterrupt
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(TrainingEngine, "train", stop)
    before = signal.getsignal(signal.SIGTERM)
    data = tmp_path / "one.jsonl"
    data.write_text(example_data_path().read_text().splitlines()[0] + "\n")
    assert main(["train", "--data", str(data), "--state-dir", str(tmp_path / "s")]) == code
    assert capsys.readouterr().err.strip().endswith(error)
    state = StateManager(tmp_path / "s").load_state()
    assert state.stage == PipelineStage.FAILED and state.error == error
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is only there while a command runs


def test_check_data_rejects_a_tiny_max_seq_length(tmp_path, capsys):
    data = tmp_path / "one.jsonl"
    data.write_text(example_data_path().read_text().splitlines()[0] + "\n")
    assert main(["check-data", str(data), "--max-seq-length", "32"]) == 2
    assert "--max-seq-length=32: must be ≥ 64" in capsys.readouterr().err


def test_stop_during_the_checks_after_training_keeps_the_run_complete(tmp_path, monkeypatch, capsys):
    "Ctrl-C once the adapter is saved (during the loss check or eval): the state says complete, with the adapter."
    from forge_nb.engine import TrainingEngine

    def trained_then_stopped(self, *a, **k):
        self.adapter_dir, self.run_record = tmp_path / "out" / "adapter", {"final_loss": 0.5}
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingEngine, "train", trained_then_stopped)
    data = tmp_path / "one.jsonl"
    data.write_text(example_data_path().read_text().splitlines()[0] + "\n")
    assert main(["train", "--data", str(data), "--state-dir", str(tmp_path / "s"), "--output-dir", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err
    assert f"the adapter is saved in {tmp_path / 'out' / 'adapter'}; the checks after training did not finish (interrupted)" in err
    state = StateManager(tmp_path / "s").load_state()
    assert state.stage == PipelineStage.COMPLETE and state.lora_adapter_path == str(tmp_path / "out" / "adapter")
    assert state.training_loss == 0.5 and state.error is None
