"""End-to-end: the dashboard in real headless Chromium (Debian ``chromium`` driven by ``playwright``).

``test_dashboard_in_chromium`` starts ``streamlit run app/main.py`` on a free 127.0.0.1 port with the tiny
runs of ``tests/conftest_app.py``, visits every page, waits for the Plotly charts to draw, moves the
lead-time slider and checks that the figure changes, and asserts that the page made no request to any host
but 127.0.0.1 and logged no exception or console error.  A screenshot of each page is saved under the
test's tmp folder and copied to ``/tmp/s2kd-shots/``.

``test_demo_runs_first_render_and_lead_change`` measures what a user of ``make app`` gets with the shipped
demo runs (``assets/runs/{weather-demo,taxibj-demo}``): it runs the two commands of the Makefile's ``app``
recipe, ``python -m core data prepare --warm-dashboard`` (which also generates ``data/demo`` when it is
missing, about 2.5 min on 2 cores, as ``make app`` does) into an empty dashboard cache, then
``python -m app.serve``, opens Forecasts of ``weather-demo`` as soon as the server answers its health
check (``forecasts_first_render_at_health_s``: the server is still loading its run sets then) and times
three lead-time changes (each from the key press to both figures redrawn, on
a page left alone for :data:`LEAD_CHANGE_SETTLE_MS` first), then waits until the server is ready (its preload
has loaded every run set, ``demo_start_to_ready_s``) and times the first Forecasts render of
``taxibj-demo`` in a new browser context (``forecasts_first_render_s``).  It asserts the README's targets
(:data:`FIRST_RENDER_TARGET_S`, :data:`LEAD_CHANGE_TARGET_S`) times :data:`TIMING_MARGIN` on the first
render once ready and the lead change; the first render at health only within 4× the target.
Timings go to ``/tmp/s2kd-shots/timings.json``.

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

from app.state import PREFETCH_KEY
from tests.conftest_app import tiny_app_env  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/s2kd-shots")
TIMINGS = SHOTS / "timings.json"

#: The targets of the README's "Dashboard" section (issue 7), with the demo runs on the 2-core machine.
FIRST_RENDER_TARGET_S = 5.0
LEAD_CHANGE_TARGET_S = 1.0
#: Each timed lead change starts on a page left alone this long (the browser finishes the previous draw).
LEAD_CHANGE_SETTLE_MS = 1000
#: The assertion allows this factor over the targets: the development machine is shared, and the same
#: run varies by about that much with the other jobs' load (the README quotes medians and the load).
TIMING_MARGIN = float(os.environ.get("S2KD_TIMING_MARGIN", "1.5"))
#: The Makefile's ``app`` recipe (checked against the Makefile by ``test_make_app_recipe``).
MAKE_APP_WARM = ("-m", "core", "data", "prepare", "--warm-dashboard")
MAKE_APP_SERVE = ("-m", "app.serve")
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
def _streamlit(runs: Path | None, cache: Path, log_path: Path, command: tuple[str, ...] = ("-m", "streamlit", "run",
                                                                                          "app/main.py")):
    """The dashboard server on a free 127.0.0.1 port (``streamlit run app/main.py`` by default, or
    ``command`` run by this Python); yields (port, seconds from the start until healthy)."""
    port = _free_port()
    env = dict(os.environ, S2KD_DASHBOARD_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    if runs is not None:
        env["S2KD_RUN_ROOTS"] = str(runs)
    else:  # the project's default run roots (assets/runs, runs, benchmarks/runs), as for a user
        env.pop("S2KD_RUN_ROOTS", None)
    with open(log_path, "w") as log:
        t_start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, *command, "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(port, proc)
            yield port, time.monotonic() - t_start
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server started by a test: SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _update_timings(values: dict) -> dict:
    """Merge ``values`` into /tmp/s2kd-shots/timings.json (each test writes its own keys)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        timings = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        timings = {}
    timings.update(values)
    TIMINGS.write_text(json.dumps(timings, indent=1))
    return timings


@pytest.fixture()
def server(tiny_app_env, tmp_path):  # noqa: F811
    _browser_or_skip()
    with _streamlit(tiny_app_env["runs"], tmp_path / "cache", tmp_path / "streamlit.log") as (port, healthy_s):
        yield {"port": port, "healthy_s": healthy_s, "cache": tmp_path / "cache"}


_CHARTS_DRAWN = """(n) => {
  if (document.querySelector('[data-testid="stSpinner"]')) return false;
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p => !p.closest('.st-key-%s'));
  return plots.length >= n && plots.every(p => p.querySelector('.main-svg') && p.data && p.data.length > 0);
}""" % PREFETCH_KEY

#: The Forecasts page is drawn: both figures, and the widgets whose code Streamlit loads on demand (the
#: models multiselect, the sidebar's lead slider), which may come a moment after the charts.
_PAGE_DRAWN = """() => (%s)(2) && !!document.querySelector('[data-testid="stMultiSelect"]')
  && !!document.querySelector('[data-testid="stSidebar"] input[type="range"]')""" % _CHARTS_DRAWN

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

            # first render of Forecasts after the server is up (plain `streamlit run`: no preload, empty disk
            # cache, so the models load; the make-app timings are test_demo_runs_first_render_and_lead_change's)
            t0 = time.monotonic()
            page.goto(f"{base}/forecasts{query}")
            page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=120_000)
            timings["tiny_plain_first_render_s"] = round(time.monotonic() - t0, 2)
            timings["tiny_plain_start_to_healthy_s"] = round(server["healthy_s"], 2)

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
            timings["tiny_lead_change_s"] = round(time.monotonic() - t1, 2)
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
                timings["tiny_plain_first_render_after_restart_s"] = round(time.monotonic() - t0, 2)
            finally:
                browser.close()

    for png in shots.glob("*.png"):
        shutil.copy(png, SHOTS / png.name)
    _update_timings(timings)
    print("timings:", json.dumps(timings))
    assert not foreign, f"requests to other hosts: {foreign[:5]}"
    assert not page_errors, f"page exceptions: {page_errors[:3]}"
    unexplained = [m for m in console_errors if not m.startswith("Failed to load resource: the server responded with a "
                                                                  "status of 404")]
    n_404 = len(console_errors) - len(unexplained)
    assert n_404 <= len(probes), f"404 console errors not explained by base-path probes: {console_errors[:3]}"
    assert not unexplained, f"console errors: {unexplained[:3]}"
    assert len(list(shots.glob("*.png"))) == len(PAGES)


def _makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        out.append(line.strip())
    return out


def test_make_app_recipe():
    """The demo timing test runs what ``make app`` runs (no browser needed for this check)."""
    assert _makefile_recipe("app") == ["$(PY) " + " ".join(MAKE_APP_WARM), "$(PY) " + " ".join(MAKE_APP_SERVE)]


def _first_forecasts_render(browser, url: str, errors: list[str]) -> tuple[float, object]:
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: errors.append(f"request to {req.url}")
            if urllib.parse.urlparse(req.url).scheme not in ("data", "blob", "about")
            and urllib.parse.urlparse(req.url).hostname != "127.0.0.1" else None)
    t0 = time.monotonic()
    page.goto(url)
    page.wait_for_function(_PAGE_DRAWN, timeout=180_000)
    return time.monotonic() - t0, page


def test_demo_runs_first_render_and_lead_change(tmp_path):
    """``make app`` (warm-up, then ``app.serve``) with the shipped demo runs: first Forecasts render after the
    server is up and lead-time changes, against the README's targets (see the module docstring)."""
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    if not (ROOT / "assets" / "runs" / "weather-demo" / "teacher-s2" / "model.json").is_file():
        pytest.fail("the shipped demo runs are missing (assets/runs/weather-demo)")
    cache = tmp_path / "dashboard-cache"  # a first `make app`: nothing cached yet
    env = dict(os.environ, S2KD_DASHBOARD_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("S2KD_RUN_ROOTS", None)
    t0 = time.monotonic()
    warm = subprocess.run([sys.executable, *MAKE_APP_WARM], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "weather-demo warmed" in warm.stdout or "weather-demo already warm" in warm.stdout, warm.stdout
    timings = {"demo_warm_step_s": round(time.monotonic() - t0, 2)}
    errors: list[str] = []
    with _streamlit(None, cache, tmp_path / "serve.log", command=MAKE_APP_SERVE) as (port, healthy_s), \
            sync_playwright() as pw:
        timings["demo_start_to_healthy_s"] = round(healthy_s, 2)
        t_healthy = time.monotonic()
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            base = f"http://127.0.0.1:{port}/forecasts?region=Global&lead=3&runs="
            first, page = _first_forecasts_render(browser, base + "assets/runs/weather-demo", errors)
            # opened the moment the server answers: the preload is still importing and loading
            timings["forecasts_first_render_at_health_s"] = round(first, 2)
            before = page.evaluate(_TRUTH_TITLE)
            assert before and before.startswith("truth +3 h"), before
            thumb = page.locator('[data-testid="stSidebar"] input[type="range"]').first
            changes = []
            for lead in (4, 5, 6):
                # a user's action on a settled page: from the key press to both figures redrawn
                page.wait_for_timeout(LEAD_CHANGE_SETTLE_MS)
                before = page.evaluate(_TRUTH_TITLE)
                thumb.focus()
                t1 = time.monotonic()
                thumb.press("ArrowRight")
                page.wait_for_function(
                    f"() => {{ const v = ({_TRUTH_TITLE})(); return v && v !== {json.dumps(before)}; }}",
                    timeout=30_000)
                page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=30_000)
                changes.append(round(time.monotonic() - t1, 2))
                assert page.evaluate(_TRUTH_TITLE).startswith(f"truth +{lead} h")
                assert f"lead={lead}" in page.url
            timings["lead_changes_s"] = changes
            timings["lead_change_s"] = sorted(changes)[1]  # the median of three
            assert page.locator('[data-testid="stException"]').count() == 0
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "forecasts-demo.png"), full_page=True)
            # the server is ready when its preload has loaded every run set: a page opened from then on
            deadline = time.monotonic() + 180
            while "taxibj-demo loaded" not in (tmp_path / "serve.log").read_text():
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
            timings["demo_start_to_ready_s"] = round(healthy_s + time.monotonic() - t_healthy, 2)
            second, page2 = _first_forecasts_render(browser, base.replace("region=Global&", "")
                                                    + "assets/runs/taxibj-demo", errors)
            timings["forecasts_first_render_s"] = round(second, 2)
            assert page2.locator('[data-testid="stException"]').count() == 0
            page2.screenshot(path=str(SHOTS / "forecasts-demo-taxibj.png"), full_page=True)
        finally:
            browser.close()
    timings["load_average_1min"] = round(os.getloadavg()[0], 2)
    _update_timings(timings)
    print("timings:", json.dumps(timings))
    log = (tmp_path / "serve.log").read_text()
    assert "weather-demo loaded" in log, log  # the server's preload ran
    assert "models loaded" not in log, log    # ... and found the warmed forecasts in the disk cache
    assert not errors, errors[:3]
    assert timings["forecasts_first_render_s"] <= FIRST_RENDER_TARGET_S * TIMING_MARGIN, timings
    # opened while the server itself starts, this one varies most with the machine's load (4.2-8.4 s across
    # clean-clone runs of the whole suite): bounded, and reported in the README, not held to the 1.5x margin
    assert timings["forecasts_first_render_at_health_s"] <= 4 * FIRST_RENDER_TARGET_S, timings
    assert timings["lead_change_s"] <= LEAD_CHANGE_TARGET_S * TIMING_MARGIN, timings
