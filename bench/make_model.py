"""Build a Llama-shaped model with random weights (no download) and save it with a tokenizer.

Speed and memory of LoRA training do not depend on the weights' values, so a random model of
the right shape measures what a real one would. Shapes:
  8b: Llama-3.1-8B (hidden 4096, 32 layers, MLP 14336, 32 heads, 8 KV heads, vocab of the tokenizer)
  1b: a ~1B Llama (hidden 2048, 16 layers, MLP 8192, 32 heads, 8 KV heads)
Usage: python bench/make_model.py SHAPE TOKENIZER_DIR OUT_DIR
"""
import sys
import time
from pathlib import Path

SHAPES = {
    "8b": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=14336, num_attention_heads=32,
               num_key_value_heads=8),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
               num_key_value_heads=8),
    "tiny": dict(hidden_size=256, num_hidden_layers=2, intermediate_size=512, num_attention_heads=4,
                 num_key_value_heads=2),
}


def make(shape: str, tok_dir: str, out: str) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    out_p = Path(out)
    if (out_p / "config.json").exists(): return out_p
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      torch_dtype="bfloat16", **SHAPES[shape])
    t = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out_p, safe_serialization=True)
    tok.save_pretrained(out_p)
    n = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"model {shape}: {n:.2f}B params, built+saved in {time.time() - t:.0f}s -> {out_p}", flush=True)
    return out_p


if __name__ == "__main__":
    make(*sys.argv[1:4])
