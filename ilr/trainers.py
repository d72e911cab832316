"""The trainers: one spec each, the one place a trainer's facts live.

The config checks (`ilr/config/checks.py`), the run names and stage slices (`ilr/config/runs.py`,
`ilr/train/__init__.py`), the memory plan (`ilr/plan.py`), the Snakemake rules (`workflow/rules/`) and
the report (`ilr/report/`) read a trainer from `TRAINERS`; the schema's trainer enum
(workflow/schemas/config.schema.yaml) names the same trainers (tests/test_trainers.py).

Adding a trainer: its module (`train(config, args)`), one line in TRAINERS, its schema branch.
"""

from __future__ import annotations

from dataclasses import dataclass

# how ilr/plan.py estimates a training job's GPU memory
MEMORY = {
    "trl": "TRL's GRPOTrainer: the policy (+ a reference when beta > 0), its optimizer state, activations, "
           "colocated vLLM or transformers generation",
    "trl_stages": "as trl, each step's batch times the number of `train_stages` (the ILR members take turns)",
    "actor_critic": "an actor and a critic (two backbones' state and activations), transformers generation",
}


@dataclass(frozen=True)
class Trainer:
    name: str                         # config `methods.<m>.trainer`
    module: str                       # the module with `train(config, args)`
    group: bool                       # trains a group's members together (a `train_group` job) vs one model
    memory: str                       # its memory estimate, a key of MEMORY (ilr/plan.py)
    extra_models: tuple[str, ...] = ()   # method keys naming further models it loads, frozen, for inference
                                      # (each `<key>_batch_size` is its generate() batch in the memory plan)
    about: str = ""
    report_to: tuple[str, ...] = ("tensorboard",)   # the integrations of config training.report_to it writes
                                      # curves to (ilr/train/trackers.py); check-config refuses the others
    vllm: bool = True                 # samples through TRL's colocated vLLM engine where generation.engine is
                                      # vllm (its start checked before the job loads anything: ilr/train/__init__.py)

    def __post_init__(self):
        if self.memory not in MEMORY:
            raise ValueError(f"trainer {self.name!r}: memory {self.memory!r} is none of {', '.join(MEMORY)}")


TRAINERS: dict[str, Trainer] = {t.name: t for t in (
    Trainer("grpo", "ilr.train.grpo", group=False, memory="trl", about="TRL's GRPOTrainer",
            report_to=("tensorboard", "wandb", "trackio")),
    Trainer("ppo", "ilr.train.ppo", group=False, memory="actor_critic", vllm=False,
            about="a small actor-critic on accelerate (transformers generation)"),
    Trainer("ilr", "ilr.train.ilr", group=True, memory="trl_stages",
            about="the group trainer: one GRPOTrainer per member"),
    Trainer("aipo", "ilr.train.aipo", group=False, memory="trl", extra_models=("helper",),
            about="GRPOTrainer whose rollouts consult agents on a helper model (METHOD.md \"AIPO\")",
            report_to=("tensorboard", "wandb", "trackio")),
)}


def trainer(name: str) -> Trainer:
    """The spec of trainer `name`; an unknown name is an error (never another trainer's defaults)."""
    try:
        return TRAINERS[name]
    except KeyError:
        raise KeyError(f"unknown trainer {name!r} (trainers: {', '.join(TRAINERS)}; ilr/trainers.py)") from None


def single() -> list[str]:
    """The trainers whose job trains one model."""
    return [n for n, t in TRAINERS.items() if not t.group]


def group() -> list[str]:
    """The trainers whose job trains a group's members together."""
    return [n for n, t in TRAINERS.items() if t.group]


def extra_models(method: dict) -> list[str]:
    """The models (names of `models:`) a method's trainer loads besides the trained ones: AIPO's helper."""
    return [method[k] for k in trainer(method["trainer"]).extra_models if method.get(k) is not None]
