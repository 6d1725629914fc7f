"""Edge cases of `forge_nb.rows` (the story and the main examples are in nbs/api/03_rows.ipynb)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from samples import ANSWER, SYSTEM, TOOL_RESULT, USER, WEATHER  # noqa: E402  (tests/ is on sys.path)

from forge_nb.rows import DataError, DataReport, RowError, normalize_row, read_jsonl, split_rows, tool_stats, write_rows

WriteJsonl = Callable[..., Path]


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


def read_one(write_jsonl: WriteJsonl, row: Any) -> tuple[dict, DataReport]:
    rows, report = read_jsonl(write_jsonl([row]), "strict")
    assert len(rows) == 1
    return rows[0], report


TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone (desc-tt5).",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": f"{name} (desc).",
                                             "parameters": {"type": "object", "properties": {}}}}


def call_report(name: str, args: dict | None = None) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args or {}}}


U_report = {"role": "user", "content": "Question?"}


def turn(*calls: dict) -> dict:
    "An assistant turn that makes `calls`."
    return {"role": "assistant", "content": "", "tool_calls": list(calls)}


ONE_CALL = {"messages": [U_report,
                         turn(call_report("get_weather", {"city": "Oslo"})),
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "assistant", "content": "4 °C."}], "tools": [tool("get_weather"), tool("get_time")]}


PARALLEL = {"messages": [U_report,
                         turn(call_report("get_weather"), call_report("get_time")),
                         {"role": "tool", "name": "get_weather", "content": "4C"},
                         {"role": "tool", "name": "get_time", "content": "12"},
                         turn(call_report("get_weather")),
                         {"role": "tool", "name": "get_weather", "content": "5C"},
                         {"role": "assistant", "content": "Done."}], "tools": [tool("get_weather"), tool("get_time")]}


UNDEFINED = {"messages": [U_report, turn(call_report("search_web")),
                          {"role": "tool", "content": "x"}, {"role": "assistant", "content": "Found."}]}


PLAIN = {"messages": [U_report, {"role": "assistant", "content": "Plain answer."}], "tools": [tool("send_email")]}


def norm(row: dict) -> dict:
    return normalize_row(row)[0]


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


def test_tool_stats() -> None:
    st = tool_stats([norm(r) for r in (ONE_CALL, PARALLEL, UNDEFINED, PLAIN)])
    assert st == {"distinct_tools": 3, "distinct_tools_called": 3, "rows_with_tools": 3, "rows_with_calls": 3,
                  "total_calls": 5, "call_turns": 4, "parallel_call_turns": 1,
                  "calls_per_tool": {"get_weather": 3, "get_time": 1, "search_web": 1}}
    assert list(st["calls_per_tool"]) == ["get_weather", "get_time", "search_web"]  # most called first
    assert tool_stats([]) == {"distinct_tools": 0, "distinct_tools_called": 0, "rows_with_tools": 0,
                              "rows_with_calls": 0, "total_calls": 0, "call_turns": 0, "parallel_call_turns": 0,
                              "calls_per_tool": {}}


ROWS10 = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}], "tools": [],
           "_line": i + 1} for i in range(10)]


def test_split_rows_is_a_seeded_partition() -> None:
    tr, ho = split_rows(ROWS10, 0.2, seed=1)
    assert (len(tr), len(ho)) == (8, 2)
    assert split_rows(ROWS10, 0.2, seed=1) == (tr, ho)  # seeded
    assert sorted(r["_line"] for r in tr + ho) == list(range(1, 11))  # a partition
    assert [r["_line"] for r in tr] == sorted(r["_line"] for r in tr)  # both parts in file order
    assert len(split_rows(ROWS10[:2], 0.01)[1]) == 1  # at least one held out
    with pytest.raises(ValueError, match="at least 2"):
        split_rows(ROWS10[:1], 0.5)
    for bad in (1, 1.5, -0.1):
        with pytest.raises(ValueError, match="must be in"):
            split_rows(ROWS10, bad)


def test_write_rows_round_trip(tmp_path: Path) -> None:
    _, ho = split_rows(ROWS10, 0.2, seed=1)
    path = write_rows(tmp_path / "held.jsonl", ho)
    back, _ = read_jsonl(path)
    assert [r["messages"] for r in back] == [r["messages"] for r in ho]
    assert [json.loads(line)["source_line"] for line in path.read_text().splitlines()] == [r["_line"] for r in ho]


# --- bad-input corpus (issue 12, part 6): every bad kind gives one line naming the file (and line), exit code 2 ---
_GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
_GOOD_LINE = __import__("json").dumps(_GOOD)


def _write_corpus(d):
    import gzip as _gz
    import os as _os
    g = _GOOD_LINE
    kinds = {  # name -> (writer, expected exit code, expected line number or None)
        "utf16_bom": (lambda p: p.write_bytes((g + "\n").encode("utf-16")), 2, 1),
        "latin1": (lambda p: p.write_bytes(g.replace("hi", "h\u00e9").encode("latin-1") + b"\n"), 2, 1),
        "deep_nesting": (lambda p: p.write_text("[" * 100_000 + "]" * 100_000 + "\n"), 2, 1),
        "lone_surrogate": (lambda p: p.write_text(g.replace('"hi"', '"\\ud800"') + "\n"), 2, 1),
        "nan_literal": (lambda p: p.write_text(g.replace('"hi"', "NaN") + "\n"), 2, 1),
        "infinity_literal": (lambda p: p.write_text(g.replace('"hi"', "-Infinity") + "\n"), 2, 1),
        "top_level_array": (lambda p: p.write_text("[" + g + "]\n"), 2, 1),
        "wrong_types": (lambda p: p.write_text('{"messages": 3}\n'), 2, 1),
        "nul_bytes": (lambda p: p.write_bytes(b"\x00" * 10 + b"\n"), 2, 1),
        "empty": (lambda p: p.write_text(""), 2, None),
        "blank_lines": (lambda p: p.write_text("\n  \n\n"), 2, None),
        "truncated_last": (lambda p: p.write_text(g[:-5]), 2, 1),
        "directory": (lambda p: p.mkdir(), 2, None),
        "fifo": (lambda p: _os.mkfifo(p), 2, None),
        "symlink_loop": (lambda p: _os.symlink(p, p), 2, None),
        "gzip_bad_rows": (lambda p: p.write_bytes(_gz.compress(("\n" + "{bad\n").encode())), 2, None),
        "utf8_bom": (lambda p: p.write_bytes(b"\xef\xbb\xbf" + (g + "\n").encode()), 0, None),
        "crlf": (lambda p: p.write_bytes((g + "\r\n" + g + "\r\n").encode()), 0, None),
        "gzip": (lambda p: p.write_bytes(_gz.compress((g + "\n").encode())), 0, None),
        "long_line": (lambda p: p.write_text(g.replace("hello", "x" * 2_000_000) + "\n"), 0, None),
    }
    out = {}
    for name, (write, code, line) in kinds.items():
        p = d / f"{name}.jsonl"
        write(p)
        out[name] = (p, code, line)
    return out


@pytest.fixture
def corpus(tmp_path):
    return _write_corpus(tmp_path)


_KINDS = ["utf16_bom", "latin1", "deep_nesting", "lone_surrogate", "nan_literal", "infinity_literal",
          "top_level_array", "wrong_types", "nul_bytes", "empty", "blank_lines", "truncated_last", "directory",
          "fifo", "symlink_loop", "gzip_bad_rows", "utf8_bom", "crlf", "gzip"]


@pytest.mark.timeout(60) if hasattr(pytest.mark, "timeout") else (lambda f: f)
@pytest.mark.parametrize("kind", _KINDS)
def test_bad_input_corpus(corpus, kind, capsys):
    from forge_nb.cli import main
    from forge_nb.rows import DataError, read_jsonl
    path, code, line = corpus[kind]
    if code == 0:
        rows, _ = read_jsonl(path, mode="strict")
        assert rows
    else:
        with pytest.raises((DataError, FileNotFoundError)) as ei:
            read_jsonl(path, mode="strict")
        assert path.name in str(ei.value)
        if line is not None: assert isinstance(ei.value, DataError) and ei.value.line == line
    capsys.readouterr()
    rc = main(["check-data", str(path)])
    out = capsys.readouterr()
    assert rc == code, (out.out, out.err)
    if code == 2:
        err = out.err.strip().splitlines()
        assert len(err) == 1 and path.name in err[0] and "Traceback" not in out.err, out.err
        if line is not None: assert f"{path.name}:{line}" in err[0] or f"line {line}:" in err[0], err[0]
