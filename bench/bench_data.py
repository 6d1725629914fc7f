"""Benchmark data: the shipped example conversations plus longer synthetic ones (1–2k tokens).

Long rows are built by chaining several example conversations into one (their tools merged),
so they stay real tool-calling text. Usage: python bench/bench_data.py OUT.jsonl N_ROWS TOKENIZER_DIR
"""
import json
import random
import sys


def make_rows(n: int, tok_dir: str, lo: int = 1000, hi: int = 2000, seed: int = 0) -> list[dict]:
    from transformers import AutoTokenizer

    from forge_nb import HERMES_TEMPLATE, normalize_row
    from forge_nb.example_data import example_data_path
    tok = AutoTokenizer.from_pretrained(tok_dir)
    base = [json.loads(line) for line in example_data_path().read_text().splitlines()]
    rng = random.Random(seed)
    def n_tokens(r: dict) -> int:
        text = tok.apply_chat_template(r["messages"], tools=r["tools"] or None, chat_template=HERMES_TEMPLATE,
                                       tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])
    rows: list[dict] = []
    while len(rows) < n:
        target = rng.randint(lo, hi)
        msgs: list[dict] = [{"role": "system", "content": "You are a helpful assistant."}]
        tools: dict[str, dict] = {}
        row = {"messages": msgs, "tools": []}
        while True:
            ex = rng.choice(base)
            msgs += [m for m in ex["messages"] if m["role"] != "system"]
            for t in ex["tools"]: tools[t["function"]["name"]] = t
            row["tools"] = list(tools.values())
            if n_tokens(row) >= target: break
        while n_tokens(row) > hi and len(msgs) > 3:  # trim back to the last assistant turn under the cap
            msgs.pop()
            while msgs[-1]["role"] != "assistant": msgs.pop()
        normalize_row(row)  # still a valid conversation
        rows.append(row)
    return rows


if __name__ == "__main__":
    out, n, tok_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = make_rows(n, tok_dir)
    with open(out, "w") as f:
        for r in rows: f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {out}")
