"""Benchmark forge_nb's backends against a raw Unsloth script, in one run (each variant in its own
process). Prints a table and the ratios forge-unsloth / raw-unsloth and unsloth / peft.

Usage: python bench/gpu_bench.py SHAPE TOKENIZER_DIR [N_LONG_ROWS] [VARIANTS...]
  SHAPE: 8b | 1b | tiny (random weights, see make_model.py); TOKENIZER_DIR: a saved tokenizer
  (the embedded SmolLM2's: `forge_nb.models.embedded_model_dir()`).
Data: the shipped example conversations + N_LONG_ROWS synthetic 1-2k-token chats (bench_data.py).
"""
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
shape, tok_dir = sys.argv[1], sys.argv[2]
n_long = int(sys.argv[3]) if len(sys.argv) > 3 else 48
variants = sys.argv[4:] or ["raw-unsloth", "forge-unsloth", "forge-peft"]
work = Path("/tmp/forge-bench"); work.mkdir(exist_ok=True)

import make_model  # noqa: E402
from bench_data import make_rows  # noqa: E402

model_dir = make_model.make(shape, tok_dir, str(work / f"model-{shape}"))
data = work / "bench.jsonl"
from forge_nb.example_data import example_data_path  # noqa: E402

rows = [json.loads(x) for x in example_data_path().read_text().splitlines()] + make_rows(n_long, tok_dir)
rows = rows[: len(rows) // 8 * 8]  # whole optimiser steps per epoch
data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
from forge_nb.data import load_training_data  # noqa: E402
from forge_nb.models import load_tokenizer  # noqa: E402

ds, rep, _ = load_training_data(data, load_tokenizer(str(model_dir)), 2048, "strict")
tokenized = work / "tokenized.jsonl"
tokenized.write_text("".join(json.dumps({"input_ids": r["input_ids"], "assistant_masks": r["assistant_masks"]}) + "\n"
                             for r in ds))
print(f"data: {len(ds)} rows, tokens/row {rep.token_stats['tokens']}", flush=True)

results = {}
for v in variants:
    t = time.time()
    out = work / f"{v}.json"
    p = subprocess.run([sys.executable, str(HERE / "run_variant.py"), v, str(model_dir), str(data), str(tokenized),
                        str(out)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(f"--- {v} FAILED ({time.time() - t:.0f}s)\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}", flush=True)
        continue
    results[v] = json.loads(out.read_text())
    print(f"--- {v} done in {time.time() - t:.0f}s: {results[v]}", flush=True)

import torch  # noqa: E402

gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU)"
print(f"\nGPU: {gpu}  torch {torch.__version__}  shape {shape}")
print("| variant | non-pad tokens/s | step time (s) | peak GPU mem (GiB) | padding | final loss |")
print("| --- | --- | --- | --- | --- | --- |")
for v, r in results.items():
    print(f"| {v} | {r['tokens_per_s']:.0f} | {r['step_time_s']:.3f} | {r['peak_gpu_gib']:.2f} "
          f"| {r['padding_fraction']:.1%} | {r['losses'][-1]} |")
tps = {v: r["tokens_per_s"] for v, r in results.items()}
if "raw-unsloth" in tps and "forge-unsloth" in tps:
    print(f"forge-unsloth / raw-unsloth tokens/s: {tps['forge-unsloth'] / tps['raw-unsloth']:.3f}")
if "forge-unsloth" in tps and "forge-peft" in tps:
    print(f"unsloth / peft tokens/s (forge_nb backends): {tps['forge-unsloth'] / tps['forge-peft']:.2f}")
(work / "summary.json").write_text(json.dumps(results, indent=1))
