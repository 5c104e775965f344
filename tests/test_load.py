"""Load test: several concurrent browser sessions on one dashboard server (RELIABILITY.md, "Load").

One ``streamlit run app/main.py`` on a free 127.0.0.1 port with the tiny runs of tests/conftest_app.py;
``S2KD_LOAD_SESSIONS`` Playwright contexts (separate cookies and Streamlit sessions) in the system
Chromium, each given its own region, and for ``S2KD_LOAD_SECONDS`` they move their lead-time sliders
(all sessions at once: every key press is sent before any answer is awaited) and change their region
through the sidebar select box.  Checked:

* no page exception, no ``stException`` element, no console error;
* no cross-session leakage: after every interaction each session's URL carries *its* region and lead,
  and its slider shows its lead;
* the server's resident memory (VmRSS of the streamlit process, from /proc) after the run stays within a
  bound of what it was once every session had loaded its first page;
* the interaction time (key press / option click → the session's charts redrawn with its new choice)
  is recorded; p50 / p95 / max are printed and written to ``/tmp/s2kd-load.json``.

Bounded in ``make test`` (4 sessions × 20 s).  The full run of RELIABILITY.md::

    S2KD_LOAD_SESSIONS=8 S2KD_LOAD_SECONDS=60 .venv/bin/python -m pytest tests/test_load.py -s
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from tests.conftest_app import tiny_app_env  # noqa: F401  (session fixture)
from tests.test_browser import _CHARTS_DRAWN, _TRUTH_TITLE, CHROMIUM, CHROMIUM_ARGS, _browser_or_skip, _free_port, \
    _stop, _wait_healthy

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = int(os.environ.get("S2KD_LOAD_SESSIONS", "4") or 4)
SECONDS = float(os.environ.get("S2KD_LOAD_SECONDS", "20") or 20)
#: allowed growth of the server's RSS between "every session loaded" and "end of the run"
RSS_GROWTH_LIMIT_MB = float(os.environ.get("S2KD_LOAD_RSS_GROWTH_MB", "400"))
REGIONS = ["Global", "Tropics", "Europe", "North America", "East Asia", "North Atlantic", "North Pacific",
           "Australia", "Arctic", "Antarctic"]
REPORT = Path("/tmp/s2kd-load.json")

pytestmark = pytest.mark.browser


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MB (VmRSS from /proc; psutil is not a dependency)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(c) for c in (task / "children").read_text().split()]
    for p in dict.fromkeys(pids):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def streamlit_server(runs: Path, cache: Path, log_path: Path):
    port = _free_port()
    env = dict(os.environ, S2KD_RUN_ROOTS=str(runs), S2KD_DASHBOARD_CACHE=str(cache), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(port, proc)
            yield port, proc
        finally:
            _stop(proc)


def _params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}


class Session:
    """One browser context = one Streamlit session, with the choices it must keep seeing."""

    def __init__(self, browser, base: str, runs_key: str, region: str, lead: int, errors: list):
        self.ctx = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.ctx.new_page()
        self.region, self.lead = region, lead
        self.errors = errors
        self.page.on("pageerror", lambda exc: errors.append(f"{region}: pageerror {exc}"))
        self.page.on("console", lambda m: errors.append(f"{region}: console {m.text}")
                     if m.type == "error" and "status of 404" not in m.text else None)
        q = urllib.parse.urlencode({"runs": runs_key, "region": region, "lead": lead})
        self.page.goto(f"{base}/forecasts?{q}")
        self.pending_since: float | None = None
        self.before: str | None = None

    def slider(self):
        return self.page.locator('[data-testid="stSidebar"] input[type="range"]').first

    def settled(self) -> bool:
        """This session shows its own choices, fully drawn."""
        p = self.page
        if not p.evaluate(_CHARTS_DRAWN, 2):
            return False
        qp = _params(p.url)
        if qp.get("region") != self.region or qp.get("lead") != str(self.lead):
            return False
        truth = p.evaluate(_TRUTH_TITLE)
        return bool(truth) and (self.before is None or truth != self.before)

    def check_own_choices(self) -> None:
        qp = _params(self.page.url)
        assert qp.get("region") == self.region, (self.region, self.page.url)
        assert qp.get("lead") == str(self.lead), (self.lead, self.page.url)
        assert self.page.locator('[data-testid="stException"]').count() == 0, self.region
        now = self.slider().get_attribute("aria-valuenow")
        assert now is None or now == str(self.lead), (self.region, now, self.lead)


def _wait_all(sessions, timeout: float, times: list[float]) -> None:
    """Poll every pending session until it has settled; record press → settled times."""
    t_end = time.monotonic() + timeout
    pending = [s for s in sessions if s.pending_since is not None]
    while pending and time.monotonic() < t_end:
        for s in list(pending):
            if s.settled():
                times.append(time.monotonic() - s.pending_since)
                s.pending_since = None
                pending.remove(s)
        time.sleep(0.05)
    assert not pending, f"{len(pending)} session(s) never showed their choice: {[s.region for s in pending]}"


def test_concurrent_sessions(tiny_app_env, tmp_path):  # noqa: F811
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    runs_key = str(tiny_app_env["weather"].resolve())
    t_out = json.loads((tiny_app_env["weather"] / "teacher-s2" / "model.json").read_text())["data"]["t_out"]
    leads = list(range(1, int(t_out) + 1))
    errors: list[str] = []
    lead_times: list[float] = []
    region_times: list[float] = []
    report: dict = {"sessions": SESSIONS, "seconds": SECONDS}
    with streamlit_server(tiny_app_env["runs"], tmp_path / "cache", tmp_path / "streamlit.log") as (port, proc):
        report["rss_mb_idle"] = round(rss_mb(proc.pid), 1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                t0 = time.monotonic()
                sessions = [Session(browser, f"http://127.0.0.1:{port}", runs_key, REGIONS[i % len(REGIONS)],
                                    leads[i % len(leads)], errors) for i in range(SESSIONS)]
                for s in sessions:
                    s.pending_since = t0
                _wait_all(sessions, 240, [])
                report["all_sessions_first_render_s"] = round(time.monotonic() - t0, 2)
                for s in sessions:
                    s.check_own_choices()
                rss_start = rss_mb(proc.pid)
                rss_peak = rss_start
                report["rss_mb_after_first_render"] = round(rss_start, 1)
                t_stop = time.monotonic() + SECONDS
                rounds = 0
                while time.monotonic() < t_stop:
                    rounds += 1
                    if rounds % 4 == 0:  # change each session's region through its sidebar select box
                        for s in sessions:
                            new = REGIONS[int(rng.integers(len(REGIONS)))]
                            if new == s.region:
                                continue
                            s.before = None
                            s.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').nth(2).click()
                            s.pending_since = time.monotonic()
                            s.page.get_by_role("option", name=new, exact=True).click()
                            s.region = new
                        _wait_all(sessions, 120, region_times)
                    else:  # every session moves its lead slider at once
                        for s in sessions:
                            step = 1 if s.lead < leads[-1] and (s.lead == leads[0] or rng.random() < 0.5) else -1
                            s.before = s.page.evaluate(_TRUTH_TITLE)
                            s.slider().focus()
                            s.pending_since = time.monotonic()
                            s.slider().press("ArrowRight" if step > 0 else "ArrowLeft")
                            s.lead += step
                        _wait_all(sessions, 120, lead_times)
                    for s in sessions:  # no leakage: every session still shows its own choices
                        s.check_own_choices()
                    rss_peak = max(rss_peak, rss_mb(proc.pid))
                rss_end = rss_mb(proc.pid)
            finally:
                browser.close()
    times = lead_times + region_times
    report.update({
        "rounds": rounds, "interactions": len(times), "lead_changes": len(lead_times),
        "region_changes": len(region_times),
        "p50_s": round(float(np.percentile(times, 50)), 3), "p95_s": round(float(np.percentile(times, 95)), 3),
        "max_s": round(float(np.max(times)), 3),
        "p95_lead_s": round(float(np.percentile(lead_times, 95)), 3) if lead_times else None,
        "p95_region_s": round(float(np.percentile(region_times, 95)), 3) if region_times else None,
        "rss_mb_end": round(rss_end, 1), "rss_mb_peak": round(rss_peak, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1), "errors": errors[:5],
    })
    REPORT.write_text(json.dumps(report, indent=1))
    print("\n[load]", json.dumps(report))
    assert not errors, errors[:5]
    assert len(times) >= SESSIONS, report
    assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB, report
