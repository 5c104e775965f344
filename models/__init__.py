"""s2kd models (torch nn.Modules only).

One registry, :data:`MODELS`, maps a model name to its class, its frozen config class and its preset
function.  ``build(name, config)`` accepts a config instance or a saved config dict (unknown keys are
rejected with ``ValueError``); ``config_class(name)`` and ``preset(name, size, in_shape, t_out, grid=…)``
give the rest.  Registering a name twice raises.

    teacher-s2       privileged teacher: SDN + narrative cross-attention + FiLM   (models.teacher)
    teacher-vision   the same teacher without the text path                       (models.teacher)
    student          small vision-only net with training-only KD heads           (models.student)
    simvp            SimVP with the gSTA translator (OpenSTL-style baseline)       (models.baselines)
    convlstm         ConvLSTM encoder-forecaster baseline                         (models.baselines)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from torch import nn

from models.baselines import ConvLSTM, ConvLSTMConfig, SimVP, SimVPConfig, convlstm_config, simvp_config
from models.configs import SIZES, ModelConfig
from models.student import Student, StudentConfig, student_config
from models.teacher import Teacher, TeacherConfig, teacher_config


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type[nn.Module]
    config_class: type[ModelConfig]
    preset: Callable[..., ModelConfig]
    check: Callable[[ModelConfig], None] | None = None
    description: str = ""


MODELS: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is already registered")
    MODELS[entry.name] = entry
    return entry


def _entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def config_class(name: str) -> type[ModelConfig]:
    return _entry(name).config_class


def make_config(name: str, config: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """A config instance for ``name`` from an instance or a saved dict (unknown keys → ValueError)."""
    entry = _entry(name)
    if isinstance(config, ModelConfig):
        if not isinstance(config, entry.config_class):
            raise ValueError(f"model {name!r} needs a {entry.config_class.__name__}, got {type(config).__name__}")
        cfg = config
    else:
        cfg = entry.config_class.from_dict(config)
    if entry.check is not None:
        entry.check(cfg)
    return cfg


def build(name: str, config: ModelConfig | Mapping[str, Any]) -> nn.Module:
    """Build model ``name`` from its config (instance or saved dict)."""
    cfg = make_config(name, config)
    return _entry(name).model_class(cfg)


def preset(name: str, size: str, in_shape, t_out: int, grid: str = "latlon", **overrides) -> ModelConfig:
    """The ``size`` preset (``tiny``/``demo``/``bench``/``paper``) of model ``name`` for the given shapes."""
    return _entry(name).preset(size, in_shape, t_out, grid=grid, **overrides)


def _needs_text(flag: bool):
    def check(cfg: TeacherConfig) -> None:
        if bool(cfg.use_text) != flag:
            other = "teacher-s2" if cfg.use_text else "teacher-vision"
            raise ValueError(f"config has use_text={cfg.use_text}: that is a {other} config")
    return check


register(ModelEntry("teacher-s2", Teacher, TeacherConfig,
                    lambda size, in_shape, t_out, grid="latlon", **kw: teacher_config(size, in_shape, t_out, grid, text=True, **kw),
                    _needs_text(True), "SDN + narrative teacher"))
register(ModelEntry("teacher-vision", Teacher, TeacherConfig,
                    lambda size, in_shape, t_out, grid="latlon", **kw: teacher_config(size, in_shape, t_out, grid, text=False, **kw),
                    _needs_text(False), "SDN teacher without text"))
register(ModelEntry("student", Student, StudentConfig, student_config, None, "vision-only student"))
register(ModelEntry("simvp", SimVP, SimVPConfig, simvp_config, None, "SimVP (gSTA) baseline"))
register(ModelEntry("convlstm", ConvLSTM, ConvLSTMConfig, convlstm_config, None, "ConvLSTM baseline"))

__all__ = ["MODELS", "SIZES", "ModelEntry", "build", "config_class", "make_config", "preset", "register",
           "Teacher", "TeacherConfig", "teacher_config", "Student", "StudentConfig", "student_config",
           "SimVP", "SimVPConfig", "simvp_config", "ConvLSTM", "ConvLSTMConfig", "convlstm_config"]
