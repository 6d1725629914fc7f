"""Edge cases of `forge_nb.adapters` (the story and the main examples are in nbs/api/08_adapters.ipynb)."""
import json

from forge_nb.adapters import adapter_template
from forge_nb.chat_templates import choose_template


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
