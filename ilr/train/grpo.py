"""Single-agent GRPO baseline: TRL's GRPOTrainer on the same questions, order and budget as ILR.

`grpo_config` and `save_final` are shared with the ILR trainer, whose group members are
GRPOTrainers too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ilr.train import preempt
from ilr.train.common import latest_checkpoint, question_schedule, rule_reward


def grpo_config(args: dict, seed: int, output_dir: Path, **overrides):
    """TRL's GRPOConfig from a method's merged training args (config `training:` + `methods.<m>:`)."""
    import torch
    from trl import GRPOConfig

    G = args["num_generations"]
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=args["steps"],
        per_device_train_batch_size=args["questions_per_step"] * G,  # TRL counts completions
        gradient_accumulation_steps=1,
        num_generations=G,
        learning_rate=args["learning_rate"],
        lr_scheduler_type="constant",
        beta=args["beta"],
        epsilon=args["epsilon"],
        scale_rewards=args.get("scale_rewards", "group"),
        temperature=args["temperature"],
        top_k=0,
        max_completion_length=args["max_new_tokens"],
        shuffle_dataset=False,          # the order is question_schedule's, the same for every method
        save_strategy="steps",
        save_steps=args["save_steps"],
        logging_steps=1,
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def save_final(model, tokenizer, final_dir: Path) -> None:
    """save_pretrained into a temporary directory, renamed into place only when complete."""
    final_dir = Path(final_dir)
    tmp = final_dir.with_name(final_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(final_dir, ignore_errors=True)
    tmp.rename(final_dir)


def quiet(trainer):
    """Drop transformers' per-step printing of the log dict: the logs stay in trainer.state.log_history."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def records_dataset(records: list[dict], prompt_of) -> "datasets.Dataset":
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt_of(r), "question_id": r["id"], "record": json.dumps(r)}
                              for r in records])


def train_grpo(config: dict, method: str, model_name: str, seed: int, train_path: str, out_dir: str) -> None:
    from trl import GRPOTrainer

    from ilr import config as cfg
    from ilr.generation import load_model
    from ilr.prompts import as_model_input, load as load_prompts

    args = cfg.training_args(config, method)
    run_dir = Path(out_dir) / model_name
    prompts = load_prompts(config["prompts"])
    model, tokenizer = load_model(config["models"][model_name]["path"])
    schedule = question_schedule(train_path, args["steps"], args["questions_per_step"], seed)
    dataset = records_dataset(schedule, lambda r: as_model_input(tokenizer, prompts.solve(r)))

    def correctness(prompts, completions, record, **_):
        return [rule_reward(json.loads(r), c) for r, c in zip(record, completions)]

    trainer = quiet(GRPOTrainer(model=model, reward_funcs=correctness, train_dataset=dataset,
                          processing_class=tokenizer,
                          args=grpo_config(args, seed, run_dir / "checkpoints", disable_tqdm=False)))
    trainer.add_callback(preempt.stop_callback())
    resume = latest_checkpoint(run_dir / "checkpoints")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for row in trainer.state.log_history:
            f.write(json.dumps(row) + "\n")
    if trainer.state.global_step < args["steps"]:  # stopped on a signal, checkpoint saved
        raise preempt.Interrupted(trainer.state.global_step)
    save_final(trainer.model, tokenizer, run_dir / "final")
