"""DistributedDataParallel under ``torchrun``; the same code runs single-process.

``torchrun --nproc_per_node=N -m core train --config ... --out RUN`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``; :func:`setup` then joins the process group (``nccl`` on
CUDA, ``gloo`` on CPU) and every helper here degrades to a no-op when ``WORLD_SIZE`` is 1 or unset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> "DistInfo":
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    def device_name(self, requested: str) -> str:
        """Under DDP on CUDA each process takes ``cuda:LOCAL_RANK``; otherwise the requested device."""
        if self.enabled and self.backend == "nccl" and requested in ("auto", "cuda"):
            return f"cuda:{self.local_rank}"
        return requested


def setup(backend: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE > 1``); return this process's info."""
    info = DistInfo.from_env()
    if not info.enabled:
        return info
    import torch
    import torch.distributed as dist

    if backend is None:
        forced = os.environ.get("S2KD_DEVICE", "")
        backend = "nccl" if torch.cuda.is_available() and not forced.startswith("cpu") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(info.rank, info.world_size, info.local_rank, backend)


def teardown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap(module, info: DistInfo, runtime=None, find_unused_parameters: bool = False):
    """DistributedDataParallel around ``module`` when distributed; the module itself otherwise."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    device_ids = None
    if runtime is not None and runtime.device.type == "cuda":
        device_ids = [runtime.device.index if runtime.device.index is not None else info.local_rank]
    return DDP(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensors: Sequence[Any], info: DistInfo) -> list[Any]:
    """Sum tensors over processes (in place; returned for convenience)."""
    if info.enabled:
        import torch.distributed as dist

        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return list(tensors)


def all_reduce_dict(values: Mapping[str, float], info: DistInfo) -> dict[str, float]:
    """Sum a dict of floats over processes (keys must agree)."""
    values = dict(values)
    if not info.enabled:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if info.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def any_flag(flag: bool, info: DistInfo) -> bool:
    """True on every process when ``flag`` is True on any (used to stop together on SIGTERM)."""
    if not info.enabled:
        return bool(flag)
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    if info.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
