"""Physics-based simulators that write the embedded benchmark data in the real archive layouts.

``SIMULATORS`` maps a kind to ``"module:function"``; each function has the signature
``generate(out: pathlib.Path, preset: str, seed: int) -> dict`` and writes the real-format files plus
``s2kd_dataset.json`` and ``events.json`` into ``out`` (see docs/ARCHITECTURE.md), returning a summary.
"""

from __future__ import annotations

from typing import Callable

from core.errors import UserError
from core.registry import LazyRegistry

PRESETS = ("tiny", "demo", "bench")

SIMULATORS: LazyRegistry = LazyRegistry("data kind", UserError, {
    "weather": "core.synth.weather:generate",
    "taxibj": "core.synth.city:generate_taxibj",
    "taxibj+": "core.synth.city:generate_taxibjplus",
})


def simulator(kind: str) -> Callable:
    """Return the ``generate`` function of ``kind`` (one of :data:`SIMULATORS`)."""
    return SIMULATORS.load(kind)
