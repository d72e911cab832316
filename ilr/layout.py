"""Where every output of a study lands, under the config's `results:` (README "Where the outputs land").

The one home of the results layout: the Snakemake rules (workflow/rules/common.smk) and the stages that
find files by name (the tables' EvalStore) both take their paths from here. Arguments may be Snakemake
wildcard patterns ("{method}"): the methods only join strings. Inside one training run directory, what the
trainers write and the curves, the tables and the Slurm requeue read: `RunPaths`.
"""

from __future__ import annotations

from pathlib import Path

FINAL, CHECKPOINTS = "final", "checkpoints"   # a trained model's directories (RunPaths)


class Layout:
    def __init__(self, results: str):
        self.root = str(results).rstrip("/")

    # -- data and models
    @property
    def data(self) -> str:
        return f"{self.root}/data"

    @property
    def train(self) -> str:
        return f"{self.data}/train.jsonl"

    @property
    def val(self) -> str:
        return f"{self.data}/val.jsonl"

    def bench_file(self, bench: str) -> str:
        return f"{self.data}/bench/{bench}.jsonl"

    # -- ability, difficulty
    def ability_file(self, model: str) -> str:
        return f"{self.root}/ability/{model}.json"

    def difficulty_file(self, group: str) -> str:
        return f"{self.root}/difficulty/{group}.jsonl"

    def difficulty_figure(self, group: str) -> str:
        return f"{self.figures}/difficulty_{group}.png"

    # -- training: runs/<method>/<group>/seed<S>/ (grpo/ppo/aipo: <group> is the model's name)
    def run_dir(self, method: str, group: str, seed) -> str:
        return f"{self.root}/runs/{method}/{group}/seed{seed}"

    def final_dir(self, method: str, group: str, seed, model: str) -> str:
        return f"{self.run_dir(method, group, seed)}/{model}/{FINAL}"

    def run_paths(self, method: str, group: str, seed) -> "RunPaths":
        return RunPaths(self.run_dir(method, group, seed))

    # -- evaluation: eval/<method>/<group>/<model>/seed<S>/<benchmark>.json (base models: eval/base/none/...)
    def eval_dir(self, method: str, group: str, model: str, seed) -> str:
        return self.eval_run_dir(f"{method}/{group}/{model}", seed)

    def eval_run_dir(self, run: str, seed) -> str:
        """`run` = method/group/model (the evaluation rules' one wildcard for the three)."""
        return f"{self.root}/eval/{run}/seed{seed}"

    def eval_file(self, method: str, group: str, model: str, seed, bench: str) -> str:
        return f"{self.eval_dir(method, group, model, seed)}/{bench}.json"

    def multi_agent_file(self, pair: str, bench: str) -> str:
        return f"{self.root}/multi_agent/{pair}/{bench}.json"

    # -- reports and logs
    @property
    def tables(self) -> str:
        return f"{self.root}/tables"

    @property
    def figures(self) -> str:
        return f"{self.root}/figures"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"


class RunPaths:
    """The files of one training directory, by name, so that the trainers that write them and the readers
    (curves, the cooperation table, Slurm's requeue) agree. Two kinds of directory have this shape:

    - a training job's `--out-dir` (Layout.run_dir: runs/<method>/<group>/seed<S>/): `.done` once finished,
      training_curve.png, and for an ILR group the coordinator's rollouts.jsonl, metrics.jsonl and
      tensorboard/; its trained models in `member(model)`;
    - a trained model's directory (`<out-dir>/<model>/`: grpo, ppo and aipo's one model, each ILR member):
      final/ (the model the evaluation reads), checkpoints/checkpoint-N/, rollouts.jsonl and metrics.jsonl
      (grpo, ppo, aipo), trainer_log.jsonl (an ILR member's TRL log history), tensorboard/.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def member(self, model: str) -> "RunPaths":
        """The directory of one trained model of this run."""
        return RunPaths(self.root / model)

    def members(self) -> list["RunPaths"]:
        """The trained models' directories present on disk (a final model or checkpoints), sorted by name."""
        if not self.root.is_dir():
            return []
        dirs = sorted(self.root.iterdir())
        return [RunPaths(p) for p in dirs if (p / FINAL).exists() or (p / CHECKPOINTS).exists()]

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def final(self) -> Path:
        return self.root / FINAL

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"checkpoint-{step}"

    @property
    def rollouts(self) -> Path:
        return self.root / "rollouts.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def trainer_log(self) -> Path:
        return self.root / "trainer_log.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def curve(self) -> Path:
        return self.root / "training_curve.png"

    @property
    def done(self) -> Path:
        return self.root / ".done"
