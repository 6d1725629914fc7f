"""Edge cases of `forge_nb.toolcalls` (the story and the main examples are in nbs/api/07_toolcalls.ipynb)."""

import pytest
from eval_samples import BFCL_ROW, CONV, FORECAST, LISBON, OSLO, TIME, TOOLS, call  # tests/ is on sys.path

from forge_nb.rows import DataError, RowError, normalize_row, normalize_tools
from forge_nb.toolcalls import (
    METRICS,
    ParsedCall,
    bfcl_tools,
    canonical_json,
    eval_rows_from_conversations,
    normalize_eval_row,
    parse_tool_calls,
    read_eval_rows,
    same_json,
    schema_error,
    score_prediction,
    score_rows,
    summarize,
)


def flags(s):
    return (s.called, s.valid_json, s.schema_valid, s.names_correct, s.args_correct, s.correct)


@pytest.mark.parametrize("text", [
    call("get_weather", {"city": "Oslo"}),
    call("get_weather", {"city": "Oslo"}) + "<|im_end|>",
    "  \n" + call("get_weather", {"city": "Oslo"}) + "\n\n  ",
    "Sure, let me check.\n" + call("get_weather", {"city": "Oslo"}) + "\nOne moment.",
    '<tool_call>{"name":"get_weather","arguments":"{\\"city\\": \\"Oslo\\"}"}</tool_call>',
    '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```\n</tool_call>',
    '<tool_call>{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}</tool_call>',
    '<think>I should call <tool_call>{"name": "x", "arguments": {}}</tool_call>?</think>'
    + call("get_weather", {"city": "Oslo"}),
], ids=["clean", "im_end", "whitespace", "text-around", "args-string", "fenced", "openai-form", "think"])
def test_parse_one_clean_call(text):
    c, = parse_tool_calls(text)
    assert (c.name, c.arguments, c.valid_json, c.tagged, c.truncated, c.error) == \
        ("get_weather", {"city": "Oslo"}, True, True, False, None)


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
    calls = parse_tool_calls(call("get_weather", {"city": "Oslo"}) + "<|im_end|>\n<|im_start|>user\n"
                             + call("get_time", {"tz": "UTC"}))
    assert [c.name for c in calls] == ["get_weather"]


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
    exp = [{"name": "get_weather", "arguments": {"city": "Oslo"}},
           {"name": "get_weather", "arguments": {"city": "Rome", "days": 2}},
           {"name": "get_time", "arguments": {"tz": "UTC"}}]
    a = (call("get_weather", {"city": "Oslo"}) + call("get_weather", {"days": 2, "city": "Rome"})
         + call("get_time", {"tz": "UTC"}))
    b = (call("get_time", {"tz": "UTC"}) + call("get_weather", {"city": "Rome", "days": 2.0})
         + call("get_weather", {"city": "Oslo"}))
    assert score_prediction(exp, a, TOOLS).correct and score_prediction(exp, b, TOOLS).correct
    half = score_prediction(exp, call("get_weather", {"city": "Rome", "days": 2}) + call("get_time", {"tz": "UTC"}),
                            TOOLS)
    assert flags(half) == (True, True, True, False, False, False)
    assert [(m["name"], m["name_ok"], m["args_ok"]) for m in half.matches] == \
        [("get_weather", False, False), ("get_weather", True, True), ("get_time", True, True)]


def test_score_no_call_expected():
    assert flags(score_prediction([], "Hello! How can I help?", TOOLS)) == (False, None, None, None, None, True)
    assert flags(score_prediction([], call("get_weather", {"city": "Oslo"}), TOOLS)) == \
        (True, True, True, None, None, False)


def test_score_accepts_openai_form_parsed_calls_and_rows_without_tools():
    exp = [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    s = score_prediction(exp, [ParsedCall("get_weather", {"city": "Oslo"})])
    assert s.correct and s.schema_valid is None and s.schema_ok == [None]
    with pytest.raises(RowError, match=r"expected\[0\]\.name"):
        score_prediction([{"arguments": {}}], "")


def test_summarize_metrics_counts_and_per_tool():
    scores = [score_prediction(OSLO, call("get_weather", {"city": "Oslo"}), TOOLS),
              score_prediction(OSLO, call("get_weather", {"city": "Bergen"}), TOOLS),
              score_prediction(OSLO, '<tool_call>{"name": "get_weather", "arguments": {', TOOLS),
              score_prediction(OSLO, "No.", TOOLS),
              score_prediction([], "Hi!", TOOLS),
              score_prediction([], call("get_time", {"tz": "UTC"}), TOOLS),
              score_prediction([{"name": "get_time", "arguments": {"tz": "UTC"}}],
                               '{"name": "get_time", "arguments": {"tz": "UTC"}}', TOOLS)]
    r = summarize(scores)
    assert r["metrics"] == {"call_rate": 0.8, "valid_json_rate": 0.8, "schema_valid_rate": 0.8, "name_accuracy": 0.8,
                            "argument_accuracy": 0.4, "full_call_accuracy": 0.4, "no_call_accuracy": 0.5,
                            "accuracy": 0.4286}
    assert r["counts"] == {"rows": 7, "rows_expecting_calls": 5, "rows_expecting_no_call": 2, "rows_correct": 3,
                           "expected_calls": 5, "calls_produced": 5, "invalid_json_calls": 1, "untagged_calls": 1,
                           "truncated_calls": 1, "unexpected_calls": 1}
    assert list(r["per_tool"]) == ["get_weather", "get_time"]
    assert r["per_tool"]["get_weather"] == {"expected_calls": 4, "name_accuracy": 0.75, "argument_accuracy": 0.25,
                                            "full_call_accuracy": 0.25, "produced_calls": 3,
                                            "schema_valid_rate": 0.6667, "unexpected_calls": 0}
    assert r["per_tool"]["get_time"] == {"expected_calls": 1, "name_accuracy": 1.0, "argument_accuracy": 1.0,
                                         "full_call_accuracy": 1.0, "produced_calls": 2, "schema_valid_rate": 1.0,
                                         "unexpected_calls": 1}
    assert set(r["metrics"]) == {k for k, _ in METRICS}


def test_summarize_nothing_to_divide_by():
    r = summarize([score_prediction([], "Hi", TOOLS)])
    m = r["metrics"]
    assert m["call_rate"] is None and m["valid_json_rate"] is None and m["no_call_accuracy"] == 1.0
    assert summarize([])["metrics"]["accuracy"] is None


def test_score_rows_keeps_failures_to_read():
    rows = eval_rows_from_conversations([{**normalize_row(CONV)[0], "_line": 7}])
    outputs = [call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "Asia/Tokyo"}),
               call("get_time", {"tz": "UTC"}), "Anytime."]
    r = score_rows(rows, outputs)
    assert r["metrics"]["accuracy"] == 0.6667
    f, = r["failures"]
    assert (f["line"], f["turn"], f["prompt"], f["expected"], f["problems"]) == \
        (7, 5, "[tool get_time] 21:00", [], ["no call was expected, got 1"])
    assert f["produced"][0]["name"] == "get_time" and f["output"].startswith("<tool_call>")
    assert score_rows(rows, ["", "", ""], max_failures=1)["failures"][0]["turn"] == 2
    with pytest.raises(ValueError, match="3 rows but 1 outputs"):
        score_rows(rows, [""])


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
                                     "expected_calls": [{"name": "get_time", "arguments": '{"tz": "UTC"}'},
                                                        {"name": "nope", "arguments": {}}]})
    assert row["expected_calls"] == [{"name": "get_time", "arguments": {"tz": "UTC"}},
                                     {"name": "nope", "arguments": {}}]
    assert warns == ["expected_calls[1].name: 'nope' is not in tools"] and row["tools"] == TOOLS


@pytest.mark.parametrize("obj, field, kind", [
    ([], "", "not_object"),
    ({"expected_calls": []}, "messages", "no_messages"),
    ({"messages": [{"role": "bot", "content": "x"}], "expected_calls": []}, "messages[0].role", "bad_role"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "expected_calls": []},
     "messages[1]", "bad_prompt"),
    ({"messages": [{"role": "system", "content": "x"}], "expected_calls": []}, "messages[0]", "bad_prompt"),
    ({"messages": [{"role": "user", "content": "x"}]}, "expected_calls", "bad_expected"),
    ({"messages": [{"role": "user", "content": "x"}], "expected_calls": [{"name": "f", "arguments": "{oops"}]},
     "expected_calls[0].arguments", "bad_arguments"),
    ({"messages": [{"role": "user", "content": "x"}], "expected_calls": [{"arguments": {}}]},
     "expected_calls[0].name", "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"x": 1}], "expected_calls": []},
     "tools[0]", "bad_tools"),
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
    assert rep.warnings[0]["line"] == 5
    assert "tools[0].function.parameters: not a valid JSON Schema" in rep.warnings[0]["message"]
    with pytest.raises(DataError, match=r"data\.jsonl:4: messages\[0\]: conversation ends on a user turn"):
        read_eval_rows(path, mode="strict")


def test_read_eval_rows_nothing_usable(write_jsonl, tmp_path):
    with pytest.raises(DataError, match="no usable eval rows: the file is empty"):
        read_eval_rows(write_jsonl(["", ""]))
    with pytest.raises(FileNotFoundError):
        read_eval_rows(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="mode"):
        read_eval_rows(tmp_path / "missing.jsonl", mode="lenient")


# ---------------------------------------------------------------- BFCL-style rows: possible answers, BFCL's rules

U = {"role": "user", "content": "Weather?"}
BFCL_TOOLS = [*bfcl_tools([FORECAST]), TIME]


def bfcl_score(reply, expected=LISBON):
    "The score of `reply` against BFCL possible answers (`LISBON` unless given), with get_forecast and get_time."
    return score_prediction(expected, reply, BFCL_TOOLS, rules="bfcl")


@pytest.mark.parametrize("expected, args, correct", [
    (LISBON, {"city": "Lisbon", "days": 2}, True),
    (LISBON, {"city": "Lisbon", "days": 2.0}, True),  # a whole float where an integer is listed: by value
    (LISBON, {"city": "Lisbon", "days": 3}, False),
    (LISBON, {"city": "Lisbon", "days": "2"}, False),  # a string is not a number
    ([{"get_forecast": {"city": ["Lisbon"], "days": [1]}}], {"city": "Lisbon", "days": True}, False),  # true is not 1
], ids=["same", "float-for-int", "other-number", "string", "bool"])
def test_bfcl_numbers_compare_by_value(expected, args, correct):
    assert bfcl_score(call("get_forecast", args), expected).correct is correct


def test_bfcl_an_integer_is_accepted_where_a_float_is_listed():
    exp = [{"get_forecast": {"city": ["Lisbon"], "days": [2], "min_temp": [12.0]}}]
    assert bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2, "min_temp": 12}), exp).correct
    assert bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2, "min_temp": 12.5}), exp).problems == \
        ["get_forecast: min_temp: 12.5 is not one of [12.0]"]


@pytest.mark.parametrize("city, correct", [
    ("Lisbon", True), ("LISBON", True), (" lis-bon. ", True), ("Lisbon,Portugal", True), ("lisbon_portugal", True),
    ("Lisboa", False), ("Lisbon, Spain", False), ("", False)])
def test_bfcl_strings_are_normalised(city, correct):
    "BFCL's standardize_string: case, spaces and `,./-_*^` do not count."
    assert bfcl_score(call("get_forecast", {"city": city, "days": 2})).correct is correct


def test_bfcl_optional_argument_may_be_left_out_a_required_one_may_not():
    assert bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2})).correct  # unit: ["celsius", ""]
    assert bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2, "unit": "Celsius"})).correct
    s = bfcl_score(call("get_forecast", {"city": "Lisbon"}))
    assert flags(s) == (True, True, False, True, False, False)
    assert s.problems[-1] == "get_forecast: missing argument 'days'"


def test_bfcl_another_listed_value_is_right_a_value_not_listed_is_wrong():
    assert bfcl_score(call("get_forecast", {"city": "Lisbon, Portugal", "days": 2})).correct
    s = bfcl_score(call("get_forecast", {"city": "Porto", "days": 2}))
    assert flags(s) == (True, True, True, True, False, False)
    assert s.problems == ['get_forecast: city: "Porto" is not one of ["Lisbon", "Lisbon, Portugal"]']
    s = bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2, "unit": "fahrenheit"}))
    assert s.problems == ['get_forecast: unit: "fahrenheit" is not one of ["celsius", ""]']


def test_bfcl_unexpected_argument_is_wrong():
    s = bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2, "min_temp": 10}))  # in the schema, not listed
    assert (s.schema_valid, s.names_correct, s.args_correct, s.correct) == (True, True, False, False)
    assert s.problems == ["get_forecast: unexpected argument 'min_temp'"]


def test_bfcl_lists_and_objects_by_the_same_rules_inside():
    exp = [{"q": {"tags": [["Red wine", "cheese"], ["cheese", "Red wine"]],  # each order a value of its own
                  "where": [{"city": ["Lisbon"], "zip": ["", "1100"]}],  # an object: its keys list values
                  "rows": [[{"field": ["age"]}, {"field": ["name"]}]], "note": [None]}}]  # a list of objects; null
    ok = {"tags": ["red-wine", "CHEESE"], "where": {"city": "lisbon"}, "rows": [{"field": "Age"}, {"field": "name"}],
          "note": None}
    assert score_prediction(exp, call("q", ok), rules="bfcl").correct
    assert score_prediction(exp, call("q", {**ok, "tags": ["Cheese", "red wine"]}), rules="bfcl").correct
    for change in ({"tags": ["cheese"]}, {"tags": ["cheese", "wine"]}, {"where": {"city": "Lisbon", "x": 1}},
                   {"where": {"zip": "1100"}}, {"where": "Lisbon"}, {"rows": [{"field": "name"}, {"field": "age"}]},
                   {"note": "None"}, {"note": False}):
        s = score_prediction(exp, call("q", {**ok, **change}), rules="bfcl")
        assert (s.names_correct, s.correct) == (True, False), change


def test_bfcl_parallel_calls_in_any_order_and_a_missing_call():
    exp = [*LISBON, {"get_forecast": {"city": ["Porto"], "days": [1]}}, {"get_time": {"tz": ["Europe/Lisbon", "WET"]}}]
    reply = (call("get_time", {"tz": "wet"}) + call("get_forecast", {"city": "porto", "days": 1})
             + call("get_forecast", {"city": "Lisbon", "days": 2}))
    assert bfcl_score(reply, exp).correct
    s = bfcl_score(call("get_forecast", {"city": "Porto", "days": 1}) + call("get_time", {"tz": "WET"}), exp)
    assert flags(s) == (True, True, True, False, False, False) and s.problems == ["missing call to get_forecast"]
    assert [m["args_ok"] for m in s.matches] == [False, True, True]


def test_bfcl_row_expecting_no_call():
    assert bfcl_score("No tool tells jokes.", []).correct
    called = bfcl_score(call("get_forecast", {"city": "Lisbon", "days": 2}), [])
    assert (called.correct, called.problems) == (False, ["no call was expected, got 1"])
    assert bfcl_score("Sorry.").problems == ["no tool call"]


def test_score_prediction_rules():
    reply = call("get_forecast", {"city": "lisbon", "days": 2})
    assert not score_prediction([{"name": "get_forecast", "arguments": {"city": "Lisbon", "days": 2}}], reply).correct
    s = score_prediction([{"get_forecast": {"city": ["Lisbon"], "days": [2]}}], reply, rules="bfcl")
    assert s.correct and s.to_dict()["rules"] == "bfcl"
    flat = [{"name": "get_forecast", "arguments": {"city": ["Lisbon"], "days": [2]}}]  # a row's expected_calls, read
    assert score_prediction(flat, reply, rules="bfcl").correct
    with pytest.raises(ValueError, match="rules='fuzzy': must be one of exact, bfcl"):
        score_prediction(OSLO, "", TOOLS, rules="fuzzy")
    with pytest.raises(RowError, match=r"expected\[0\]\.get_forecast\.city: must be a non-empty list"):
        score_prediction([{"get_forecast": {"city": "Lisbon"}}], "", rules="bfcl")


def test_bfcl_tools_types_as_json_schema():
    fn = {"name": "q", "parameters": {"type": "dict", "properties": {
        "where": {"type": "dict", "properties": {"lat": {"type": "float"}, "note": {"type": "any"}}},
        "pairs": {"type": "array", "items": {"type": "tuple", "items": {"type": "float"}}},
        "big": {"type": "Bigint"}, "untyped": {"description": "no type"}, "either": {"type": ["string", "null"]}}}}
    t, = bfcl_tools(fn)  # one function, not in a list
    p = t["function"]["parameters"]
    assert (t["type"], t["function"]["name"], p["type"]) == ("function", "q", "object")
    where = p["properties"]["where"]
    assert (where["type"], where["properties"]["lat"]["type"], where["properties"]["note"]["type"]) == \
        ("object", "number", "string")
    assert p["properties"]["pairs"]["items"] == {"type": "array", "items": {"type": "number"}}
    assert [p["properties"][k]["type"] for k in ("big", "untyped", "either")] == \
        ["integer", "string", ["string", "null"]]
    assert fn["parameters"]["type"] == "dict"  # the input is left as it was
    assert bfcl_tools([{"name": "f"}])[0]["function"]["parameters"] == {"type": "object"}
    for bad, field in [(None, "function"), ("f", "function"), ([{"description": "x"}], "function[0]"),
                       ([{"name": " "}], "function[0]")]:
        with pytest.raises(RowError) as e:
            bfcl_tools(bad)
        assert (e.value.field, e.value.kind) == (field, "bad_function")


def test_normalize_eval_row_bfcl_forms():
    row, warns = normalize_eval_row(BFCL_ROW)
    assert (row["rules"], warns, row["messages"]) == ("bfcl", [], BFCL_ROW["question"][0])
    assert row["tools"] == bfcl_tools([FORECAST]) and row["tools"][0]["function"]["parameters"]["type"] == "object"
    assert row["expected_calls"] == [{"name": "get_forecast", "arguments": LISBON[0]["get_forecast"]}]
    # forge_nb's prompt fields with BFCL's possible answers; a question as one string, or as a list of messages
    oslo = [{"get_weather": {"city": ["Oslo"]}}]
    mine, _ = normalize_eval_row({"messages": [U], "tools": TOOLS, "ground_truth": oslo})
    assert (mine["rules"], mine["tools"]) == ("bfcl", TOOLS)
    assert normalize_eval_row({**BFCL_ROW, "question": "Lisbon?"})[0]["messages"] == \
        [{"role": "user", "content": "Lisbon?"}]
    assert normalize_eval_row({**BFCL_ROW, "question": [U]})[0]["messages"] == [U]
    # expected_calls keeps the rules "exact", beside BFCL's question too
    assert normalize_eval_row({"messages": [U], "tools": TOOLS, "expected_calls": OSLO})[0]["rules"] == "exact"
    no_gt = {k: v for k, v in BFCL_ROW.items() if k != "ground_truth"}
    assert normalize_eval_row({**no_gt, "expected_calls": []})[0]["rules"] == "exact"
    _, warns = normalize_eval_row({**BFCL_ROW, "ground_truth": oslo})
    assert warns == ["ground_truth[0]: 'get_weather' is not in tools"]


def _without(row, key):
    return {k: v for k, v in row.items() if k != key}


@pytest.mark.parametrize("obj, field, kind", [
    ({**BFCL_ROW, "ground_truth": {}}, "ground_truth", "bad_expected"),
    (_without(BFCL_ROW, "ground_truth"), "ground_truth", "bad_expected"),  # an irrelevance row needs []
    ({**BFCL_ROW, "ground_truth": [{"get_forecast": {"city": "Lisbon"}}]}, "ground_truth[0].get_forecast.city",
     "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": [{"get_forecast": {"city": []}}]}, "ground_truth[0].get_forecast.city",
     "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": [{"get_forecast": {}, "get_time": {}}]}, "ground_truth[0]", "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": ["get_forecast"]}, "ground_truth[0]", "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": [{"get_forecast": ["Lisbon"]}]}, "ground_truth[0].get_forecast", "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": [{"q": {"where": [{"city": "Lisbon"}]}}]}, "ground_truth[0].q.where[0].city",
     "bad_ground_truth"),
    ({**BFCL_ROW, "ground_truth": [{"q": {"rows": [[{"f": 1}]]}}]}, "ground_truth[0].q.rows[0][0].f",
     "bad_ground_truth"),
    ({"messages": [U], "ground_truth": [{"f": {"x": 1}}]}, "ground_truth[0].f.x", "bad_ground_truth"),
    ({**BFCL_ROW, "expected_calls": []}, "ground_truth", "mixed_forms"),
    ({**BFCL_ROW, "messages": [U]}, "messages", "mixed_forms"),
    ({**BFCL_ROW, "tools": TOOLS}, "tools", "mixed_forms"),
    ({**BFCL_ROW, "question": [[U], [U]]}, "question", "bad_question"),
    ({**BFCL_ROW, "question": []}, "question", "no_messages"),
    ({**BFCL_ROW, "question": [[{"role": "bot", "content": "x"}]]}, "question[0][0].role", "bad_role"),
    ({**BFCL_ROW, "question": [[{"role": "system", "content": "x"}]]}, "question[0][0]", "bad_prompt"),
    ({**BFCL_ROW, "function": [{"description": "no name"}]}, "function[0]", "bad_function"),
    (_without(BFCL_ROW, "function"), "function", "bad_function"),
])
def test_normalize_eval_row_bfcl_errors(obj, field, kind):
    with pytest.raises(RowError) as e:
        normalize_eval_row(obj)
    assert (e.value.field, e.value.kind) == (field, kind)


def test_read_eval_rows_bfcl_lines_and_errors_with_file_line_and_field(write_jsonl):
    bad = {**BFCL_ROW, "ground_truth": [{"get_forecast": {"city": "Lisbon", "days": [2]}}]}
    path = write_jsonl([BFCL_ROW, {"messages": [U], "tools": TOOLS, "expected_calls": OSLO}, bad,
                        {**BFCL_ROW, "question": [[U], [U]]}])
    rows, rep = read_eval_rows(path)
    assert [(r["_line"], r["_source"], r["rules"]) for r in rows] == [(1, "eval", "bfcl"), (2, "eval", "exact")]
    assert [(d["line"], d["field"], d["kind"]) for d in rep.dropped] == \
        [(3, "ground_truth[0].get_forecast.city", "bad_ground_truth"), (4, "question", "bad_question")]
    with pytest.raises(DataError, match=r"data\.jsonl:3: ground_truth\[0\]\.get_forecast\.city: must be a non-empty "
                                        r"list of acceptable values .*, got 'Lisbon'"):
        read_eval_rows(path, mode="strict")


def test_score_rows_scores_each_row_by_its_rules():
    rows = [normalize_eval_row(BFCL_ROW)[0],
            normalize_eval_row({"messages": [U], "tools": TOOLS, "expected_calls": OSLO})[0],
            eval_rows_from_conversations([normalize_row(CONV)[0]])[0]]  # no `rules`: "exact"
    both = call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "Asia/Tokyo"})
    r = score_rows(rows, [call("get_forecast", {"city": "lisbon", "days": 2}), call("get_weather", {"city": "oslo"}),
                          both])
    assert r["counts"]["rows_correct"] == 2
    f, = r["failures"]
    assert f["problems"] == ['get_weather: arguments differ: expected {"city": "Oslo"}, got {"city": "oslo"}']
    f, = score_rows(rows[:1], [call("get_forecast", {"city": "Porto", "days": 2})])["failures"]
    assert f["expected"] == [{"name": "get_forecast", "arguments": LISBON[0]["get_forecast"]}]
    assert f["problems"] == ['get_forecast: city: "Porto" is not one of ["Lisbon", "Lisbon, Portugal"]']
