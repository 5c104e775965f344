"""The diagnostic narrator: offline, deterministic, grounded in computed facts.

It turns :func:`core.narratives.facts.compute_facts` into a few natural sentences (≤ 120 words).  The
wording varies between windows but not between runs: each sentence's template is chosen by a hash of
the facts, never at random.  The first sentence always says that this is the diagnostic narrator.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

from core.narratives import MAX_WORDS, BaseNarrator, NarrationInput, Narrative
from core.narratives.facts import compute_facts, display_delta, display_value, format_latlon

__all__ = ["DiagnosticNarrator", "PROMPT_VERSION", "render_text"]

PROMPT_VERSION = "diagnostic-v1"


class _Chooser:
    """Deterministic template choice from a hash of the facts."""

    def __init__(self, facts: Mapping[str, Any]):
        blob = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
        self._digest = hashlib.sha256(blob).digest()
        self._slot = 0

    def pick(self, options: Sequence[str]) -> str:
        b = self._digest[self._slot % len(self._digest)]
        self._slot += 1
        return options[b % len(options)]


def _fmt(value: float, unit: str = "") -> str:
    a = abs(value)
    if a >= 1000:
        s = f"{value:,.0f}"
    elif a >= 100:
        s = f"{value:.0f}"
    elif a >= 10:
        s = f"{value:.1f}"
    elif a >= 0.1:
        s = f"{value:.1f}" if a >= 1 else f"{value:.2f}"
    else:
        s = f"{value:.2g}"
    if unit in ("", "1"):
        return s
    sep = "" if unit in ("°C", "%") else " "
    return f"{s}{sep}{_pretty_unit(unit)}"


def _pretty_unit(unit: str) -> str:
    return (unit.replace("m**2 s**-2", "m² s⁻²").replace("m s**-1", "m/s").replace("**-1", "⁻¹")
            .replace("**2", "²"))


def _where(point: Mapping[str, Any]) -> str:
    region = point.get("region") or format_latlon(point["lat"], point["lon"])
    if "°" in region:
        return f"near {region}"
    return f"over {region}"


def _value(ch: Mapping[str, Any], v: float) -> str:
    val, unit = display_value(v, ch["channel"], ch["units"])
    return _fmt(val, unit)


def _delta(ch: Mapping[str, Any], v: float) -> str:
    val, unit = display_delta(v, ch["channel"], ch["units"])
    sign = "+" if val > 0 else ""
    return sign + _fmt(val, unit)


# --------------------------------------------------------------------------- weather sentences
def _weather_sentences(f: Mapping[str, Any], ch: _Chooser) -> list[str]:
    cal = f["calendar"]
    when = f"{cal['hour']:02d} UTC"
    out = [ch.pick((
        f"Diagnostic narrator: a {cal['season']} scene at {when}.",
        f"This is the diagnostic narrator describing a {cal['season']} window ending at {when}.",
        f"Diagnostic narrator summary for {cal['season']}, last frame at {when}.",
    ))]
    chans = f.get("channels", [])
    for i, c in enumerate(chans):
        name = c["long_name"]
        if i == 0 and "trough" in c:
            tr, ri = c["trough"], c["ridge"]
            out.append(ch.pick((
                f"The deepest {name} trough lies {_where(tr)} ({_delta(c, tr['value'])} against the zonal mean) "
                f"and the strongest ridge {_where(ri)}.",
                f"In the {name}, a trough stands {_where(tr)} and a ridge {_where(ri)} "
                f"({_delta(c, ri['value'])} against the zonal mean).",
                f"The main {name} ridge is {_where(ri)}, with the deepest trough {_where(tr)}.",
            )))
        if i == 0 and "trough" not in c:
            out.append(ch.pick((
                f"The {name} peaks at {_value(c, c['max']['value'])} {_where(c['max'])} and is lowest, "
                f"{_value(c, c['min']['value'])}, {_where(c['min'])}.",
                f"Highest {name} lies {_where(c['max'])} ({_value(c, c['max']['value'])}); the minimum, "
                f"{_value(c, c['min']['value'])}, sits {_where(c['min'])}.",
                f"A {name} maximum of {_value(c, c['max']['value'])} stands {_where(c['max'])}, with the "
                f"minimum {_where(c['min'])}.",
            )))
        if i == 0:
            m = c.get("motion")
            if m and m["direction"] not in ("stationary", "incoherent"):
                out.append(ch.pick((
                    f"The pattern drifts {m['direction']}ward at about {m['speed_kmh']:.0f} km/h.",
                    f"Features move toward the {m['direction']} at roughly {m['speed_kmh']:.0f} km/h over the input hours.",
                    f"Between the first and last frame the field shifts {m['direction']} (≈{m['speed_kmh']:.0f} km/h).",
                )))
            elif m and m["direction"] == "stationary":
                out.append(ch.pick(("The large-scale pattern is nearly stationary.",
                                    "The pattern barely moves between the first and last frame.")))
            elif m:
                out.append(ch.pick(("There is little coherent motion between frames.",
                                    "No coherent drift of the pattern shows between frames.")))
            out.extend(_event_sentences(f.get("events", []), ch))
            a = c.get("anomaly")
            if a:
                warm, cold = a["max"], a["min"]
                if warm["value"] > 0 and cold["value"] < 0:
                    out.append(ch.pick((
                        f"Against climatology the strongest positive anomaly ({_delta(c, warm['value'])}) is "
                        f"{_where(warm)} and the strongest negative ({_delta(c, cold['value'])}) {_where(cold)}.",
                        f"Relative to the seasonal normal, values run {_delta(c, warm['value'])} {_where(warm)} "
                        f"and {_delta(c, cold['value'])} {_where(cold)}.",
                    )))
                else:
                    ext = warm if warm["value"] > 0 else cold
                    sign = "above" if ext["value"] > 0 else "below"
                    out.append(ch.pick((
                        f"The field is {sign} climatology almost everywhere, most {_where(ext)} ({_delta(c, ext['value'])}).",
                        f"Values sit {sign} the seasonal normal, by {_delta(c, ext['value'])} {_where(ext)}.",
                    )))
            fr = c.get("front")
            if fr:
                out.append(ch.pick((
                    f"The sharpest gradient, a front, lies {_where(fr)}.",
                    f"The tightest gradient marks a frontal zone {_where(fr)}.",
                )))
            b = c.get("bands")
            if b:
                low = round(100 * b["low_fraction"])
                out.append(ch.pick((
                    f"{low}% of the variance is large-scale (low band), {100 - low}% fine detail.",
                    f"Spectrally, the low band holds {low}% of the energy and the high band {100 - low}%.",
                )))
        else:
            trend = c.get("trend", 0.0)
            a = c.get("anomaly")
            if a:
                out.append(ch.pick((
                    f"The {name} is {_delta(c, a['mean'])} from normal on average, changing {_delta(c, trend)} over the window.",
                    f"On average the {name} departs {_delta(c, a['mean'])} from climatology; its area mean moved {_delta(c, trend)}.",
                )))
            else:
                out.append(ch.pick((
                    f"The {name} peaks {_where(c['max'])} and its area mean changed {_delta(c, trend)}.",
                    f"The {name} is highest {_where(c['max'])}; the area mean moved {_delta(c, trend)}.",
                )))
    for t in f.get("target", [])[:1]:
        out.append(ch.pick((
            f"Over the forecast window (privileged view) the {t['channel']} changes by {_delta(t, t['mean_change'])} "
            f"on average, most {_where(t['largest_change'])}.",
            f"Privileged view: by the end of the target window the largest {t['channel']} change, "
            f"{_delta(t, t['largest_change']['value'])}, is {_where(t['largest_change'])}.",
        )))
    return out


def _event_sentences(events: Sequence[Mapping[str, Any]], ch: _Chooser) -> list[str]:
    out = []
    for e in events[:2]:
        what = e.get("description") or e.get("kind", "event")
        place = e.get("place") or e.get("district") or e.get("region") or ""
        at = f" at {place}" if place and place.lower() not in what.lower() else ""
        if e["status"] == "ongoing":
            out.append(ch.pick((f"Ongoing: {what}{at}.", f"Already under way: {what}{at}.")))
        else:
            hrs = e["starts_in_hours"]
            when = "within the hour" if hrs < 1 else f"in about {hrs:.0f} h"
            out.append(ch.pick((f"Scheduled {when}: {what}{at}.",
                                f"Coming up {when}: {what}{at}.")))
    return out


# --------------------------------------------------------------------------- crowd sentences
def _crowd_sentences(f: Mapping[str, Any], ch: _Chooser) -> list[str]:
    cal = f["calendar"]
    now, ahead = f.get("now", {}), f.get("ahead", {})
    daytype = "a holiday" if now.get("holiday") else ("a weekend day" if cal["weekend"] else "a working day")
    out = [ch.pick((
        f"Diagnostic narrator: {cal['weekday']} {cal['part_of_day']} ({cal['hour']:02d}:00), {daytype}.",
        f"This is the diagnostic narrator. It is {cal['part_of_day']} on {cal['weekday']}, {daytype}.",
        f"Diagnostic narrator summary: {daytype}, {cal['weekday']} around {cal['hour']:02d}:00 ({cal['part_of_day']}).",
    ))]
    if cal.get("holiday_ahead") and not now.get("holiday"):
        out.append("A public holiday falls within the forecast window.")
    met = ahead or now
    bits = []
    if "weather" in met:
        bits.append(str(met["weather"]))
    if "temperature" in met:
        bits.append(f"{met['temperature']:.0f} °C")
    if "wind_speed" in met:
        bits.append(f"wind {met['wind_speed']:.0f} m/s")
    if bits:
        out.append(ch.pick((f"Expected weather: {', '.join(bits)}.", f"The weather outlook is {', '.join(bits)}.")))
    for fl in f.get("flows", []):
        name = fl["channel"]
        pct = fl["total_change_pct"]
        trend = "rising" if pct > 2 else ("falling" if pct < -2 else "steady")
        s = ch.pick((f"City-wide {name} is {trend} ({pct:+.0f}% over the input window)",
                     f"Total {name} has been {trend} ({pct:+.0f}%)"))
        parts = []
        if "rising" in fl:
            parts.append(f"growing fastest in {fl['rising']['district']}")
        if "falling" in fl and fl["falling"]["district"] != fl.get("rising", {}).get("district"):
            parts.append(f"dropping most in {fl['falling']['district']}")
        out.append(s + (", " + " and ".join(parts) if parts else "") + ".")
    out.extend(_event_sentences(f.get("events", []), ch))
    for t in f.get("target", [])[:2]:
        where = f", above all in {t['rising']['district']}" if "rising" in t else ""
        out.append(f"Privileged view: over the target window {t['channel']} changes {t['total_change_pct']:+.0f}%{where}.")
    return out


def render_text(facts: Mapping[str, Any], max_words: int = MAX_WORDS) -> str:
    """The narrative for ``facts``: sentences in priority order while they fit in ``max_words``."""
    chooser = _Chooser(facts)
    sentences = _weather_sentences(facts, chooser) if facts.get("kind") == "weather" else _crowd_sentences(facts, chooser)
    words, kept = 0, []
    for s in sentences:
        n = len(s.split())
        if words + n > max_words:
            continue
        kept.append(s)
        words += n
    return " ".join(kept)


class DiagnosticNarrator(BaseNarrator):
    """Facts → sentences, offline and deterministic (same window → same text)."""

    backend = "diagnostic"
    model = "s2kd-diagnostic"
    prompt_version = PROMPT_VERSION

    def __init__(self, scope: str = "context", max_words: int = MAX_WORDS):
        super().__init__(scope)
        self.max_words = int(max_words)

    def _narrate(self, window: NarrationInput) -> Narrative:
        facts = compute_facts(window)
        return self.from_facts(facts)

    def from_facts(self, facts: Mapping[str, Any], **provenance_extra) -> Narrative:
        """The narrative for already computed facts (used by the other backends as grounding/fallback)."""
        return Narrative(text=render_text(facts, self.max_words), provenance=self.provenance(facts, **provenance_extra))

