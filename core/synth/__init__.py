"""Physics-based simulators that write the embedded benchmark data in the real archive layouts.

``SIMULATORS`` maps a kind to ``"module:function"``; each function has the signature
``generate(out: pathlib.Path, preset: str, seed: int) -> dict`` and writes the real-format files plus
``s2kd_dataset.json`` and ``events.json`` into ``out`` (see docs/ARCHITECTURE.md), returning a summary.
"""

from __future__ import annotations

import importlib
from typing import Callable

PRESETS = ("tiny", "demo", "bench")

SIMULATORS: dict[str, str] = {
    "weather": "core.synth.weather:generate",
    "taxibj": "core.synth.city:generate_taxibj",
    "taxibj+": "core.synth.city:generate_taxibjplus",
}


def simulator(kind: str) -> Callable:
    """Return the ``generate`` function of ``kind`` (one of :data:`SIMULATORS`)."""
    from core.errors import UserError

    try:
        module_name, func_name = SIMULATORS[kind].split(":")
    except KeyError:
        raise UserError(f"unknown data kind {kind!r}; choose from {', '.join(SIMULATORS)}") from None
    return getattr(importlib.import_module(module_name), func_name)
