"""DDP helpers: this process's rank, its device, the process group and the collectives.

One process or several under ``torchrun --nproc_per_node K --no-python lgagent train
...``: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; the group uses NCCL on GPU and
gloo on the CPU. Every collective here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: Dist and dist_from_env serve lgagent train's and
# sweep's option checks, which must not wait seconds for torch (see tests/benchmarks/test_cli.py)


@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (a single process when absent)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return Dist(rank=rank, world_size=world, local_rank=local)


def resolve_device(pref: str, d: Dist) -> torch.device:
    """``auto``: CUDA when available, else CPU; one GPU per local rank. ValueError if none."""
    import torch

    if pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {pref!r}; choose from auto, cpu, cuda")
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    n = torch.cuda.device_count()
    if d.local_rank >= n:
        raise ValueError(f"local rank {d.local_rank} needs GPU {d.local_rank}, only {n} visible")
    return torch.device("cuda", d.local_rank)


def init_distributed(d: Dist, device: torch.device) -> None:
    """Start the process group (NCCL on GPU, gloo on CPU) when running under torchrun."""
    import torch
    import torch.distributed as dist

    if d.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=d.rank, world_size=d.world_size)


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op for one process)."""
    if not d.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def abandon_distributed(d: Dist) -> None:
    """Tear the process group down without waiting for the other ranks (after an error)."""
    if not d.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def shutdown_distributed(d: Dist) -> None:
    """Barrier, then tear the process group down."""
    if not d.enabled:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def mean_over_ranks(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """``t`` averaged over every rank, in place (unchanged for one process)."""
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= d.world_size
    return t


def max_over_ranks(value: int, d: Dist, device: torch.device) -> int:
    """The largest ``value`` any rank holds (``value`` itself for one process)."""
    if not d.enabled:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def gather(obj, d: Dist) -> list:
    """Every rank's ``obj`` (picklable, CPU tensors), in rank order (``[obj]`` for one process)."""
    if not d.enabled:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world_size
    dist.all_gather_object(out, to_cpu(obj))
    return out


def params_in_sync(model: torch.nn.Module, d: Dist) -> bool | None:
    """Under DDP: True when every rank holds bitwise-identical parameters (None otherwise)."""
    if not d.enabled:
        return None
    import torch

    flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()])
    digest = torch.tensor([float(flat.sum()), float((flat * flat).sum()),
                           float(flat[::7].sum())], dtype=torch.float64)
    digests = gather(digest, d)
    return all(torch.equal(g, digests[0]) for g in digests)


def to_cpu(obj):
    """``obj`` with every tensor inside (dicts, lists) copied to the CPU."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj
