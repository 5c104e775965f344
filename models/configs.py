"""Frozen model configs: saved as a plain dict inside the checkpoint JSON, rebuilt with unknown keys rejected.

Every model has one frozen dataclass deriving from :class:`ModelConfig`.  ``cfg.to_dict()`` gives plain
JSON values (tuples become lists); ``Cls.from_dict(d)`` turns lists back into tuples and raises
``ValueError`` naming any key the class does not know, so a checkpoint written by a different version
fails loudly instead of being half-applied.

Size presets (``tiny`` for tests, ``demo`` for the app, ``bench`` for the CPU benchmark, ``paper`` for
OpenSTL-scale GPU runs) live beside each model as functions such as
``teacher_config("demo", in_shape=(12, 3, 32, 64), t_out=12)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

SIZES = ("tiny", "demo", "bench", "paper")
GRIDS = {"latlon": (False, True), "city": (False, False)}


def _to_plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_to_plain(x) for x in v]
    return v


def _to_tuple(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_to_tuple(x) for x in v)
    return v


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every model config: ``in_shape = (T_in, C, H, W)`` and ``t_out`` are always present."""

    in_shape: tuple[int, int, int, int]
    t_out: int

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, _to_tuple(v))
        if len(self.in_shape) != 4 or min(self.in_shape) < 1:
            raise ValueError(f"{type(self).__name__}: in_shape must be (T_in, C, H, W), got {self.in_shape}")
        if not _is_int(self.t_out) or int(self.t_out) < 1:
            raise ValueError(f"{type(self).__name__}: t_out must be an integer >= 1, got {self.t_out!r}")
        for f in dataclasses.fields(self):
            if f.default is dataclasses.MISSING:
                continue
            v, d = getattr(self, f.name), f.default
            ok = {bool: lambda x: isinstance(x, bool), int: _is_int, str: lambda x: isinstance(x, str),
                  float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
                  tuple: lambda x: isinstance(x, tuple)}.get(type(d), lambda x: True)(v)
            if not ok:
                raise ValueError(f"{type(self).__name__}: {f.name} must be {type(d).__name__}, got {v!r}")
        self.validate()

    def validate(self) -> None:  # overridden by subclasses
        pass

    def to_dict(self) -> dict:
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        if not isinstance(d, Mapping):
            raise ValueError(f"{cls.__name__}: expected a mapping of settings, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config key(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(sorted(names))}")
        return cls(**{k: _to_tuple(v) for k, v in d.items()})

    def replace(self, **changes):
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown config key(s) {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.in_shape[2], self.in_shape[3]

    @property
    def latent_hw(self) -> tuple[int, int]:
        """``(H, W)`` after ``n_down`` stride-2 downsamplings; only for configs with an ``n_down`` field."""
        n_down = getattr(self, "n_down", None)
        if n_down is None:
            raise AttributeError(f"{type(self).__name__} has no n_down field, hence no latent_hw")
        f = 2 ** n_down
        return self.in_shape[2] // f, self.in_shape[3] // f


def check_size(size: str) -> str:
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    return size


def periodic_for(grid: str) -> tuple[bool, bool]:
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose one of {', '.join(GRIDS)}")
    return GRIDS[grid]


def check_divisible(name: str, hw: tuple[int, int], factor: int) -> None:
    h, w = hw
    if h % factor or w % factor:
        raise ValueError(f"{name}: grid {h}x{w} is not divisible by the downsampling factor {factor}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
