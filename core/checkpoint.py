"""Run directories: model weights, descriptions and resume state, without pickle.

A run directory holds (docs/ARCHITECTURE.md, "Checkpoints")::

    model.safetensors   weights of the selected model (best validation loss)
    model.json          {"format", "model": {"name", "config"}, "normalizer", "data", "code_version",
                         "metrics", "weights_sha256", ...}
    config.toml         the resolved training config
    metrics.jsonl       one JSON object per epoch
    state.safetensors   resume state: current weights, optimizer tensors, RNG states
    state.json          a readable copy of the resume state's JSON part

Every file is written atomically (``core.io``).  The resume state is one self-contained file: its JSON
part (epoch, step, optimizer hyper-parameters, best-so-far, ...) is stored in the safetensors header
metadata, so weights, optimizer and progress can never come from two different moments; ``state.json``
is written afterwards as a readable mirror and is not needed to resume.

Loading never unpickles: safetensors for tensors, ``json`` for the rest.  A missing, truncated or
malformed file raises :class:`core.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.errors import DataError
from core.io import atomic_path, atomic_write_json, json_default

FORMAT = "s2kd-run/1"
STATE_FORMAT = "s2kd-state/1"

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
STATE_WEIGHTS = "state.safetensors"
STATE_JSON = "state.json"
CONFIG_TOML = "config.toml"
METRICS_JSONL = "metrics.jsonl"


# ---------------------------------------------------------------------------------------------------
# tensors <-> safetensors files
# ---------------------------------------------------------------------------------------------------


def _save_tensors(path: Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    clean = {}
    for k, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{k}: not a tensor")
        clean[k] = t.detach().to("cpu").contiguous()
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=dict(metadata or {}))


def _load_tensors(path: Path, framework: str = "pt") -> tuple[dict[str, Any], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; ``framework="np"`` gives numpy arrays (no torch import)."""
    from safetensors import safe_open

    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        tensors = {}
        with safe_open(str(path), framework=framework, device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except DataError:
        raise
    except Exception as exc:  # SafetensorError, OSError, ValueError...
        raise DataError(f"not a valid safetensors file ({_short(exc)})", path=path) from None
    return tensors, metadata


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not valid JSON ({_short(exc)})", path=path) from None
    if not isinstance(obj, dict):
        raise DataError("expected a JSON object", path=path)
    return obj


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# model weights + description
# ---------------------------------------------------------------------------------------------------


def save_model(run_dir: str | os.PathLike, state_dict: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Write ``model.safetensors`` and ``model.json`` atomically.

    ``meta`` must hold ``model`` = ``{"name": str, "config": dict}``; it usually also has ``normalizer``
    (``Normalizer.to_json()``), ``data`` (description of the data), ``metrics`` and ``code_version``.
    """
    from core import __version__

    run_dir = Path(run_dir)
    model = meta.get("model")
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
        raise ValueError("meta['model'] must be {'name': str, 'config': dict}")
    weights = run_dir / MODEL_WEIGHTS
    _save_tensors(weights, _dedupe_shared(state_dict), metadata={"format": FORMAT})
    record = {"format": FORMAT, "code_version": __version__, **dict(meta),
              "weights_sha256": file_sha256(weights)}
    atomic_write_json(run_dir / MODEL_JSON, record)


def _dedupe_shared(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """safetensors refuses tensors that share memory: clone the later aliases."""
    out, seen = {}, set()
    for k, t in state_dict.items():
        try:
            ptr = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        except Exception:  # pragma: no cover
            ptr = None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[k] = t
    return out


def load_model_meta(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``model.json`` (DataError if missing or malformed)."""
    path = Path(run_dir) / MODEL_JSON
    if not Path(run_dir).is_dir():
        raise DataError("run directory not found", path=run_dir)
    meta = _read_json(path)
    if meta.get("format") != FORMAT:
        raise DataError(f"unknown run format {meta.get('format')!r} (expected {FORMAT!r})", path=path)
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) \
            or not isinstance(model.get("config", {}), dict):
        raise DataError("'model' must be {\"name\": str, \"config\": object}", path=path)
    return meta


def load_model_weights(run_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None,
                       framework: str = "pt") -> dict[str, Any]:
    """Read ``model.safetensors`` (checked against the hash recorded in ``model.json``): torch tensors, or
    numpy arrays with ``framework="np"``."""
    path = Path(run_dir) / MODEL_WEIGHTS
    tensors, _ = _load_tensors(path, framework)
    expected = (meta or {}).get("weights_sha256")
    if expected and file_sha256(path) != expected:
        raise DataError("weights do not match model.json (the run was interrupted while saving, or the file "
                        "was altered); resume or retrain the run", path=path)
    return tensors


def load_into(module, state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with mismatches reported as DataError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) e.g. {missing[0]!r}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[0]!r}")
        raise DataError(f"weights do not fit the model ({'; '.join(parts)})", path=path)
    for k, t in state_dict.items():
        if tuple(own[k].shape) != tuple(t.shape):
            raise DataError(f"tensor {k!r} has shape {tuple(t.shape)}, the model expects {tuple(own[k].shape)}",
                            path=path)
    module.load_state_dict(dict(state_dict), strict=True)


# ---------------------------------------------------------------------------------------------------
# resume state: current weights + optimizer + RNG + progress, one atomic file
# ---------------------------------------------------------------------------------------------------


def rng_state() -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, json) capturing the torch, CUDA, numpy and Python RNG states."""
    import torch

    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    tensors["rng.python.internal"] = torch.tensor(list(internal), dtype=torch.int64)
    js = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
          "python": {"version": version, "gauss": gauss}}
    return tensors, js


def set_rng_state(tensors: Mapping[str, Any], js: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    import torch

    torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k].to(torch.uint8) for k in cuda])
    n = js["numpy"]
    np.random.set_state((n["kind"], tensors["rng.numpy.keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached"])))
    p = js["python"]
    random.setstate((p["version"], tuple(int(v) for v in tensors["rng.python.internal"].tolist()), p["gauss"]))


def optimizer_state(optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, json) of ``optimizer.state_dict()``: tensors flattened as ``optim.<param>.<name>``."""
    import torch

    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = []
    for g in sd["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def set_optimizer_state(optimizer, tensors: Mapping[str, Any], js: Mapping[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        if not key.startswith("optim."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = t
    for pid, sc in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    groups = []
    for g in js["param_groups"]:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_state(run_dir: str | os.PathLike, model_state: Mapping[str, Any], optimizer, progress: Mapping[str, Any],
               extra_tensors: Mapping[str, Any] | None = None) -> None:
    """Write the resume state (``state.safetensors`` with its JSON in the header, then ``state.json``)."""
    run_dir = Path(run_dir)
    tensors: dict[str, Any] = {f"model.{k}": v for k, v in _dedupe_shared(model_state).items()}
    otensors, ojson = optimizer_state(optimizer)
    rtensors, rjson = rng_state()
    tensors.update(otensors)
    tensors.update(rtensors)
    tensors.update(extra_tensors or {})
    record = {"format": STATE_FORMAT, "progress": dict(progress), "optimizer": ojson, "rng": rjson}
    text = json.dumps(record, sort_keys=True, default=json_default)
    _save_tensors(run_dir / STATE_WEIGHTS, tensors, metadata={"format": STATE_FORMAT, "state": text})
    atomic_write_json(run_dir / STATE_JSON, record)


class ResumeState:
    """A loaded resume state: ``progress`` (dict), ``model`` weights, and the pieces to restore."""

    def __init__(self, path: Path, tensors: dict[str, Any], record: dict[str, Any]):
        self.path = path
        self.tensors = tensors
        self.record = record
        self.progress: dict[str, Any] = record["progress"]
        self.model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}

    def restore_optimizer(self, optimizer) -> None:
        try:
            set_optimizer_state(optimizer, self.tensors, self.record["optimizer"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise DataError(f"optimizer state does not fit this model/config ({_short(exc)})",
                            path=self.path) from None

    def restore_rng(self) -> None:
        try:
            set_rng_state(self.tensors, self.record["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise DataError(f"bad RNG state ({_short(exc)})", path=self.path) from None


def load_state(run_dir: str | os.PathLike) -> ResumeState:
    """Read ``state.safetensors`` (DataError if missing, truncated or malformed)."""
    path = Path(run_dir) / STATE_WEIGHTS
    tensors, metadata = _load_tensors(path)
    if metadata.get("format") != STATE_FORMAT or "state" not in metadata:
        raise DataError(f"not an s2kd resume state (format {metadata.get('format')!r})", path=path)
    try:
        record = json.loads(metadata["state"])
    except json.JSONDecodeError as exc:
        raise DataError(f"resume state JSON is malformed ({_short(exc)})", path=path) from None
    if not isinstance(record, dict) or not isinstance(record.get("progress"), dict) \
            or not isinstance(record.get("optimizer"), dict) or not isinstance(record.get("rng"), dict):
        raise DataError("resume state JSON lacks progress/optimizer/rng", path=path)
    if "rng.torch" not in tensors:
        raise DataError("resume state lacks the RNG tensors", path=path)
    return ResumeState(path, tensors, record)


# ---------------------------------------------------------------------------------------------------
# metrics log
# ---------------------------------------------------------------------------------------------------


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of ``metrics.jsonl`` (an unreadable last line, from a kill, is skipped)."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise DataError(f"line {i + 1} is not valid JSON", path=path) from None
    return out


def write_metrics(run_dir: str | os.PathLike, records: list[Mapping[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically with ``records`` (one JSON object per line)."""
    from core.io import atomic_write_text

    text = "".join(json.dumps(r, sort_keys=True, default=json_default) + "\n" for r in records)
    atomic_write_text(Path(run_dir) / METRICS_JSONL, text)
