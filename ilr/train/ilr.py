"""The ILR group trainer: Dynamic Interaction + Idea3 + Perception Calibration on TRL's GRPOTrainer.

Design. Each model of the group has its own `GRPOTrainer` (own optimizer, reference model, KL
coefficient and clipping, checkpoints, logging: all TRL's). The trainers run in one thread each and
meet once per step in `GroupCoordinator.rollout`, which TRL calls as every trainer's `rollout_func`:
when all m trainers have arrived (their weights are then at rest), the group's rollout runs for the
step's questions with every model's current weights:

  Dynamic Interaction (cooperation / competition / none per question)
  -> Idea3 (Sharing, Analysis, then G Fusion completions per model)
  -> rule-based rewards -> Perception Calibration across the group
  -> one line per question in rollouts.jsonl (METHOD.md's rollout log)

and each trainer takes back its own share: its Fusion prompt ids, its G completions per question and
their (calibrated) rewards, from which TRL computes group-relative advantages and the GRPO loss as
usual. With `train_stages: [sharing, fusion]` each question is two rows of a member's batch: G solo
(Sharing) answers, calibrated against the peers' Sharing answers, then the G Fusion answers.

N processes (one per GPU; ilr/train/dist.py). Every model of the group lives on every process of the
job (sharded over them under DeepSpeed ZeRO-3, replicated under DDP), and each process runs the group
rollout for its share of the step's questions (`questions_per_step / N`, the slice TRL's dataloader
hands it). A process's collectives (DDP's all-reduce, DeepSpeed's parameter gathers, TRL's gathers)
must come in the same order on every process, but m threads issue them: so the members take turns
(`Turns`), in the group's order, the same on every process. A member holds the turn from the end of
the group rollout until it arrives at the next one (its loss, optimizer step, logging, checkpoint;
at the start, its setup; at the end, what follows its last step), then hands it to the next member;
the group rollout itself runs in one thread while all members wait. The rollout rows are gathered to
the main process, which alone writes the logs.

Nothing of TRL's optimisation loop is rewritten; the custom pieces are the rollout, the turns, one
override (`_prepare_inputs` without TRL's in-batch shuffle, which would make the member threads draw on
the shared global RNG in a racy order and break bit-identical resumes) and one lock (around
transformers' RNG-state load on resume, whose torch.load allowlist is process-wide, not per thread).
Like grpo's and aipo's, a member's loss forward runs each Fusion prompt once for its G completions
(training.shared_prefix, ilr/train/shared_prefix.py; common.grpo_trainer).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tqdm import tqdm

from ilr.calibration import calibrate
from ilr.config import TrainingArgs
from ilr.interaction import COOPERATION, common_type, irt_probability, irt_types, ratio_type
from ilr.io import read_json, read_jsonl
from ilr.layout import RunPaths
from ilr.train import dist, preempt
from ilr.train.common import (check_handed, checkpoint_step, grpo_trainer, latest_checkpoint, load_for_training,
                              model_grpo_config, question_schedule, records_dataset, rollout_engine, rollout_reward,
                              rule_reward, save_trainer_final, seed_rollout, truncate_log, write_log)
from ilr.train.trackers import Curves
from ilr.train.rl import advantages, baseline_pool, unbiased_std


class Turns:
    """The members' turns, in the group's order. `wait(name)` blocks until it is `name`'s turn; `done(name)`
    passes it on (after the last member, nobody's turn until `restart`). `abort` wakes everyone with an
    error, as `threading.Barrier.abort` does."""

    def __init__(self, names: list[str]):
        self.names, self.current, self.broken = list(names), 0, False
        self.cond = threading.Condition()

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.broken or self.current < len(self.names)
                               and self.names[self.current] == name)
            if self.broken:
                raise threading.BrokenBarrierError

    def done(self, name: str) -> None:
        with self.cond:
            assert self.names[self.current] == name, (name, self.current)
            self.current += 1
            self.cond.notify_all()

    def restart(self) -> None:
        with self.cond:
            self.current = 0
            self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.broken = True
            self.cond.notify_all()


class GroupCoordinator:
    def __init__(self, config: dict, method: dict, args: TrainingArgs, seed: int, names: list[str],
                 schedule: list[dict], gamma: dict[str, float], difficulty: dict[str, float], run_dir: Path):
        from ilr.prompts import load as load_prompts

        self.method, self.args, self.seed, self.names = method, args, seed, names
        self.prompts = load_prompts(config["prompts"])
        self.interaction_cfg = config["interaction"]
        self.use_vllm = config["generation"]["engine"] == "vllm"
        self.schedule, self.gamma, self.difficulty = schedule, gamma, difficulty
        # (choice) train_stages: [fusion], or [sharing, fusion] to train the solo answer too. Each trained
        # stage is a row of the member's dataset per question, in this order, G completions each.
        self.stages = [s for s in ("sharing", "fusion") if s in args.train_stages]
        self.paths = RunPaths(run_dir)                        # the group's logs (ilr/layout.py)
        self.trainers: dict[str, object] = {}
        self.turns = Turns(names)
        self.barrier = threading.Barrier(len(names), action=self._group_step, timeout=None)
        self.step = 0                                         # the step the barrier's action rolls out
        self.results: dict[str, dict] = {}
        self.dataset_prompt: dict[str, dict[str, str]] = {}   # member -> question id -> its dataset prompt
        self.stop_after: dict[int, bool] = {}                 # step -> the group's decision to stop there
        self.progress = None
        self.curves = Curves(None, self.paths.tensorboard)    # none until train_ilr knows the step resumed from

    def abort(self) -> None:
        self.barrier.abort()
        self.turns.abort()

    # -- stopping on a signal: the first member decides (a collective, in its turn), the others follow --
    def decide_stop(self, name: str):
        def decide(step: int) -> bool:
            if name == self.names[0]:
                self.stop_after[step] = preempt.agreed()
            return self.stop_after[step]
        return decide

    # -- the TRL seam -------------------------------------------------------------------------
    def rollout_func_for(self, name: str):
        def rollout_func(prompts: list, trainer) -> dict:
            return self.rollout(name, prompts, trainer)
        return rollout_func

    def rollout(self, name: str, prompts: list, trainer) -> dict:
        step = self.step = trainer.state.global_step   # the update this rollout feeds is step + 1
        self.turns.done(name)                   # the next member's turn; the last one's arrival rolls out
        self.barrier.wait()
        self.turns.wait(name)
        mine = self.results[name]
        check_handed(name, step, prompts, [self.dataset_prompt[name][q["id"]] for q in self.my_questions(step)
                                           for _ in self.stages], self.args.num_generations)
        return {"prompt_ids": mine["prompt_ids"], "completion_ids": mine["completion_ids"], "logprobs": None,
                "ilr_reward": mine["rewards"]}

    def _group_step(self) -> None:
        """The barrier's action: one thread runs the group rollout while every member waits."""
        try:
            self.results = self.group_rollout(self.step)
        finally:
            self.turns.restart()

    # -- one step of the group ----------------------------------------------------------------
    def my_questions(self, step: int) -> list[dict]:
        n = self.args.questions_per_step
        return dist.my_slice(self.schedule[step * n:(step + 1) * n])

    def interaction_of(self, record: dict) -> tuple[dict[str, str] | None, dict[str, float] | None]:
        """Each model's mode on this question (None: no interaction) and, under irt, each model's P."""
        rule = self.method["interaction"]
        if rule == "none":
            return None, None
        if rule == "ratio":
            mode = ratio_type(self.method["p"], self.seed, record["id"])
            return {n: mode for n in self.names}, None
        d = self.difficulty[record["id"]]
        P = {n: irt_probability(self.gamma[n], d, self.interaction_cfg["slope"]) for n in self.names}
        return irt_types(P, self.interaction_cfg["irt_rule"]), P

    def group_rollout(self, step: int) -> dict[str, dict]:
        from ilr.idea3 import run_idea3

        seed_rollout(self.seed, "rollout", step)
        questions = self.my_questions(step)
        decided = [self.interaction_of(r) for r in questions]
        G = self.args.num_generations
        outs = run_idea3({n: rollout_engine(self.trainers[n], self.use_vllm) for n in self.names}, self.prompts, questions,
                         [mode for mode, _ in decided], G, self.args.temperature, self.args.max_new_tokens,
                         n_sharing=G if "sharing" in self.stages else 1)
        results = {n: {"prompt_ids": [], "completion_ids": [], "rewards": [], "advantages": []} for n in self.names}
        rows = []
        for q, (record, (mode, P)) in enumerate(zip(questions, decided)):
            scored = {}   # stage -> (samples per model, raw rewards, calibrated rewards or None)
            for stage in self.stages:
                samples = {n: getattr(outs[n][q], "sharing_samples" if stage == "sharing" else "fusion")
                           for n in self.names}
                raw = {n: [rule_reward(record, s.text, self.args.reward_format) for s in samples[n]]
                       for n in self.names}
                calibrated = calibrate(raw, self.args.calibration_eps) if self.method["calibration"] else None
                scored[stage] = samples, raw, calibrated
                for n in self.names:
                    for s, r in zip(samples[n], (calibrated or raw)[n]):
                        results[n]["prompt_ids"].append(s.prompt_ids)
                        results[n]["completion_ids"].append(s.completion_ids)
                        results[n]["rewards"].append(r)
            rows.append(self.log_row(step, record, mode, P, scored, outs, q))
        rows = [row for share in dist.gather(rows) for row in share]   # every process's questions, in order
        self.add_advantages(rows)
        for row in dist.my_slice(rows):   # the advantages TRL trains on: this process's rows, in batch order
            for n in self.names:
                m = row["models"][n]
                results[n]["advantages"] += (m["sharing"]["advantages"] if "sharing" in self.stages else []) \
                    + m["advantages"]
        write_log(self.paths.rollouts, rows)
        metrics = self.metrics(step, rows)
        write_log(self.paths.metrics, [metrics])
        self.curves.log(metrics)   # TensorBoard: <run_dir>/tensorboard/ (ilr/train/trackers.py)
        if self.progress is not None:
            self.progress.update(1)
        return results

    def add_advantages(self, rows: list[dict]) -> None:
        """Into each row, per model and trained stage: `advantages` (what the model trains on: config
        training.advantages and scale_rewards, ilr/calibration.py) and `advantages_uncalibrated` (what it
        would train on from the raw rewards). Where they are equal, calibration changes no update."""
        estimator, scale = self.args.advantages, self.args.scale_rewards
        trained = "calibrated" if self.method["calibration"] else "rewards"

        def entry(row: dict, name: str, stage: str) -> dict:
            m = row["models"][name]
            return m if stage == "fusion" else m["sharing"]

        for stage in self.stages:
            for key, source in (("advantages", trained), ("advantages_uncalibrated", "rewards")):
                step = {n: [x for r in rows for x in entry(r, n, stage)[source]] for n in self.names}
                batch_std = {n: unbiased_std(g) for n, g in baseline_pool(step, estimator).items()}
                for r in rows:
                    adv = advantages({n: entry(r, n, stage)[source] for n in self.names}, estimator, scale, batch_std)
                    for n in self.names:
                        entry(r, n, stage)[key] = adv[n]

    def log_row(self, step, record, mode, P, scored, outs, q) -> dict:
        rule = self.method["interaction"]
        row = {"step": step + 1, "question_id": record["id"],
               "difficulty": self.difficulty[record["id"]] if rule == "irt" else None,
               "rule": rule, "interaction": None if mode is None else common_type(mode), "models": {}}
        if rule == "ratio":
            row["p"] = self.method["p"]
        _, raw, calibrated = scored["fusion"]
        for n in self.names:
            o = outs[n][q]
            completions = {k: v for k, v in (("sharing", o.sharing), ("analysis", o.analysis)) if v is not None}
            completions["fusion"] = [s.text for s in o.fusion]
            row["models"][n] = {"gamma": self.gamma.get(n), "P": None if P is None else P[n],
                                "interaction": None if mode is None else mode[n],   # this model's own mode
                                "rewards": raw[n], "calibrated": None if calibrated is None else calibrated[n],
                                "completions": completions,
                                # was the idea this model shared right (what its peers read)? None: no sharing
                                "sharing_correct": None if o.sharing is None else rule_reward(record, o.sharing) == 1.0}
            if "sharing" in scored:   # trained Sharing (an extension of METHOD.md's record): its G answers
                samples, s_raw, s_cal = scored["sharing"]
                row["models"][n]["sharing"] = {"completions": [s.text for s in samples[n]], "rewards": s_raw[n],
                                               "calibrated": None if s_cal is None else s_cal[n]}
        return row

    def metrics(self, step: int, rows: list[dict]) -> dict:
        # the share of (question, model) pairs in cooperation: under irt_rule per_model, models differ
        modes = [m["interaction"] for r in rows for m in r["models"].values()]
        metrics = {"step": step + 1, "cooperation_fraction": sum(x == COOPERATION for x in modes) / len(modes)}
        for n in self.names:
            rewards = [x for r in rows for x in r["models"][n]["rewards"]]
            metrics[f"{n}/reward"] = sum(rewards) / len(rewards)
            cal = [x for r in rows if r["models"][n]["calibrated"] for x in r["models"][n]["calibrated"]]
            if cal:
                metrics[f"{n}/calibrated_reward"] = sum(cal) / len(cal)
            if "sharing" in self.stages:
                shared = [x for r in rows for x in r["models"][n]["sharing"]["rewards"]]
                metrics[f"{n}/sharing_reward"] = sum(shared) / len(shared)
            lengths = [len(t) for r in rows for t in r["models"][n]["completions"]["fusion"]]
            metrics[f"{n}/fusion_chars"] = sum(lengths) / len(lengths)
            for peer_right, label in ((True, "peer_right"), (False, "peer_wrong")):   # does reading a peer help?
                split = [x for r in rows if r["interaction"] and peers_right(r, n) == peer_right
                         for x in r["models"][n]["rewards"]]
                if split:
                    metrics[f"{n}/fusion_reward_{label}"] = sum(split) / len(split)
        metrics["calibration_effect"] = calibration_effect(rows)
        return metrics


def peers_right(row: dict, name: str) -> bool:
    """Whether every peer's shared idea (its Sharing answer) was right."""
    return all(m["sharing_correct"] for other, m in row["models"].items() if other != name)


def calibration_effect(rows: list[dict]) -> float:
    """How far calibration moved the advantages in these rollout-log rows: max |A - c A_uncalibrated|, with c
    the one scale that fits them best (a uniform rescale, e.g. x2 for m = 2 under scale_rewards none, changes
    no Adam update). Below ~1e-3 (TRL's 1e-4 in the std's denominator) the run trains as its uncalibrated
    twin would have on the same completions (METHOD.md section 5)."""
    def entries(m: dict) -> list[dict]:
        return [m] + ([m["sharing"]] if "sharing" in m else [])

    pairs = [(a, b) for r in rows for m in r["models"].values() for e in entries(m)
             for a, b in zip(e["advantages"], e["advantages_uncalibrated"])]
    norm = sum(b * b for _, b in pairs)
    c = sum(a * b for a, b in pairs) / norm if norm else 1.0
    return max((abs(a - c * b) for a, b in pairs), default=0.0)


INERT = 1e-3   # calibration_effect below this: the calibrated run trains as the uncalibrated one


_RNG_LOAD_LOCK = threading.Lock()


def member_trainer_class():
    import torch
    from trl import GRPOTrainer

    class ILRMemberTrainer(GRPOTrainer):
        """A group member: TRL's GRPOTrainer, generating through the coordinator, batch not shuffled, taking
        turns with the other members (see the module docstring)."""

        coordinator: GroupCoordinator
        member: str

        def train(self, *args, **kwargs):
            self.coordinator.turns.wait(self.member)    # setup (DDP / DeepSpeed init, resume) in turn
            try:
                out = super().train(*args, **kwargs)
            except BaseException:
                self.coordinator.abort()                # wake the members waiting for this one
                raise
            self.coordinator.turns.done(self.member)    # what follows the last step was in turn too
            return out

        def _prepare_inputs(self, generation_batch):
            if not self.model.training:
                return super()._prepare_inputs(generation_batch)
            # One generation per optimizer step (steps_per_generation = num_iterations = 1): the whole
            # generation batch is the step's batch, so TRL's in-batch shuffle would only permute it.
            inputs = self._generate_and_score_completions(generation_batch)
            # The advantages are the coordinator's (config training.advantages: a member's own G completions
            # as TRL computes them, or pooled over the group's m x G), the ones the rollout log records. The
            # step's results stay until every member has arrived at the next rollout, this one included.
            mine = self.coordinator.results[self.member]["advantages"]
            inputs["advantages"] = torch.tensor(mine, dtype=inputs["advantages"].dtype,
                                                device=inputs["advantages"].device)
            return inputs

        def _load_rng_state(self, checkpoint):
            # transformers allowlists numpy's globals for torch.load by entering and leaving
            # torch.serialization.safe_globals, which edits one process-wide set: one member at a time
            # (the turns already serialise the members; the lock keeps this safe on its own).
            with _RNG_LOAD_LOCK:
                return super()._load_rng_state(checkpoint)

    return ILRMemberTrainer


def train_ilr(config: dict, method_name: str, group: str, seed: int, train_path: str,
              ability_files: list[str], difficulty_file: str | None, out_dir: str) -> None:
    from ilr import config as cfg
    from ilr.prompts import trl_prompt

    method = cfg.method_config(config, method_name)
    args = cfg.training_args(config, method_name)
    names = config["groups"][group]
    paths = RunPaths(out_dir)                      # the group's directory; paths.member(n): each member's
    paths.root.mkdir(parents=True, exist_ok=True)
    gamma = {}
    for f in ability_files:
        a = read_json(f)
        gamma[a["model"]] = a["gamma"]
    if method["interaction"] == "irt":
        missing = [n for n in names if n not in gamma]
        if missing or not difficulty_file:
            raise ValueError(f"methods.{method_name}: interaction 'irt' needs gamma of {names} and the group's "
                             f"difficulty file (missing gamma: {missing}, difficulty: {difficulty_file})")
    difficulty = ({r["id"]: r["difficulty"] for r in read_jsonl(difficulty_file)} if difficulty_file else {})
    schedule = question_schedule(train_path, args.steps, args.questions_per_step, seed)
    coordinator = GroupCoordinator(config, method, args, seed, names, schedule, gamma, difficulty, paths.root)

    Trainer = member_trainer_class()
    # every member's config first: under DeepSpeed ZeRO-3 they make from_pretrained load sharded (zero.Init)
    trl_args = {n: model_grpo_config(config, args, seed, n, paths.member(n).root,
                                     rows_per_question=len(coordinator.stages)) for n in names}
    for n in names[1:]:
        # accelerate's state is one per process, with one DeepSpeed plugin: the first member's trainer sets it
        # up, the others (same DeepSpeed settings) reuse it instead of bringing their own, which it refuses
        trl_args[n].deepspeed_plugin = None
    for n in names:
        model, tokenizer = load_for_training(config["models"][n]["path"])
        prompt_of = lambda r, tok=tokenizer: trl_prompt(tok, coordinator.prompts.solve(r))  # noqa: E731
        coordinator.dataset_prompt[n] = {r["id"]: prompt_of(r) for r in schedule}
        rows = [r for r in schedule for _ in coordinator.stages]   # a row per (question, trained stage)
        trainer = grpo_trainer(Trainer, model, tokenizer, records_dataset(rows, prompt_of),
                               rollout_reward("ilr_reward"), trl_args[n],
                               preempt.stop_callback(coordinator.decide_stop(n)),
                               rollout_func=coordinator.rollout_func_for(n), shared_prefix=args.shared_prefix)
        trainer.coordinator, trainer.member = coordinator, n
        coordinator.trainers[n] = trainer

    # Resume every member from the newest step that all of them have checkpointed.
    steps = [latest_checkpoint(paths.member(n).checkpoints) for n in names]
    resume_step = min(checkpoint_step(p) for p in steps)
    for log in (paths.rollouts, paths.metrics):
        truncate_log(log, resume_step)
    coordinator.curves = Curves(args, paths.tensorboard, resume_step, prefix="group")

    errors: list[BaseException] = []

    def run(name: str) -> None:
        ckpt = paths.member(name).checkpoint(resume_step) if resume_step else None
        try:
            coordinator.trainers[name].train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    if dist.is_main():
        coordinator.progress = tqdm(total=args.steps, initial=resume_step, desc=f"{method_name} {group}",
                                    unit="step")
    threads = [threading.Thread(target=run, args=(n,), name=f"ilr-{n}") for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if coordinator.progress is not None:
        coordinator.progress.close()
    coordinator.curves.close()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if errors:
        raise (real or errors)[0]
    done = min(coordinator.trainers[n].state.global_step for n in names)
    if done < args.steps:  # stopped on a signal: every member saved checkpoint-<done>
        raise preempt.Interrupted(done)
    summary = training_summary(method, paths.rollouts) if dist.is_main() else None
    for n in names:
        trainer = coordinator.trainers[n]
        if dist.is_main():
            with open(paths.member(n).trainer_log, "w") as f:
                for row in trainer.state.log_history:
                    f.write(json.dumps(row) + "\n")
        save_trainer_final(trainer, paths.member(n).final, summary)


def training_summary(method: dict, rollouts: Path) -> dict:
    """What the evaluation of a checkpoint should know about its training (ilr/evaluate.py copies it into
    every evaluation file; the ablation table reads it): for a calibrated run, whether calibration moved
    any advantage over the whole run (else the row trains exactly as its uncalibrated twin)."""
    summary = {"method": method["name"], "calibration": method["calibration"]}
    if method["calibration"]:
        effect = calibration_effect(read_jsonl(rollouts))
        summary.update(calibration_effect=effect, calibration_inert=effect < INERT)
    return summary


def train(config: dict, args) -> None:
    train_ilr(config, args.method, args.group, args.seed, args.train, args.ability, args.difficulty, args.out_dir)
