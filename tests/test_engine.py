"""Edge cases of `forge_nb.engine` (the story and the main examples are in nbs/api/12_engine.ipynb)."""
import json
import os
import sys
import types
from pathlib import Path

import pytest

from forge_nb import engine as E
from forge_nb import models as M
from forge_nb.config import TrainingConfig


class FakeFastLanguageModel:
    "Records the calls the engine makes; returns sentinels (and a real tokenizer) like Unsloth does."
    calls: list = []

    @classmethod
    def from_pretrained(cls, **kw):
        cls.calls.append(("from_pretrained", kw))
        from forge_nb.models import load_tokenizer
        tok = load_tokenizer("smollm2-135m")
        tok.eos_token = "<|im_start|>"  # as Unsloth may hand it over: fix_tokenizer must set it right
        return "BASE_MODEL", tok

    @classmethod
    def get_peft_model(cls, model, **kw):
        cls.calls.append(("get_peft_model", {"model": model, **kw}))
        return "PEFT_MODEL"


@pytest.fixture
def fake_unsloth(monkeypatch):
    FakeFastLanguageModel.calls = []
    mod = types.ModuleType("unsloth")
    mod.FastLanguageModel = FakeFastLanguageModel
    monkeypatch.setitem(sys.modules, "unsloth", mod)
    monkeypatch.setattr(M, "cuda_available", lambda: True)
    monkeypatch.setattr(M, "unsloth_installed", lambda: True)
    return FakeFastLanguageModel


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class FakeSFTTrainer:
    "Stands in for trl.SFTTrainer: a real CallbackHandler with the trainer's default callbacks; its train() fails."
    def __init__(self, model, args, train_dataset, eval_dataset, processing_class, callbacks):
        from transformers.trainer_callback import (
            CallbackHandler,
            DefaultFlowCallback,
            PrinterCallback,
            ProgressCallback,
        )
        self.args = args
        self.callback_handler = CallbackHandler([DefaultFlowCallback, ProgressCallback, PrinterCallback, *callbacks],
                                                model, processing_class, None, None)
        FakeSFTTrainer.last = self

    def remove_callback(self, cb):
        self.callback_handler.remove_callback(cb)

    def train(self, resume_from_checkpoint=None):
        raise RuntimeError("out of memory")


@pytest.fixture
def engine_with_fake_trainer(monkeypatch, tmp_path):
    import trl
    monkeypatch.setattr(trl, "SFTTrainer", FakeSFTTrainer)
    eng = E.TrainingEngine(TrainingConfig(output_dir=tmp_path, max_steps=2))
    eng.prepare_dataset()
    eng.model = object()
    return eng


def test_unsloth_backend_gets_4bit_and_the_lora_arguments(fake_unsloth, tmp_path):
    cfg = TrainingConfig(model_family="smollm2-135m", profile="balanced", output_dir=tmp_path, seed=123,
                         max_seq_length=1024)
    eng = E.TrainingEngine(cfg)
    model, tok = eng.load_model()
    assert (eng.backend, eng.backend_reason) == ("unsloth", "CUDA and Unsloth are available")
    (n1, load), (n2, peft) = fake_unsloth.calls
    assert n1 == "from_pretrained" and n2 == "get_peft_model"
    assert load["load_in_4bit"] is True and load["dtype"] is None and load["max_seq_length"] == 1024
    assert Path(load["model_name"]).is_dir()  # the embedded model's converted folder
    assert peft == {"model": "BASE_MODEL", "r": 16, "lora_alpha": 16, "lora_dropout": 0.0,
                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                    "bias": "none", "use_gradient_checkpointing": "unsloth", "random_state": 123}
    assert model == "PEFT_MODEL"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token not in (None, tok.eos_token)


def test_unsloth_gets_hub_ids_for_gpu_families(fake_unsloth, tmp_path):
    E.TrainingEngine(TrainingConfig(model_family="qwen-2.5", profile="max_quality", output_dir=tmp_path)).load_model()
    (_, load), (_, peft) = fake_unsloth.calls
    assert load["model_name"] == "unsloth/Qwen2.5-14B-Instruct-bnb-4bit"
    assert (peft["r"], peft["lora_alpha"], peft["random_state"]) == (128, 256, 3407)


def test_load_in_4bit_switch_reaches_unsloth(fake_unsloth, tmp_path):
    E.TrainingEngine(TrainingConfig(load_in_4bit=False, output_dir=tmp_path)).load_model()
    assert fake_unsloth.calls[0][1]["load_in_4bit"] is False


def test_unsloth_is_not_imported_on_cpu(tmp_path):
    "The GPU-only code paths stay unimported on a CPU: importing forge_nb and choosing a backend never imports unsloth."
    import subprocess
    code = ("import sys, forge_nb; from forge_nb import engine; "
            "print(engine.select_backend('auto')[0], 'unsloth' in sys.modules, 'bitsandbytes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["peft", "False", "False"]


def test_sft_config_on_cpu(tmp_path):
    cfg = TrainingConfig(profile="balanced", output_dir=tmp_path, max_seq_length=512)
    a = E.build_sft_config(cfg, cfg.training_profile, "peft", cuda=False)
    assert a.output_dir == str(tmp_path / "checkpoints")
    assert (a.max_length, a.packing, a.optim) == (512, False, "adamw_torch")
    assert (a.bf16, a.fp16, a.use_cpu) == (False, False, True)
    assert (a.num_train_epochs, a.max_steps, a.save_total_limit) == (1, -1, 3)
    assert (a.per_device_train_batch_size, a.gradient_accumulation_steps) == (2, 4)
    assert (a.learning_rate, a.warmup_steps, a.seed, a.report_to) == (2e-4, 5, 3407, [])
    assert a.gradient_checkpointing is False


def test_sft_config_on_cuda_uses_8bit_adamw_and_mixed_precision(monkeypatch, tmp_path):
    import torch
    import trl
    seen = {}
    monkeypatch.setattr(trl, "SFTConfig", lambda **kw: seen.update(kw) or kw)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cfg = TrainingConfig(output_dir=tmp_path, max_steps=9, logging_steps=5, extra={"max_grad_norm": 0.5})
    E.build_sft_config(cfg, cfg.training_profile, "unsloth", cuda=True)
    assert (seen["optim"], seen["bf16"], seen["fp16"]) == ("adamw_8bit", True, False)
    assert (seen["use_cpu"], seen["max_steps"]) == (False, 9)
    assert seen["gradient_checkpointing"] is False  # Unsloth sets its own ("unsloth")
    assert seen["logging_steps"] == 5 and seen["max_grad_norm"] == 0.5  # the config's field; extra passes through
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    E.build_sft_config(cfg, cfg.training_profile, "peft", cuda=True)
    assert (seen["bf16"], seen["fp16"], seen["gradient_checkpointing"]) == (False, True, True)


def test_trl_115_refused_on_cpu(monkeypatch):
    monkeypatch.setattr(E, "version", lambda name: "1.15.0")
    with pytest.raises(RuntimeError, match="cannot train on a CPU"):
        E._check_trl_can_train(cuda=False)
    E._check_trl_can_train(cuda=True)


def test_default_data_is_the_shipped_example(tmp_path):
    from forge_nb.example_data import example_data_path
    assert E.TrainingEngine(TrainingConfig(output_dir=tmp_path)).data_path == example_data_path()


def test_prepare_dataset_without_weights(tmp_path):
    eng = E.TrainingEngine(TrainingConfig(output_dir=tmp_path, max_seq_length=2048))
    ds = eng.prepare_dataset()
    assert eng.model is None and len(ds) == eng.data_report.rows_kept > 30
    assert eng.template.native is False  # SmolLM2's own template cannot show tools


def test_held_out_split_is_never_trained_on(tmp_path):
    from forge_nb.rows import read_jsonl
    eng = E.TrainingEngine(TrainingConfig(output_dir=tmp_path, eval_fraction=0.25, seed=7))
    ds = eng.prepare_dataset()
    held, _ = read_jsonl(tmp_path / "eval.jsonl")
    assert len(held) == 10 and len(ds) == 30 and len(eng.eval_dataset) == 10
    assert eng.data_report.held_out == [r["source_line"] for r in _rows(tmp_path / "eval.jsonl")]
    train_ids = {tuple(x) for x in ds["input_ids"]}
    assert not any(tuple(x) in train_ids for x in eng.eval_dataset["input_ids"])
    again = E.TrainingEngine(TrainingConfig(output_dir=tmp_path / "b", eval_fraction=0.25, seed=7))
    again.prepare_dataset()
    assert again.data_report.held_out == eng.data_report.held_out  # seeded
    assert "10 held out for evaluation" in eng.data_report.summary()


def test_widget_is_picked_inside_a_notebook_and_turns_red_on_error(engine_with_fake_trainer, monkeypatch):
    from forge_nb import progress as W
    monkeypatch.setattr(E, "in_notebook", lambda: True)
    monkeypatch.setattr(W, "in_notebook", lambda: True)
    eng = engine_with_fake_trainer
    with pytest.raises(RuntimeError, match="out of memory"):
        eng.train()
    w = eng.progress_widget
    assert isinstance(w, W.TrainingProgressWidget)
    names = [type(cb).__name__ for cb in FakeSFTTrainer.last.callback_handler.callbacks]
    assert "ProgressCallback" not in names and "PrinterCallback" not in names and "TrainingProgressWidget" in names
    assert w.bar.bar_style == "danger" and "out of memory" in w.label.value


def test_widget_opt_out_and_plain_scripts(engine_with_fake_trainer, monkeypatch):
    eng = engine_with_fake_trainer
    monkeypatch.setattr(E, "in_notebook", lambda: True)
    with pytest.raises(RuntimeError):
        eng.train(widget=False)
    assert eng.progress_widget is None
    names = [type(cb).__name__ for cb in FakeSFTTrainer.last.callback_handler.callbacks]
    assert "ProgressCallback" in names  # nothing replaces the trainer's own bar
    monkeypatch.setenv("FORGE_NB_WIDGET", "0")
    with pytest.raises(RuntimeError):
        eng.train()
    assert eng.progress_widget is None
    monkeypatch.delenv("FORGE_NB_WIDGET")
    monkeypatch.setattr(E, "in_notebook", lambda: False)  # a script: no widget unless asked
    with pytest.raises(RuntimeError):
        eng.train()
    assert eng.progress_widget is None


def test_short_runs_cap_warmup_so_the_learning_rate_is_reached(tmp_path):
    "fast_dev warms up 5 steps; a shorter trial run warms up for at most a tenth of its steps (never all of them)."
    for max_steps, warmup in ((60, 5), (15, 1), (3, 0), (1, 0)):
        cfg = TrainingConfig(output_dir=tmp_path, max_steps=max_steps)
        assert E.build_sft_config(cfg, cfg.training_profile, "peft", cuda=False).warmup_steps == warmup


def test_loss_check_picks_held_out_rows_or_a_seeded_sample_of_rows_trained_on(monkeypatch):
    "No model needed: which rows `TrainingEngine.loss_check` hands to `loss_by_turn_kind`."
    from forge_nb.rows import DataReport
    calls = []
    monkeypatch.setattr(E, "loss_by_turn_kind",
                        lambda model, tok, rows, template, n: calls.append(rows) or {"rows": len(rows)})
    eng = E.TrainingEngine(TrainingConfig(loss_check_rows=3))
    eng.template, eng.data_report = object(), DataReport("x.jsonl")
    eng.data_report.dropped = [{"line": 2, "field": "", "kind": "too_long", "message": "too long"}]
    eng.train_rows = [{"_line": i} for i in range(1, 7)]
    a, b = eng.loss_check(), eng.loss_check()
    assert a == b == {"source": "training", "rows": 3}
    assert calls[0] == calls[1] and len({r["_line"] for r in calls[0]}) == 3 and all(r["_line"] != 2 for r in calls[0])
    eng.loss_check(n=10)
    assert [r["_line"] for r in calls[-1]] == [1, 3, 4, 5, 6]  # fewer rows than n: all of them (but the dropped one)
    eng.eval_rows = [{"_line": 9}]
    assert eng.loss_check()["source"] == "held-out" and calls[-1] == [{"_line": 9}]


def test_extra_keys_must_be_sft_config_arguments(tmp_path):
    "A misspelt or removed SFTConfig argument is refused when the engine is built, before anything loads."
    with pytest.raises(ValueError, match=r"'max_grad_nrom'\]: not an SFTConfig argument; did you mean 'max_grad_norm'"):
        E.TrainingEngine(TrainingConfig(output_dir=tmp_path, extra={"max_grad_nrom": 1.0}))
    assert E.TrainingEngine(TrainingConfig(output_dir=tmp_path, extra={"max_grad_norm": 1.0})).config.extra


def test_tensorboard_logs_go_to_a_folder_per_run(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    with E._tracker_env("tensorboard", tmp_path):
        first = Path(os.environ["TENSORBOARD_LOGGING_DIR"])
    assert first.parent == tmp_path / "runs" and "TENSORBOARD_LOGGING_DIR" not in os.environ
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "/mine")
    with E._tracker_env("tensorboard", tmp_path):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == "/mine"  # the user's own setting wins
    with E._tracker_env("wandb", tmp_path):
        assert os.environ["WANDB_MODE"] == "offline"
    with pytest.raises(RuntimeError, match=r"pip install 'forge_nb\[trackio\]'"):
        E._check_tracker("trackio")


def test_an_explicit_warmup_is_used_as_given(monkeypatch, tmp_path):
    "The profile's warm-up is capped at a tenth of a short run; one set on the config is not."
    import trl
    seen = {}
    monkeypatch.setattr(trl, "SFTConfig", lambda **kw: seen.update(kw) or kw)
    cfg = TrainingConfig(output_dir=tmp_path, max_steps=20)
    E.build_sft_config(cfg, cfg.training_profile, "peft", cuda=False)
    assert seen["warmup_steps"] == 2  # the profile's 5, capped at 20 // 10
    cfg = TrainingConfig(output_dir=tmp_path, max_steps=20, warmup_steps=5)
    E.build_sft_config(cfg, cfg.training_profile, "peft", cuda=False)
    assert seen["warmup_steps"] == 5
