"""`python tests/vllm_weight_sync.py A B`: model A in a colocated-style vLLM engine (in-process, as TRL makes it),
then model B's parameters synced into it as TRL 1.16 does (one `load_weights` call per parameter) through
ilr.vllm_engine.fit_weight_sync. Prints JSON: on how many of N prompts the engine's greedy completion equals
the transformers engine's, for A before the sync and for B after it (tests/test_vllm.py asserts them)."""

from __future__ import annotations

import json
import os
import sys
import types

N = 60


def main(a: str, b: str) -> dict:
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    from vllm import LLM, SamplingParams

    from ilr.generation import TransformersEngine, load_model
    from ilr.prompts import encode_prompt, load as load_prompts
    from ilr.tiny.task import generate
    from ilr.vllm_engine import fit_weight_sync

    llm = LLM(model=a, dtype="float32", max_model_len=512, seed=0, enforce_eager=True, generation_config="vllm",
              kv_cache_memory_bytes=1 << 30, distributed_executor_backend="external_launcher")
    model_b, tok = load_model(b, on="cpu")
    runner = llm.llm_engine.model_executor.driver_worker.model_runner

    def trl_sync():   # trl/generation/vllm_generation.py, colocate mode
        for name, param in model_b.named_parameters():
            runner.model.load_weights([(name, param.data)])

    generation = types.SimpleNamespace(mode="colocate", llm=llm, sync_weights=trl_sync)
    fit_weight_sync(types.SimpleNamespace(vllm_generation=generation))
    records = generate("tiny_arith", N, 5, min_steps=1, max_steps=3, max_operand=9, families=["+-", "*"])
    prompts = [encode_prompt(tok, load_prompts("tiny").solve(r)) for r in records]
    params = SamplingParams(temperature=0, max_tokens=48, stop_token_ids=[tok.eos_token_id])

    def vllm_greedy():
        return [list(o.outputs[0].token_ids) for o in llm.generate([{"prompt_token_ids": p} for p in prompts], params)]

    def hf_greedy(model):
        return [s[0].completion_ids for s in TransformersEngine(model, tok).sample(prompts, max_new_tokens=48)]

    before = vllm_greedy()
    generation.sync_weights()
    after = vllm_greedy()
    hf_a, hf_b = hf_greedy(load_model(a, on="cpu")[0]), hf_greedy(model_b)
    same = lambda x, y: sum(p == q for p, q in zip(x, y))   # noqa: E731
    return {"n": N, "before_is_a": same(before, hf_a), "after_is_b": same(after, hf_b), "after_is_a": same(after, hf_a)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
