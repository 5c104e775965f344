"""From a training config and its data to a :class:`core.train.loop.ModelSpec` (registry model + config)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from core.errors import ConfigError


def model_config(cfg, data, teacher_meta: Mapping[str, Any] | None = None):
    """The chosen model's config: the registry's size preset for the data's shapes + ``[model.<name>]``.

    A student distilled from a teacher takes the teacher's latent width, latent grid, cut-off and
    periodicity (``models.preset(..., teacher=TeacherConfig)``).
    """
    import models

    from core.config import check_table, DERIVED_MODEL_KEYS

    name = cfg.model.name
    if name not in models.MODELS:
        raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(models.MODELS)})")
    overrides = check_table(models.config_class(name), cfg.model.options, prefix=f"model.{name}",
                            exclude=DERIVED_MODEL_KEYS)
    kwargs: dict[str, Any] = {}
    if teacher_meta is not None and name == "student":
        t = teacher_meta["model"]
        try:
            kwargs["teacher"] = models.make_config(t["name"], t["config"])
        except ValueError as exc:
            raise ConfigError(f"distill.teacher: its model config is not usable ({exc})") from None
    grid = data.description.get("grid", "latlon")
    try:
        return models.preset(name, cfg.model.size, data.in_shape, data.t_out, grid=grid, **kwargs, **overrides)
    except ValueError as exc:
        raise ConfigError(f"model.{name}: {exc}") from None


def model_spec(cfg, data, teacher_meta: Mapping[str, Any] | None = None):
    """A :class:`ModelSpec` for the registry model named by ``cfg.model``."""
    import models

    from core.train.loop import ModelSpec

    mcfg = model_config(cfg, data, teacher_meta)
    name = cfg.model.name
    plain = mcfg.to_dict() if hasattr(mcfg, "to_dict") else dataclasses.asdict(mcfg)
    uses_text = bool(getattr(mcfg, "use_text", False))
    return ModelSpec(name=name, config=plain, build=lambda: models.build(name, mcfg), uses_text=uses_text)
