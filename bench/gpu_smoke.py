"""End-to-end smoke run of the product path on a CUDA machine, one backend per process:
TrainingEngine.train (held-out split, loss check, eval after training) then load_adapter + generate.
The model is a small Llama with random weights (no download; see make_model.py), so the figures
say the path works, not how well it learns.

Usage: python bench/gpu_smoke.py TOKENIZER_DIR [BACKEND ...]   (backends: unsloth peft; default both)
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(backend: str, tok_dir: str) -> dict:
    if backend == "peft": os.environ["FORGE_NB_NO_UNSLOTH"] = "1"
    else: import unsloth  # noqa: F401  (first, as Unsloth asks)
    sys.path.insert(0, str(HERE))
    import make_model
    from forge_nb import TrainingConfig, TrainingEngine
    from forge_nb import load_adapter
    from forge_nb.example_data import example_data_path
    work = Path(tempfile.mkdtemp())
    model_dir = make_model.make("tiny", tok_dir, str(work / "model"))
    cfg = TrainingConfig(model_family=str(model_dir), backend=backend, data_path=example_data_path(),
                         output_dir=work / "out", max_steps=4, max_seq_length=1024, eval_fraction=0.1,
                         eval_after=True, eval_max_new_tokens=24)
    engine = TrainingEngine(cfg)
    adapter = engine.train(progress_callback=lambda *a: None)
    run = json.loads((work / "out" / "run.json").read_text())
    model, tok = load_adapter(adapter, str(model_dir))
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True).to(model.device)
    new = model.generate(**ids, max_new_tokens=8, do_sample=False)[0, ids["input_ids"].shape[1]:]
    lc, ev = run["loss_check"], run["eval"]
    return {"backend": run["backend"]["name"], "device": run["device"], "steps": run["steps"],
            "first_loss": run["first_loss"], "final_loss": run["final_loss"],
            "loss_check": {k: lc[k] for k in ("source", "rows", "tokens", "base", "adapter")},
            "eval_turns": ev["turns"], "eval_loss": ev["eval_loss"],
            "call_rate": [ev["base"]["call_rate"], ev["adapter"]["call_rate"]],
            "generated_tokens": int(new.numel())}


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print("RESULT " + json.dumps(one(sys.argv[2], sys.argv[3])), flush=True)
        sys.exit(0)
    tok_dir, backends = sys.argv[1], sys.argv[2:] or ["unsloth", "peft"]
    failed = False
    for b in backends:
        p = subprocess.run([sys.executable, __file__, "--one", b, tok_dir], capture_output=True, text=True)
        res = next((ln[7:] for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        print(f"{b}: " + (res or f"FAILED (exit {p.returncode})\n{p.stderr[-3000:]}"), flush=True)
        failed |= res is None
    sys.exit(1 if failed else 0)
