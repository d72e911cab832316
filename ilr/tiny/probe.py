"""Check built tiny models: greedy solo accuracy and format on generated questions (a dev tool).

python -m ilr.tiny.probe --config config/config.yaml MODEL_DIR [MODEL_DIR ...] [--n 128] [--seed 7]
Questions: tiny_arith with data.train.params (the validation distribution), seed --seed.
"""

from __future__ import annotations

import argparse
import re
import time


@__import__("functools").lru_cache(maxsize=None)
def _grader():
    try:
        from ilr.grading import grade
        return grade
    except ImportError:
        return None


def correct(record: dict, completion: str) -> bool:
    grade = _grader()
    if grade is not None:
        return grade(record, completion).correct
    m = re.findall(r"\\boxed\{([^}]*)\}", completion)
    return bool(m) and m[-1].strip() == record["answer"]


def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 64):
    """Greedy completions with left padding: (text, stopped at EOS) per prompt."""
    import torch

    out = []
    for s in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[s:s + batch_size], add_special_tokens=False, padding=True, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:].tolist():
            stopped = tokenizer.eos_token_id in row
            if stopped:
                row = row[:row.index(tokenizer.eos_token_id)]
            out.append((tokenizer.decode(row, skip_special_tokens=True), stopped))
    return out


def probe(path: str, records: list[dict], prompts, max_new_tokens: int = 48) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    t = time.time()
    outs = greedy(model, tok, [prompts.solve(r) for r in records], max_new_tokens)
    ok = [correct(r, text) for r, (text, _) in zip(records, outs)]
    by_steps = {}
    for r, c in zip(records, ok):
        by_steps.setdefault(r["metadata"]["steps"], []).append(c)
    return {"model": path, "accuracy": sum(ok) / len(ok), "eos": sum(s for _, s in outs) / len(outs),
            "boxed": sum("\\boxed{" in x for x, _ in outs) / len(outs),
            "by_steps": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_steps.items())},
            "gen_s": round(time.time() - t, 2), "examples": [x for x, _ in outs[:3]]}


def main(argv=None) -> int:
    import torch
    import yaml

    from ilr.prompts import load
    from ilr.tiny.task import generate

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--source", default="tiny_arith")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(a.config))
    records = generate(a.source, a.n, a.seed, **cfg["data"]["train"].get("params", {}))
    prompts = load(str(cfg["prompts"]))
    for m in a.models:
        print(probe(m, records, prompts, 64 if a.source == "tiny_code" else 48))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
