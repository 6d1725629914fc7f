"""Tokenizers of other model families for the tests, without downloading them: a copy of the embedded SmolLM2
tokenizer dressed as Qwen2.5 or DeepSeek-R1-Distill (their chat templates, from tests/fixtures/templates, and
special tokens, with eos/pad as those models ship them). The `family` fixture in conftest.py gives each."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from forge_nb.models import fix_tokenizer

TEMPLATES = Path(__file__).resolve().parent / "fixtures" / "templates"
QWEN_TEMPLATE = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
DEEPSEEK_TEMPLATE = (TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja").read_text(encoding="utf-8")
BOS_DS, EOS_DS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
DEEPSEEK_TOKENS = [BOS_DS, EOS_DS, "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>",
                   "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>",
                   "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<think>", "</think>"]
QWEN_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


def make_family(base: Any, family: str) -> Any:
    "A copy of the SmolLM2 tokenizer dressed as `family`: template, special tokens, eos/pad as shipped, then fixed."
    tok = copy.deepcopy(base)
    if family == "qwen2.5":
        tok.add_special_tokens({"additional_special_tokens": QWEN_TOKENS})
        tok.chat_template = QWEN_TEMPLATE
        # as Qwen2.5's base config; fix_tokenizer corrects it
        tok.eos_token, tok.pad_token = "<|endoftext|>", "<|endoftext|>"
    elif family == "deepseek-r1":
        tok.add_special_tokens({"additional_special_tokens": DEEPSEEK_TOKENS})
        tok.chat_template = DEEPSEEK_TEMPLATE
        tok.bos_token = BOS_DS
        tok.eos_token, tok.pad_token = EOS_DS, EOS_DS  # as the distill's tokenizer_config.json: pad == eos
    return fix_tokenizer(tok)


# family → (kind of template chosen, arguments_as, end-of-turn token)
FAMILIES = {
    "smollm2": ("hermes", "object", "<|im_end|>"),
    "qwen2.5": ("native", "object", "<|im_end|>"),
    "deepseek-r1": ("hermes-deepseek", "object", EOS_DS),
}
