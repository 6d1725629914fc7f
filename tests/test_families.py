"""Tool-aware rendering and assistant-only loss per model family.

Three tokenizers are built from the embedded SmolLM2 tokenizer (`copy.deepcopy`, no download):
its own template; the real Qwen2.5-Instruct template; the real DeepSeek-R1-Distill-Llama
template (both in tests/fixtures/templates, see the README there), each with the family's
special tokens added as single tokens and eos/pad set by `forge_nb.models.fix_tokenizer`.
For each family the supervised text is decoded and compared exactly."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from forge_nb.data import (
    HERMES_DEEPSEEK_TEMPLATE,
    HERMES_TEMPLATE,
    build_dataset,
    choose_template,
    normalize_row,
    probe_template,
    read_jsonl,
    render_row,
    supervised_text,
    template_messages,
    tokenize_row,
)
from forge_nb.models import fix_tokenizer

TEMPLATES = Path(__file__).resolve().parent / "fixtures" / "templates"
QWEN_TEMPLATE = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
DEEPSEEK_TEMPLATE = (TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja").read_text(encoding="utf-8")

BOS_DS, EOS_DS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
DEEPSEEK_TOKENS = [BOS_DS, EOS_DS, "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>",
                   "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>",
                   "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<think>", "</think>"]
QWEN_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

from samples import ANSWER, SYSTEM, TOOL_RESULT, USER, WEATHER  # noqa: E402  (tests/ is on sys.path)
CALL_JSON = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


def call(name: str, args: Any) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args}}


def weather_row(answer: str = ANSWER) -> dict:
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": TOOL_RESULT},
        {"role": "assistant", "content": answer}], "tools": [WEATHER]}


def make_family(base: Any, family: str) -> Any:
    "A copy of the SmolLM2 tokenizer dressed as `family`: template, special tokens, eos/pad as shipped, then fixed."
    tok = copy.deepcopy(base)
    if family == "qwen2.5":
        tok.add_special_tokens({"additional_special_tokens": QWEN_TOKENS})
        tok.chat_template = QWEN_TEMPLATE
        tok.eos_token, tok.pad_token = "<|endoftext|>", "<|endoftext|>"  # as Qwen2.5's base config; fix_tokenizer corrects it
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


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: Any, smol_tok: Any) -> tuple[str, Any]:
    return request.param, make_family(smol_tok, request.param)


def supervised(tok: Any, row: dict, choice: Any) -> tuple[str, list[str], dict]:
    norm, _ = normalize_row(row)
    rendered = render_row(tok, norm, choice)
    ex = tokenize_row(tok, rendered)
    return rendered.text, supervised_text(tok, ex["input_ids"], ex["assistant_masks"]), ex


# ---------------------------------------------------------------- tokenizers as the families ship them

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


# ---------------------------------------------------------------- template choice per family

def test_template_choice(family: tuple[str, Any]) -> None:
    name, tok = family
    kind, args_as, _ = FAMILIES[name]
    choice = choose_template(tok)
    assert (choice.kind, choice.arguments_as, choice.null_content) == (kind, args_as, False)
    assert choice.native == (kind == "native")
    assert choice.template == {"hermes": HERMES_TEMPLATE, "native": tok.chat_template,
                               "hermes-deepseek": HERMES_DEEPSEEK_TEMPLATE}[kind]
    # the end of an assistant turn is one token and the tokenizer's eos: no warnings about it
    assert not any("end of an assistant turn" in n for n in choice.notes)


def test_qwen_probes_native_with_object_arguments(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "qwen2.5")
    probe = probe_template(tok)
    assert probe.capabilities == {"tools": True, "tool_calls": True, "tool_role": True}
    assert (probe.arguments_as, probe.null_content, probe.end_of_turn) == ("object", False, "<|im_end|>")
    # why "object": Qwen applies `tojson`, so a JSON string would be encoded twice
    msgs = [{"role": "user", "content": USER}, {"role": "assistant", "content": "",
                                                 "tool_calls": [call("get_weather", '{"city": "Oslo"}')]}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert '"arguments": "{\\"city\\": \\"Oslo\\"}"' in text


def test_deepseek_probes_string_arguments_and_falls_back(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    probe = probe_template(tok)
    # no tools in the prompt; calls shown (as JSON strings, beside null content) but a one-call turn is never closed
    assert probe.capabilities == {"tools": False, "tool_calls": False, "tool_role": True}
    assert (probe.arguments_as, probe.null_content, probe.end_of_turn) == ("string", True, EOS_DS)
    assert any("does not end with" in n for n in probe.notes)
    choice = choose_template(tok)
    assert choice.kind == "hermes-deepseek" and not choice.native
    assert "tools" in choice.reason and "tool_calls" in choice.reason
    # why "string": the template concatenates arguments; a dict is a TypeError
    msgs = [{"role": "user", "content": USER}, {"role": "assistant", "content": None,
                                                 "tool_calls": [call("get_weather", {"city": "Oslo"})]}]
    with pytest.raises(TypeError):
        tok.apply_chat_template(msgs, tokenize=False)


def test_smollm2_own_template_drops_calls(smol_tok: Any) -> None:
    probe = probe_template(smol_tok)
    assert probe.capabilities == {"tools": False, "tool_calls": False, "tool_role": True}
    assert choose_template(smol_tok).kind == "hermes"


# ---------------------------------------------------------------- assistant-only loss, exactly

def test_supervised_text_is_exactly_call_and_answer(family: tuple[str, Any]) -> None:
    name, tok = family
    eot = FAMILIES[name][2]
    text, parts, _ = supervised(tok, weather_row(), choose_template(tok))
    assert parts == [CALL_JSON + eot, ANSWER + eot]
    for prompt in (SYSTEM, USER, TOOL_RESULT, "desc-mk2", '"parameters"', "<tools>", "<tool_response>"):
        assert prompt in text, prompt
        assert not any(prompt in p for p in parts), prompt
    assert sum(p.count(eot) for p in parts) == 2  # one end-of-turn token per assistant turn, each supervised


def test_turn_headers_are_not_supervised(family: tuple[str, Any]) -> None:
    name, tok = family
    _, parts, _ = supervised(tok, weather_row(), choose_template(tok))
    for header in ("<|im_start|>", "assistant\n", "<｜Assistant｜>", "<｜User｜>", BOS_DS):
        assert not any(header in p for p in parts), header


def test_qwen_wraps_tool_results_itself_once(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "qwen2.5")
    text, _, _ = supervised(tok, weather_row(), choose_template(tok))
    assert text.count("<tool_response>") == 1 and text.count("</tool_response>") == 1
    assert f"<|im_start|>user\n<tool_response>\n{TOOL_RESULT}\n</tool_response><|im_end|>\n" in text
    # the row itself holds the raw result: nothing of ours is added before rendering
    norm, _ = normalize_row(weather_row())
    assert norm["messages"][3]["content"] == TOOL_RESULT
    assert template_messages(norm["messages"], "object", False)[3]["content"] == TOOL_RESULT


def test_parallel_calls_and_multi_round(family: tuple[str, Any]) -> None:
    name, tok = family
    eot = FAMILIES[name][2]
    time_call = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>'
    row = {"messages": [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"}), call("get_time", {"tz": "CET"})]},
        {"role": "tool", "name": "get_weather", "content": "4C-aa1"},
        {"role": "tool", "name": "get_time", "content": "12:00-bb2"},
        {"role": "assistant", "content": "4 degrees at noon."},
        {"role": "user", "content": "Thanks-cc3"},
        {"role": "assistant", "content": "You are welcome."}], "tools": [WEATHER]}
    text, parts, _ = supervised(tok, row, choose_template(tok))
    assert parts == [CALL_JSON + "\n" + time_call + eot, "4 degrees at noon." + eot, "You are welcome." + eot]
    for prompt in ("4C-aa1", "12:00-bb2", "Thanks-cc3", "Weather and time?"):
        assert prompt in text and not any(prompt in p for p in parts)


def test_deepseek_reasoning_is_not_supervised(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    for choice in (choose_template(tok), choose_template(tok, "native")):
        row = {"messages": [{"role": "user", "content": USER},
                            {"role": "assistant", "content": "<think>\nweigh-options-qq7\n</think>\n\n" + ANSWER}]}
        text, parts, _ = supervised(tok, row, choice)
        assert "weigh-options-qq7" not in text and "<think>" not in text, choice.kind
        assert parts == ["\n\n" + ANSWER + EOS_DS], choice.kind


def test_hermes_deepseek_mask_equals_generation_mask(smol_tok: Any) -> None:
    "The prefix-diff mask agrees with transformers' own {% generation %} mask on the Hermes-DeepSeek template."
    tok = make_family(smol_tok, "deepseek-r1")
    rows = [weather_row(), weather_row("<think>\nhmm\n</think>\n\n" + ANSWER),
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\n\nHello "},
                          {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Hello again."}]}]
    for row in rows:
        norm, _ = normalize_row(row)
        ex = tokenize_row(tok, render_row(tok, norm, HERMES_DEEPSEEK_TEMPLATE))
        hf = tok.apply_chat_template(norm["messages"], tools=norm["tools"] or None, chat_template=HERMES_DEEPSEEK_TEMPLATE,
                                     tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert list(hf["input_ids"]) == ex["input_ids"]
        assert list(hf["assistant_masks"]) == ex["assistant_masks"]


# ---------------------------------------------------------------- DeepSeek's own template, forced

def test_deepseek_native_renders_string_arguments(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    choice = choose_template(tok, "native")
    assert (choice.native, choice.arguments_as, choice.null_content) == (True, "string", True)
    text, parts, _ = supervised(tok, weather_row(), choice)
    call_text = ('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n'
                 '{"city": "Oslo"}\n```<｜tool▁call▁end｜>')
    assert parts == [call_text, ANSWER + EOS_DS]  # DeepSeek's template leaves a one-call turn unclosed
    assert "{'city'" not in text  # not a Python repr
    for prompt in (SYSTEM, USER, TOOL_RESULT, "<｜tool▁outputs▁end｜>"):
        assert prompt in text and not any(prompt in p for p in parts)


def test_deepseek_generation_prompt_does_not_eat_the_reply(smol_tok: Any) -> None:
    "Its generation prompt ends with '<think>\\n', which the finished turn does not have: the reply starts after <｜Assistant｜>."
    tok = make_family(smol_tok, "deepseek-r1")
    row = {"messages": [{"role": "user", "content": "How many?"}, {"role": "assistant", "content": "< 5 items"}]}
    _, parts, _ = supervised(tok, row, choose_template(tok, "native"))
    assert parts == ["< 5 items" + EOS_DS]


def test_deepseek_native_drops_calls_beside_text_so_row_is_dropped(smol_tok: Any, write_jsonl: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    row = weather_row()
    row["messages"][2]["content"] = "Let me check."  # DeepSeek's template shows calls only beside null content
    rows, report = read_jsonl(write_jsonl([weather_row(), row]))
    ds = build_dataset(rows, tok, choose_template(tok, "native"), 4096, report)
    assert len(ds) == 1 and report.dropped_by_kind == {"render_error": 1}
    assert report.dropped[0]["line"] == 2 and "drops the tool call 'get_weather'" in report.dropped[0]["message"]


# ---------------------------------------------------------------- round trip through save_pretrained

def test_saved_template_renders_identically(family: tuple[str, Any], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    name, tok = family
    tok = copy.deepcopy(tok)
    choice = choose_template(tok)
    tok.chat_template = choice.template
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == choice.template
    assert (reloaded.eos_token, reloaded.pad_token) == (tok.eos_token, tok.pad_token)
    again = choose_template(reloaded)
    assert again.native and again.arguments_as == choice.arguments_as  # the saved template is now the tokenizer's own
    rows = [weather_row(), weather_row("<think>\nx\n</think>\n\nFine."),
            {"messages": [{"role": "user", "content": "Température à Zürich ?"}, {"role": "assistant", "content": "4 °C 🌥."}]}]
    for row in rows:
        norm, _ = normalize_row(row)
        want, got = render_row(tok, norm, choice), render_row(reloaded, norm, again)
        assert got.text.encode("utf-8") == want.text.encode("utf-8")
        assert got.spans == want.spans
        assert tokenize_row(reloaded, got) == tokenize_row(tok, want)


def test_rows_keep_dict_arguments(smol_tok: Any) -> None:
    "Converting arguments for a template happens at render time only."
    tok = make_family(smol_tok, "deepseek-r1")
    norm, _ = normalize_row(weather_row())
    render_row(tok, norm, choose_template(tok, "native"))
    assert norm["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert norm["messages"][2]["content"] == ""
    converted = template_messages(norm["messages"], "string", True)[2]
    assert converted["content"] is None
    assert json.loads(converted["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert template_messages([{"role": "assistant", "content": "", "tool_calls": [call("f", {"s": "Zürich"})]}],
                             "string")[0]["tool_calls"][0]["function"]["arguments"] == '{"s": "Zürich"}'


def test_truncated_sample_ends_with_the_family_end_of_turn(family: tuple[str, Any], write_jsonl: Any) -> None:
    name, tok = family
    eot = FAMILIES[name][2]
    row = weather_row()
    row["messages"] += [{"role": "user", "content": "And the week? " + "please " * 300},
                        {"role": "assistant", "content": "Cold all week. " * 100}]
    choice = choose_template(tok)
    norm, _ = normalize_row(row)
    first = {**norm, "messages": norm["messages"][:5]}
    want = tokenize_row(tok, render_row(tok, first, choice))
    rows, report = read_jsonl(write_jsonl([row]))
    ds = build_dataset(rows, tok, choice, len(want["input_ids"]), report)
    assert ds[0]["input_ids"] == want["input_ids"] and report.truncated[0]["kept_messages"] == 5
    parts = supervised_text(tok, ds[0]["input_ids"], ds[0]["assistant_masks"])
    assert parts == [CALL_JSON + eot, ANSWER + eot]


def test_first_turn_assistant_default_system_prompt_not_supervised(smol_tok: Any) -> None:
    "Qwen writes a default system prompt even before a first assistant turn; it is prompt, not reply."
    tok = make_family(smol_tok, "qwen2.5")
    row = {"messages": [{"role": "assistant", "content": "Hello, how can I help?"}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hi again."}]}
    text, parts, _ = supervised(tok, row, choose_template(tok))
    assert "You are Qwen, created by Alibaba Cloud." in text
    assert parts == ["Hello, how can I help?<|im_end|>", "Hi again.<|im_end|>"]
