"""Training curves for TensorBoard, W&B and trackio (config `training.report_to`, a method may override it).

What each run writes beside its metrics.jsonl (docs/training.md, "Training curves"):

- grpo, aipo, each member of an ILR group: TRL's own logs (the scalars of trainer.state.log_history, tags
  `train/<key>`: reward, loss, kl, learning_rate, ...) through transformers' integrations, the TensorBoard
  event files in `<run_dir>/tensorboard/` (`<out_dir>/<model>/tensorboard/`), not transformers' default
  `<output_dir>/runs/<date>_<host>/`, which would put them among the checkpoints;
- ppo (its own loop): its metrics.jsonl row of each step (tags `train/<key>`), main process only, into
  `<out_dir>/<model>/tensorboard/`;
- the ILR coordinator: its metrics.jsonl row of each step (rewards per model, cooperation fraction,
  calibration effect; tags `group/<key>`) into `<out_dir>/tensorboard/`, beside the members' directories.

`tensorboard --logdir results/runs` shows every run, named by its path.

(choice) Offline by default: the schema's default is [tensorboard], local files. wandb runs offline
(WANDB_MODE=offline unless the environment sets it; `wandb sync <run_dir>/wandb/offline-run-*` uploads later)
with its files in the run directory (WANDB_DIR unless set); trackio logs to its local database unless the
environment names a Space. Only the single-model TRL trainers (grpo, aipo) take wandb and trackio: both keep
one run per process, and an ILR group's members share a process; ppo and ilr write TensorBoard only
(ilr/trainers.py `report_to`; check-config refuses the others, naming the key).

A resumed run's writer purges what the killed run had logged after its checkpoint (SummaryWriter's
purge_step), so the curves hold each step once. Training never reads any of this: `report_to` is left out
of the training job's config slice (ilr/train/__init__.py), so changing it reruns nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ilr.config import TrainingArgs
from ilr.layout import RunPaths
from ilr.train import dist


def integrations(args: TrainingArgs | None) -> list[str]:
    """The integrations of a method's training args: `report_to` as a list ([] for none, and without args)."""
    value = args.report_to if args is not None else None
    return [] if value in (None, "none") else list(value)


def trl_kwargs(config: dict, args: TrainingArgs, run_dir: Path) -> dict:
    """GRPOConfig's arguments for the curves of one trained model: report_to, the run's name (its path under
    results/runs: method/group/seed/model) and project (the study), wandb offline in the run directory."""
    chosen = integrations(args)
    if "wandb" in chosen:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(run_dir))
        os.environ.setdefault("WANDB_PROJECT", config["study"])
    return {"report_to": chosen, "run_name": "/".join(Path(run_dir).parts[-4:]), "project": config["study"]}


def tensorboard_in_run_dir(trainer, run_dir: Path):
    """Point a TRL trainer's TensorBoard callback (report_to tensorboard) at `<run_dir>/tensorboard/`."""
    from transformers.integrations import TensorBoardCallback

    if trainer.pop_callback(TensorBoardCallback) is not None:
        trainer.add_callback(_run_tensorboard_class()(RunPaths(run_dir).tensorboard))
    return trainer


def _run_tensorboard_class():
    from transformers.integrations import TensorBoardCallback

    class RunTensorBoard(TensorBoardCallback):
        """transformers' TensorBoard callback writing into a given directory (neither TENSORBOARD_LOGGING_DIR,
        one for the whole process, nor output_dir/runs/<date>_<host>), purging a resumed run's redone steps."""

        def __init__(self, log_dir: Path):
            super().__init__()
            self.logging_dir = str(log_dir)

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and self.tb_writer is None:
                # global_step: the checkpoint resumed from (0: a fresh run); its later steps are logged again
                self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir, purge_step=state.global_step + 1)
            return super().on_train_begin(args, state, control, **kwargs)

    return RunTensorBoard


class Curves:
    """The per-step rows of a loop that is no transformers Trainer (ppo, the ILR coordinator) as TensorBoard
    scalars `<prefix>/<key>` at the row's `step`: on the main process, when tensorboard is in report_to; a
    no-op otherwise (and without args: a placeholder). `start_step`: the step resumed from (what was logged
    after it is purged)."""

    def __init__(self, args: TrainingArgs | None, log_dir: Path, start_step: int = 0, prefix: str = "train"):
        self.prefix, self.writer = prefix, None
        if "tensorboard" in integrations(args) and dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=start_step + 1)

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():   # numbers (booleans as 0/1); None (e.g. ppo's kl at beta 0) is left out
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{self.prefix}/{key}", float(value), row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
