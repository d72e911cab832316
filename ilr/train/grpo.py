"""Single-agent GRPO baseline: TRL's GRPOTrainer on the same questions, order and budget as ILR.

TRL tokenizes and samples itself (transformers' generate, or its colocated vLLM engine with
`generation.engine: vllm`); the prompt it gets is `ilr.prompts.trl_prompt`, which TRL turns into the
ids of `encode_prompt` (one BOS). Besides TRL's own logs, the run writes `rollouts.jsonl`: one line per
(step, question) with the G completions and their rewards, gathered from every process.
"""

from __future__ import annotations

import json
from pathlib import Path

from ilr.layout import RunPaths
from ilr.train import dist, preempt
from ilr.train.common import (grpo_trainer, load_for_training, model_grpo_config, question_schedule,
                              records_dataset, rule_reward, train_and_save, write_log)


def rollout_logger(run_dir: Path, format_weight: float = 0.0):
    """A reward function that scores completions and remembers them, and the callback that writes them once
    per step (from every process's share, in rank order)."""
    from transformers import TrainerCallback

    from ilr.prompts import completion_text

    pending: list[dict] = []

    def correctness(prompts, completions, record, question_id, trainer_state, **_):
        texts = [completion_text(c) for c in completions]
        rewards = [rule_reward(json.loads(r), t, format_weight) for r, t in zip(record, texts)]
        step = trainer_state.global_step + 1
        for q, t, r in zip(question_id, texts, rewards):   # G consecutive rows per question
            if not pending or pending[-1]["question_id"] != q or pending[-1]["step"] != step:
                pending.append({"step": step, "question_id": q, "completions": [], "rewards": []})
            pending[-1]["completions"].append(t)
            pending[-1]["rewards"].append(r)
        return rewards

    class WriteRollouts(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            rows = [row for share in dist.gather(list(pending)) for row in share]
            pending.clear()
            write_log(RunPaths(run_dir).rollouts, rows)

    return correctness, WriteRollouts()


def train_grpo(config: dict, method: str, model_name: str, seed: int, train_path: str, out_dir: str) -> None:
    from trl import GRPOTrainer

    from ilr import config as cfg
    from ilr.prompts import load as load_prompts, trl_prompt

    args = cfg.training_args(config, method)
    run_dir = RunPaths(out_dir).member(model_name).root
    run_dir.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(config["prompts"])
    trl_args = model_grpo_config(config, args, seed, model_name, run_dir, disable_tqdm=not dist.is_main())
    model, tokenizer = load_for_training(config["models"][model_name]["path"])
    schedule = question_schedule(train_path, args.steps, args.questions_per_step, seed)
    dataset = records_dataset(schedule, lambda r: trl_prompt(tokenizer, prompts.solve(r)))
    correctness, write_rollouts = rollout_logger(run_dir, args.reward_format)
    trainer = grpo_trainer(GRPOTrainer, model, tokenizer, dataset, correctness, trl_args, preempt.stop_callback(),
                           shared_prefix=args.shared_prefix)
    trainer.add_callback(write_rollouts)
    train_and_save(trainer, run_dir, args.steps)


def train(config: dict, args) -> None:
    train_grpo(config, args.method, args.group, args.seed, args.train, args.out_dir)
