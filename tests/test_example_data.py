"""Edge cases of `forge_nb.example_data` (the story and the main examples are in nbs/api/04_example_data.ipynb)."""
import copy
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from forge_nb.example_data import (
    EXAMPLE_TOOLS,
    N_MULTI,
    N_PARALLEL,
    N_PLAIN,
    N_PLAIN_NO_TOOLS,
    N_SINGLE,
    check_example_row,
    conversation_kind,
    example_data_path,
    make_example_rows,
    write_example_data,
)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


SEEDS = [0, 1, 2, 7, 12345]


def calls(row: dict) -> list[dict]:
    return [c["function"] for m in row["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]


def _broken(f):
    row = copy.deepcopy(next(r for r in make_example_rows() if conversation_kind(r) == "single"))
    f(row)
    return row


def test_shipped_file_is_in_the_package():
    p = example_data_path()
    assert p.parts[-3:] == ("forge_nb", "assets", "example_tool_calls.jsonl")
    assert p.is_file()


def test_shipped_file_equals_generator():
    "Regenerate with: python -m forge_nb.example_data"
    assert read_jsonl(example_data_path()) == make_example_rows()
    expected = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in make_example_rows())
    assert example_data_path().read_bytes() == expected.encode("utf-8")  # byte for byte


def test_shipped_file_is_one_compact_object_per_line():
    text = example_data_path().read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n" not in text
    assert "°" in text  # written with ensure_ascii=False
    for line in text.splitlines():
        assert set(json.loads(line)) == {"messages", "tools"}


def test_shipped_file_is_readable_by_all():
    assert example_data_path().stat().st_mode & 0o444 == 0o444


def test_shipped_file_is_short_in_tokens():
    "The README trains on this file on a CPU: rows rendered with the Hermes template stay short."
    from forge_nb.data import load_training_data
    from forge_nb.models import load_tokenizer
    try:
        tok = load_tokenizer("smollm2-135m")
    except OSError as e:
        pytest.skip(f"SmolLM2 tokenizer not available: {e}")
    _, report, _ = load_training_data(example_data_path(), tok, 2048, "strict")
    tokens = report.token_stats["tokens"]
    assert tokens["max"] <= 480 and tokens["p50"] <= 360
    assert report.token_stats["total_tokens_kept"] <= 13500


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_are_deterministic_per_seed(seed):
    assert make_example_rows(seed) == make_example_rows(seed)


def test_other_seed_gives_other_rows():
    assert make_example_rows(0) != make_example_rows(1)
    assert make_example_rows() == make_example_rows(0)


def test_rows_do_not_share_mutable_state():
    rows = make_example_rows()
    for row in rows:
        row["messages"][0]["content"] = "changed"
        for t in row["tools"]: t["function"]["name"] = "changed"
    fresh = make_example_rows()
    assert fresh != rows and fresh[0]["messages"][0]["content"] != "changed"
    assert all(t["function"]["name"] == n for n, t in EXAMPLE_TOOLS.items())


def test_example_tools():
    assert set(EXAMPLE_TOOLS) == {"get_weather", "convert_currency", "search_files", "create_event",
                                  "get_stock_price"}
    for name, tool in EXAMPLE_TOOLS.items():
        assert tool["type"] == "function"
        fn = tool["function"]
        assert fn["name"] == name and fn["description"]
        params = fn["parameters"]
        jsonschema.Draft202012Validator.check_schema(params)
        assert params["type"] == "object" and set(params["required"]) <= set(params["properties"])


@pytest.mark.parametrize("seed", SEEDS)
def test_category_counts(seed):
    rows = make_example_rows(seed)
    assert len(rows) == N_SINGLE + N_MULTI + N_PARALLEL + N_PLAIN == 40
    assert Counter(map(conversation_kind, rows)) == {"single": N_SINGLE, "multi": N_MULTI,
                                                     "parallel": N_PARALLEL, "plain": N_PLAIN}
    assert sum(r["tools"] == [] for r in rows) == N_PLAIN_NO_TOOLS
    assert N_PLAIN_NO_TOOLS < N_PLAIN


@pytest.mark.parametrize("seed", SEEDS)
def test_every_row_passes_check_example_row(seed):
    for row in make_example_rows(seed):
        check_example_row(row)


@pytest.mark.parametrize("seed", SEEDS)
def test_calls_name_row_tools_and_arguments_validate(seed):
    "The same promises as check_example_row, checked independently of it."
    fc = jsonschema.FormatChecker()
    for row in make_example_rows(seed):
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in row["tools"]}
        for c in calls(row):
            assert c["name"] in schemas
            assert isinstance(c["arguments"], dict)
            jsonschema.validate(c["arguments"], schemas[c["name"]], format_checker=fc)
            assert set(c["arguments"]) <= set(schemas[c["name"]]["properties"])


@pytest.mark.parametrize("seed", SEEDS)
def test_tool_messages_follow_their_calls(seed):
    for row in make_example_rows(seed):
        msgs = row["messages"]
        assert msgs[0] == {"role": "system", "content": msgs[0]["content"]} and msgs[1]["role"] == "user"
        for i, m in enumerate(msgs):
            assert m["role"] in {"system", "user", "assistant", "tool"}
            if m["role"] == "assistant" and m.get("tool_calls"):
                assert m["content"] == ""
                assert all(c["type"] == "function" for c in m["tool_calls"])
                n = len(m["tool_calls"])
                results = msgs[i + 1:i + 1 + n]
                assert [r["role"] for r in results] == ["tool"] * n
                assert [r["name"] for r in results] == [c["function"]["name"] for c in m["tool_calls"]]
                for r in results: json.loads(r["content"])  # a JSON string
            if m["role"] == "tool":
                prev = next(p for p in reversed(msgs[:i]) if p["role"] != "tool")
                assert prev["role"] == "assistant" and m["name"] in {c["function"]["name"] for c in prev["tool_calls"]}


@pytest.mark.parametrize("seed", SEEDS)
def test_conversations_end_with_an_answer(seed):
    for row in make_example_rows(seed):
        last = row["messages"][-1]
        assert last["role"] == "assistant" and not last.get("tool_calls")
        assert isinstance(last["content"], str) and last["content"].strip()


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_carry_their_tools_and_at_most_one_distractor(seed):
    with_distractor = Counter()
    for row in make_example_rows(seed):
        names = [t["function"]["name"] for t in row["tools"]]
        called = {c["name"] for c in calls(row)}
        kind = conversation_kind(row)
        assert len(names) == len(set(names)) <= 2
        assert called <= set(names) and len(set(names) - called) <= 1
        if kind in ("multi", "parallel"): assert set(names) == called
        if kind == "plain": assert len(names) in (0, 1)
        with_distractor[kind] += len(set(names) - called) == 1
    assert with_distractor["single"] == N_SINGLE // 2  # every second single call has a distractor
    assert with_distractor["plain"] == N_PLAIN - N_PLAIN_NO_TOOLS


def test_arguments_include_numbers():
    args = [c["arguments"] for row in make_example_rows() for c in calls(row)]
    assert any(isinstance(a.get("amount"), float) for a in args)
    assert any(isinstance(a.get("minutes"), int) for a in args)
    assert any("unit" in a for a in args) and any("directory" in a for a in args)
    assert any(a.keys() == {"pattern"} for a in args)  # optional argument left out


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_round_second_call_uses_first_result(seed):
    seen = set()
    for row in make_example_rows(seed):
        if conversation_kind(row) != "multi": continue
        first, second = calls(row)
        result = json.loads(next(m for m in row["messages"] if m["role"] == "tool")["content"])
        seen.add(first["name"])
        if first["name"] == "get_stock_price":  # a number of shares at that price, converted
            amount, price = second["arguments"]["amount"], result["price"]
            assert round(amount / price) >= 1 and amount == round(round(amount / price) * price, 2)
        if first["name"] == "get_weather":  # bad weather, so a second city is checked
            assert result["conditions"] in {"rainy", "drizzly", "stormy"}
            assert second["name"] == "get_weather" and second["arguments"]["city"] != first["arguments"]["city"]
        if first["name"] == "search_files":  # nothing found, so another folder is searched
            assert result["matches"] == [] and second["name"] == "search_files"
            assert second["arguments"]["directory"] != first["arguments"]["directory"]
    assert seen == {"get_stock_price", "get_weather", "search_files"}


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_are_short(seed):
    for row in make_example_rows(seed):
        assert len(json.dumps(row, ensure_ascii=False)) < 1400


@pytest.mark.parametrize("breaker, message", [
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(name="nope"), "not in this row's tools"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments={}), "required property"),
    (lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="{}"), "not an object"),
    (lambda r: r["messages"][3].update(name="other"), "without a pending call"),
    (lambda r: r["messages"].pop(3), "before results"),
    (lambda r: r["messages"].pop(), "does not end"),
    (lambda r: r["messages"][-1].update(content=""), "does not end"),
])
def test_check_example_row_rejects(breaker, message):
    with pytest.raises(ValueError, match=message):
        check_example_row(_broken(breaker))


def test_check_example_row_checks_formats():
    row = next(r for r in make_example_rows() if any(c["name"] == "create_event" for c in calls(r)))
    row = copy.deepcopy(row)
    call = next(c for c in calls(row) if c["name"] == "create_event")
    call["arguments"]["date"] = "14/03/2025"
    with pytest.raises(ValueError, match="date"):
        check_example_row(row)


def test_write_example_data_roundtrip(tmp_path):
    rows = make_example_rows(3)
    p = write_example_data(tmp_path / "new" / "rows.jsonl", rows)
    assert p == tmp_path / "new" / "rows.jsonl"
    assert read_jsonl(p) == rows
    assert [x.name for x in p.parent.iterdir()] == ["rows.jsonl"]


def test_write_example_data_leaves_file_world_readable(tmp_path):
    "Not the 0600 of the temporary file it is written through."
    p = write_example_data(tmp_path / "rows.jsonl", make_example_rows()[:1])
    assert p.stat().st_mode & 0o777 == 0o644
    p.chmod(0o600)
    write_example_data(p, make_example_rows()[:2])  # also when replacing a file with other permissions
    assert p.stat().st_mode & 0o777 == 0o644


def test_write_example_data_defaults_to_generator(tmp_path):
    p = write_example_data(str(tmp_path / "d.jsonl"))
    assert read_jsonl(p) == make_example_rows()


def test_write_example_data_is_atomic(tmp_path):
    p = write_example_data(tmp_path / "rows.jsonl", make_example_rows()[:2])
    before = p.read_bytes()
    with pytest.raises(TypeError):
        write_example_data(p, [{"messages": [], "bad": object()}])
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir()] == ["rows.jsonl"]
