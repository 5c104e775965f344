"""End-to-end: the dashboard in real headless Chromium (Debian ``chromium`` driven by ``playwright``).

Starts ``streamlit run app/main.py`` on a free 127.0.0.1 port with the tiny runs of
``tests/conftest_app.py``, visits every page, waits for the Plotly charts to draw, moves the lead-time
slider and checks that the figure changes, and asserts that the page made no request to any host but
127.0.0.1 and logged no exception or console error.  A screenshot of each page is saved under the
test's tmp folder and copied to ``/tmp/s2kd-shots/``.  Timings (first render of Forecasts after the
server is up, a lead-time change) are printed and written to ``/tmp/s2kd-shots/timings.json``.

Skipped only when ``/usr/bin/chromium`` is missing and ``S2KD_REQUIRE_BROWSER`` is not set (CI sets it,
and then a missing browser fails).  Never runs ``playwright install``: the system Chromium is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest_app import tiny_app_env  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/s2kd-shots")
PAGES = ("overview", "forecasts", "compare", "spectra", "semantics")
_PROBE = re.compile(r"^/[^/]+/_stcore/(health|host-config)$")

pytestmark = pytest.mark.browser


def _browser_or_skip():
    if not CHROMIUM.exists():
        if os.environ.get("S2KD_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing but S2KD_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} not installed")
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        if os.environ.get("S2KD_REQUIRE_BROWSER"):
            pytest.fail("the playwright package is missing but S2KD_REQUIRE_BROWSER is set")
        pytest.skip("playwright not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t_end = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("streamlit did not become healthy")


@contextlib.contextmanager
def _streamlit(runs: Path, cache: Path, log_path: Path):
    """``streamlit run app/main.py`` on a free 127.0.0.1 port; yields (port, seconds until healthy)."""
    port = _free_port()
    env = dict(os.environ, S2KD_RUN_ROOTS=str(runs), S2KD_DASHBOARD_CACHE=str(cache),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        t_start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(port, proc)
            yield port, time.monotonic() - t_start
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture()
def server(tiny_app_env, tmp_path):  # noqa: F811
    _browser_or_skip()
    with _streamlit(tiny_app_env["runs"], tmp_path / "cache", tmp_path / "streamlit.log") as (port, healthy_s):
        yield {"port": port, "healthy_s": healthy_s, "cache": tmp_path / "cache"}


_CHARTS_DRAWN = """(n) => {
  if (document.querySelector('[data-testid="stSpinner"]')) return false;
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  return plots.length >= n && plots.every(p => p.querySelector('.main-svg') && p.data && p.data.length > 0);
}"""

_TRUTH_TITLE = """() => {
  for (const p of document.querySelectorAll('.js-plotly-plot')) {
    const ann = (p.layout && p.layout.annotations) || [];
    const t = p.data.find(d => d.type === 'heatmap' && d.name && d.name.startsWith('truth'));
    for (const a of ann) if (t && a.text && a.text.startsWith('truth')) return a.text + '|' + JSON.stringify(t.z).slice(0, 400);
  }
  return null;
}"""


def test_dashboard_in_chromium(server, tiny_app_env, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    port = server["port"]
    base = f"http://127.0.0.1:{port}"
    runs = urllib.parse.quote(str(tiny_app_env["weather"].resolve()))
    query = f"?runs={runs}&region=Global&lead=3"
    shots = tmp_path / "shots"
    shots.mkdir()
    SHOTS.mkdir(parents=True, exist_ok=True)
    foreign: list[str] = []
    page_errors: list[str] = []
    console_errors: list[str] = []
    timings: dict[str, float] = {}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
            page = ctx.new_page()

            def on_request(req):
                url = urllib.parse.urlparse(req.url)
                if url.scheme in ("data", "blob", "about"):
                    return
                if url.hostname != "127.0.0.1":
                    foreign.append(req.url)

            probes: list[str] = []

            def on_response(resp):
                # Streamlit's frontend probes <deep-link path>/_stcore/{health,host-config} to find the
                # server's base path before falling back to /_stcore/...: those 404s are expected.
                if resp.status == 404 and _PROBE.search(urllib.parse.urlparse(resp.url).path):
                    probes.append(resp.url)

            page.on("request", on_request)
            page.on("response", on_response)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

            # first render of Forecasts after the server is up (cold: no model loaded, empty disk cache)
            t0 = time.monotonic()
            page.goto(f"{base}/forecasts{query}")
            page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=120_000)
            timings["forecasts_first_render_s"] = round(time.monotonic() - t0, 2)
            timings["server_start_to_healthy_s"] = round(server["healthy_s"], 2)

            # a lead-time change: the slider thumb takes the arrow keys
            before = page.evaluate(_TRUTH_TITLE)
            assert before and before.startswith("truth +18 h"), before
            thumb = page.locator('[data-testid="stSidebar"] input[type="range"]').first
            thumb.focus()
            t1 = time.monotonic()
            thumb.press("ArrowRight")
            page.wait_for_function(f"() => {{ const v = ({_TRUTH_TITLE})(); return v && v !== {json.dumps(before)}; }}",
                                   timeout=30_000)
            page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=30_000)
            timings["lead_change_s"] = round(time.monotonic() - t1, 2)
            after = page.evaluate(_TRUTH_TITLE)
            assert after.startswith("truth +24 h"), after
            assert after.split("|")[1] != before.split("|")[1], "the truth field did not change with the lead"
            assert "lead=4" in page.url
            page.screenshot(path=str(shots / "forecasts.png"), full_page=True)

            # every other page through the sidebar navigation; the view (lead 4) follows
            expected_charts = {"overview": 1, "compare": 1, "spectra": 4, "semantics": 3}
            for name in ("compare", "spectra", "semantics", "overview"):
                page.locator('[data-testid="stSidebarNav"] a', has_text=name.capitalize()).first.click()
                page.wait_for_url(f"**/{'' if name == 'overview' else name}?*", timeout=30_000)
                page.wait_for_function(_CHARTS_DRAWN, arg=expected_charts[name], timeout=120_000)
                page.wait_for_timeout(300)
                assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {name}"
                assert "lead=4" in page.url and "region=Global" in page.url, page.url
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        finally:
            browser.close()

    # a restarted app: the forecasts of a viewed init time come from the on-disk cache (no model loads)
    with _streamlit(tiny_app_env["runs"], server["cache"], tmp_path / "streamlit2.log") as (port2, _):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.on("request", on_request)
                page.on("response", on_response)
                page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
                t0 = time.monotonic()
                page.goto(f"http://127.0.0.1:{port2}/forecasts{query}")
                page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=120_000)
                timings["forecasts_first_render_after_restart_s"] = round(time.monotonic() - t0, 2)
            finally:
                browser.close()

    for png in shots.glob("*.png"):
        shutil.copy(png, SHOTS / png.name)
    (SHOTS / "timings.json").write_text(json.dumps(timings, indent=1))
    print("timings:", json.dumps(timings))
    assert not foreign, f"requests to other hosts: {foreign[:5]}"
    assert not page_errors, f"page exceptions: {page_errors[:3]}"
    unexplained = [m for m in console_errors if not m.startswith("Failed to load resource: the server responded with a "
                                                                  "status of 404")]
    n_404 = len(console_errors) - len(unexplained)
    assert n_404 <= len(probes), f"404 console errors not explained by base-path probes: {console_errors[:3]}"
    assert not unexplained, f"console errors: {unexplained[:3]}"
    assert len(list(shots.glob("*.png"))) == len(PAGES)
