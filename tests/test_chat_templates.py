"""Edge cases of `forge_nb.chat_templates` (the story and the main examples are in nbs/api/05_chat_templates.ipynb)."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from families import EOS_DS, FAMILIES, make_family  # tests/ is on sys.path
from samples import USER  # noqa: E402  (tests/ is on sys.path)

from forge_nb.chat_templates import (
    HERMES_DEEPSEEK_TEMPLATE,
    HERMES_TEMPLATE,
    TemplateChoice,
    choose_template,
    probe_template,
    template_capabilities,
)


def call(name: str, args: Any) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": args}}


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


def test_probe_accepts_arguments_in_any_json_layout(smol_tok: Any) -> None:
    pretty = ("{% for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}"
              "CALL {{ c.function.name }} {{ c.function.arguments | tojson(indent=2) }}{% endfor %}"
              "<end>\n{% endfor %}")
    p = probe_template(smol_tok, pretty)
    assert p.capabilities["tool_calls"]
    assert (p.arguments_as, p.null_content, p.end_of_turn) == ("object", False, "<end>")


def test_template_choice_rejects_unknown_argument_form() -> None:
    with pytest.raises(ValueError, match="arguments_as"):
        TemplateChoice("x", True, "test", arguments_as="dict")
    assert TemplateChoice("x", False, "test").kind == "hermes"


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
