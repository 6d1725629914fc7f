"""The length policy: `max_seq_length` is the only length limit; a row over it is cut after its
last whole assistant turn that fits ("truncate", the default) or dropped ("drop"), and the report
counts both."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forge_nb.config import TrainingConfig
from forge_nb.data import (
    LENGTH_POLICIES,
    DataError,
    build_dataset,
    choose_template,
    load_training_data,
    normalize_row,
    read_jsonl,
    render_row,
    supervised_text,
    tokenize_row,
    truncate_row,
)

WriteJsonl = Callable[..., Path]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>'


def call(name: str, args: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args}}


def long_conversation(tail_words: int = 400) -> dict:
    "A call, its answer, then a long follow-up: assistant turns at messages 1, 3 and 5."
    return {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Oslo"})]},
        {"role": "tool", "name": "get_weather", "content": '{"temp_c": 4}'},
        {"role": "assistant", "content": "It is 4 °C in Oslo."},
        {"role": "user", "content": "Tell me more. " + "weather " * tail_words},
        {"role": "assistant", "content": "Cold and grey, " + "really " * tail_words + "grey."}], "tools": [WEATHER]}


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


def test_truncate_keeps_exact_tokens_of_whole_turns(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
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
            assert tl == {"rows_dropped": 0, "rows_truncated": 0, "tokens_removed": 0, "max_excess": 0} and not report.truncated
        else:
            assert tl == {"rows_dropped": 0, "rows_truncated": 1, "tokens_removed": full - sizes[kept_turn], "max_excess": full - limit}
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
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    rows, report = read_jsonl(write_jsonl([good, long_conversation()]))
    ds = build_dataset(rows, smol_tok, choose_template(smol_tok), sizes[1] - 1, report)
    assert len(ds) == 1
    assert report.dropped_by_kind == {"too_long": 1}
    d = report.dropped[0]
    assert d["line"] == 2 and f"{sizes[5]} tokens > max_seq_length={sizes[1] - 1}" in d["message"]
    assert "first assistant turn" in d["message"]
    assert report.token_stats["too_long"] == {"rows_dropped": 1, "rows_truncated": 0, "tokens_removed": sizes[5],
                                              "max_excess": sizes[5] - sizes[1] + 1}


def test_drop_policy_drops_what_truncate_would_cut(smol_tok: Any, write_jsonl: WriteJsonl, sizes: dict[int, int]) -> None:
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    path = write_jsonl([good, long_conversation(), long_conversation(), "not json"])
    limit = sizes[3]
    ds, report, _ = load_training_data(path, smol_tok, max_seq_length=limit, length_policy="drop")
    assert len(ds) == 1 and report.dropped_by_kind == {"too_long": 2, "not_json": 1}
    assert report.token_stats["length_policy"] == "drop"
    assert report.token_stats["too_long"] == {"rows_dropped": 2, "rows_truncated": 0, "tokens_removed": 2 * sizes[5],
                                              "max_excess": sizes[5] - limit}
    ds, report, _ = load_training_data(path, smol_tok, max_seq_length=limit)
    assert len(ds) == 3 and report.dropped_by_kind == {"not_json": 1}
    assert report.token_stats["too_long"] == {"rows_dropped": 0, "rows_truncated": 2,
                                              "tokens_removed": 2 * (sizes[5] - sizes[3]), "max_excess": sizes[5] - limit}
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
    row["messages"][5] = {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Bergen " * 400})]}
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


def test_nothing_fits_says_why_and_what_to_change(smol_tok, write_jsonl):
    "Every row over max_seq_length: the error names the reason and the setting, not a Python dict or line 0."
    from forge_nb.data import DataError, load_training_data
    from samples import ANSWER, USER
    path = write_jsonl([{"messages": [{"role": "user", "content": USER * 20}, {"role": "assistant", "content": ANSWER}]}] * 2)
    with pytest.raises(DataError) as err:
        load_training_data(path, smol_tok, max_seq_length=64)
    msg = str(err.value)
    assert msg.startswith(f"{path}: no usable conversations") and "2 too long" in msg and "max_seq_length=64" in msg
    assert "{" not in msg and ":0:" not in msg
