"""Run the frozen teacher once over the training windows and cache what distillation needs.

For every training window the teacher's ``forecast``, ``latent``, ``latent_low``, ``latent_high``,
``text_fused``, ``attention`` and the ``text_pooled`` narrative embedding it was given are stored as raw
float32 arrays in a :class:`core.cache.SafeCache` (never pickles), under a content key of

    (format version, the teacher's weights hash, the window's normalised input bytes, its narrative)

so distilling several students (every method, every ablation) costs one teacher pass, and a changed
teacher, window or narrative can never be served a stale entry.  Student epochs read the cache
(:meth:`TeacherTargets.lookup`), keeping entries in memory up to ``memory_limit`` bytes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from core.errors import ConfigError, DataError

NAMESPACE = "teacher-outputs"
KEY_VERSION = "teacher-outputs-v1"
#: Teacher outputs the distillation terms read (core.losses); attention_tokens is not needed.
CACHED_KEYS = ("forecast", "latent", "latent_low", "latent_high", "text_fused", "attention", "text_pooled")


class TeacherTargets:
    """Cached teacher outputs of the training windows: ``lookup(indices) -> {name: (B, ...) tensor}``."""

    def __init__(self, cache_dir: Path, keys: Mapping[int, str], meta: Mapping[str, Any],
                 memory_limit: int = 2 ** 31, stats: Mapping[str, Any] | None = None):
        self.cache_dir = Path(cache_dir)
        self.keys = dict(keys)
        self.meta = dict(meta)
        self.memory_limit = memory_limit
        self.stats = dict(stats or {})
        self._memory: dict[int, dict[str, np.ndarray]] = {}
        self._bytes = 0
        self._cache = None

    def _open(self):
        if self._cache is None:
            from core.cache import SafeCache

            self._cache = SafeCache(self.cache_dir)
        return self._cache

    def get(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        hit = self._memory.get(index)
        if hit is not None:
            return hit
        arrays = self._open().get_arrays(NAMESPACE, self.keys[index])
        if arrays is None:
            raise DataError(f"teacher output of window {index} is missing from the cache (deleted while "
                            f"training?); rerun to rebuild it", path=self.cache_dir)
        size = sum(a.nbytes for a in arrays.values())
        if self._bytes + size <= self.memory_limit:
            self._memory[index] = arrays
            self._bytes += size
        return arrays

    def lookup(self, indices) -> dict[str, Any]:
        import torch

        idx = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        items = [self.get(i) for i in idx]
        return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}

    def close(self):
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __getstate__(self):  # a copy in a worker process opens its own cache handle
        d = dict(self.__dict__)
        d["_cache"] = None
        return d


def _window_key(weights_sha: str, x: np.ndarray, text: str | None) -> str:
    from core.cache import content_key

    return content_key(KEY_VERSION, weights_sha, np.ascontiguousarray(x, dtype=np.float32), text or "")


def check_teacher_data(teacher_meta: Mapping[str, Any], data) -> None:
    """The student's data must be the teacher's: channels, grid, window lengths, normalisation."""
    from core.train.data import check_compatible

    desc = teacher_meta.get("data") or {}
    if not desc:
        return
    check_compatible(desc, data.description, what="student data")
    for key in ("t_in", "t_out", "step"):
        if key in desc and int(desc[key]) != int(data.description.get(key, desc[key])):
            raise DataError(f"the teacher was trained with {key}={desc[key]}, this run uses "
                            f"{data.description.get(key)}: distil on the teacher's windows")
    norm = teacher_meta.get("normalizer")
    if norm and data.normalizer is not None:
        mean, std = np.asarray(norm["mean"]), np.asarray(norm["std"])
        if not (np.allclose(mean, data.normalizer.mean, rtol=1e-4, atol=1e-6)
                and np.allclose(std, data.normalizer.std, rtol=1e-4, atol=1e-6)):
            raise DataError("the teacher's normalisation statistics differ from this run's training split "
                            "(a different dataset or split?): its outputs would be in other units")


def build_teacher_cache(teacher_dir: str | Path, data, cache_dir: str | Path | None = None, *, cfg=None,
                        device: str = "auto", batch_size: int = 16, log: Callable[[str], None] | None = None,
                        builder=None) -> TeacherTargets:
    """Run the teacher in ``teacher_dir`` over ``data.train`` (windows not cached yet) and return the cache."""
    import torch
    from tqdm.auto import tqdm

    from core.cache import SafeCache
    from core.forecaster import load_forecaster

    teacher_dir = Path(teacher_dir)
    fc = load_forecaster(teacher_dir, device=device, builder=builder)
    check_teacher_data(fc.meta, data)
    cache_dir = Path(cache_dir) if cache_dir else teacher_dir / "teacher-cache"
    text = None
    if fc.uses_text:
        text = getattr(data, "text", None)
        if text is None:
            if cfg is None:
                raise ConfigError("a text teacher needs the narratives config to narrate the windows")
            from core.train.text import attach_text

            narr = fc.meta.get("data", {}).get("narratives") or {}
            text = attach_text(cfg, data, backend=narr.get("backend"), scope=narr.get("scope"), log=log)
    weights_sha = fc.meta.get("weights_sha256") or ""
    ds = data.train
    positions = list(range(len(ds)))
    keys: dict[int, str] = {}
    todo: list[tuple[int, dict]] = []
    t0 = time.perf_counter()
    with SafeCache(cache_dir) as cache:
        for pos in positions:
            item = ds[pos]
            idx = int(item["index"])
            narrative = text.text("train", idx) if text is not None else None
            keys[idx] = _window_key(weights_sha, item["x"].numpy(), narrative)
            if not cache.contains(NAMESPACE, keys[idx]) or cache.get_arrays(NAMESPACE, keys[idx]) is None:
                todo.append((idx, item))
        bar = tqdm(total=len(todo), desc="teacher pass", unit="win", disable=None, file=sys.stderr)
        t_pass = time.perf_counter()
        for start in range(0, len(todo), batch_size):
            chunk = todo[start: start + batch_size]
            x = torch.stack([it["x"] for _, it in chunk])
            batch = {"x": fc.runtime.to(x)}
            if text is not None:
                batch.update(fc.runtime.to(text.lookup("train", [i for i, _ in chunk])))
            from core.train.loop import call_model

            with torch.no_grad(), fc.runtime.autocast():
                out = call_model(fc.module, batch, features=True, uses_text=fc.uses_text)
            if text is not None:
                out = {**out, "text_pooled": batch["text_pooled"]}
            for k, (idx, _) in enumerate(chunk):
                arrays = {name: out[name][k].detach().float().cpu().numpy().astype(np.float32)
                          for name in CACHED_KEYS if name in out and out[name] is not None}
                cache.put_arrays(NAMESPACE, keys[idx], arrays)
            bar.update(len(chunk))
        bar.close()
        seconds = time.perf_counter() - t_pass
    stats = {"windows": len(positions), "computed": len(todo), "cached": len(positions) - len(todo),
             "teacher_seconds": round(seconds, 3),
             "teacher_windows_per_s": round(len(todo) / seconds, 2) if todo and seconds > 0 else None,
             "total_seconds": round(time.perf_counter() - t0, 3)}
    if log:
        log(f"s2kd: teacher outputs: {stats['computed']} window(s) computed, {stats['cached']} read from "
            f"{cache_dir}")
    meta = dict(fc.meta)
    meta["run_dir"] = str(teacher_dir)
    return TeacherTargets(cache_dir, keys, meta, stats=stats)


def prepare_teacher(cfg, data, dist=None, log: Callable[[str], None] | None = None) -> TeacherTargets:
    """The teacher-output cache for a distillation run (built by process 0, then shared)."""
    from core.train import ddp

    if not cfg.distill.teacher:
        raise ConfigError(f"distill.method={cfg.distill.method!r} needs a teacher run: set distill.teacher=RUN_DIR "
                          f"(or distill.method=none to train without distillation)")
    teacher_dir = Path(cfg.distill.teacher)
    if not teacher_dir.is_dir():
        raise ConfigError(f"distill.teacher: run directory {str(teacher_dir)!r} not found (train the teacher first)")
    dist = dist or ddp.DistInfo()
    bs = cfg.train.eval_batch_size or cfg.train.batch_size
    device = dist.device_name(cfg.runtime.device)
    cache_dir = cfg.distill.cache or None
    if dist.rank == 0:
        targets = build_teacher_cache(teacher_dir, data, cache_dir, cfg=cfg, device=device, batch_size=bs, log=log)
    ddp.barrier(dist)
    if dist.rank != 0:
        targets = build_teacher_cache(teacher_dir, data, cache_dir, cfg=cfg, device=device, batch_size=bs)
    return targets
