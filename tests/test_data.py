"""Tests of forge_nb.data: JSONL validation (one fixture per kind of trouble), rendering with the
chat template, assistant-only masking, dataset building, and cross-checks against transformers."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forge_nb.data import (
    HERMES_TEMPLATE,
    DataError,
    DataReport,
    RowError,
    build_dataset,
    choose_template,
    load_training_data,
    normalize_row,
    read_jsonl,
    render_row,
    supervised_text,
    template_capabilities,
    tokenize_row,
)

WriteJsonl = Callable[..., Path]

# ---------------------------------------------------------------- building blocks

from samples import ANSWER, SYSTEM, TOOL_RESULT, USER, WEATHER  # noqa: E402  (tests/ is on sys.path)
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone (desc-tt5).",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}


def call(name: str, args: Any) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args}}


def weather_row(**over: Any) -> dict:
    "A well-formed one-call conversation; keyword arguments replace top-level keys."
    row = {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": TOOL_RESULT},
        {"role": "assistant", "content": ANSWER}], "tools": [WEATHER]}
    return {**row, **over}


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def msgs(*m: dict, tools: Any = None) -> dict:
    row: dict = {"messages": list(m)}
    if tools is not None: row["tools"] = tools
    return row


U = {"role": "user", "content": "Weather?"}
A_CALL = {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]}
T_RES = {"role": "tool", "name": "get_weather", "content": "4C"}
A_END = {"role": "assistant", "content": "4 degrees."}

# (bad line, kind, field) — each is written at line 3 of a file, after a good row and a blank line
BAD_ROWS = {
    "invalid_utf8": (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "bad_utf8", ""),
    "not_json": ('{"messages": [{"role": "user"', "not_json", ""),
    "not_json_single_quotes": ("{'messages': []}", "not_json", ""),
    "top_level_list": ("[1, 2, 3]", "not_object", ""),
    "top_level_string": ('"just text"', "not_object", ""),
    "missing_messages": ({"conversation": []}, "no_messages", "messages"),
    "empty_messages": ({"messages": []}, "no_messages", "messages"),
    "messages_not_list": ({"messages": "hello"}, "no_messages", "messages"),
    "unknown_role": (msgs(U, {"role": "robot", "content": "beep"}, A_END), "bad_role", "messages[1].role"),
    "message_not_object": (msgs(U, "assistant: hi"), "bad_role", "messages[1]"),
    "assistant_neither": (msgs(U, {"role": "assistant", "content": None}), "empty_assistant", "messages[1]"),
    "assistant_blank": (msgs(U, {"role": "assistant", "content": "  \n"}), "empty_assistant", "messages[1]"),
    "tool_calls_not_list": (msgs(U, {"role": "assistant", "content": "x", "tool_calls": "get_weather"}),
                            "bad_tool_call", "messages[1].tool_calls"),
    "call_without_name": (msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"arguments": {"city": "Oslo"}}}]}, T_RES, A_END),
        "bad_tool_call", "messages[1].tool_calls[0].function.name"),
    "call_empty_name": (msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        call("get_weather", {}), call("  ", {})]}, T_RES, T_RES, A_END),
        "bad_tool_call", "messages[1].tool_calls[1].function.name"),
    "arguments_invalid_json": (msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        call("get_weather", '{"city": Oslo}')]}, T_RES, A_END),
        "bad_arguments", "messages[1].tool_calls[0].function.arguments"),
    "arguments_json_list": (msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        call("get_weather", '["Oslo"]')]}, T_RES, A_END),
        "bad_arguments", "messages[1].tool_calls[0].function.arguments"),
    "arguments_number": (msgs(U, {"role": "assistant", "content": "", "tool_calls": [
        call("get_weather", 42)]}, T_RES, A_END),
        "bad_arguments", "messages[1].tool_calls[0].function.arguments"),
    "tool_result_no_call": (msgs(U, T_RES, A_END), "orphan_tool_result", "messages[1]"),
    "tool_result_extra": (msgs(U, A_CALL, T_RES, T_RES, A_END), "orphan_tool_result", "messages[3]"),
    "ends_on_user": (msgs(U, A_END, {"role": "user", "content": "thanks"}), "nothing_to_learn", "messages[2]"),
    "ends_on_tool": (msgs(U, A_CALL, T_RES), "nothing_to_learn", "messages[2]"),
    "tools_bad_json_string": (msgs(U, A_END, tools="[{broken"), "bad_tools", "tools"),
    "tools_not_list": (msgs(U, A_END, tools={"name": "get_weather"}), "bad_tools", "tools"),
    "tool_without_name": (msgs(U, A_END, tools=[{"type": "function", "function": {"description": "x"}}]),
                          "bad_tools", "tools[0]"),
    "user_content_number": (msgs({"role": "user", "content": 5}, A_END), "bad_content", "messages[0].content"),
    "tool_content_null": (msgs(U, A_CALL, {"role": "tool", "name": "get_weather", "content": None}, A_END),
                          "bad_content", "messages[2].content"),
}


@pytest.fixture(params=list(BAD_ROWS))
def bad_file(request: pytest.FixtureRequest, write_jsonl: WriteJsonl) -> tuple[Path, str, str]:
    line, kind, field = BAD_ROWS[request.param]
    return write_jsonl([GOOD, "", line, weather_row()]), kind, field


# ---------------------------------------------------------------- one fixture per kind of trouble

def test_skip_drops_bad_row_with_kind_line_field(bad_file: tuple[Path, str, str]) -> None:
    path, kind, field = bad_file
    rows, report = read_jsonl(path, "skip")
    assert [r["_line"] for r in rows] == [1, 4]  # good rows kept, line numbers count the blank line
    assert rows[0]["messages"] == GOOD["messages"]
    assert (report.rows_read, report.rows_kept, report.blank_lines) == (3, 2, 1)
    assert len(report.dropped) == 1
    d = report.dropped[0]
    assert (d["line"], d["kind"], d["field"]) == (3, kind, field)
    assert d["message"]
    assert report.dropped_by_kind == {kind: 1}
    summary = report.summary()
    assert "3 rows read, 2 kept, 1 dropped" in summary and "line 3" in summary and kind in summary
    assert json.loads(json.dumps(report.to_dict()))["dropped_by_kind"] == {kind: 1}


def test_strict_raises_with_file_line_field(bad_file: tuple[Path, str, str]) -> None:
    path, kind, field = bad_file
    with pytest.raises(DataError) as err:
        read_jsonl(path, "strict")
    e = err.value
    assert (e.line, e.kind, e.field, e.path) == (3, kind, field, str(path))
    assert isinstance(e, ValueError)
    assert f"{path}:3:" in str(e)
    if field: assert f"{path}:3: {field}: " in str(e)


def test_specific_messages(write_jsonl: WriteJsonl) -> None:
    def message(name: str) -> str:
        with pytest.raises(DataError) as err:
            read_jsonl(write_jsonl([BAD_ROWS[name][0]]), "strict")
        return err.value.message
    bad_at = BAD_ROWS["invalid_utf8"][0].index(b"\xe9")
    assert message("invalid_utf8") == f"invalid UTF-8 byte at position {bad_at}"
    assert "not JSON" in message("not_json")
    assert "'robot'" in message("unknown_role")
    assert "no preceding tool call" in message("tool_result_no_call")
    assert "not valid JSON" in message("arguments_invalid_json")
    assert "list" in message("arguments_json_list")
    assert "ends on a tool turn" in message("ends_on_tool")


def test_blank_lines_ignored_and_counted(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl(["", GOOD, "   ", "\t", GOOD, ""])
    rows, report = read_jsonl(path, "strict")
    assert [r["_line"] for r in rows] == [2, 5]
    assert (report.blank_lines, report.rows_read, report.rows_kept, report.dropped) == (4, 2, 2, [])


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\r\n\r\n" + json.dumps(weather_row()) + "\r\n").encode())
    rows, report = read_jsonl(path, "strict")
    assert [r["_line"] for r in rows] == [1, 3] and report.blank_lines == 1


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    for mode in ("skip", "strict"):
        with pytest.raises(DataError) as err:
            read_jsonl(path, mode)
        assert err.value.kind == "empty" and err.value.line == 0
        assert str(err.value).startswith(f"{path}: ") and "empty" in str(err.value)  # no line: the file as a whole


def test_all_rows_invalid_is_data_error(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl(["nope", "[]", {"messages": []}])
    with pytest.raises(DataError) as err:
        read_jsonl(path, "skip")
    assert err.value.kind == "empty" and "all 3 rows are invalid" in str(err.value)


def test_missing_file_and_bad_mode(tmp_path: Path, write_jsonl: WriteJsonl) -> None:
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match="mode"):
        read_jsonl(write_jsonl([GOOD]), "lenient")


def test_skip_reports_every_bad_row(write_jsonl: WriteJsonl) -> None:
    lines = [GOOD] + [BAD_ROWS[k][0] for k in BAD_ROWS]
    rows, report = read_jsonl(write_jsonl(lines), "skip")
    assert len(rows) == 1
    assert [d["line"] for d in report.dropped] == list(range(2, len(lines) + 1))
    assert [d["kind"] for d in report.dropped] == [BAD_ROWS[k][1] for k in BAD_ROWS]


# ---------------------------------------------------------------- normalisation of acceptable variants

def read_one(write_jsonl: WriteJsonl, row: Any) -> tuple[dict, DataReport]:
    rows, report = read_jsonl(write_jsonl([row]), "strict")
    assert len(rows) == 1
    return rows[0], report


def test_assistant_null_content_beside_calls_becomes_empty_string(write_jsonl: WriteJsonl) -> None:
    row = weather_row()
    row["messages"][2]["content"] = None
    got, _ = read_one(write_jsonl, row)
    assert got["messages"][2]["content"] == ""
    assert got["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
    row["messages"][2].pop("content")  # no content key at all: same
    assert read_one(write_jsonl, row)[0]["messages"][2]["content"] == ""


def test_arguments_json_string_normalised_to_dict(write_jsonl: WriteJsonl) -> None:
    row = weather_row()
    row["messages"][2]["tool_calls"] = [call("get_weather", '{"city": "Oslo", "days": [1, 2]}')]
    got, _ = read_one(write_jsonl, row)
    assert got["messages"][2]["tool_calls"] == [call("get_weather", {"city": "Oslo", "days": [1, 2]})]


@pytest.mark.parametrize("args", [None, ""])
def test_missing_arguments_become_empty_dict(args: Any) -> None:
    row = weather_row()
    row["messages"][2]["tool_calls"] = [call("get_weather", args)]
    assert normalize_row(row)[0]["messages"][2]["tool_calls"][0]["function"]["arguments"] == {}


def test_flat_tool_call_and_id_normalised() -> None:
    row = weather_row()
    row["messages"][2]["tool_calls"] = [{"id": 7, "name": "get_weather", "arguments": {"city": "Oslo"}}]
    got = normalize_row(row)[0]["messages"][2]["tool_calls"][0]
    assert got == {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}, "id": "7"}


def test_tools_as_json_string(write_jsonl: WriteJsonl) -> None:
    got, _ = read_one(write_jsonl, weather_row(tools=json.dumps([WEATHER])))
    assert got["tools"] == [WEATHER]


def test_flat_tool_is_wrapped() -> None:
    got = normalize_row(weather_row(tools=[WEATHER["function"]]))[0]
    assert got["tools"] == [WEATHER]


def test_tools_empty_list_and_absent(write_jsonl: WriteJsonl) -> None:
    assert read_one(write_jsonl, weather_row(tools=[]))[0]["tools"] == []
    no_tools = weather_row()
    del no_tools["tools"]
    got, report = read_one(write_jsonl, no_tools)
    assert got["tools"] == [] and report.warnings == []  # no tools declared: nothing to check calls against


def test_call_to_unknown_tool_warns_and_keeps_row(write_jsonl: WriteJsonl) -> None:
    row = weather_row(tools=[TIME])
    path = write_jsonl([GOOD, row])
    rows, report = read_jsonl(path, "strict")
    assert len(rows) == 2 and report.dropped == []
    assert len(report.warnings) == 1
    w = report.warnings[0]
    assert w["line"] == 2
    assert "messages[2].tool_calls[0].function.name" in w["message"] and "'get_weather'" in w["message"]
    assert "1 warnings" in report.summary()


def test_tool_result_name_filled_and_content_serialised() -> None:
    row = weather_row()
    row["messages"][3] = {"role": "tool", "tool_call_id": 3, "content": {"temp_c": 4}}
    got = normalize_row(row)[0]["messages"][3]
    assert got == {"role": "tool", "name": "get_weather", "content": '{"temp_c": 4}', "tool_call_id": "3"}


def test_text_content_parts_joined() -> None:
    row = msgs({"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}, A_END)
    assert normalize_row(row)[0]["messages"][0]["content"] == "Hello"


def test_normalize_row_raises_row_error() -> None:
    with pytest.raises(RowError) as err:
        normalize_row(BAD_ROWS["unknown_role"][0])
    assert (err.value.field, err.value.kind) == ("messages[1].role", "bad_role")


# ---------------------------------------------------------------- template choice

def test_choose_template_picks_hermes_for_smollm2(smol_tok: Any) -> None:
    caps = template_capabilities(smol_tok)
    assert caps["tools"] is False and caps["tool_calls"] is False  # SmolLM2's own template ignores both
    choice = choose_template(smol_tok)
    assert choice.template == HERMES_TEMPLATE and choice.native is False
    assert "tools" in choice.reason and "tool_calls" in choice.reason
    assert choice.capabilities == caps


def test_hermes_template_has_all_capabilities(smol_tok: Any) -> None:
    assert template_capabilities(smol_tok, HERMES_TEMPLATE) == {"tools": True, "tool_calls": True, "tool_role": True}


def test_choose_template_forced(smol_tok: Any) -> None:
    native = choose_template(smol_tok, "native")
    assert native.native is True and native.template == smol_tok.chat_template
    hermes = choose_template(smol_tok, "hermes")
    assert hermes.template == HERMES_TEMPLATE and hermes.reason == "forced hermes"
    with pytest.raises(ValueError, match="prefer"):
        choose_template(smol_tok, "chatml")


def test_choose_template_native_without_template(smol_tok: Any) -> None:
    tok = copy.deepcopy(smol_tok)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        choose_template(tok, "native")
    assert choose_template(tok).template == HERMES_TEMPLATE


def test_template_that_raises_has_no_capabilities(smol_tok: Any) -> None:
    broken = "{{ raise_exception('no') }}"
    assert template_capabilities(smol_tok, broken) == {"tools": False, "tool_calls": False, "tool_role": False}


# ---------------------------------------------------------------- rendering and masking

CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>'
TIME_CALL_TEXT = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call><|im_end|>'


def supervised(tok: Any, row: dict, assistant_only: bool = True) -> tuple[str, list[str]]:
    norm, _ = normalize_row(row)
    rendered = render_row(tok, norm, HERMES_TEMPLATE)
    ex = tokenize_row(tok, rendered, assistant_only)
    assert len(ex["input_ids"]) == len(ex["assistant_masks"])
    assert set(ex["assistant_masks"]) <= {0, 1}
    return rendered.text, supervised_text(tok, ex["input_ids"], ex["assistant_masks"])


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


# ---------------------------------------------------------------- cross-check with transformers' generation mask

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
    "trailing_whitespace": msgs(U, {"role": "assistant", "content": "Spaces after   "}, {"role": "user", "content": "x"},
                                {"role": "assistant", "content": "Newline after\n"}),
    "leading_newlines": msgs(U, {"role": "assistant", "content": "\n\nStarts with newlines"}),
    "unicode": msgs({"role": "user", "content": "Température à Zürich ?"},
                    {"role": "assistant", "content": "Il fait 4 °C — nuageux 🌥."}),
}


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


# ---------------------------------------------------------------- round trip through save_pretrained

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


# ---------------------------------------------------------------- build_dataset and token statistics

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


# ---------------------------------------------------------------- templates of other shapes

def test_probe_accepts_arguments_in_any_json_layout(smol_tok: Any) -> None:
    pretty = ("{% for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}"
              "CALL {{ c.function.name }} {{ c.function.arguments | tojson(indent=2) }}{% endfor %}<end>\n{% endfor %}")
    from forge_nb.data import probe_template
    p = probe_template(smol_tok, pretty)
    assert p.capabilities["tool_calls"] and (p.arguments_as, p.null_content, p.end_of_turn) == ("object", False, "<end>")


def test_template_that_fails_on_a_row_drops_it(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    from forge_nb.data import TemplateChoice
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


def test_template_choice_rejects_unknown_argument_form() -> None:
    from forge_nb.data import TemplateChoice
    with pytest.raises(ValueError, match="arguments_as"):
        TemplateChoice("x", True, "test", arguments_as="dict")
    assert TemplateChoice("x", False, "test").kind == "hermes"
