"""Where this process stands in a training job of N processes, and the few collectives the trainers share.

A training job with more than one GPU runs as N processes (`accelerate launch --num_processes N`, one
per GPU; the train rules start it, workflow/rules/train.smk). Every trainer keeps METHOD.md section 6
under N processes: an optimizer step trains the schedule's `questions_per_step` questions, each
process `questions_per_step / N` of them (a contiguous slice, rank order), so the questions per step and
the number of steps are those of one process. What is written once (checkpoints' final weights,
`final/`, metrics, rollout logs) is written by the main process, after the others have joined the
collectives that gather sharded weights; then every rank waits for it.

Everything here is a no-op in a single process (plain `python -m ilr train`), so the trainers have one
code path. Collectives go through torch.distributed, on the process group that accelerate set up (gloo
on CPU, NCCL on GPU).
"""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def per_process(questions_per_step: int, key: str = "training.questions_per_step") -> int:
    """The questions each process trains per step; a clear error when they cannot be split evenly."""
    n = world_size()
    if questions_per_step % n:
        raise ValueError(f"{key} ({questions_per_step}) must be a multiple of the number of training processes "
                         f"({n}: one per GPU of the job, config `resources:`), so that every process trains the "
                         "same number of questions per step")
    return questions_per_step // n


def my_slice(items: list) -> list:
    """This process's contiguous share of a step's items (rank order; the same split as TRL's dataloader)."""
    k = len(items) // world_size()
    return items[rank() * k:(rank() + 1) * k]


def init() -> None:
    """Join the job's process group through DeepSpeed when it runs the job (`accelerate launch` with a
    DeepSpeed config), before anything else builds it: DeepSpeed's own view of the group is what its
    ZeRO-3 loading (`zero.Init`) sizes shards by. accelerate does this itself on GPUs but not on CPUs
    (it then opens a plain gloo group that DeepSpeed does not see, and ZeRO-3 loads for one process)."""
    if world_size() > 1 and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false") == "true":
        import deepspeed
        import torch

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def _initialized() -> bool:
    import torch.distributed as td

    return td.is_available() and td.is_initialized()


def _device():
    import torch
    import torch.distributed as td

    if td.get_backend() == "nccl":   # NCCL reduces CUDA tensors only
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if _initialized():
        import torch.distributed as td

        td.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any (a signal may reach only some of the processes)."""
    if not _initialized():
        return flag
    import torch
    import torch.distributed as td

    t = torch.tensor([1 if flag else 0], device=_device())
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def sum_all(values: list[float]) -> list[float]:
    """Element-wise sum over the ranks."""
    if not _initialized():
        return list(values)
    import torch
    import torch.distributed as td

    t = torch.tensor(values, dtype=torch.float64, device=_device())
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return t.tolist()


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not _initialized():
        return [obj]
    import torch.distributed as td

    out = [None] * td.get_world_size()
    td.all_gather_object(out, obj)
    return out


def free_port() -> int:
    """A TCP port free now on this host: the rendezvous port of a job's processes (two jobs on one node must
    not both take accelerate's default 29500)."""
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


if __name__ == "__main__":   # `python -m ilr.train.dist`: the train rules' launcher asks for a port
    print(free_port())
