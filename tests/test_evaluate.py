"""Edge cases of `forge_nb.evaluate`: prompts, reports and the loss check (the chapter is nbs/api/09_evaluate.ipynb)."""

import json

import pytest
from eval_samples import BFCL_ROW, CONV, call  # tests/ is on sys.path

from forge_nb.chat_templates import choose_template
from forge_nb.data import render_row
from forge_nb.evaluate import format_report, plot_report, render_prompt, stop_token_ids
from forge_nb.rows import normalize_row
from forge_nb.toolcalls import METRICS, RULES, eval_rows_from_conversations, score_rows


def _norm(row):
    "`row` normalised (`normalize_row`)."
    r, _ = normalize_row(row)
    return r


def _tiny_lora(tok, seed=0):
    "A tiny random Llama with the vocabulary of `tok` and a random (non-zero) LoRA adapter: adapter on and off differ."
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024))
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(m, lora)


def test_prompt_is_the_training_render_up_to_the_reply(smol_tok):
    choice = choose_template(smol_tok)
    conv = normalize_row(CONV)[0]
    rendered = render_row(smol_tok, conv, choice)
    rows = eval_rows_from_conversations([conv])
    for row, (start, _) in zip(rows, rendered.spans, strict=True):
        assert render_prompt(smol_tok, row, choice) == rendered.text[:start]
    assert smol_tok.convert_ids_to_tokens(stop_token_ids(smol_tok, choice.template)) == ["<|im_end|>", "<|im_start|>"]


def _side_by_side_report():
    "A report of the three eval rows of `CONV`: the base model never calls, the adapter makes both calls."
    rows = eval_rows_from_conversations([normalize_row(CONV)[0]])
    base = score_rows(rows, ["", "Done.", "Bye."])
    both = call("get_weather", {"city": "Oslo"}) + call("get_time", {"tz": "Asia/Tokyo"})
    ad = score_rows(rows, [both, "Done.", "Bye."])
    delta = {k: None if base["metrics"][k] is None else round(ad["metrics"][k] - base["metrics"][k], 4)
             for k, _ in METRICS}
    return {"data": {"path": "d.jsonl", "evaluated": 3, "rows_skipped": 1},
            "model": {"name": "m", "id": "org/m", "adapter": "a"}, "template": {"kind": "hermes"},
            "generation": {"max_new_tokens": 8}, "results": {"base": base, "adapter": ad}, "delta": delta}


def test_format_report_side_by_side():
    rep = _side_by_side_report()
    base = rep["results"]["base"]
    text = format_report(rep)
    assert "d.jsonl: 3 eval rows (1 expecting a call, 2 expecting none); 1 bad line skipped" in text
    assert "call rate                 0.0%    100.0%   +100.0 pp\n" in text
    assert "valid JSON                 n/a    100.0%\n" in text
    assert "overall accuracy         66.7%    100.0%    +33.3 pp\n" in text
    assert "per tool (adapter)" in text and "failures" not in text
    assert "failures (base): 1 of 3 rows" in format_report({**rep, "results": {"base": base}, "delta": None})


def test_format_report_lists_rows_too_long():
    rep = _side_by_side_report()
    tl = [{"line": i, "turn": 3 if i % 2 else None, "tokens": 3000} for i in range(1, 8)]
    first = format_report({**rep, "data": {**rep["data"], "rows_skipped": 2, "too_long": tl}}).splitlines()[0]
    assert first.endswith("; 2 bad lines skipped; 7 too long for max_seq_length skipped "
                          "(line 1 turn 3, line 2, line 3 turn 3, line 4, line 5 turn 3, …)")


def test_format_report_says_which_rules_scored_the_rows():
    rep = _side_by_side_report()
    assert not any(ln.startswith("rules:") for ln in format_report(rep).splitlines())  # a report that does not say
    lines = format_report({**rep, "data": {**rep["data"], "rules": "bfcl", "rows_by_rules": {"bfcl": 3}}}).splitlines()
    assert lines[2].startswith("template: ") and lines[3:5] == ["rules:    bfcl: " + RULES["bfcl"], ""]
    mixed = {**rep["data"], "rules": "mixed", "rows_by_rules": {"bfcl": 2, "exact": 1}}
    assert "\nrules:    mixed: bfcl (2 rows), exact (1 row)\n" in format_report({**rep, "data": mixed})


def test_cli_eval_scores_a_bfcl_file(smol_tok, write_jsonl, monkeypatch, tmp_path, capsys):
    """`forge-nb eval` on a file of BFCL-style rows, end to end but for the model: loading it and generating are
    faked (the replies are written by hand), the rest is the real command: reading, prompts, scoring, report."""
    import forge_nb.evaluate as ev
    from forge_nb.cli import main
    porto = {**BFCL_ROW, "id": "simple_1", "question": [[{"role": "user", "content": "Tomorrow in Porto?"}]],
             "ground_truth": [{"get_forecast": {"city": ["Porto"], "days": [1], "unit": ["celsius", ""]}}]}
    joke = {**BFCL_ROW, "id": "irrelevance_0", "question": "Tell me a joke.", "ground_truth": []}
    replies = {"Two-day forecast for Lisbon?": call("get_forecast", {"city": "LISBON, portugal", "days": 2.0}),
               "Tomorrow in Porto?": call("get_forecast", {"city": "Porto", "days": 1, "unit": "kelvin"}),
               "Tell me a joke.": "Why did the cloud stay home? It was feeling under the weather."}
    loaded = (None, smol_tok, choose_template(smol_tok), "smollm2-135m")  # no weights: generation is faked too
    monkeypatch.setattr(ev, "load_for_eval", lambda model, adapter: loaded)
    monkeypatch.setattr(ev, "generate_predictions",
                        lambda model, tok, rows, template, **kw: [replies[r["messages"][-1]["content"]] for r in rows])
    out = tmp_path / "r.json"
    assert main(["eval", "--data", str(write_jsonl([BFCL_ROW, porto, joke])), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["data"]["rules"], report["data"]["rows_by_rules"]) == ("bfcl", {"bfcl": 3})
    res = report["results"]["base"]
    assert (res["counts"]["rows_correct"], res["metrics"]["accuracy"]) == (2, 0.6667)
    f, = res["failures"]
    assert (f["line"], f["problems"][-1]) == (2, 'get_forecast: unit: "kelvin" is not one of ["celsius", ""]')
    text = capsys.readouterr().out
    assert "3 eval rows (2 expecting a call, 1 expecting none)" in text
    assert "\nrules:    bfcl: BFCL's possible answers (ground_truth)" in text


def test_plot_report_sizes_its_own_figure():
    import matplotlib.pyplot as plt
    rep = _side_by_side_report()
    ax = plot_report(rep)  # no `ax`: a figure of its own, sized for the metrics drawn
    try:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels[:2] == ["call rate", "valid JSON"] and len(labels) == len(METRICS)
        assert len(ax.patches) == 2 * len(labels)  # a base and an adapter bar per metric
        assert max(p.get_width() for p in ax.patches) == 100.0
        assert tuple(ax.figure.get_size_inches()) == pytest.approx((6, 0.45 * len(labels) + 0.8))
        assert ax.get_title() == "3 eval rows"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "adapter"]
        base_only = plot_report({**rep, "results": {"base": rep["results"]["base"]}})
        assert "valid JSON" not in [t.get_text() for t in base_only.get_yticklabels()]  # no value: left out
    finally:
        plt.close("all")


def test_turn_kinds_label_each_assistant_turn(smol_tok):
    from forge_nb.chat_templates import template_messages
    from forge_nb.data import decode, tokenize_row
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
        with model.disable_adapter():
            want_base = float(model(input_ids=x, labels=labels).loss)
    assert res["adapter"]["all"] == pytest.approx(want_adapter, abs=1e-3)
    assert res["base"]["all"] == pytest.approx(want_base, abs=1e-3)
    assert res["tokens"]["tool_call"] + res["tokens"]["text"] == sum(ex["assistant_masks"])
    # too long: cut after the last whole assistant turn that fits, or skipped when none fits
    first = render_row(smol_tok, {**row, "messages": row["messages"][:3]}, choice)
    n_first = len(tokenize_row(smol_tok, first)["input_ids"])
    cut = loss_by_turn_kind(model, smol_tok, [row], choice, max_seq_length=n_first + 2)
    assert cut["rows"] == 1 and cut["tokens"]["text"] == 0
    assert cut["base"]["text"] is None and cut["delta"]["text"] is None
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
