"""Narrator protocol, scopes, diagnostic facts and text, registry and narrative caching."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.cache import SafeCache
from core.errors import ConfigError
from core.narratives import (NARRATIVE_NAMESPACE, BaseNarrator, NarrationInput, Narrative, Narrator,
                             build_narrator, narrate_cached, narrate_many, narration_key, register_narrator)
from core.narratives.diagnostic import DiagnosticNarrator
from core.narratives.facts import (KM_PER_DEG, city_district, compass, compute_facts, phase_correlation_shift,
                                   region_name)

LAT = -87.1875 + 5.625 * np.arange(32)
LON = 5.625 * np.arange(64)
LA, LO = np.meshgrid(LAT, LON, indexing="ij")


def blob(lat0: float, lon0: float, width: float = 12.0) -> np.ndarray:
    d = (LO - lon0 + 180.0) % 360.0 - 180.0
    return np.exp(-((LA - lat0) ** 2 + (d * np.cos(np.deg2rad(lat0))) ** 2) / (2 * width ** 2))


def times(start: str, n: int, hours: int) -> list[np.datetime64]:
    return [np.datetime64(start) + np.timedelta64(hours * k, "h") for k in range(n)]


def weather_window(low=(50.0, 331.875), step_deg=(0.0, 11.25), t_in=4, hours=6, start="2017-01-10T00",
                   climatology=None, targets=None, context=None) -> NarrationInput:
    """z500 with a deep low moving ``step_deg`` (dlat, dlon) per frame; t2m and t850 smooth."""
    z = []
    for k in range(t_in):
        z.append(54000 + 3000 * np.cos(np.deg2rad(LA)) - 2500 * blob(low[0] + k * step_deg[0], low[1] + k * step_deg[1]))
    z = np.stack(z)
    t2m = np.stack([278 + 25 * np.cos(np.deg2rad(LA))] * t_in)
    t850 = t2m - 12
    frames = np.stack([z, t850, t2m], axis=1).astype(np.float32)
    tin = times(start, t_in, hours)
    tout = times(str(tin[-1] + np.timedelta64(hours, "h")), 2, hours)
    return NarrationInput(frames=frames, channels=("z500", "t850", "t2m"), units=("m**2 s**-2", "K", "K"),
                          grid="latlon", ys=LAT, xs=LON, input_times=tin, target_times=tout,
                          context=context or {}, climatology=climatology, targets=targets)


def city_window(targets=None, holiday=False, events=None, start="2015-03-06T17:00") -> NarrationInput:
    h = w = 32
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    base = 50 + 40 * np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 60.0)
    ne = np.exp(-((yy - 27) ** 2 + (xx - 27) ** 2) / 8.0)   # north-east (large y, large x): rising
    sw = np.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 8.0)     # south-west: falling
    frames = []
    for k in range(4):
        inflow = base + 80 * k * ne - 10 * k * sw
        outflow = base * 0.9 - 12 * k * sw + 5 * k * ne
        frames.append(np.stack([inflow, outflow]))
    frames = np.stack(frames).astype(np.float32)
    tin = [np.datetime64(start) + np.timedelta64(30 * k, "m") for k in range(4)]
    tout = [tin[-1] + np.timedelta64(30 * (k + 1), "m") for k in range(4)]
    ctx = {"holiday": [holiday] * 8,
           "meteorology": {"temperature": [12.0] * 8, "wind_speed": [3.0] * 8, "weather": [3] * 8},
           "events": events or []}
    return NarrationInput(frames=frames, channels=("inflow", "outflow"), units=("trips / 30 min",) * 2,
                          grid="city", ys=np.arange(h, dtype=float), xs=np.arange(w, dtype=float),
                          input_times=tin, target_times=tout, context=ctx, targets=targets)


# --------------------------------------------------------------------------- geography helpers
@pytest.mark.parametrize("lat,lon,name", [
    (50, 330, "the North Atlantic"), (48, 10, "Europe"), (52, 356, "Europe"), (-25, 135, "Australia"),
    (80, 100, "the Arctic"), (40, 260, "North America"), (35, 115, "East Asia"), (-40, 200, "the South Pacific"),
])
def test_region_names(lat, lon, name):
    assert region_name(lat, lon) == name


def test_compass_and_districts():
    assert compass(0, 1) == "east" and compass(1, 0) == "north" and compass(-1, -1) == "south-west"
    assert compass(0.2, -1) == "west"
    assert city_district(30, 30, 32, 32) == "the north-east of the city"
    assert city_district(16, 16, 32, 32) == "the city centre"
    assert city_district(0, 16, 32, 32) == "the south of the city"


def test_phase_correlation_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(32, 64))
    a = np.real(np.fft.ifft2(np.fft.fft2(a) * np.exp(-((np.fft.fftfreq(32)[:, None] * 8) ** 2
                                                       + (np.fft.fftfreq(64)[None, :] * 8) ** 2))))
    b = np.roll(a, (3, -5), axis=(0, 1))
    dy, dx, peak = phase_correlation_shift(a, b, periodic=(True, True))
    assert (round(dy), round(dx)) == (3, -5) and peak > 0.5


# --------------------------------------------------------------------------- weather facts
def test_known_low_is_reported_at_its_place():
    w = weather_window(low=(50.0, 331.875), step_deg=(0.0, 0.0))
    facts = compute_facts(w)
    z = facts["channels"][0]
    assert z["channel"] == "z500"
    # the low is the deepest trough (departure from the zonal mean), reported at its place
    assert abs(z["trough"]["lat"] - 50.0) < 3 and abs(z["trough"]["lon"] - 331.875) < 3
    assert z["trough"]["region"] == "the North Atlantic"
    text = DiagnosticNarrator().narrate(w).text
    assert "trough" in text and "North Atlantic" in text
    # the minimum of z500 - the zonal structure is the low; the absolute minimum is at the pole, so check
    # the anomaly against a zonally symmetric climatology instead
    clim = np.stack([54000 + 3000 * np.cos(np.deg2rad(LA)), 266 + 25 * np.cos(np.deg2rad(LA)),
                     278 + 25 * np.cos(np.deg2rad(LA))]).astype(np.float32)
    facts = compute_facts(dataclasses.replace(w, climatology=clim))
    neg = facts["channels"][0]["anomaly"]["min"]
    assert abs(neg["lat"] - 50.0) < 3 and abs(neg["lon"] - 331.875) < 3
    assert neg["region"] == "the North Atlantic"
    assert neg["value"] == pytest.approx(float((-2500 * blob(50.0, 331.875)).min()), rel=1e-3)
    text = DiagnosticNarrator().narrate(dataclasses.replace(w, climatology=clim)).text
    assert "North Atlantic" in text


def test_known_extremum_location_and_units():
    w = weather_window()
    f = compute_facts(w)["channels"][0]
    i = np.unravel_index(np.argmax(w.frames[-1, 0]), (32, 64))
    assert f["max"]["lat"] == pytest.approx(LAT[i[0]], abs=1e-3) and f["max"]["lon"] == pytest.approx(LON[i[1]], abs=1e-3)
    assert f["max"]["value"] == pytest.approx(float(w.frames[-1, 0].max()), rel=1e-4)


@pytest.mark.parametrize("step,direction", [((0.0, 11.25), "east"), ((0.0, -11.25), "west"),
                                            ((5.625, 0.0), "north"), ((-5.625, 0.0), "south"),
                                            ((5.625, 11.25), "north-east")])
def test_known_displacement_gives_the_right_direction(step, direction):
    w = weather_window(low=(45.0, 300.0), step_deg=step)
    m = compute_facts(w)["channels"][0]["motion"]
    assert m["direction"] == direction
    # speed by hand: displacement over 3 steps of 6 h
    north = 3 * step[0] * KM_PER_DEG
    east = 3 * step[1] * KM_PER_DEG * math.cos(math.radians(45.0 + 1.5 * step[0]))
    expected = math.hypot(north, east) / 18.0
    assert m["speed_kmh"] == pytest.approx(expected, rel=0.3)


def test_stationary_field_has_no_motion():
    m = compute_facts(weather_window(step_deg=(0.0, 0.0)))["channels"][0]["motion"]
    assert m["direction"] == "stationary" and m["speed_kmh"] == 0.0


def test_front_band_energy_and_calendar():
    w = weather_window(start="2017-07-03T00")
    step = np.where(LA >= 40.0, 270.0, 290.0)  # a sharp temperature front at 37–40°N
    frames = np.array(w.frames)
    frames[:, 2] = step
    w = dataclasses.replace(w, frames=frames)
    f = compute_facts(w)
    t2m = next(c for c in f["channels"] if c["channel"] == "t2m")
    assert 35 <= t2m["front"]["lat"] <= 42
    assert f["channels"][0]["bands"]["low_fraction"] > 0.9  # smooth large-scale z500
    noise = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    frames[:, 1] = 260 + noise
    f = compute_facts(dataclasses.replace(w, frames=frames))
    t850 = next(c for c in f["channels"] if c["channel"] == "t850")
    assert t850["bands"]["high_fraction"] > 0.5
    cal = f["calendar"]
    assert cal["season"] == "summer" and cal["hour"] == 18 and cal["month"] == 7


# --------------------------------------------------------------------------- crowd facts
def test_crowd_facts_rising_falling_holiday_weather_events():
    concert = {"kind": "concert", "start": "2015-03-06T19:00:00", "end": "2015-03-06T22:00:00",
               "place": "Workers' Stadium", "description": "a pop concert at Workers' Stadium", "size": 40000,
               "y": 27, "x": 27, "radius": 2}
    w = city_window(holiday=True, events=[concert])
    f = compute_facts(w)
    inflow = f["flows"][0]
    assert inflow["channel"] == "inflow" and inflow["rising"]["district"] == "the north-east of the city"
    assert f["flows"][1]["falling"]["district"] == "the south-west of the city"
    assert f["now"]["holiday"] is True and f["ahead"]["weather"] == "rainy"
    assert f["calendar"]["weekday"] == "Friday" and f["calendar"]["part_of_day"] == "evening rush hour"
    assert f["events"][0]["district"] == "the north-east of the city"
    assert f["events"][0]["status"] == "upcoming"
    text = DiagnosticNarrator().narrate(w).text
    assert "holiday" in text and "north-east" in text and "concert" in text


# --------------------------------------------------------------------------- diagnostic text
def test_diagnostic_text_is_deterministic_bounded_and_labelled():
    texts = set()
    for k, step in enumerate([(0.0, 11.25), (0.0, -11.25), (5.625, 0.0), (0.0, 0.0)]):
        for start in ("2017-01-10T00", "2017-04-02T06", "2017-08-15T12"):
            w = weather_window(low=(40.0 + 3 * k, 300.0), step_deg=step, start=start)
            n1 = DiagnosticNarrator().narrate(w)
            n2 = DiagnosticNarrator().narrate(w)
            assert n1.text == n2.text
            assert len(n1.text.split()) <= 120
            assert "diagnostic narrator" in n1.text.lower()
            texts.add(n1.text.split(".")[0])
    assert len(texts) >= 3  # wording varies between windows
    for holiday in (False, True):
        t = DiagnosticNarrator().narrate(city_window(holiday=holiday)).text
        assert len(t.split()) <= 120 and "diagnostic narrator" in t.lower()


# --------------------------------------------------------------------------- scopes
class _Spy(BaseNarrator):
    backend, model, prompt_version = "spy", "spy-model", "spy-v1"

    def __init__(self, scope="context"):
        super().__init__(scope)
        self.seen = []

    def _narrate(self, window):
        self.seen.append(window)
        return Narrative(text="x", provenance=self.provenance())


def test_context_scope_never_sees_targets():
    rng = np.random.default_rng(0)
    tg = rng.normal(size=(2, 3, 32, 64)).astype(np.float32) + 280
    a = weather_window(targets=tg)
    b = dataclasses.replace(a, targets=tg * 1.5 - 100)
    spy = _Spy("context")
    spy.narrate(a)
    narrate_cached(spy, a, None)
    assert spy.seen[0].targets is None and spy.seen[1].targets is None
    assert isinstance(spy, Narrator)
    n = DiagnosticNarrator("context")
    na, nb = n.narrate(a), n.narrate(b)
    assert na.text == nb.text and na.provenance.facts == nb.provenance.facts
    assert narration_key(a, n) == narration_key(b, n)
    p = DiagnosticNarrator("privileged")
    pa, pb = p.narrate(a), p.narrate(b)
    assert "target" in pa.provenance.facts and pa.provenance.facts != pb.provenance.facts
    assert narration_key(a, p) != narration_key(b, p)
    assert narration_key(a, p) != narration_key(a, n)
    with pytest.raises(ValueError):
        p.narrate(dataclasses.replace(a, targets=None))
    # city data too
    ca = city_window(targets=np.full((4, 2, 32, 32), 10, np.float32))
    cb = dataclasses.replace(ca, targets=np.full((4, 2, 32, 32), 500, np.float32))
    assert n.narrate(ca).text == n.narrate(cb).text
    assert DiagnosticNarrator("privileged").narrate(ca).text != DiagnosticNarrator("privileged").narrate(cb).text


def test_context_scope_drops_unannounced_future_events():
    episode_future = {"kind": "blocking", "start": "2017-01-11T00:00:00", "end": "2017-01-15T00:00:00",
                      "description": "a blocking high"}
    episode_now = dict(episode_future, start="2017-01-09T00:00:00", description="an ongoing heat wave")
    w = weather_window(context={"events": [episode_future, episode_now]})  # inputs end 2017-01-10T18
    visible = w.for_scope("context")
    assert [e["description"] for e in visible.context["events"]] == ["an ongoing heat wave"]
    assert "blocking" not in DiagnosticNarrator().narrate(w).text
    announced = dict(episode_future, kind="rain", known_ahead=True, description="an announced rain band")
    assert [e["description"] for e in weather_window(context={"events": [announced]}).for_scope("context")
            .context["events"]] == ["an announced rain band"]
    later = weather_window(context={"events": [episode_now]})
    n = DiagnosticNarrator()
    assert n.narrate(w).text == n.narrate(later).text
    assert narration_key(w, n) == narration_key(later, n)


# --------------------------------------------------------------------------- registry and caching
def test_registry():
    assert isinstance(build_narrator("diagnostic"), DiagnosticNarrator)
    assert build_narrator("diagnostic", scope="privileged").scope == "privileged"
    with pytest.raises(ConfigError):
        build_narrator("nope")
    with pytest.raises(ConfigError):
        build_narrator("diagnostic", scope="future")
    with pytest.raises(ValueError):
        register_narrator("diagnostic", "core.narratives.diagnostic:DiagnosticNarrator")


def test_input_validation():
    w = weather_window()
    with pytest.raises(ValueError):
        dataclasses.replace(w, channels=("z500",))
    with pytest.raises(ValueError):
        dataclasses.replace(w, climatology=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError):
        dataclasses.replace(w, grid="polar")
    assert not w.frames.flags.writeable


class _Failing(BaseNarrator):
    backend, model, prompt_version = "failing", "m", "v1"
    calls = 0

    def _narrate(self, window):
        type(self).calls += 1
        return DiagnosticNarrator(self.scope).from_facts({"kind": "weather", "calendar": {
            "season": "winter", "hour": 0}}, fallback=True, fallback_reason="HTTP 500", requested_backend="failing")


def test_narrate_cached_hits_and_never_caches_failures(tmp_path):
    w = weather_window()
    with SafeCache(tmp_path / "c") as cache:
        n = DiagnosticNarrator()
        first, hit1 = narrate_cached(n, w, cache)
        second, hit2 = narrate_cached(n, w, cache)
        assert (hit1, hit2) == (False, True)
        assert second.text == first.text and second.provenance == first.provenance
        f = _Failing()
        a, _ = narrate_cached(f, w, cache)
        b, hit = narrate_cached(f, w, cache)
        assert a.provenance.fallback and not hit and _Failing.calls == 2
        assert list(cache.keys(NARRATIVE_NAMESPACE)) == [narration_key(w, n)]
        many = narrate_many(n, [w, weather_window(step_deg=(0, 0))], cache, max_workers=2)
        assert [h for _, h in many] == [True, False]


def test_limit_words_cuts_at_a_sentence_end():
    from core.narratives import limit_words

    text = " ".join(f"Sentence {i} has five words." for i in range(40))  # 200 words
    cut = limit_words(text, 120)
    assert len(cut.split()) <= 120 and cut.endswith(".")
    assert limit_words("short  text\n here", 120) == "short text here"


def test_render_pngs_one_image_per_channel_targets_only_when_privileged():
    from core.narratives.render import frame_indices, render_pngs

    assert frame_indices(12, 3) == [0, 6, 11] or frame_indices(12, 3) == [0, 5, 11]
    w = weather_window(targets=np.zeros((2, 3, 32, 64), np.float32) + 280)
    ctx = render_pngs(w.for_scope("context"), max_frames=2, channels=[0])
    priv = render_pngs(w.for_scope("privileged"), max_frames=2, channels=[0])
    assert len(ctx) == len(priv) == 1 and ctx[0][:4] == priv[0][:4] == b"\x89PNG"
    width = lambda png: int.from_bytes(png[16:20], "big")  # noqa: E731 - IHDR width
    assert width(priv[0]) > width(ctx[0])  # the extra target panel


def test_cache_key_changes_with_the_narrator_code():
    """Same backend, model, prompt version and scope, but code from another file: another key."""
    from core.narratives import narration_key, narrator_code_fingerprint
    from core.narratives.diagnostic import DiagnosticNarrator

    class EditedDiagnostic(DiagnosticNarrator):  # its source file is this test module
        pass

    window = weather_window()
    a, b = DiagnosticNarrator(), EditedDiagnostic()
    assert (a.backend, a.model, a.prompt_version, a.scope) == (b.backend, b.model, b.prompt_version, b.scope)
    assert narrator_code_fingerprint(DiagnosticNarrator) != narrator_code_fingerprint(EditedDiagnostic)
    assert narration_key(window, a) != narration_key(window, b)
    assert narration_key(window, a) == narration_key(window, DiagnosticNarrator())
