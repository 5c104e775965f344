"""Narratives: short texts about one input window, written by a pluggable narrator (design §2.4).

One protocol, :class:`Narrator`: ``narrate(window: NarrationInput) -> Narrative``.  Backends are
registered by name in :data:`NARRATORS` and built with :func:`build_narrator`:

- ``diagnostic`` (default; offline, deterministic; :mod:`core.narratives.diagnostic`),
- ``openai`` (any OpenAI-compatible chat-completions server; :mod:`core.narratives.openai_backend`),
- ``transformers`` (a local model folder, offline; :mod:`core.narratives.transformers_backend`).

Scope.  ``context`` (default) narratives see only what is known at forecast time; ``privileged`` ones
may also see the target frames.  :meth:`NarrationInput.for_scope` is the only way a backend receives
its input (:class:`BaseNarrator.narrate` calls it before anything else), and for ``context`` it returns
a copy *without* the targets, so no backend code can read them; the cache key is computed from the same
restricted view, so a context narrative cannot depend on the targets.

Caching.  :func:`narrate_cached` keys a narrative by :func:`narration_key` (sha256 of the visible window
bytes, its context JSON, backend, model, prompt version and scope) in a :class:`core.cache.SafeCache`;
fallback narratives (a backend that failed) are never cached, so a rerun tries again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import datetime as _dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from core.errors import ConfigError
from core.io import json_default
from core.registry import LazyRegistry

if TYPE_CHECKING:  # pragma: no cover
    from core.cache import SafeCache

__all__ = [
    "SCOPES", "NarrationInput", "Provenance", "Narrative", "Narrator", "BaseNarrator", "NARRATORS",
    "register_narrator", "build_narrator", "narration_key", "narrate_cached", "narrate_many",
    "NARRATIVE_NAMESPACE", "MAX_WORDS", "utc_now_iso", "limit_words", "SCHEDULED_KINDS",
    "known_at_forecast_time", "is_scheduled",
]

SCOPES = ("context", "privileged")
MAX_WORDS = 120
NARRATIVE_NAMESPACE = "narratives"
_KEY_VERSION = "narrative-key-v1"


def utc_now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(t: Any) -> str:
    """One timestamp (np.datetime64, datetime, pandas Timestamp or ISO string) as ``YYYY-MM-DDTHH:MM:SS``."""
    if isinstance(t, str):
        t = np.datetime64(t.rstrip("Z"))
    return str(np.datetime64(t, "s"))


def limit_words(text: str, max_words: int = MAX_WORDS) -> str:
    """``text`` cut to at most ``max_words`` words, at a sentence end when there is one."""
    words = " ".join(str(text).split()).split(" ")
    if len(words) <= max_words:
        return " ".join(words).strip()
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    if cut.endswith((".", "!", "?")):
        return cut
    return cut[: end + 1] if end > len(cut) // 3 else cut.rstrip(",;:") + "…"


# --------------------------------------------------------------------------- input
@dataclass(frozen=True, eq=False)
class NarrationInput:
    """Everything a narrator may look at for one window.

    - ``frames`` ``(T_in, C, H, W)`` float32 in physical units (not normalised);
    - ``channels`` / ``units``: one short name and unit string per channel;
    - ``grid``: ``"latlon"`` (``ys`` = latitude ascending, ``xs`` = longitude 0…360) or ``"city"``
      (``ys`` = y, growing northward, ``xs`` = x, growing eastward);
    - ``input_times`` / ``target_times``: ISO 8601 strings (``YYYY-MM-DDTHH:MM:SS``; UTC for weather,
      local time for city data);
    - ``context``: known-ahead exogenous context, JSON-serialisable, aligned with
      ``input_times + target_times`` where per-time: ``{"holiday": [bool...], "meteorology": {"temperature":
      [...], "wind_speed": [...], "weather": [int...]}, "events": [event dicts from events.json]}``;
    - ``climatology`` ``(C, H, W)`` (optional): the climatological mean for the window's season;
    - ``targets`` ``(T_out, C, H, W)`` (optional): the target frames; only a ``privileged`` narrator
      ever sees them (see :meth:`for_scope`).
    """

    frames: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]
    grid: str
    ys: np.ndarray
    xs: np.ndarray
    input_times: tuple[str, ...]
    target_times: tuple[str, ...]
    context: Mapping[str, Any] = field(default_factory=dict)
    climatology: np.ndarray | None = None
    targets: np.ndarray | None = None
    source: str = ""

    def __post_init__(self):
        frames = _readonly(self.frames)
        if frames.ndim != 4:
            raise ValueError(f"frames must be (T_in, C, H, W), got shape {frames.shape}")
        t_in, c, h, w = frames.shape
        set_ = object.__setattr__
        set_(self, "frames", frames)
        set_(self, "channels", tuple(str(x) for x in self.channels))
        set_(self, "units", tuple(str(x) for x in self.units))
        set_(self, "ys", _readonly(self.ys, np.float64))
        set_(self, "xs", _readonly(self.xs, np.float64))
        set_(self, "input_times", tuple(_iso(t) for t in self.input_times))
        set_(self, "target_times", tuple(_iso(t) for t in self.target_times))
        set_(self, "context", json.loads(json.dumps(dict(self.context or {}), default=json_default)))
        if len(self.channels) != c or len(self.units) != c:
            raise ValueError(f"{c} channels in frames but {len(self.channels)} names / {len(self.units)} units")
        if self.grid not in ("latlon", "city"):
            raise ValueError(f"grid must be 'latlon' or 'city', not {self.grid!r}")
        if self.ys.shape != (h,) or self.xs.shape != (w,):
            raise ValueError(f"coordinates {self.ys.shape}/{self.xs.shape} do not match the grid {(h, w)}")
        if len(self.input_times) != t_in:
            raise ValueError(f"{len(self.input_times)} input times for {t_in} frames")
        if self.climatology is not None:
            clim = _readonly(self.climatology)
            if clim.shape != (c, h, w):
                raise ValueError(f"climatology must be (C, H, W) = {(c, h, w)}, got {clim.shape}")
            set_(self, "climatology", clim)
        if self.targets is not None:
            targets = _readonly(self.targets)
            if targets.ndim != 4 or targets.shape[1:] != (c, h, w) or targets.shape[0] != len(self.target_times):
                raise ValueError(f"targets must be (T_out={len(self.target_times)}, {c}, {h}, {w}), "
                                 f"got {targets.shape}")
            set_(self, "targets", targets)

    @property
    def kind(self) -> str:
        """``"weather"`` for lat-lon fields, ``"crowd"`` for city grids."""
        return "weather" if self.grid == "latlon" else "crowd"

    def for_scope(self, scope: str) -> "NarrationInput":
        """The view a narrator of ``scope`` may see: ``context`` drops the targets."""
        if scope == "context":
            events = list((self.context or {}).get("events") or [])
            known = [e for e in events if known_at_forecast_time(e, self.input_times)]
            if self.targets is None and len(known) == len(events):
                return self
            context = dict(self.context)
            if events:
                context["events"] = known
            return dataclasses.replace(self, targets=None, context=context)
        if scope == "privileged":
            if self.targets is None:
                raise ValueError("a privileged narrative needs the target frames (targets=None)")
            return self
        raise ValueError(f"unknown narrative scope {scope!r}; choose from {', '.join(SCOPES)}")

    def metadata(self) -> dict:
        """Everything but the arrays, as JSON."""
        return {"channels": list(self.channels), "units": list(self.units), "grid": self.grid,
                "ys": self.ys.tolist(), "xs": self.xs.tolist(), "input_times": list(self.input_times),
                "target_times": list(self.target_times), "context": self.context, "source": self.source}


#: Event kinds that are scheduled, hence known ahead (city events, holidays).  Any other event (a weather
#: episode) is known at forecast time only once it has started.  ``"known_ahead"`` (or ``"scheduled"``)
#: ``true/false`` in an event overrides the kind.
SCHEDULED_KINDS = frozenset({"concert", "match", "game", "sports", "holiday", "festival", "event", "conference",
                             "exhibition", "marathon", "parade", "fair", "show"})


def is_scheduled(event: Mapping[str, Any]) -> bool:
    """An event announced in advance: ``"known_ahead"`` (or ``"scheduled"``) when given, else by kind."""
    kind = str(event.get("kind", "event")).lower()
    flag = event.get("known_ahead", event.get("scheduled"))
    return bool(flag) if flag is not None else kind in SCHEDULED_KINDS


def known_at_forecast_time(event: Mapping[str, Any], input_times: Sequence[str]) -> bool:
    """Whether ``event`` (an ``events.json`` entry) may be used in ``context`` scope for a window whose
    last input time is ``input_times[-1]``: scheduled kinds always; other events once started."""
    if not isinstance(event, Mapping):
        return False
    if is_scheduled(event):
        return True
    try:
        return np.datetime64(str(event["start"]).rstrip("Z")) <= np.datetime64(input_times[-1])
    except (KeyError, ValueError, TypeError, IndexError):
        return False


def _readonly(a, dtype=np.float32) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- output
@dataclass(frozen=True)
class Provenance:
    """Where a narrative came from.  Never holds credentials.

    ``backend``/``model``/``prompt_version`` describe what actually wrote the text: a fallback narrative
    says ``backend="diagnostic"``, ``fallback=True``, the ``requested_backend`` and the reason.
    """

    backend: str
    model: str
    prompt_version: str
    scope: str
    created_at: str
    fallback: bool = False
    fallback_reason: str | None = None
    requested_backend: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Narrative:
    """A narrative text (≤ 120 words) and its :class:`Provenance`."""

    text: str
    provenance: Provenance

    def to_json(self) -> dict:
        return {"text": self.text, "provenance": self.provenance.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Narrative":
        prov = dict(obj["provenance"])
        known = {f.name for f in dataclasses.fields(Provenance)}
        return cls(text=str(obj["text"]), provenance=Provenance(**{k: v for k, v in prov.items() if k in known}))


# --------------------------------------------------------------------------- protocol
@runtime_checkable
class Narrator(Protocol):
    """Writes one :class:`Narrative` per window.

    ``backend``, ``model``, ``prompt_version`` and ``scope`` identify the narrator (they enter the cache
    key).  ``narrate`` must see the window only through ``window.for_scope(self.scope)``.
    """

    backend: str
    model: str
    prompt_version: str
    scope: str

    def narrate(self, window: NarrationInput) -> Narrative: ...


class BaseNarrator:
    """Common plumbing: restricts the input to the narrator's scope, then calls :meth:`_narrate`."""

    backend = "base"
    model = ""
    prompt_version = ""

    def __init__(self, scope: str = "context"):
        if scope not in SCOPES:
            raise ConfigError(f"unknown narrative scope {scope!r}; choose from {', '.join(SCOPES)}")
        self.scope = scope

    def narrate(self, window: NarrationInput) -> Narrative:
        visible = window.for_scope(self.scope)  # the one door: context scope never gets targets
        return self._narrate(visible)

    def _narrate(self, window: NarrationInput) -> Narrative:  # pragma: no cover - abstract
        raise NotImplementedError

    def provenance(self, facts: Mapping[str, Any] | None = None, **extra) -> Provenance:
        return Provenance(backend=self.backend, model=self.model, prompt_version=self.prompt_version,
                          scope=self.scope, created_at=utc_now_iso(), facts=dict(facts or {}), **extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, scope={self.scope!r})"


# --------------------------------------------------------------------------- registry
#: name -> "module:Class"; classes are imported on first use.
NARRATORS: LazyRegistry = LazyRegistry("narrator", ConfigError, {
    "diagnostic": "core.narratives.diagnostic:DiagnosticNarrator",
    "openai": "core.narratives.openai_backend:OpenAINarrator",
    "transformers": "core.narratives.transformers_backend:TransformersNarrator",
})


def register_narrator(name: str, target: str) -> None:
    """Register a backend ``name`` as ``"module:Class"``; raises on a duplicate name."""
    NARRATORS.register(name, target)


def build_narrator(name: str = "diagnostic", **options) -> Narrator:
    """Build the narrator ``name`` with its options (e.g. ``scope="context"``, ``base_url=...``)."""
    cls = NARRATORS.load(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for narrator {name!r}: {exc}") from None


# --------------------------------------------------------------------------- caching
@functools.lru_cache(maxsize=None)
def narrator_code_fingerprint(narrator_type: type) -> str:
    """sha256 (16 hex digits) of the source of the narrator's module and of ``facts.py``.

    Part of every cache key, so editing a narrator's code (not only bumping its prompt version)
    invalidates the narratives it wrote before.
    """
    import hashlib
    import inspect
    from pathlib import Path

    h = hashlib.sha256()
    files = {inspect.getsourcefile(narrator_type), str(Path(__file__).with_name("facts.py"))}
    for name in sorted(f for f in files if f):
        with contextlib.suppress(OSError):
            h.update(Path(name).read_bytes())
    return h.hexdigest()[:16]


def narration_key(window: NarrationInput, narrator: Narrator) -> str:
    """Content hash of (visible window data, context, backend, model, prompt version, narrator code, scope)."""
    from core.cache import content_key

    visible = window.for_scope(narrator.scope)
    parts: list[Any] = [_KEY_VERSION, narrator.backend, narrator.model, narrator.prompt_version,
                        narrator_code_fingerprint(type(narrator)), narrator.scope, visible.metadata(), visible.frames]
    parts.append(visible.climatology if visible.climatology is not None else b"no-climatology")
    if narrator.scope == "privileged":
        parts.append(visible.targets)
    return content_key(*parts)


def narrate_cached(narrator: Narrator, window: NarrationInput, cache: "SafeCache | None") -> tuple[Narrative, bool]:
    """``(narrative, was_cached)``; a fresh narrative is stored unless it is a fallback (a failure)."""
    window = window.for_scope(narrator.scope)  # a narrator only ever receives what its scope allows
    if cache is None:
        return narrator.narrate(window), False
    key = narration_key(window, narrator)
    hit = cache.get_json(NARRATIVE_NAMESPACE, key)
    if hit is not None:
        try:
            return Narrative.from_json(hit), True
        except (KeyError, TypeError, ValueError):
            cache.delete(NARRATIVE_NAMESPACE, key)
    narrative = narrator.narrate(window)
    if not narrative.provenance.fallback and narrative.text.strip():
        cache.put_json(NARRATIVE_NAMESPACE, key, narrative.to_json())
    return narrative, False


def narrate_many(narrator: Narrator, windows: Sequence[NarrationInput], cache: "SafeCache | None" = None,
                 max_workers: int | None = None) -> list[tuple[Narrative, bool]]:
    """Narrate ``windows`` (order kept), ``max_workers`` at a time (default: the narrator's
    ``max_concurrency`` if it has one, else 1)."""
    workers = max_workers or int(getattr(narrator, "max_concurrency", 1) or 1)
    if workers <= 1 or len(windows) <= 1:
        return [narrate_cached(narrator, w, cache) for w in windows]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="narrate") as pool:
        return list(pool.map(lambda w: narrate_cached(narrator, w, cache), windows))

