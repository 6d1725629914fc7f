"""Edge cases of `forge_nb.data`: rendering and the assistant mask, the dataset, other template families, the
length policy and the data report. The story and its main examples are in nbs/api/06_data.ipynb."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from families import BOS_DS, EOS_DS, FAMILIES, make_family  # tests/ is on sys.path
from samples import ANSWER, SYSTEM, TOOL_RESULT, USER, WEATHER  # noqa: E402  (tests/ is on sys.path)

from forge_nb.chat_templates import (
    HERMES_DEEPSEEK_TEMPLATE,
    HERMES_TEMPLATE,
    TemplateChoice,
    choose_template,
    template_messages,
)
from forge_nb.config import LENGTH_POLICIES, TrainingConfig
from forge_nb.data import (
    build_dataset,
    data_report,
    load_training_data,
    mark_text,
    print_row,
    render_row,
    row_view,
    show_row,
    supervised_text,
    tokenize_row,
    truncate_row,
)
from forge_nb.rows import DataError, DataReport, normalize_row, read_jsonl

WriteJsonl = Callable[..., Path]  # the `write_jsonl` fixture (conftest.py)


# ---------------------------------------------------------------------------------------------------------------------
# Shared rows and helpers


def call(name: str, args: Any = None) -> dict:
    "A tool call in the OpenAI form; `None` arguments are `{}`."
    return {"type": "function", "function": {"name": name, "arguments": {} if args is None else args}}


def msgs(*m: dict, tools: Any = None) -> dict:
    row: dict = {"messages": list(m)}
    if tools is not None: row["tools"] = tools
    return row


def normalized(row: dict) -> dict:
    return normalize_row(row)[0]


def weather_row(answer: str = ANSWER, **over: Any) -> dict:
    "A well-formed one-call conversation ending with `answer`; keyword arguments replace top-level keys."
    row = {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": TOOL_RESULT},
        {"role": "assistant", "content": answer}], "tools": [WEATHER]}
    return {**row, **over}


TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone (desc-tt5).",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}

U = {"role": "user", "content": "Weather?"}
A_END = {"role": "assistant", "content": "4 degrees."}
A_CALL = {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]}
T_RES = {"role": "tool", "name": "get_weather", "content": "4C"}
GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}

CALL_JSON = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
CALL_TEXT = CALL_JSON + "<|im_end|>"  # the call as the Hermes template writes it, with SmolLM2's end-of-turn token
TIME_CALL_TEXT = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call><|im_end|>'


def supervised(tok: Any, row: dict, template: Any = HERMES_TEMPLATE,
               assistant_only: bool = True) -> tuple[str, list[str]]:
    "The rendered text of `row` (normalised) and its supervised stretches, checking the mask on the way."
    rendered = render_row(tok, normalized(row), template)
    ex = tokenize_row(tok, rendered, assistant_only)
    assert len(ex["input_ids"]) == len(ex["assistant_masks"])
    assert set(ex["assistant_masks"]) <= {0, 1}
    return rendered.text, supervised_text(tok, ex["input_ids"], ex["assistant_masks"])


# ---------------------------------------------------------------------------------------------------------------------
# Rendering and the assistant mask (SmolLM2 with the Hermes template)

CROSS_ROWS = {
    "one_call": weather_row(),
    "no_tools": GOOD,
    "content_and_call": msgs(U, {"role": "assistant", "content": "Checking.", "tool_calls": [
        call("get_weather", {"city": "Oslo"})]}, T_RES, A_END, tools=[WEATHER]),
    "parallel": msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        call("get_weather", {"city": "Oslo"}), call("get_time", {"tz": "CET"})]},
        {"role": "tool", "name": "get_weather", "content": "4C"}, {"role": "tool", "name": "get_time", "content": "12"},
        A_END, tools=[WEATHER, TIME]),
    "multi_round": msgs(U, A_CALL, T_RES, A_END, {"role": "user", "content": "More?"},
                        {"role": "assistant", "content": "No more."}, tools=[WEATHER]),
    "trailing_whitespace": msgs(U, {"role": "assistant", "content": "Spaces after   "},
                                {"role": "user", "content": "x"}, {"role": "assistant", "content": "Newline after\n"}),
    "leading_newlines": msgs(U, {"role": "assistant", "content": "\n\nStarts with newlines"}),
    "unicode": msgs({"role": "user", "content": "Température à Zürich ?"},
                    {"role": "assistant", "content": "Il fait 4 °C — nuageux 🌥."}),
}


def test_supervised_text_is_exactly_call_and_answer(smol_tok: Any) -> None:
    text, parts = supervised(smol_tok, weather_row())
    assert parts == [CALL_TEXT, ANSWER + "<|im_end|>"]
    # the prompt side is in the rendered text but in no supervised stretch
    for prompt in (SYSTEM, USER, TOOL_RESULT, "desc-mk2", '"parameters"', "<tools>", "<tool_response>",
                   "<|im_start|>", "assistant\n"):
        assert prompt in text
        assert not any(prompt in p for p in parts), prompt


def test_rendered_text_is_hermes_chatml(smol_tok: Any) -> None:
    text, _ = supervised(smol_tok, weather_row())
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(WEATHER) + "\n</tools>" in text
    assert f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n{CALL_TEXT}\n" in text
    assert f"<|im_start|>user\n<tool_response>\n{TOOL_RESULT}\n</tool_response><|im_end|>\n" in text
    assert text.endswith(f"<|im_start|>assistant\n{ANSWER}<|im_end|>\n")


def test_content_beside_call_is_supervised(smol_tok: Any) -> None:
    row = weather_row()
    row["messages"][2]["content"] = "Let me look that up."
    _, parts = supervised(smol_tok, row)
    assert parts == ["Let me look that up.\n" + CALL_TEXT, ANSWER + "<|im_end|>"]


def test_assistant_only_false_supervises_everything(smol_tok: Any) -> None:
    text, parts = supervised(smol_tok, weather_row(), assistant_only=False)
    assert parts == [text]


def test_multi_round(smol_tok: Any) -> None:
    row = msgs({"role": "system", "content": SYSTEM}, {"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": None, "tool_calls": [call("get_weather", '{"city": "Oslo"}')]},
               {"role": "tool", "name": "get_weather", "content": "4C-aa1"},
               {"role": "assistant", "content": "4 degrees."},
               {"role": "user", "content": "And the time in CET?"},
               {"role": "assistant", "content": "", "tool_calls": [call("get_time", {"tz": "CET"})]},
               {"role": "tool", "name": "get_time", "content": "12:00-bb2"},
               {"role": "assistant", "content": "It is noon."}, tools=[WEATHER, TIME])
    text, parts = supervised(smol_tok, row)
    assert parts == [CALL_TEXT, "4 degrees.<|im_end|>", TIME_CALL_TEXT, "It is noon.<|im_end|>"]
    for prompt in ("Weather in Oslo?", "And the time in CET?", "4C-aa1", "12:00-bb2", "desc-tt5", SYSTEM):
        assert prompt in text and not any(prompt in p for p in parts)


def test_parallel_calls(smol_tok: Any) -> None:
    row = msgs({"role": "user", "content": "Weather and time?"},
               {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"}),
                                                                   call("get_time", {"tz": "CET"})]},
               {"role": "tool", "name": "get_weather", "content": "4C-aa1"},
               {"role": "tool", "name": "get_time", "content": "12:00-bb2"},
               {"role": "assistant", "content": "4 degrees at noon."}, tools=[WEATHER, TIME])
    text, parts = supervised(smol_tok, row)
    assert parts == [CALL_TEXT.removesuffix("<|im_end|>") + "\n" + TIME_CALL_TEXT, "4 degrees at noon.<|im_end|>"]
    # both results in one user turn
    assert ("<|im_start|>user\n<tool_response>\n4C-aa1\n</tool_response>\n<tool_response>\n12:00-bb2\n"
            "</tool_response><|im_end|>\n") in text
    assert not any("4C-aa1" in p or "12:00-bb2" in p for p in parts)


def test_tools_empty_list_renders_without_tools_block(smol_tok: Any) -> None:
    for tools in ([], None):
        row = weather_row(tools=tools) if tools is not None else {"messages": weather_row()["messages"]}
        text, parts = supervised(smol_tok, row)
        assert "<tools>" not in text and "# Tools" not in text
        assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
        assert parts == [CALL_TEXT, ANSWER + "<|im_end|>"]


def test_render_row_spans_cover_assistant_turns(smol_tok: Any) -> None:
    norm, _ = normalize_row(weather_row())
    rendered = render_row(smol_tok, norm, HERMES_TEMPLATE)
    assert [rendered.text[s:e] for s, e in rendered.spans] == [CALL_TEXT, ANSWER + "<|im_end|>"]


def test_render_row_rejects_prefix_unstable_template(smol_tok: Any) -> None:
    # a template that prints the number of messages first: a shorter conversation is not a prefix
    unstable = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}|{% endfor %}"
    norm, _ = normalize_row(msgs(U, A_END, {"role": "user", "content": "again"}, A_END))
    with pytest.raises(ValueError, match=r"prefix-stable at messages\[1\]"):
        render_row(smol_tok, norm, unstable)


@pytest.mark.parametrize("name", list(CROSS_ROWS))
def test_prefix_diff_mask_equals_generation_mask(smol_tok: Any, name: str) -> None:
    norm, _ = normalize_row(CROSS_ROWS[name])
    ex = tokenize_row(smol_tok, render_row(smol_tok, norm, HERMES_TEMPLATE))
    hf = smol_tok.apply_chat_template(norm["messages"], tools=norm["tools"] or None, chat_template=HERMES_TEMPLATE,
                                      tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert list(hf["input_ids"]) == ex["input_ids"]
    diff = [(i, smol_tok.decode([ex["input_ids"][i]])) for i, (a, b)
            in enumerate(zip(hf["assistant_masks"], ex["assistant_masks"], strict=True)) if a != b]
    assert diff == []
    assert sum(ex["assistant_masks"]) > 0


def test_saved_template_renders_identically(smol_tok: Any, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = copy.deepcopy(smol_tok)
    tok.chat_template = HERMES_TEMPLATE
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == HERMES_TEMPLATE
    assert (reloaded.eos_token, reloaded.pad_token) == ("<|im_end|>", "<|endoftext|>")
    for row in (weather_row(), CROSS_ROWS["parallel"], CROSS_ROWS["multi_round"], GOOD):
        norm, _ = normalize_row(row)
        want = render_row(smol_tok, norm, HERMES_TEMPLATE)
        got = render_row(reloaded, norm)  # the reloaded tokenizer's own template
        assert got.text.encode("utf-8") == want.text.encode("utf-8")
        assert got.spans == want.spans
        assert tokenize_row(reloaded, got) == tokenize_row(smol_tok, want)
    # and choose_template now accepts the tokenizer's own template
    assert choose_template(reloaded).native is True


# ---------------------------------------------------------------------------------------------------------------------
# The dataset: build_dataset and load_training_data


def _lengths(tok: Any, rows: list[dict]) -> list[int]:
    return [len(tokenize_row(tok, render_row(tok, r, HERMES_TEMPLATE))["input_ids"]) for r in rows]


@pytest.fixture
def mixed_file(write_jsonl: WriteJsonl) -> Path:
    long = msgs({"role": "user", "content": "Tell me a long story. " * 150}, {"role": "assistant", "content": "Once."})
    return write_jsonl([GOOD, weather_row(), long, "not json", CROSS_ROWS["parallel"]])


def test_build_dataset_drops_too_long(smol_tok: Any, mixed_file: Path) -> None:
    rows, report = read_jsonl(mixed_file, "skip")
    lengths = _lengths(smol_tok, rows)
    long_len = lengths[2]
    assert long_len == max(lengths) and sorted(lengths)[-2] < long_len
    limit = sorted(lengths)[-2]  # every row but the long one fits
    choice = choose_template(smol_tok)
    ds = build_dataset(rows, smol_tok, choice, limit, report)
    assert len(ds) == 3 == report.rows_kept
    assert set(ds.column_names) == {"input_ids", "assistant_masks"}
    assert [len(x) for x in ds["input_ids"]] == [lengths[0], lengths[1], lengths[3]]
    assert [d["kind"] for d in report.dropped] == ["not_json", "too_long"]
    too_long = report.dropped[1]
    assert too_long["line"] == 3 and f"{long_len} tokens > max_seq_length={limit}" in too_long["message"]
    assert report.dropped_by_kind == {"not_json": 1, "too_long": 1}

    st = report.token_stats
    assert set(st) >= {"max_seq_length", "tokens", "supervised_tokens", "too_long", "total_tokens_kept",
                       "total_supervised"}
    assert st["max_seq_length"] == limit
    assert st["total_tokens_kept"] == sum(len(x) for x in ds["input_ids"])
    assert st["total_supervised"] == sum(sum(m) for m in ds["assistant_masks"])
    assert 0 < st["total_supervised"] < st["total_tokens_kept"]
    assert st["too_long"] == {"rows_dropped": 1, "rows_truncated": 0, "tokens_removed": long_len,
                              "max_excess": long_len - limit}  # one turn only: nothing to truncate to
    assert st["tokens"]["max"] == long_len and st["tokens"]["min"] == min(lengths)
    assert st["tokens"]["min"] <= st["tokens"]["p50"] <= st["tokens"]["p90"] <= st["tokens"]["p99"] <= long_len
    sup = [sum(m) for m in ds["assistant_masks"]]
    assert (st["supervised_tokens"]["min"], st["supervised_tokens"]["max"]) == (min(sup), max(sup))
    assert report.template["native"] is False and report.template["capabilities"] == choice.capabilities
    assert report.template["kind"] == "hermes" and report.template["arguments_as"] == "object"
    json.dumps(report.to_dict())


def test_build_dataset_strict_raises_on_too_long(smol_tok: Any, mixed_file: Path) -> None:
    rows, report = read_jsonl(mixed_file, "skip")
    limit = sorted(_lengths(smol_tok, rows))[-2]
    with pytest.raises(DataError) as err:
        build_dataset(rows, smol_tok, choose_template(smol_tok), limit, report, mode="strict")
    assert err.value.kind == "too_long" and err.value.line == 3 and f"{mixed_file}:3:" in str(err.value)


def test_build_dataset_nothing_fits(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    rows, report = read_jsonl(write_jsonl([weather_row(), weather_row()]))
    with pytest.raises(DataError) as err:
        build_dataset(rows, smol_tok, choose_template(smol_tok), 10, report)
    assert err.value.kind == "empty" and "2 too long" in str(err.value) and "max_seq_length=10" in str(err.value)


def test_build_dataset_whole_text(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    rows, report = read_jsonl(write_jsonl([weather_row(), GOOD]))
    ds = build_dataset(rows, smol_tok, choose_template(smol_tok), 4096, report, assistant_only=False)
    assert all(all(m) for m in ds["assistant_masks"])
    assert report.token_stats["total_supervised"] == report.token_stats["total_tokens_kept"]


def test_load_training_data_end_to_end(smol_tok: Any, mixed_file: Path) -> None:
    ds, report, choice = load_training_data(mixed_file, smol_tok, max_seq_length=4096)
    assert choice.template == HERMES_TEMPLATE
    assert len(ds) == report.rows_kept == 4 and report.rows_read == 5
    assert report.dropped_by_kind == {"not_json": 1}
    ids, mask = ds[1]["input_ids"], ds[1]["assistant_masks"]
    assert supervised_text(smol_tok, ids, mask) == [CALL_TEXT, ANSWER + "<|im_end|>"]
    with pytest.raises(DataError):
        load_training_data(mixed_file, smol_tok, mode="strict")


def test_template_that_fails_on_a_row_drops_it(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    picky = ("{% for m in messages %}{% if 'boom' in m.content %}{{ raise_exception('cannot render boom') }}{% endif %}"
             "{{ m.role }}: {{ m.content }}\n{% endfor %}")
    boom = msgs(U, {"role": "assistant", "content": "boom"})
    rows, report = read_jsonl(write_jsonl([GOOD, boom]))
    ds = build_dataset(rows, smol_tok, TemplateChoice(picky, True, "test"), 4096, report)
    assert len(ds) == 1 and report.dropped_by_kind == {"render_error": 1}
    assert report.dropped[0]["line"] == 2 and "cannot render boom" in report.dropped[0]["message"]
    with pytest.raises(DataError) as err:
        build_dataset(rows, smol_tok, TemplateChoice(picky, True, "test"), 4096, report, mode="strict")
    assert err.value.kind == "render_error"


# ---------------------------------------------------------------------------------------------------------------------
# Other template families: a copy of the SmolLM2 tokenizer dressed as Qwen2.5 or DeepSeek-R1


def test_supervised_text_is_exactly_call_and_answer_families(family: tuple[str, Any]) -> None:
    name, tok = family
    eot = FAMILIES[name][2]
    text, parts = supervised(tok, weather_row(), choose_template(tok))
    assert parts == [CALL_JSON + eot, ANSWER + eot]
    for prompt in (SYSTEM, USER, TOOL_RESULT, "desc-mk2", '"parameters"', "<tools>", "<tool_response>"):
        assert prompt in text, prompt
        assert not any(prompt in p for p in parts), prompt
    assert sum(p.count(eot) for p in parts) == 2  # one end-of-turn token per assistant turn, each supervised


def test_turn_headers_are_not_supervised(family: tuple[str, Any]) -> None:
    name, tok = family
    _, parts = supervised(tok, weather_row(), choose_template(tok))
    for header in ("<|im_start|>", "assistant\n", "<｜Assistant｜>", "<｜User｜>", BOS_DS):
        assert not any(header in p for p in parts), header


def test_qwen_wraps_tool_results_itself_once(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "qwen2.5")
    text, _ = supervised(tok, weather_row(), choose_template(tok))
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
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"}),
                                                            call("get_time", {"tz": "CET"})]},
        {"role": "tool", "name": "get_weather", "content": "4C-aa1"},
        {"role": "tool", "name": "get_time", "content": "12:00-bb2"},
        {"role": "assistant", "content": "4 degrees at noon."},
        {"role": "user", "content": "Thanks-cc3"},
        {"role": "assistant", "content": "You are welcome."}], "tools": [WEATHER]}
    text, parts = supervised(tok, row, choose_template(tok))
    assert parts == [CALL_JSON + "\n" + time_call + eot, "4 degrees at noon." + eot, "You are welcome." + eot]
    for prompt in ("4C-aa1", "12:00-bb2", "Thanks-cc3", "Weather and time?"):
        assert prompt in text and not any(prompt in p for p in parts)


def test_deepseek_reasoning_is_not_supervised(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    for choice in (choose_template(tok), choose_template(tok, "native")):
        row = {"messages": [{"role": "user", "content": USER},
                            {"role": "assistant", "content": "<think>\nweigh-options-qq7\n</think>\n\n" + ANSWER}]}
        text, parts = supervised(tok, row, choice)
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
        hf = tok.apply_chat_template(norm["messages"], tools=norm["tools"] or None,
                                     chat_template=HERMES_DEEPSEEK_TEMPLATE, tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
        assert list(hf["input_ids"]) == ex["input_ids"]
        assert list(hf["assistant_masks"]) == ex["assistant_masks"]


def test_deepseek_native_renders_string_arguments(smol_tok: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    choice = choose_template(tok, "native")
    assert (choice.native, choice.arguments_as, choice.null_content) == (True, "string", True)
    text, parts = supervised(tok, weather_row(), choice)
    call_text = ('<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n'
                 '{"city": "Oslo"}\n```<｜tool▁call▁end｜>')
    assert parts == [call_text, ANSWER + EOS_DS]  # DeepSeek's template leaves a one-call turn unclosed
    assert "{'city'" not in text  # not a Python repr
    for prompt in (SYSTEM, USER, TOOL_RESULT, "<｜tool▁outputs▁end｜>"):
        assert prompt in text and not any(prompt in p for p in parts)


def test_deepseek_generation_prompt_does_not_eat_the_reply(smol_tok: Any) -> None:
    """Its generation prompt ends with '<think>\\n', which the finished turn does not have: the reply starts after
    <｜Assistant｜>."""
    tok = make_family(smol_tok, "deepseek-r1")
    row = {"messages": [{"role": "user", "content": "How many?"}, {"role": "assistant", "content": "< 5 items"}]}
    _, parts = supervised(tok, row, choose_template(tok, "native"))
    assert parts == ["< 5 items" + EOS_DS]


def test_deepseek_native_drops_calls_beside_text_so_row_is_dropped(smol_tok: Any, write_jsonl: Any) -> None:
    tok = make_family(smol_tok, "deepseek-r1")
    row = weather_row()
    row["messages"][2]["content"] = "Let me check."  # DeepSeek's template shows calls only beside null content
    rows, report = read_jsonl(write_jsonl([weather_row(), row]))
    ds = build_dataset(rows, tok, choose_template(tok, "native"), 4096, report)
    assert len(ds) == 1 and report.dropped_by_kind == {"render_error": 1}
    assert report.dropped[0]["line"] == 2 and "drops the tool call 'get_weather'" in report.dropped[0]["message"]


def test_saved_template_renders_identically_families(family: tuple[str, Any], tmp_path: Path) -> None:
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
            {"messages": [{"role": "user", "content": "Température à Zürich ?"},
                          {"role": "assistant", "content": "4 °C 🌥."}]}]
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
    text, parts = supervised(tok, row, choose_template(tok))
    assert "You are Qwen, created by Alibaba Cloud." in text
    assert parts == ["Hello, how can I help?<|im_end|>", "Hi again.<|im_end|>"]


# ---------------------------------------------------------------------------------------------------------------------
# The length policy: conversations longer than max_seq_length

WEATHER_BRIEF = {"type": "function", "function": {"name": "get_weather", "description": "Current weather.",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def long_conversation(tail_words: int = 400) -> dict:
    "A call, its answer, then a long follow-up: assistant turns at messages 1, 3 and 5."
    return {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": '{"temp_c": 4}'},
        {"role": "assistant", "content": "It is 4 °C in Oslo."},
        {"role": "user", "content": "Tell me more. " + "weather " * tail_words},
        {"role": "assistant", "content": "Cold and grey, " + "really " * tail_words + "grey."}],
        "tools": [WEATHER_BRIEF]}


def prefix_examples(tok: Any, row: dict) -> dict[int, dict]:
    "message index of each assistant turn → tokenized render of the conversation up to it."
    choice = choose_template(tok)
    norm, _ = normalize_row(row)
    return {i: tokenize_row(tok, render_row(tok, {**norm, "messages": norm["messages"][:i + 1]}, choice))
            for i, m in enumerate(norm["messages"]) if m["role"] == "assistant"}


@pytest.fixture
def sizes(smol_tok: Any) -> dict[int, int]:
    return {i: len(ex["input_ids"]) for i, ex in prefix_examples(smol_tok, long_conversation()).items()}


def test_default_policy_is_truncate() -> None:
    assert LENGTH_POLICIES == ("truncate", "drop")
    assert TrainingConfig().length_policy == "truncate"
    assert TrainingConfig(length_policy="drop").length_policy == "drop"
    with pytest.raises(ValueError, match="length_policy='cut'"):
        TrainingConfig(length_policy="cut")


def test_truncate_keeps_exact_tokens_of_whole_turns(smol_tok: Any, write_jsonl: WriteJsonl,
                                                    sizes: dict[int, int]) -> None:
    path = write_jsonl([long_conversation()])
    full = sizes[5]
    assert sizes[1] < sizes[3] < full
    want = prefix_examples(smol_tok, long_conversation())
    for limit, kept_turn in ((full, 5), (full - 1, 3), (sizes[3], 3), (sizes[3] - 1, 1), (sizes[1], 1)):
        ds, report, _ = load_training_data(path, smol_tok, max_seq_length=limit)
        assert len(ds) == 1, limit
        assert ds[0]["input_ids"] == want[kept_turn]["input_ids"], limit
        assert ds[0]["assistant_masks"] == want[kept_turn]["assistant_masks"], limit
        assert len(ds[0]["input_ids"]) <= limit
        tl = report.token_stats["too_long"]
        if kept_turn == 5:
            assert tl == {"rows_dropped": 0, "rows_truncated": 0, "tokens_removed": 0, "max_excess": 0}
            assert not report.truncated
        else:
            assert tl == {"rows_dropped": 0, "rows_truncated": 1, "tokens_removed": full - sizes[kept_turn],
                          "max_excess": full - limit}
            assert report.truncated == [{"line": 1, "tokens": full, "kept_tokens": sizes[kept_turn], "messages": 6,
                                         "kept_messages": kept_turn + 1}]


def test_truncated_row_ends_with_an_assistant_turn_and_keeps_the_call(smol_tok: Any, write_jsonl: WriteJsonl,
                                                                      sizes: dict[int, int]) -> None:
    ds, _, _ = load_training_data(write_jsonl([long_conversation()]), smol_tok, max_seq_length=sizes[5] - 1)
    ids, mask = ds[0]["input_ids"], ds[0]["assistant_masks"]
    text = smol_tok.decode(ids)
    assert text.endswith("<|im_start|>assistant\nIt is 4 °C in Oslo.<|im_end|>\n")
    assert "Tell me more" not in text
    assert supervised_text(smol_tok, ids, mask) == [CALL_TEXT, "It is 4 °C in Oslo.<|im_end|>"]
    # cut before the answer: the sample is the call turn, with its end-of-turn token
    ds, _, _ = load_training_data(write_jsonl([long_conversation()], "b.jsonl"), smol_tok, max_seq_length=sizes[3] - 1)
    assert smol_tok.decode(ds[0]["input_ids"]).endswith("</tool_call><|im_end|>\n")
    assert supervised_text(smol_tok, ds[0]["input_ids"], ds[0]["assistant_masks"]) == [CALL_TEXT]


def test_first_turn_too_long_is_dropped(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    rows, report = read_jsonl(write_jsonl([GOOD, long_conversation()]))
    ds = build_dataset(rows, smol_tok, choose_template(smol_tok), sizes[1] - 1, report)
    assert len(ds) == 1
    assert report.dropped_by_kind == {"too_long": 1}
    d = report.dropped[0]
    assert d["line"] == 2 and f"{sizes[5]} tokens > max_seq_length={sizes[1] - 1}" in d["message"]
    assert "first assistant turn" in d["message"]
    assert report.token_stats["too_long"] == {"rows_dropped": 1, "rows_truncated": 0, "tokens_removed": sizes[5],
                                              "max_excess": sizes[5] - sizes[1] + 1}


def test_drop_policy_drops_what_truncate_would_cut(smol_tok: Any, write_jsonl: WriteJsonl,
                                                   sizes: dict[int, int]) -> None:
    path = write_jsonl([GOOD, long_conversation(), long_conversation(), "not json"])
    limit = sizes[3]
    ds, report, _ = load_training_data(path, smol_tok, max_seq_length=limit, length_policy="drop")
    assert len(ds) == 1 and report.dropped_by_kind == {"too_long": 2, "not_json": 1}
    assert report.token_stats["length_policy"] == "drop"
    assert report.token_stats["too_long"] == {"rows_dropped": 2, "rows_truncated": 0, "tokens_removed": 2 * sizes[5],
                                              "max_excess": sizes[5] - limit}
    ds, report, _ = load_training_data(path, smol_tok, max_seq_length=limit)
    assert len(ds) == 3 and report.dropped_by_kind == {"not_json": 1}
    assert report.token_stats["too_long"] == {"rows_dropped": 0, "rows_truncated": 2,
                                              "tokens_removed": 2 * (sizes[5] - sizes[3]),
                                              "max_excess": sizes[5] - limit}
    assert [t["line"] for t in report.truncated] == [2, 3]
    assert report.token_stats["tokens"]["max"] == sizes[5]  # lengths before the policy
    assert report.token_stats["total_tokens_kept"] == sum(len(x) for x in ds["input_ids"])


def test_strict_mode(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    path = write_jsonl([long_conversation()])
    ds, _, _ = load_training_data(path, smol_tok, max_seq_length=sizes[3], mode="strict")  # truncating is no error
    assert len(ds) == 1
    with pytest.raises(DataError) as err:
        load_training_data(path, smol_tok, max_seq_length=sizes[3], mode="strict", length_policy="drop")
    assert err.value.kind == "too_long" and err.value.line == 1
    with pytest.raises(DataError) as err:
        load_training_data(path, smol_tok, max_seq_length=sizes[1] - 1, mode="strict")
    assert err.value.kind == "too_long"


def test_tool_stats_count_what_is_trained(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    row = long_conversation()
    row["messages"][5] = {"role": "assistant", "content": "",
                          "tool_calls": [call("get_weather", {"city": "Bergen " * 400})]}
    row["messages"].append({"role": "tool", "name": "get_weather", "content": "5C"})
    row["messages"].append({"role": "assistant", "content": "5 °C."})
    path = write_jsonl([row])
    _, report, _ = load_training_data(path, smol_tok, max_seq_length=100_000)
    assert report.tool_stats["total_calls"] == 2
    _, report, _ = load_training_data(path, smol_tok, max_seq_length=sizes[3])
    assert report.truncated[0]["kept_messages"] == 4 and report.tool_stats["total_calls"] == 1


def test_max_seq_length_is_the_only_limit(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    "No library default truncates: a tokenizer whose model_max_length is tiny still yields whole rows."
    tok = copy.deepcopy(smol_tok)
    tok.model_max_length = 16
    ds, report, _ = load_training_data(write_jsonl([long_conversation()]), tok, max_seq_length=sizes[5])
    assert len(ds[0]["input_ids"]) == sizes[5] and not report.truncated


def test_truncate_row_returns_none_when_nothing_fits(smol_tok: Any) -> None:
    norm, _ = normalize_row(long_conversation())
    rendered = render_row(smol_tok, norm, choose_template(smol_tok))
    assert truncate_row(smol_tok, rendered, 5) is None
    assert [i for i, _ in rendered.turns] == [1, 3, 5]
    assert rendered.turns[-1][1] == len(rendered.text)


@pytest.mark.parametrize("kw, match", [({"max_seq_length": 0}, "max_seq_length=0"),
                                       ({"max_seq_length": 2.5}, "max_seq_length=2.5"),
                                       ({"length_policy": "cut"}, "length_policy='cut'")])
def test_bad_limits(smol_tok: Any, write_jsonl: WriteJsonl, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_training_data(write_jsonl([long_conversation()]), smol_tok, **kw)


def test_engine_call_signature_still_works(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    "The engine calls load_training_data(path, tok, max_seq_length, on_bad_rows, assistant_only): truncate by default."
    ds, report, choice = load_training_data(write_jsonl([long_conversation()]), smol_tok, sizes[5] - 1, "skip", True)
    assert len(ds) == 1 and report.token_stats["length_policy"] == "truncate" and report.truncated
    json.dumps(report.to_dict())


def test_nothing_fits_says_why_and_what_to_change(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    "Every row over max_seq_length: the error names the reason and the setting, not a Python dict or line 0."
    row = {"messages": [{"role": "user", "content": USER * 20}, {"role": "assistant", "content": ANSWER}]}
    path = write_jsonl([row] * 2)
    with pytest.raises(DataError) as err:
        load_training_data(path, smol_tok, max_seq_length=64)
    msg = str(err.value)
    assert msg.startswith(f"{path}: no usable conversations") and "2 too long" in msg and "max_seq_length=64" in msg
    assert "{" not in msg and ":0:" not in msg


# The hand-written row the notebook's examples were told with (they now use the shipped conversations)


def story_rows() -> tuple[dict, dict]:
    """The row the notebook used to tell its story with (`long_conversation`'s call and answer), and that row with a
    long follow-up question and a short answer."""
    row = normalized({"messages": long_conversation()["messages"][:4], "tools": [WEATHER_BRIEF]})
    long_row = {"messages": row["messages"] + [{"role": "user", "content": "And tomorrow? " + "Please. " * 60},
                                              {"role": "assistant", "content": "Also 4 °C."}], "tools": [WEATHER_BRIEF]}
    return row, long_row


def test_story_supervised_text_and_turns(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    row, _ = story_rows()
    r = render_row(smol_tok, row, choice)
    t = tokenize_row(smol_tok, r)
    assert supervised_text(smol_tok, t["input_ids"], t["assistant_masks"]) == [CALL_TEXT,
                                                                               "It is 4 °C in Oslo.<|im_end|>"]
    assert [r.text[:e] == render_row(smol_tok, {**row, "messages": row["messages"][:i + 1]}, choice).text
            for i, e in r.turns] == [True, True]


def test_story_string_arguments_leave_the_row_alone() -> None:
    row, _ = story_rows()
    assert template_messages(row["messages"], "string", True)[1] == {
        "role": "assistant", "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    assert row["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}  # the row keeps its dict


def test_story_truncate_row_cuts_after_the_answer(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    row, long_row = story_rows()
    full = render_row(smol_tok, long_row, choice)
    n_full = len(tokenize_row(smol_tok, full)["input_ids"])
    part, ex = truncate_row(smol_tok, full, n_full - 1)
    assert part.text == render_row(smol_tok, row, choice).text  # cut after the answer, messages[:4]
    assert ex == tokenize_row(smol_tok, render_row(smol_tok, row, choice))
    assert truncate_row(smol_tok, full, 10) is None


def test_story_load_training_data_and_report(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    row, long_row = story_rows()
    n_full = len(tokenize_row(smol_tok, render_row(smol_tok, long_row, choose_template(smol_tok)))["input_ids"])
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    p = write_jsonl([row, good, "[]", long_row])
    ds, rep, _ = load_training_data(p, smol_tok, max_seq_length=512)
    assert (len(ds), rep.rows_kept, rep.dropped_by_kind) == (3, 3, {"not_object": 1})
    assert set(ds.column_names) == {"input_ids", "assistant_masks"}
    ds, rep, _ = load_training_data(p, smol_tok, max_seq_length=n_full - 1)
    assert (len(ds), rep.token_stats["too_long"]["rows_truncated"], rep.truncated[0]["kept_messages"]) == (3, 1, 4)
    ds, rep, _ = load_training_data(p, smol_tok, max_seq_length=n_full - 1, length_policy="drop")
    assert (len(ds), rep.dropped_by_kind) == (2, {"not_object": 1, "too_long": 1})
    assert rep.token_stats["too_long"] == {"rows_dropped": 1, "rows_truncated": 0, "tokens_removed": n_full,
                                           "max_excess": 1}
    rep = data_report(p, tok=smol_tok, max_seq_length=n_full - 1)
    assert (rep.rows_kept, rep.tool_stats["total_calls"], rep.token_stats["too_long"]["rows_truncated"]) == (3, 2, 1)


# ---------------------------------------------------------------------------------------------------------------------
# The data report: show_row, print_row, data_report and `forge-nb check-data`


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"{name} (desc).",
                                             "parameters": {"type": "object", "properties": {}}}}


QUESTION = {"role": "user", "content": "Question?"}
ONE_CALL = {"messages": [QUESTION,
                         {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "assistant", "content": "4 °C."}], "tools": [tool("get_weather"), tool("get_time")]}
PARALLEL = {"messages": [QUESTION,
                         {"role": "assistant", "content": "", "tool_calls": [call("get_weather"), call("get_time")]},
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "tool", "name": "get_time", "content": "12"},
                         {"role": "assistant", "content": "", "tool_calls": [call("get_weather")]},
                         {"role": "tool", "name": "get_weather", "content": "5C"},
                         {"role": "assistant", "content": "Done."}], "tools": [tool("get_weather"), tool("get_time")]}
UNDEFINED = {"messages": [QUESTION, {"role": "assistant", "content": "", "tool_calls": [call("search_web")]},
                          {"role": "tool", "content": "x"}, {"role": "assistant", "content": "Found."}]}
PLAIN = {"messages": [QUESTION, {"role": "assistant", "content": "Plain answer."}], "tools": [tool("send_email")]}


def test_report_to_dict_has_new_stats(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    path = write_jsonl([ONE_CALL, PARALLEL, UNDEFINED, PLAIN, "oops"])
    _, report, choice = load_training_data(path, smol_tok, max_seq_length=4096)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["tool_stats"]["total_calls"] == 5 and d["tool_stats"]["parallel_call_turns"] == 1
    assert d["token_stats"]["too_long"] == {"rows_dropped": 0, "rows_truncated": 0, "tokens_removed": 0,
                                            "max_excess": 0}
    assert d["token_stats"]["length_policy"] == "truncate" and d["truncated"] == []
    assert d["template"] == {"native": False, "reason": choice.reason, "capabilities": choice.capabilities,
                             "arguments_as": "object", "null_content": False, "kind": "hermes", "notes": []}
    assert d["dropped_by_kind"] == {"not_json": 1} and d["rows_kept"] == 4


def test_describe(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    path = write_jsonl([ONE_CALL, PARALLEL, UNDEFINED, PLAIN, "oops"])
    _, report, _ = load_training_data(path, smol_tok, max_seq_length=4096)
    text = report.describe()
    assert text.startswith(f"{path}: 5 rows read, 4 kept, 1 dropped (not_json: 1)")
    for part in ("template: hermes (the tokenizer's template does not render: tools, tool_calls); "
                 "tool-call arguments as object",
                 "tokens per row: min ", "supervised tokens per row: min ",
                 "too long (policy truncate): 0 truncated, 0 dropped",
                 "tools: 3 distinct in `tools`, 3 called; rows with tools 3, with calls 3 of 4",
                 "tool calls: 5 in 4 turns, 1 turns with parallel calls",
                 "calls per tool: get_weather 3, get_time 1, search_web 1"):
        assert part in text, part
    assert DataReport("x").describe() == "x: 0 rows read, 0 kept, 0 dropped"


def test_show_row_marks_exactly_the_supervised_text(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    for row in (ONE_CALL, PARALLEL, PLAIN):
        n = normalized(row)
        shown = show_row(smol_tok, n, choice)
        ex = tokenize_row(smol_tok, render_row(smol_tok, n, choice))
        assert re.findall("⟦(.*?)⟧", shown, re.S) == supervised_text(smol_tok, ex["input_ids"], ex["assistant_masks"])
        assert shown.replace("⟦", "").replace("⟧", "") == render_row(smol_tok, n, choice).text


def test_show_row_as_trained_is_truncated(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    row = normalized({"messages": ONE_CALL["messages"] + [{"role": "user", "content": "more " * 300},
                                                         {"role": "assistant", "content": "fine " * 300}],
                      "tools": ONE_CALL["tools"]})
    text, ranges = row_view(smol_tok, row, choice, max_seq_length=400)
    assert text.endswith("4 °C.<|im_end|>\n") and len(ranges) == 2
    with pytest.raises(ValueError, match="does not fit"):
        row_view(smol_tok, row, choice, max_seq_length=10)
    assert mark_text("abcdef", [(1, 2), (4, 6)], ("[", "]")) == "a[b]cd[ef]"


def test_print_row_styled_and_plain(capsys: Any) -> None:
    print_row("hello world", [(6, 11)], styled=False)
    assert capsys.readouterr().out == "hello ⟦world⟧\n"
    print_row("hello world", [(6, 11)], styled=True)
    out = capsys.readouterr().out
    assert "hello world" in out and "⟦" not in out


def test_data_report_prints_report_and_example(smol_tok: Any, write_jsonl: WriteJsonl, capsys: Any) -> None:
    path = write_jsonl([PLAIN, PARALLEL, ONE_CALL])
    report = data_report(path, tok=smol_tok, max_seq_length=4096, styled=False)
    out = capsys.readouterr().out
    assert isinstance(report, DataReport) and report.rows_kept == 3
    assert out.startswith(report.describe())
    assert "line 2 as trained (⟦…⟧ = supervised):" in out  # the first kept row with a call
    assert "⟦<tool_call>" in out and "⟦Done.<|im_end|>⟧" in out
    data_report(path, tok=smol_tok, example=1, styled=False)
    assert "line 1 as trained" in capsys.readouterr().out
    data_report(path, tok=smol_tok, example=0)
    assert "as trained" not in capsys.readouterr().out
    quiet = data_report(path, tok=smol_tok, max_seq_length=4096, show=False)
    assert capsys.readouterr().out == "" and quiet.to_dict() == report.to_dict()
    with pytest.raises(ValueError, match="line 9"):
        data_report(path, tok=smol_tok, example=9)


def test_console_script_on_a_few_hundred_rows(write_jsonl: WriteJsonl) -> None:
    "The installed `forge-nb check-data` runs on a file like the real data (the time is not asserted)."
    rows = [ONE_CALL, PARALLEL, PLAIN] * 100
    path = write_jsonl(rows + [{"messages": [QUESTION, {"role": "assistant", "content": "0" * 20000}]}])
    exe = shutil.which("forge-nb")
    assert exe, "the forge-nb console script is not installed (pip install -e .)"
    r = subprocess.run([exe, "check-data", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "301 rows read, 300 kept, 1 dropped (too_long: 1)" in r.stdout and "Traceback" not in r.stderr
    assert "⟦" in r.stdout  # not a terminal: markers, not colours
