"""The data report: tool-call statistics, `DataReport.describe/to_dict`, `data_report` and
`show_row` for notebooks, and `forge-nb check-data` in the shell. Every test writes its own data."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forge_nb.cli import main
from forge_nb.data import (
    DataReport,
    choose_template,
    data_report,
    load_training_data,
    mark_text,
    normalize_row,
    print_row,
    render_row,
    row_view,
    show_row,
    supervised_text,
    tokenize_row,
    tool_stats,
)

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
                         {"role": "tool", "name": "get_weather", "content": "4C"}, {"role": "tool", "name": "get_time", "content": "12"},
                         {"role": "assistant", "content": "", "tool_calls": [call("get_weather")]},
                         {"role": "tool", "name": "get_weather", "content": "5C"},
                         {"role": "assistant", "content": "Done."}], "tools": [tool("get_weather"), tool("get_time")]}
UNDEFINED = {"messages": [U, {"role": "assistant", "content": "", "tool_calls": [call("search_web")]},
                          {"role": "tool", "content": "x"}, {"role": "assistant", "content": "Found."}]}
PLAIN = {"messages": [U, {"role": "assistant", "content": "Plain answer."}], "tools": [tool("send_email")]}


def norm(row: dict) -> dict:
    return normalize_row(row)[0]


# ---------------------------------------------------------------- tool statistics

def test_tool_stats() -> None:
    st = tool_stats([norm(r) for r in (ONE_CALL, PARALLEL, UNDEFINED, PLAIN)])
    assert st == {"distinct_tools": 3, "distinct_tools_called": 3, "rows_with_tools": 3, "rows_with_calls": 3,
                  "total_calls": 5, "call_turns": 4, "parallel_call_turns": 1,
                  "calls_per_tool": {"get_weather": 3, "get_time": 1, "search_web": 1}}
    assert list(st["calls_per_tool"]) == ["get_weather", "get_time", "search_web"]  # most called first
    assert tool_stats([]) == {"distinct_tools": 0, "distinct_tools_called": 0, "rows_with_tools": 0, "rows_with_calls": 0,
                              "total_calls": 0, "call_turns": 0, "parallel_call_turns": 0, "calls_per_tool": {}}


def test_report_to_dict_has_new_stats(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    path = write_jsonl([ONE_CALL, PARALLEL, UNDEFINED, PLAIN, "oops"])
    _, report, choice = load_training_data(path, smol_tok, max_seq_length=4096)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["tool_stats"]["total_calls"] == 5 and d["tool_stats"]["parallel_call_turns"] == 1
    assert d["token_stats"]["too_long"] == {"rows_dropped": 0, "rows_truncated": 0, "tokens_removed": 0, "max_excess": 0}
    assert d["token_stats"]["length_policy"] == "truncate" and d["truncated"] == []
    assert d["template"] == {"native": False, "reason": choice.reason, "capabilities": choice.capabilities,
                             "arguments_as": "object", "null_content": False, "kind": "hermes", "notes": []}
    assert d["dropped_by_kind"] == {"not_json": 1} and d["rows_kept"] == 4


def test_describe(smol_tok: Any, write_jsonl: WriteJsonl) -> None:
    path = write_jsonl([ONE_CALL, PARALLEL, UNDEFINED, PLAIN, "oops"])
    _, report, _ = load_training_data(path, smol_tok, max_seq_length=4096)
    text = report.describe()
    assert text.startswith(f"{path}: 5 rows read, 4 kept, 1 dropped (not_json: 1)")
    for part in ("template: hermes (the tokenizer's template does not render: tools, tool_calls); tool-call arguments as object",
                 "tokens per row: min ", "supervised tokens per row: min ", "too long (policy truncate): 0 truncated, 0 dropped",
                 "tools: 3 distinct in `tools`, 3 called; rows with tools 3, with calls 3 of 4",
                 "tool calls: 5 in 4 turns, 1 turns with parallel calls",
                 "calls per tool: get_weather 3, get_time 1, search_web 1"):
        assert part in text, part
    assert DataReport("x").describe() == "x: 0 rows read, 0 kept, 0 dropped"


# ---------------------------------------------------------------- one row, marked

def test_show_row_marks_exactly_the_supervised_text(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    for row in (ONE_CALL, PARALLEL, PLAIN):
        n = norm(row)
        shown = show_row(smol_tok, n, choice)
        ex = tokenize_row(smol_tok, render_row(smol_tok, n, choice))
        assert re.findall("⟦(.*?)⟧", shown, re.S) == supervised_text(smol_tok, ex["input_ids"], ex["assistant_masks"])
        assert shown.replace("⟦", "").replace("⟧", "") == render_row(smol_tok, n, choice).text


def test_show_row_as_trained_is_truncated(smol_tok: Any) -> None:
    choice = choose_template(smol_tok)
    row = norm({"messages": ONE_CALL["messages"] + [{"role": "user", "content": "more " * 300},
                                                   {"role": "assistant", "content": "fine " * 300}], "tools": ONE_CALL["tools"]})
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


# ---------------------------------------------------------------- data_report for notebooks

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


# ---------------------------------------------------------------- forge-nb check-data

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
    assert "too long (policy drop): 0 truncated, 1 dropped" in out and "line 2 as trained" in out and "⟦Plain answer.<|im_end|>⟧" in out
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
    assert "--max-seq-length=0: must be ≥ 64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-data", str(path), "--length-policy", "cut"])


def test_console_script_on_a_few_hundred_rows(write_jsonl: WriteJsonl) -> None:
    "The installed `forge-nb check-data` runs on a file like the real data (the time is not asserted)."
    rows = [ONE_CALL, PARALLEL, PLAIN] * 100
    path = write_jsonl(rows + [{"messages": [U, {"role": "assistant", "content": "0" * 20000}]}])
    exe = shutil.which("forge-nb")
    assert exe, "the forge-nb console script is not installed (pip install -e .)"
    r = subprocess.run([exe, "check-data", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "301 rows read, 300 kept, 1 dropped (too_long: 1)" in r.stdout and "Traceback" not in r.stderr
    assert "⟦" in r.stdout  # not a terminal: markers, not colours
