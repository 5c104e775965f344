"""Training configuration: TOML files → frozen dataclasses, command-line overrides, TOML output.

A config file has the sections of :class:`Config`::

    [data]      where the data is and how windows are cut        (DataSection)
    [model]     name = "<registry name>" plus one sub-table of size options per model name
    [train]     optimiser, schedule, batch size, epochs, checkpoints (TrainSection)
    [runtime]   device, autocast, channels-last, torch.compile, loader workers (RuntimeSection)
    [distill]   teacher run, teacher-output cache, and the loss options of ``core.losses.DistillConfig``
    [narratives] narrative backend and scope for a text-conditioned teacher (NarrativeSection)

Every default lives in exactly one place: the dataclass field below (or, for model sizes and loss
weights, the model's / the loss's own config dataclass).  Presets in ``configs/`` only override.

Rules, all raised as a one-line :class:`core.errors.ConfigError` naming the file and the key:
unknown keys, values of the wrong type, values out of range or not among the allowed choices.

Overrides use dotted keys and TOML value syntax: ``train.lr=3e-4``, ``model.name="student"``,
``data.variables=["t2m"]``.  A value that is not valid TOML is taken as a bare string
(``data.root=data/tiny/weather``), so shells need no extra quoting.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from core.errors import ConfigError

# ---------------------------------------------------------------------------------------------------
# Sections.  Field metadata: ``ge`` / ``gt`` / ``le`` bounds, ``choices``, ``help``.
# ---------------------------------------------------------------------------------------------------


def _f(default, help: str = "", **meta):
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples / mapping factories for container defaults")
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class DataSection:
    """Which dataset and how it is cut into windows (see ``core.data``)."""

    root: str = _f("", "dataset folder (one written by `s2kd data synth`, or a real archive); required")
    source: str = _f("", "reader name (weatherbench, wb2, taxibj, taxibj-npz, taxibj+, netcdf); '' = from s2kd_dataset.json")
    variables: tuple[str, ...] = _f((), "channels to use (short names); () = all the reader returns")
    t_in: int = _f(0, "input frames; 0 = from s2kd_dataset.json", ge=0)
    t_out: int = _f(0, "target frames; 0 = from s2kd_dataset.json", ge=0)
    stride: int = _f(1, "distance between window starts (in time steps)", ge=1)
    step: int = _f(1, "distance between frames inside a window (in time steps)", ge=1)
    max_train_windows: int = _f(0, "use at most this many training windows (evenly spaced); 0 = all", ge=0)
    max_val_windows: int = _f(0, "use at most this many validation windows (evenly spaced); 0 = all", ge=0)


@dataclass(frozen=True)
class TrainSection:
    """Optimisation: AdamW with linear warm-up and cosine decay, gradient clipping, early stopping."""

    epochs: int = _f(10, "number of epochs", ge=1)
    batch_size: int = _f(16, "global batch size (split evenly over DDP processes)", ge=1)
    eval_batch_size: int = _f(0, "validation batch size; 0 = batch_size", ge=0)
    lr: float = _f(1e-3, "peak learning rate", gt=0.0)
    min_lr_ratio: float = _f(0.01, "final learning rate as a fraction of lr", ge=0.0, le=1.0)
    warmup_fraction: float = _f(0.05, "fraction of all steps spent in linear warm-up", ge=0.0, le=1.0)
    weight_decay: float = _f(0.05, "AdamW weight decay", ge=0.0)
    beta1: float = _f(0.9, "AdamW beta1", ge=0.0, lt=1.0)
    beta2: float = _f(0.999, "AdamW beta2", ge=0.0, lt=1.0)
    grad_clip: float = _f(1.0, "clip the global gradient norm to this; 0 = off", ge=0.0)
    patience: int = _f(5, "stop after this many epochs without a better validation loss; 0 = never", ge=0)
    seed: int = _f(0, "seed of weights initialisation and of the data order (a function of seed and epoch)", ge=0)
    checkpoint_every: int = _f(0, "also write the resume state every N optimiser steps; 0 = at epoch end only", ge=0)
    max_steps_per_epoch: int = _f(0, "cap on optimiser steps per epoch; 0 = the whole training split", ge=0)


@dataclass(frozen=True)
class RuntimeSection:
    """Where and how tensors run (see ``core.device``)."""

    device: str = _f("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    amp: bool = _f(True, "bf16 autocast on GPU (ignored on CPU)")
    channels_last: bool = _f(False, "channels-last memory format for the model and its inputs")
    compile: bool = _f(False, "torch.compile the model")
    num_workers: int = _f(0, "data-loader worker processes", ge=0)
    pin_memory: bool = _f(True, "pinned-memory loaders on GPU (ignored on CPU)")
    progress: bool = _f(True, "show a progress bar (only when stderr is a terminal)")


@dataclass(frozen=True)
class NarrativeSection:
    """Narratives fed to a text-conditioned teacher (``teacher-s2``)."""

    backend: str = _f("diagnostic", "narrator backend", choices=("diagnostic", "openai", "transformers"))
    scope: str = _f("context", "what a narrative may describe", choices=("context", "privileged"))
    cache: str = _f("", "narrative/embedding cache folder; '' = <data.root>/.s2kd-cache/narratives")


@dataclass(frozen=True)
class DistillSection:
    """Knowledge distillation: the teacher run, the teacher-output cache and the loss options.

    ``options`` holds the keys of ``core.losses.DistillConfig`` (``method`` and the loss weights); they
    are validated against that dataclass, whose defaults are the only defaults.
    """

    teacher: str = _f("", "run directory of the trained teacher ('' = no teacher; needed unless method is 'none')")
    cache: str = _f("", "teacher-output cache folder; '' = <teacher>/teacher-cache")
    options: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "core.losses.DistillConfig keys"})

    @property
    def method(self) -> str:
        if "method" in self.options:
            return str(self.options["method"])
        cls = _distill_config_class()
        if cls is None:
            return "none"
        return str(_field_defaults(cls).get("method", "none"))


MODEL_SIZES = ("tiny", "demo", "bench", "paper")


@dataclass(frozen=True)
class ModelSection:
    """``name``: a ``models`` registry name; ``size``: the model's size preset; ``overrides[name]``: keys of
    that model's config dataclass that replace the preset's values (one ``[model.<name>]`` table each)."""

    name: str = _f("student", "model to train (a name from the models registry)")
    size: str = _f("tiny", "size preset of the model", choices=MODEL_SIZES)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict,
                                                       metadata={"help": "per-model config overrides"})

    @property
    def options(self) -> dict[str, Any]:
        """The overrides that apply to the chosen model."""
        return dict(self.overrides.get(self.name, {}))


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    name: str = _f("", "a label for the run (free text)")
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    narratives: NarrativeSection = field(default_factory=NarrativeSection)
    distill: DistillSection = field(default_factory=DistillSection)


# ---------------------------------------------------------------------------------------------------
# Building dataclasses from tables, with checks.
# ---------------------------------------------------------------------------------------------------

#: Model config keys that come from the data (and the teacher), never from the config file.
DERIVED_MODEL_KEYS = ("in_shape", "t_out")

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _where(source: str | os.PathLike | None) -> str | None:
    return None if source is None else os.fspath(source)


def _field_defaults(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    if tp is float:
        return "number"
    if tp is int:
        return "integer"
    if tp is bool:
        return "true/false"
    if tp is str:
        return "string"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, key: str, source) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists → tuples, int → float)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}", path=_where(source))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a {_type_name(tp)}, got {value!r}", path=_where(source))
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{key} must have {len(args)} items, got {len(value)}", path=_where(source))
        return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(args, value))) \
            if args else tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}", path=_where(source))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}", path=_where(source))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}", path=_where(source))
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be finite, got {value!r}", path=_where(source))
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}", path=_where(source))
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table, got {value!r}", path=_where(source))
        return build_dataclass(tp, value, source=source, prefix=key)
    if isinstance(tp, type) and issubclass(tp, Mapping) or origin in (dict, Mapping, typing.Mapping,
                                                                     collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table, got {value!r}", path=_where(source))
        args = typing.get_args(tp)
        if len(args) == 2:  # e.g. Mapping[str, float]: check every value (names the entry, rejects NaN/Inf)
            return {k: _coerce(v, args[1], f"{key}.{k}", source) for k, v in value.items()}
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, typing.get_args(tp)))}, got {value!r}",
                              path=_where(source))
        return value
    # Unknown annotation (e.g. a model's own enum): accept TOML scalars as they are.
    return value


def _check_range(value: Any, meta: Mapping[str, Any], key: str, source) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}",
                          path=_where(source))
    bounds = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for name, ok, sym in bounds:
        if name in meta and isinstance(value, (int, float)) and not ok(value, meta[name]):
            raise ConfigError(f"{key} must be {sym} {meta[name]}, got {value!r}", path=_where(source))


def check_table(cls, table: Mapping[str, Any], source: str | os.PathLike | None = None, prefix: str = "",
                exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Check ``table`` against the fields of dataclass ``cls``; return the values converted.

    Unknown keys (or keys in ``exclude``), wrong types and values out of range raise ConfigError.
    Annotations understood: ``int``, ``float``, ``bool``, ``str``, ``tuple[X, ...]``, ``X | None``,
    ``Literal[...]``, nested dataclasses; field metadata ``ge``/``gt``/``le``/``lt``/``choices``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{prefix or 'config'} must be a table", path=_where(source))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - foreign dataclass with unresolvable annotations
        hints = {name: f.type for name, f in fields.items()}
    kwargs = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key {full!r} (known: {known})", path=_where(source))
        value = _coerce(value, hints.get(key, Any), full, source)
        _check_range(value, fields[key].metadata, full, source)
        kwargs[key] = value
    return kwargs


def build_dataclass(cls, table: Mapping[str, Any], source: str | os.PathLike | None = None, prefix: str = ""):
    """Build the dataclass ``cls`` from ``table`` after :func:`check_table`; its own checks
    (``__post_init__``) failing also become a ConfigError."""
    kwargs = check_table(cls, table, source, prefix)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        head = prefix or cls.__name__
        text = str(exc)
        raise ConfigError(text if text.startswith(f"{head}:") else f"{head}: {text}", path=_where(source)) from None


# ---------------------------------------------------------------------------------------------------
# Foreign config classes (models, losses), looked up lazily so that config.py stays light.
# ---------------------------------------------------------------------------------------------------


def _model_config_class(name: str):
    """The config dataclass of model ``name`` from the models registry, or None if unknown."""
    try:
        import models

        return models.config_class(name)
    except Exception:
        return None


def _model_names() -> tuple[str, ...] | None:
    try:
        import models
    except Exception:  # pragma: no cover - models failing to import is reported when a model is built
        return None
    from core.baselines import BASELINES

    return tuple(models.MODELS) + tuple(BASELINES)


def _distill_config_class():
    try:
        from core.losses import DistillConfig
    except Exception:
        return None
    return DistillConfig


def distill_config(section: DistillSection, source: str | os.PathLike | None = None):
    """Build ``core.losses.DistillConfig`` from ``[distill]``; None if core.losses is not available."""
    cls = _distill_config_class()
    if cls is None:
        if section.options and set(section.options) != {"method"} or section.method != "none":
            raise ConfigError("distill: core.losses is not available, only method 'none' can be used",
                              path=_where(source))
        return None
    return build_dataclass(cls, dict(section.options), source=source, prefix="distill")


def _build_config(table: Mapping[str, Any], source) -> Config:
    if not isinstance(table, Mapping):
        raise ConfigError("config must be a table", path=_where(source))
    table = dict(table)
    model_table = table.pop("model", {})
    distill_table = table.pop("distill", {})
    for key, sub in (("model", model_table), ("distill", distill_table)):
        if not isinstance(sub, Mapping):  # e.g. `model = "student"` or `distill = [1, 2]`
            raise ConfigError(f"{key} must be a table ([{key}]), got {sub!r}", path=_where(source))
    model_table, distill_table = dict(model_table), dict(distill_table)
    cfg = build_dataclass(Config, table, source=source)

    # [model]: name, size + one sub-table per model name.
    name = model_table.pop("name", ModelSection.name)
    size = model_table.pop("size", ModelSection.size)
    base = check_table(ModelSection, {"name": name, "size": size}, source=source, prefix="model")
    names = _model_names()
    if names is not None and base["name"] not in names:
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(sorted(names))})",
                          path=_where(source))
    overrides: dict[str, dict[str, Any]] = {}
    for key, sub in model_table.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(f"unknown key 'model.{key}' (model options go in a [model.<name>] table)",
                              path=_where(source))
        if names is not None and key not in names:
            raise ConfigError(f"unknown key 'model.{key}': no model of that name (known: {', '.join(sorted(names))})",
                              path=_where(source))
        cls = _model_config_class(key)
        if cls is not None:  # validate every model's table, not only the chosen one
            sub = check_table(cls, sub, source=source, prefix=f"model.{key}", exclude=DERIVED_MODEL_KEYS)
        overrides[key] = dict(sub)
    model = ModelSection(name=base["name"], size=base["size"], overrides=overrides)

    # [distill]: our keys + core.losses.DistillConfig keys.
    own = {f.name for f in dataclasses.fields(DistillSection) if f.name != "options"}
    mine = {k: v for k, v in distill_table.items() if k in own}
    options = {k: v for k, v in distill_table.items() if k not in own}
    distill = build_dataclass(DistillSection, mine, source=source, prefix="distill")
    distill = dataclasses.replace(distill, options=options)
    distill_config(distill, source)  # validate the loss keys now

    return dataclasses.replace(cfg, model=model, distill=distill)


# ---------------------------------------------------------------------------------------------------
# Loading, overrides, saving.
# ---------------------------------------------------------------------------------------------------


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` → ``(["train", "lr"], 0.0003)`` (TOML value syntax, bare strings allowed)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    parts = [p.strip().strip('"') for p in key.split(".")]
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {item!r}: empty key")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if raw == "" or any(c in raw for c in "[]{}\"'\n"):
            raise ConfigError(f"override {item!r}: {raw!r} is not a TOML value") from None
        value = raw  # bare string
    return parts, value


def apply_overrides(table: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``table`` with the dotted ``key=value`` overrides applied."""
    import copy

    table = copy.deepcopy(table)
    for item in overrides:
        parts, value = parse_override(item)
        node = table
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is not a table")
            node = child
        node[parts[-1]] = value
    return table


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file; errors become one-line ConfigErrors naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=path) from None


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a TOML config (or only defaults when ``path`` is None) and apply dotted overrides."""
    table = read_toml(path) if path is not None else {}
    table = apply_overrides(table, overrides)
    source = path if path is not None else "command line"
    return _build_config(table, source)


def config_from_dict(table: Mapping[str, Any], source: str = "config") -> Config:
    """Build a :class:`Config` from a nested mapping (as read from TOML)."""
    return _build_config(dict(table), source)


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as nested plain data in the TOML layout (``[model]`` with per-model sub-tables)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, ModelSection):
            out["model"] = {"name": value.name, "size": value.size,
                            **{k: _plain(dict(v)) for k, v in value.overrides.items()}}
        elif isinstance(value, DistillSection):
            d = {g.name: getattr(value, g.name) for g in dataclasses.fields(value) if g.name != "options"}
            d.update(dict(value.options))
            out["distill"] = d
        elif dataclasses.is_dataclass(value):
            out[f.name] = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
        else:
            out[f.name] = value
    return out


def resolved_dict(cfg: Config, model_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Like :func:`to_dict`, with the loss's full config (all defaults filled in) and, when given, the
    chosen model's full config (the data-derived keys ``in_shape``/``t_out`` left out)."""
    out = to_dict(cfg)
    if model_config is not None:
        out["model"][cfg.model.name] = {k: _plain(v) for k, v in model_config.items() if k not in DERIVED_MODEL_KEYS}
    dcfg = distill_config(cfg.distill) if _distill_config_class() is not None else None
    if dcfg is not None:
        out["distill"].update(_plain(dataclasses.asdict(dcfg)))
    return out


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def dumps_toml(table: Mapping[str, Any]) -> str:
    """Write nested plain data as TOML (tables, scalars, arrays of scalars); ``None`` values are skipped."""
    lines: list[str] = []

    def emit(tbl: Mapping[str, Any], path: list[str]):
        scalars = [(k, v) for k, v in tbl.items() if not isinstance(v, Mapping) and v is not None]
        tables = [(k, v) for k, v in tbl.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        for k, v in scalars:
            lines.append(f"{_key(k)} = {_value(v)}")
        for k, v in tables:
            emit(v, path + [k])

    emit(table, [])
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, Path):
        return _string(str(v))
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def save_config(cfg: Config, path: str | os.PathLike, model_config: Mapping[str, Any] | None = None) -> None:
    """Write the resolved config as TOML, atomically."""
    from core.io import atomic_write_text

    header = "# resolved s2kd training config (all values, defaults filled in)\n"
    atomic_write_text(path, header + dumps_toml(resolved_dict(cfg, model_config)))


def describe(cls=Config) -> list[tuple[str, str, Any]]:
    """``(dotted key, help, default)`` for every setting of ``cls`` (for documentation)."""
    rows = []
    for f in dataclasses.fields(cls):
        default = _field_defaults(cls).get(f.name)
        if dataclasses.is_dataclass(default):
            for key, help, d in describe(type(default)):
                rows.append((f"{f.name}.{key}", help, d))
        else:
            rows.append((f.name, f.metadata.get("help", ""), default))
    return rows
