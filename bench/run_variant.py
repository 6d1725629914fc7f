"""One benchmark variant in its own process (Unsloth patches libraries globally at import).

  raw-unsloth    a plain Unsloth + TRL script, as in Unsloth's notebooks: no forge_nb code
  forge-unsloth  forge_nb.TrainingEngine(backend="unsloth")
  forge-peft     forge_nb.TrainingEngine(backend="peft")   (run with FORGE_NB_NO_UNSLOTH=1)

All variants train the same pre-tokenized rows (input_ids + assistant_masks) with LoRA r=16,
alpha=16 on the 7 projections, batch 2 x accumulation 4, adamw_8bit, bf16, max_length 2048,
for two epochs; the second epoch is timed (every row exactly once, so the non-pad token count is
the data's), after the first has warmed up kernels and the allocator.
Usage: python bench/run_variant.py VARIANT MODEL_DIR DATA_JSONL TOKENIZED_JSONL OUT_JSON
"""
import json
import math
import os
import sys
import time
from pathlib import Path

VARIANT, MODEL_DIR, DATA, TOKENIZED, OUT = sys.argv[1:6]
if VARIANT == "forge-peft": os.environ["FORGE_NB_NO_UNSLOTH"] = "1"
if VARIANT in ("raw-unsloth", "forge-unsloth"):
    import unsloth  # noqa: F401  (first, as Unsloth asks)
import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

BATCH, ACCUM = 2, 4
CUDA = torch.cuda.is_available()
sync = torch.cuda.synchronize if CUDA else (lambda: None)
rows = [json.loads(line) for line in Path(TOKENIZED).read_text().splitlines()]
steps_per_epoch = math.ceil(len(rows) / (BATCH * ACCUM))
MAX_STEPS = 2 * steps_per_epoch
NONPAD_EPOCH = sum(len(r["input_ids"]) for r in rows)


class Meter(TrainerCallback):
    "Times the second epoch and counts the tokens the model really saw in it (padding included)."
    def __init__(self, pad_id: int):
        self.pad_id, self.trainer = pad_id, None
        self.t0 = self.t1 = None
        self.seen = self.padded = 0
        self.losses, self.step_times, self._ts = [], [], None

    def attach(self, trainer):
        self.trainer, inner = trainer, trainer.training_step
        def counting_step(model, inputs, *a, **k):
            if self.t0 is not None:
                ids = inputs["input_ids"]
                self.padded += ids.numel()
                mask = inputs.get("attention_mask")
                self.seen += int((ids != self.pad_id).sum()) if mask is None else int(mask.sum())
            return inner(model, inputs, *a, **k)
        trainer.training_step = counting_step

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == steps_per_epoch and self.t0 is None:
            sync(); self.t0 = time.perf_counter()
        sync(); self._ts = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        sync()
        if self.t0 is not None: self.step_times.append(time.perf_counter() - self._ts)
        if state.global_step == MAX_STEPS:
            self.t1 = time.perf_counter()
            self.peak_gib = round(torch.cuda.max_memory_allocated() / 2**30, 2) if CUDA else 0.0

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: self.losses.append(round(float(logs["loss"]), 4))


def run_raw():
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel
    model, tok = FastLanguageModel.from_pretrained(model_name=MODEL_DIR, max_seq_length=2048, dtype=None,
                                                   load_in_4bit=True)
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=16, lora_dropout=0, bias="none", use_gradient_checkpointing="unsloth",
        random_state=3407, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    ds = Dataset.from_list(rows)
    args = SFTConfig(output_dir="/tmp/raw-out", per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUM,
                     warmup_steps=5, max_steps=MAX_STEPS, learning_rate=2e-4, logging_steps=1, optim="adamw_8bit",
                     weight_decay=0.01, lr_scheduler_type="linear", seed=3407, bf16=True, max_length=2048,
                     packing=False, report_to="none", save_strategy="no")
    meter = Meter(tok.pad_token_id if tok.pad_token_id is not None else 0)
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=ds, args=args, callbacks=[meter])
    meter.attach(trainer)
    trainer.train()
    return meter, {}


def run_forge(backend: str):
    from forge_nb import TrainingConfig, TrainingEngine
    out = Path(f"/tmp/{VARIANT}-out")
    cfg = TrainingConfig(model_family=MODEL_DIR, profile="balanced", data_path=Path(DATA), output_dir=out,
                         max_steps=MAX_STEPS, max_seq_length=2048, backend=backend, extra={"save_strategy": "no"})
    eng = TrainingEngine(cfg)
    calls = []
    meter = Meter(0)
    class Attach(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw): meter.attach(eng.trainer)
    adapter = eng.train(progress_callback=lambda *a: calls.append(a), callbacks=[meter, Attach()])
    meter.pad_id = eng.tokenizer.pad_token_id
    run = json.loads((out / "run.json").read_text())
    checks = {"backend": run["backend"]["name"], "run_json_steps": run["steps"], "progress_calls": len(calls),
              "adapter_files": sorted(p.name for p in adapter.iterdir()
                                      if p.suffix in (".json", ".safetensors", ".jinja")),
              "rows_used": run["data"]["rows_used"], "final_loss": run["final_loss"]}
    if os.environ.get("RELOAD"):  # the adapter reloads on its base model and generates
        from forge_nb import load_adapter
        del eng.model, eng.trainer
        torch.cuda.empty_cache()
        model, tok = load_adapter(adapter, MODEL_DIR)
        ids = tok.apply_chat_template([{"role": "user", "content": "Weather in Oslo?"}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True).to(model.device)
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        checks["reload_generated_tokens"] = int(gen.shape[1] - ids["input_ids"].shape[1])
        checks["reload_class"] = type(model).__name__
    return meter, checks


if CUDA: torch.cuda.reset_peak_memory_stats()
t_start = time.perf_counter()
if VARIANT == "raw-unsloth": meter, checks = run_raw()
else: meter, checks = run_forge("unsloth" if VARIANT == "forge-unsloth" else "peft")
elapsed = meter.t1 - meter.t0
result = {
    "variant": VARIANT, "rows": len(rows), "steps": MAX_STEPS, "timed_steps": MAX_STEPS - steps_per_epoch,
    "nonpad_tokens_epoch": NONPAD_EPOCH, "seen_nonpad": meter.seen, "seen_with_padding": meter.padded,
    "tokens_per_s": round(NONPAD_EPOCH / elapsed, 1),
    "step_time_s": round(sum(meter.step_times) / len(meter.step_times), 3),
    "padding_fraction": round(1 - meter.seen / meter.padded, 4) if meter.padded else None,
    "peak_gpu_gib": meter.peak_gib, "losses": meter.losses,  # peak: at the end of training, before any reload
    "total_s": round(time.perf_counter() - t_start, 1), **checks,
}
Path(OUT).write_text(json.dumps(result))
print("RESULT", json.dumps(result), flush=True)
