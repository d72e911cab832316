"""What every trainer shares: the question schedule, the reward, TRL's config, and writing results once.

All methods see the same questions in the same order with the same number of updates (METHOD.md
section 6): `question_schedule` fixes that order once from the seed, and every trainer consumes it
without shuffling, `questions_per_step` questions per optimizer step whatever the number of processes
(ilr/train/dist.py).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Callable

from ilr.config import TrainingArgs
from ilr.io import append_jsonl, read_jsonl, write_jsonl
from ilr.layout import RunPaths
from ilr.seeding import stable_seed
from ilr.train import dist


def question_schedule(train_path: str | Path, steps: int, questions_per_step: int, seed: int) -> list[dict]:
    """steps * questions_per_step training records, in the order every method trains on them.

    The training set is shuffled with the seed and cycled through (a new shuffle each epoch).
    """
    records = read_jsonl(train_path)
    if not records:
        raise ValueError(f"{train_path}: no training questions")
    rng = random.Random(stable_seed("schedule", seed))
    need, out = steps * questions_per_step, []
    while len(out) < need:
        epoch = records[:]
        rng.shuffle(epoch)
        out.extend(epoch)
    return out[:need]


def rule_reward(record: dict, completion: str, format_weight: float = 0.0) -> float:
    """R = 1 for a correct final answer, 0 otherwise, + `format_weight` when the completion states a final
    answer the grader can find (config training.reward_format; (choice) 0: no format reward)."""
    from ilr.grading import grade

    g = grade(record, completion)
    return (1.0 if g.correct else 0.0) + (format_weight if format_weight and g.extracted is not None else 0.0)


def checkpoint_step(checkpoint: str | Path | None) -> int:
    """N of a `checkpoint-N` directory; 0 for None (nothing to resume from)."""
    return int(Path(checkpoint).name.split("-")[1]) if checkpoint else 0


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` directory (transformers' layout), or None."""
    d = Path(checkpoint_dir)
    if not d.is_dir():
        return None
    done = [p for p in d.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=checkpoint_step, default=None)


def load_for_training(path: str | Path):
    """A model to train and its tokenizer. Weights in fp32 whatever the checkpoint's dtype: the optimizer
    updates fp32 master weights and bf16 is autocast (on GPU), since AdamW steps of ~1e-6 on bf16 weights
    mostly round to nothing. Placement is the trainer's (accelerate, DeepSpeed)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ilr.generation import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32), load_tokenizer(path)


def mixed_precision() -> str:
    """bf16 or no: what `accelerate launch` was told (its config file), else bf16 on a GPU."""
    import torch

    return os.environ.get("ACCELERATE_MIXED_PRECISION", "bf16" if torch.cuda.is_available() else "no")


# ------------------------------------------------------------------------------------- TRL trainers

def grpo_config(args: TrainingArgs, seed: int, output_dir: Path, rows_per_question: int = 1, **overrides):
    """TRL's GRPOConfig from a method's training args (config `training:` + `methods.<m>:`, ilr/config/args.py).

    The per-process batch is this process's share of the step's completions (`rows_per_question` rows of
    G completions per question: 2 for ILR's [sharing, fusion]), so that N processes train the step's
    questions once, not N times.
    """
    import torch
    from trl import GRPOConfig

    G = args.num_generations
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=args.steps,
        per_device_train_batch_size=dist.per_process(args.questions_per_step) * rows_per_question * G,
        gradient_accumulation_steps=1,
        num_generations=G,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        beta=args.beta,
        epsilon=args.epsilon,
        loss_type=args.loss_type,
        scale_rewards=args.scale_rewards,
        temperature=args.temperature,
        top_k=0,
        max_completion_length=args.max_new_tokens,
        gradient_checkpointing=args.gradient_checkpointing,
        shuffle_dataset=False,          # the order is question_schedule's, the same for every method
        save_strategy="steps",
        save_steps=args.save_steps,
        logging_steps=1,
        report_to=[],                   # a run's own: model_grpo_config (config training.report_to)
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=mixed_precision() == "bf16",
        disable_tqdm=True,              # the ILR group has its own progress bar; grpo turns TRL's on
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


# ------------------------------------------------------------------ custom rollouts on TRL's seam (ilr, aipo)

def rollout_engine(trainer, use_vllm: bool):
    """How a TRL trainer's policy samples in a custom rollout: TRL's colocated vLLM engine, or generate() on
    its weights (gathered under DeepSpeed ZeRO-3)."""
    from trl.models.utils import unwrap_model_for_generation

    from ilr.generation import TransformersEngine
    from ilr.vllm_engine import TrainerVLLMEngine

    if use_vllm:
        return TrainerVLLMEngine(trainer)
    return TransformersEngine(trainer.model, trainer.processing_class, gather=lambda: unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=True))


def check_handed(who: str, step: int, prompts: list, expected: list, G: int) -> None:
    """A custom rollout samples the schedule's questions itself: TRL must have handed it the same ones (every
    G-th prompt of its batch), else the trained completions would belong to other prompts."""
    if list(prompts[::G]) != list(expected):
        raise RuntimeError(f"{who}: TRL handed step {step} other questions than the schedule's share of process "
                           f"{dist.rank()} (is shuffle_dataset off and the batch size questions_per_step / "
                           "processes * G * trained stages?)")


def seed_rollout(seed: int, kind: str, step: int) -> None:
    """Seed torch for one step's rollout on this process: from (seed, kind, step, rank) alone, so that a resumed
    run samples what an uninterrupted one did."""
    import torch

    torch.manual_seed(stable_seed(seed, kind, step, dist.rank()))


def rollout_reward(key: str):
    """TRL's reward function for a custom rollout that scored its completions itself: it hands the rewards
    over in the rollout's extra field `key`, which TRL passes back here."""
    def reward(prompts, completions, **fields):
        return list(fields[key])
    reward.__name__ = key
    return reward


# ------------------------------------------------------------------ one TRL run (grpo, aipo, each ILR member)

def model_grpo_config(config: dict, args: TrainingArgs, seed: int, model_name: str, run_dir: Path, **overrides):
    """The GRPOConfig of one trained model: the method's args, checkpoints in `run_dir`'s (RunPaths), its curves
    (training.report_to: ilr/train/trackers.py), and vLLM's colocated engine when `generation.engine` is vllm.
    Build it before loading the model: under DeepSpeed ZeRO-3 it makes from_pretrained load the weights
    sharded (zero.Init)."""
    from ilr.train.trackers import trl_kwargs
    from ilr.vllm_engine import trl_vllm_args

    vllm = trl_vllm_args(config["generation"], config["models"][model_name]["size"])
    if vllm["use_vllm"] and "kv_cache_gib" in config["generation"]:
        # TRL passes vLLM no KV-cache size; vLLM's CPU platform reads this one (whole GiB), GPUs ignore it
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(math.ceil(config["generation"]["kv_cache_gib"])))
    return grpo_config(args, seed, RunPaths(run_dir).checkpoints,
                       **{**trl_kwargs(config, args, run_dir), **vllm, **overrides})


def grpo_trainer(trainer_class, model, tokenizer, dataset, reward, trl_args, stop, rollout_func=None, *,
                 shared_prefix: bool):
    """A TRL GRPOTrainer (or subclass) as every run makes it: quiet, stopping on signals through `stop`
    (preempt.stop_callback), sampling itself or through `rollout_func`, its TensorBoard curves in its run
    directory (the parent of model_grpo_config's output_dir, `<run_dir>/checkpoints`), its loss forward
    running each prompt once for its completions with `shared_prefix` (config training.shared_prefix)."""
    from ilr.train import shared_prefix as sp
    from ilr.train.trackers import tensorboard_in_run_dir

    if shared_prefix:
        trainer_class = sp.trainer_class(trainer_class)
    extra = {"rollout_func": rollout_func} if rollout_func is not None else {}
    trainer = quiet(trainer_class(model=model, reward_funcs=reward, train_dataset=dataset,
                                  processing_class=tokenizer, args=trl_args, **extra))
    tensorboard_in_run_dir(trainer, Path(trl_args.output_dir).parent)
    trainer.add_callback(stop)
    if trl_args.use_vllm:
        from ilr.vllm_engine import fit_weight_sync

        fit_weight_sync(trainer)
    return trainer


def quiet(trainer):
    """Drop transformers' per-step printing of the log dict: the logs stay in trainer.state.log_history."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def records_dataset(records: list[dict], prompt_of):
    """The TRL dataset of a schedule: a row per record (`prompt`, `question_id`, the record as JSON)."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": prompt_of(r), "question_id": r["id"], "record": json.dumps(r)}
                              for r in records])


SUMMARY = "training_summary.json"   # beside a final checkpoint: what its evaluation records of its training


def train_and_save(trainer, run_dir: Path, steps: int, summary: Callable[[], dict] | None = None) -> None:
    """A single-model TRL trainer's run: resume from its newest checkpoint (its rollout log cut back to it),
    train, write TRL's log once (metrics.jsonl), then save final/ with `summary()` (what the run says of
    itself, computed on the main process once training is done); on a signal, raise preempt.Interrupted
    (the checkpoint is saved)."""
    from ilr.train import preempt

    paths = RunPaths(run_dir)
    resume = latest_checkpoint(paths.checkpoints)
    truncate_log(paths.rollouts, checkpoint_step(resume))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if dist.is_main():
        write_jsonl(paths.metrics, trainer.state.log_history)
    if trainer.state.global_step < steps:  # stopped on a signal, checkpoint saved
        raise preempt.Interrupted(trainer.state.global_step)
    save_trainer_final(trainer, paths.final, summary() if summary and dist.is_main() else None)


def save_trainer_final(trainer, final_dir: Path, summary: dict | None = None) -> None:
    """A TRL trainer's model and tokenizer into `final_dir`, once and whole (DeepSpeed: gathered), with the
    run's `summary` (main process) as training_summary.json."""
    def write(tmp: Path) -> None:
        trainer.save_model(str(tmp))
        if summary is not None and dist.is_main():
            (tmp / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    publish_dir(final_dir, write)


# ------------------------------------------------------------------------------------- writing once

def publish_dir(target: str | Path, write: Callable[[Path], None], check=None) -> None:
    """Write the directory `target` once, whole, where everybody can find it complete or not at all.

    `write(tmp)` runs on every process (it may gather sharded weights, a collective; the writing itself is
    mostly the main process's), the main process runs `check(tmp)` (default: model weights were written)
    and renames the directory into place, then every process waits for it.
    """
    check = check_weights if check is None else check
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    if dist.is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    write(tmp)
    if dist.is_main():
        check(tmp)
        readable_by_group(tmp)
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def check_weights(d: Path) -> None:
    """A saved model has its config and non-empty weights (ZeRO-3 without a gathered 16-bit save writes none)."""
    weights = list(d.glob("*.safetensors")) + list(d.glob("*.bin"))
    if not (d / "config.json").is_file() or not weights or not any(w.stat().st_size > 1024 for w in weights):
        raise RuntimeError(f"{d}: the saved model has no weights (files: {sorted(p.name for p in d.iterdir())}); "
                           "under DeepSpeed ZeRO-3 the accelerate config needs zero3_save_16bit_model: true")


def readable_by_group(d: Path) -> None:
    """Give what safetensors and torch wrote with mode 0600 the mode the user's umask asks for."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [d, *d.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def write_log(path: Path, rows: list[dict]) -> None:
    """Append rows (gathered from every process) to a JSON Lines log: the main process writes."""
    if dist.is_main():
        for row in rows:
            append_jsonl(path, row)


def truncate_log(path: Path, last_step: int) -> None:
    """Keep the lines of steps <= last_step: a resumed run re-logs the steps it redoes."""
    if dist.is_main() and path.exists():
        write_jsonl(path, [r for r in read_jsonl(path) if r["step"] <= last_step])
    dist.barrier()
