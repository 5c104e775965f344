"""Lazy name registries: a name maps to a ``"module:attr"`` string, imported only on first use.

:class:`LazyRegistry` is a ``dict`` (name → target string, in registration order), so ``list(reg)``,
``name in reg`` and ``reg[name]`` work as on a plain dict; :meth:`LazyRegistry.register` adds a name
once and :meth:`LazyRegistry.load` imports and returns the object.  Used by :data:`core.data.SOURCES`,
:data:`core.narratives.NARRATORS` and :data:`core.synth.SIMULATORS`.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

__all__ = ["LazyRegistry"]


class LazyRegistry(dict):
    """``name → "module:attr"``, resolved by :meth:`load` on demand.

    ``kind`` names an entry in messages (``"data source"``); ``error`` is the exception class raised
    for an unknown name, with the message ``unknown <kind> 'x'; choose from a, b, c``.
    """

    def __init__(self, kind: str, error: type[Exception] = KeyError, entries: Mapping[str, str] | None = None):
        super().__init__()
        self.kind = kind
        self.error = error
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str) -> None:
        """Register ``target`` (``"module:attr"``) under ``name``; a name can be used once (else ValueError)."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._split(name, target)
        self[name] = target

    def load(self, name: str) -> Any:
        """Import and return the object registered as ``name`` (unknown name → ``self.error``)."""
        try:
            target = self[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; choose from {', '.join(self)}") from None
        module_name, attr = self._split(name, target)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and (module_name == missing or module_name.startswith(missing + ".")):
                raise ModuleNotFoundError(f"{self.kind} {name!r}: no module {module_name!r} "
                                          f"(target {target!r})", name=exc.name) from exc
            raise  # a dependency of the target module is missing: keep the original error
        try:
            return getattr(module, attr)
        except AttributeError:
            raise AttributeError(f"{self.kind} {name!r}: module {module_name!r} has no attribute {attr!r} "
                                 f"(target {target!r})") from None

    def _split(self, name: str, target: str) -> tuple[str, str]:
        parts = target.split(":") if isinstance(target, str) else []
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not of the form 'module:attr'")
        return parts[0], parts[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}, {dict.__repr__(self)})"
