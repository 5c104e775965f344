"""The one device / dtype / autocast helper (design §5).

Everything that runs a model (trainer, forecaster, evaluator, benchmark) asks this module where to run
and how, instead of pasting its own ``cuda if available`` block::

    rt = Runtime.create("auto", amp=True, channels_last=False, compile=False)
    model = rt.prepare(model)                 # moved, channels-last, compiled if asked
    with rt.autocast():                       # bf16 on GPU, a no-op on CPU
        out = model(rt.to(batch["x"]))
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError


def pick_device(name: str = "auto"):
    """``"auto"`` → ``cuda`` > ``mps`` > ``cpu``; otherwise the named device (checked to exist)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        forced = os.environ.get("S2KD_DEVICE")
        if forced:
            return pick_device(forced)
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"runtime.device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"runtime.device: {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"runtime.device: {name!r} requested but only {torch.cuda.device_count()} GPU(s) found")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"runtime.device: {name!r} requested but MPS is not available")
    elif device.type != "cpu":
        raise ConfigError(f"runtime.device: unsupported device {name!r}")
    return device


@dataclass(frozen=True)
class Runtime:
    """Where and how to run: device, bf16 autocast, memory format, compilation, loader settings."""

    device: Any  # torch.device
    amp: bool = True
    channels_last: bool = False
    compile: bool = False
    pin_memory: bool = True
    num_workers: int = 0

    @classmethod
    def create(cls, device: str = "auto", amp: bool = True, channels_last: bool = False, compile: bool = False,
               pin_memory: bool = True, num_workers: int = 0) -> "Runtime":
        return cls(pick_device(device), amp, channels_last, compile, pin_memory, num_workers)

    @classmethod
    def from_section(cls, section, device: str | None = None) -> "Runtime":
        """From a ``[runtime]`` config section (``device`` overrides the section's device)."""
        return cls.create(device or section.device, section.amp, section.channels_last, section.compile,
                          section.pin_memory, section.num_workers)

    @property
    def is_gpu(self) -> bool:
        return self.device.type in ("cuda", "mps")

    @property
    def amp_dtype(self):
        """The autocast dtype, or None when autocast is off (always off on CPU)."""
        import torch

        if not self.amp or self.device.type != "cuda" or not torch.cuda.is_bf16_supported():
            return None  # no fp16 fallback: it would need loss scaling; train in float32 instead
        return torch.bfloat16

    def autocast(self):
        """Context manager: bf16 autocast on CUDA when ``amp``; a no-op otherwise."""
        import torch

        dtype = self.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def prepare(self, model):
        """Move ``model`` to the device (channels-last if asked) and compile it if asked."""
        import torch

        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def to(self, obj, non_blocking: bool | None = None):
        """Move a tensor, or the tensors of a (nested) dict/list, to the device (float tensors channels-last
        when asked and 4-D)."""
        import torch

        nb = self.is_gpu and self.pin_memory if non_blocking is None else non_blocking
        if isinstance(obj, torch.Tensor):
            t = obj.to(self.device, non_blocking=nb)
            if self.channels_last and t.dim() == 4 and t.is_floating_point():
                t = t.contiguous(memory_format=torch.channels_last)
            return t
        if isinstance(obj, dict):
            return {k: self.to(v, nb) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.to(v, nb) for v in obj)
        return obj

    def loader_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.utils.data.DataLoader``: workers and pinned memory."""
        kw: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": bool(self.pin_memory and
                                                                                 self.device.type == "cuda")}
        if self.num_workers > 0:
            kw["persistent_workers"] = False
        return kw

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings)."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":  # pragma: no cover
            torch.mps.synchronize()

    def describe(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["device"] = str(self.device)
        d["amp_dtype"] = None if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")
        return d


def unwrap(model):
    """The plain module inside DDP / torch.compile wrappers (for saving weights)."""
    seen = 0
    while seen < 4:
        seen += 1
        if hasattr(model, "module") and model.__class__.__name__ in ("DistributedDataParallel", "DataParallel"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    return model
