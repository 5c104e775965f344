"""Compute cost of a model on a given input: parameters, FLOPs, latency, throughput, peak memory.

Definitions (all measured on the device the model's parameters are on, in ``eval()`` mode, inside
``torch.inference_mode()``; the model's training flag is restored afterwards):

* ``params`` / ``params_trainable``: number of scalar parameters (each shared tensor counted once) /
  those with ``requires_grad``.
* ``flops``: floating-point operations of one forward pass at batch 1, counted by
  ``torch.utils.flop_counter.FlopCounterMode``: **FLOPs, not MACs** (a multiply-add counts 2, so a
  ``Linear(i, o)`` on ``B`` rows is ``2·B·i·o``).  Only the ops the counter knows are counted (matmul,
  convolutions, attention, ...); element-wise ops, normalisation, FFTs and bias additions count 0, so the
  number is a lower bound for models that lean on those.
* ``latency_ms[f"b{B}"]``: median wall time of one forward at batch ``B`` over ``repeats`` timed runs after
  ``warmup`` untimed ones (``time.perf_counter``; on CUDA with ``torch.cuda.synchronize()`` before and after
  each run), with ``torch.get_num_threads()`` intra-op threads (recorded as ``threads``).
* ``throughput``: samples per second at the largest batch, ``B / median latency``.
* ``peak_memory_bytes[f"b{B}"]``: peak of tensor memory allocated *during* one forward at batch ``B``
  above what was allocated just before it (weights, inputs and other live tensors excluded; allocator
  caches, the Python heap and library code excluded).  CUDA: ``torch.cuda.max_memory_allocated()`` −
  ``torch.cuda.memory_allocated()`` after ``reset_peak_memory_stats()``.  CPU: the running total of
  allocations that ``torch.profiler`` records with ``profile_memory=True`` (its ``[memory]`` events,
  "Total Allocated"): max over the pass minus the value before the first allocation.  The two are the
  same quantity (activation memory of the pass) from the two allocators; RSS-based numbers
  (``getrusage``) would mix in allocator caching and are not used.

Inputs: ``input_shape`` is the shape of *one sample* of the positional input ``x`` (e.g.
``(T_in, C, H, W)``); ``extra_inputs`` are keyword inputs of ``forward``: a per-sample shape tuple
(filled with ``randn``), a tensor holding one sample with a leading batch dim of 1 (repeated to the
batch; keeps its dtype, e.g. a bool ``text_mask``), a callable ``f(batch_size) -> value``, or any other
value passed unchanged (``None``, flags).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

from core.errors import ConfigError

__all__ = ["CostReport", "count_parameters", "count_flops", "make_inputs", "measure_latency",
           "peak_memory", "measure_cost"]


@dataclass(frozen=True)
class CostReport:
    """The cost of one model on one input (see the module docstring for each definition)."""

    params: int
    params_trainable: int
    flops: int | None
    latency_ms: dict[str, float]
    throughput: float | None
    peak_memory_bytes: dict[str, int | None]
    device: str
    threads: int
    input_shape: list[int] | None
    batch_sizes: list[int]
    warmup: int
    repeats: int
    flops_note: str = "FLOPs (not MACs) of one forward at batch 1, torch.utils.flop_counter"
    memory_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``throughput`` in samples/s)."""
        return json.loads(json.dumps(asdict(self)))


def count_parameters(model) -> tuple[int, int]:
    """``(total, trainable)`` numbers of scalar parameters of ``model`` (shared tensors once)."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def _device_of(model):
    import torch

    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def make_inputs(input_shape: Sequence[int] | None, batch_size: int, extra_inputs: Mapping[str, Any] | None = None,
                device=None, dtype=None, seed: int = 0) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` for ``model(*args, **kwargs)`` at ``batch_size`` (see the module docstring)."""
    import torch

    dtype = dtype or torch.float32
    device = torch.device("cpu") if device is None else torch.device(device)
    g = torch.Generator().manual_seed(seed)

    def rand(shape):
        return torch.randn((batch_size, *[int(s) for s in shape]), generator=g, dtype=dtype).to(device)

    args: tuple = () if input_shape is None else (rand(input_shape),)
    kwargs: dict[str, Any] = {}
    for name, spec in (extra_inputs or {}).items():
        if isinstance(spec, torch.Tensor):
            if spec.dim() == 0 or spec.shape[0] != 1:
                raise ConfigError(f"extra input {name!r}: give one sample with a leading batch dim of 1, "
                                  f"got shape {tuple(spec.shape)}")
            kwargs[name] = spec.to(device).expand(batch_size, *spec.shape[1:]).clone()
        elif isinstance(spec, (tuple, list)) and all(isinstance(s, int) for s in spec):
            kwargs[name] = rand(spec)
        elif callable(spec):
            kwargs[name] = spec(batch_size)
        else:
            kwargs[name] = spec
    return args, kwargs


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _EvalMode:
    """Context: ``model.eval()`` + ``torch.inference_mode()``, restoring the training flag."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        import torch

        self.was_training = self.model.training
        self.model.eval()
        self.inf = torch.inference_mode()
        self.inf.__enter__()
        return self

    def __exit__(self, *exc):
        self.inf.__exit__(*exc)
        self.model.train(self.was_training)
        return False


def count_flops(model, input_shape: Sequence[int] | None, extra_inputs: Mapping[str, Any] | None = None,
                batch_size: int = 1) -> int:
    """FLOPs (2 per multiply-add) of one forward at ``batch_size``, by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    device = _device_of(model)
    args, kwargs = make_inputs(input_shape, batch_size, extra_inputs, device=device)
    with _EvalMode(model):
        with FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
    return int(counter.get_total_flops())


def measure_latency(model, input_shape: Sequence[int] | None, batch_size: int,
                    extra_inputs: Mapping[str, Any] | None = None, warmup: int = 3, repeats: int = 10
                    ) -> list[float]:
    """Wall times in seconds of ``repeats`` forwards at ``batch_size`` after ``warmup`` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    device = _device_of(model)
    args, kwargs = make_inputs(input_shape, batch_size, extra_inputs, device=device)
    times = []
    with _EvalMode(model):
        for _ in range(warmup):
            model(*args, **kwargs)
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*args, **kwargs)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return times


def _cpu_peak_from_profiler(run: Callable[[], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh).get("traceEvents", [])
    mem = [e for e in events if e.get("name") == "[memory]" and isinstance(e.get("args"), dict)
           and e["args"].get("Device Type", 0) == 0 and "Total Allocated" in e["args"]]
    if not mem:
        return 0
    mem.sort(key=lambda e: (float(e.get("ts", 0.0)), e["args"].get("Ev Idx", 0)))
    base = mem[0]["args"]["Total Allocated"] - mem[0]["args"].get("Bytes", 0)
    peak = max(e["args"]["Total Allocated"] for e in mem)
    return int(max(0, peak - base))


def peak_memory(model, input_shape: Sequence[int] | None, batch_size: int,
                extra_inputs: Mapping[str, Any] | None = None) -> int:
    """Peak bytes of tensor memory allocated during one forward above the memory live before it."""
    import torch

    device = _device_of(model)
    args, kwargs = make_inputs(input_shape, batch_size, extra_inputs, device=device)
    with _EvalMode(model):
        model(*args, **kwargs)  # one warm-up pass: lazy initialisation is not the model's memory
        if device.type == "cuda":
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            out = model(*args, **kwargs)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device) - before
            del out
            return int(peak)
        return _cpu_peak_from_profiler(lambda: model(*args, **kwargs))


def measure_cost(model, input_shape: Sequence[int] | None, *, extra_inputs: Mapping[str, Any] | None = None,
                 batch_sizes: Sequence[int] = (1, 32), warmup: int = 3, repeats: int = 10,
                 flops: bool = True, memory: bool = True) -> CostReport:
    """Parameters, FLOPs (batch 1), latency per batch size, throughput (largest batch) and peak memory.

    ``model(x, **extra)`` with ``x`` of shape ``(B, *input_shape)`` (``input_shape=None``: keyword inputs
    only).  See the module docstring for every definition.
    """
    import torch

    batch_sizes = sorted({int(b) for b in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise ConfigError(f"batch sizes must be positive integers, got {batch_sizes}")
    device = _device_of(model)
    total, trainable = count_parameters(model)
    n_flops = count_flops(model, input_shape, extra_inputs, batch_size=1) if flops else None
    latency = {}
    for b in batch_sizes:
        latency[f"b{b}"] = 1000.0 * statistics.median(
            measure_latency(model, input_shape, b, extra_inputs, warmup=warmup, repeats=repeats))
    bmax = batch_sizes[-1]
    lat_max = latency[f"b{bmax}"]
    throughput = bmax / (lat_max / 1000.0) if lat_max > 0 else None
    mem = {f"b{b}": (peak_memory(model, input_shape, b, extra_inputs) if memory else None) for b in batch_sizes}
    note = ("CUDA max_memory_allocated above the memory allocated before the forward" if device.type == "cuda"
            else "torch.profiler CPU allocations: peak running total during the forward above the start")
    return CostReport(
        params=total, params_trainable=trainable, flops=n_flops, latency_ms=latency, throughput=throughput,
        peak_memory_bytes=mem, device=str(device), threads=torch.get_num_threads(),
        input_shape=None if input_shape is None else [int(s) for s in input_shape],
        batch_sizes=batch_sizes, warmup=int(warmup), repeats=int(repeats), memory_note=note,
    )
