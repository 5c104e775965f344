"""Security review as tests (RELIABILITY.md, "Security review").

* the Streamlit server binds 127.0.0.1 by default (config file and a live server checked in /proc/net);
* the app offers no upload widget and takes no file path from the user: a run set named in the URL must
  be one found under the configured run roots; region text from the URL or the custom box is parsed by
  ``core.data.regions`` into a clean message or a region, never an exception;
* API keys come only from the environment and never reach logs, caches, checkpoints or the page;
* checkpoints load without unpickling (the malicious-file cases are in tests/test_faults.py).
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest_app import tiny_app_env  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
SECRET = "sk-s2kd-SECURITY-test-7f3a9c1e5b"
N = int(os.environ.get("S2KD_FUZZ_EXAMPLES", "0") or 0)


# --------------------------------------------------------------------------------------------------
# binding, uploads


def test_streamlit_config_binds_loopback_and_caps_uploads():
    cfg = tomllib.loads((ROOT / "streamlit_config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["serverAddress"] == "127.0.0.1"
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["enableXsrfProtection"] is True
    assert 0 < cfg["server"]["maxUploadSize"] <= 64
    link = ROOT / ".streamlit" / "config.toml"
    assert link.resolve() == (ROOT / "streamlit_config.toml").resolve()


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":  # LISTEN
                out.append(addr)
    return out


def test_live_server_listens_on_loopback_only(tmp_path):
    """``streamlit run app/main.py`` with no address option (as ``make app`` runs it) listens on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, S2KD_RUN_ROOTS=str(tmp_path), S2KD_DASHBOARD_CACHE="off", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", MAIN, "--server.port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        addrs: list[str] = []
        while time.monotonic() < deadline and not addrs:
            addrs = _listening(port)
            time.sleep(0.2)
        assert addrs, "the server did not start"
        assert set(addrs) == {"0100007F"}, addrs  # 127.0.0.1 only (not 0.0.0.0 / ::)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _calls(sub: str):
    for path in (ROOT / sub).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                yield path, node, name


def test_the_app_has_no_upload_and_opens_no_user_path():
    """No upload/camera widget; no open()/Path()/open_source() fed from the session state or the URL in app/."""
    bad = []
    for path, node, name in _calls("app"):
        if name in ("file_uploader", "camera_input", "audio_input", "chat_input"):
            bad.append(f"{path.name}:{node.lineno}: {name}")
        if name in ("open", "Path", "open_source", "load_forecaster", "read_text", "read_bytes"):
            src = ast.unparse(node)
            if "session_state" in src or "query_params" in src:
                bad.append(f"{path.name}:{node.lineno}: {src}")
    assert bad == []


# --------------------------------------------------------------------------------------------------
# URL / widget input cannot reach files outside the run roots


@pytest.fixture()
def app_env(tiny_app_env, tmp_path_factory, monkeypatch):  # noqa: F811
    from core import dashboard as D

    only = tiny_app_env["runs"] / "weather-tiny"
    monkeypatch.setenv(D.RUN_ROOTS_ENV, str(only))  # the taxibj run set is OUTSIDE the configured roots
    monkeypatch.setattr(D, "DEFAULT_RUN_ROOTS", ())
    monkeypatch.setenv("S2KD_DASHBOARD_CACHE", str(tmp_path_factory.getbasetemp() / "sec-dash-cache"))
    monkeypatch.setenv("S2KD_OPENAI_API_KEY", SECRET)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app import state

    state.run_sets.clear()
    yield tiny_app_env
    state.run_sets.clear()


def _all_text(at) -> str:
    """Every element's protobuf, as text (what the browser receives)."""
    parts = []
    for node in at._tree.values() if hasattr(at._tree, "values") else []:
        parts.append(str(node))
    parts.append(str(at._tree))
    return "\n".join(parts)


@pytest.mark.parametrize("runs_param", ["{outside}", "{outside_key}", "../../../../etc", "/etc/passwd",
                                        "..%2F..%2Fetc", "{outside}/../../..", "~root"])
def test_url_cannot_open_a_run_set_outside_the_roots(app_env, runs_param):
    from streamlit.testing.v1 import AppTest

    from app import state
    from core import dashboard as D

    outside = app_env["taxibj"]
    value = runs_param.format(outside=outside, outside_key=D._rel(outside))
    allowed = {rs.key for rs in D.find_run_sets()}
    assert allowed and all("taxibj" not in k for k in allowed)
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.query_params["runs"] = value
    at.query_params["region"] = "../../etc/passwd"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state[state.RUNSET] in allowed
    text = _all_text(at)
    assert str(outside) not in text and "root:x:0:0" not in text


@settings(max_examples=N or 60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(spec=st.one_of(st.text(max_size=30), st.sampled_from([
    "px:0,99999999999999999999,0,1", "1e999,2,3,4", "nan,nan,nan,nan", "-90,90,0,360", "90,-90,0,0",
    "px:-1,2,3,4", "px:5,5,5,5", "Europe", "europe ", "0,0,0,0", "inf,-inf,1,2", "1,2,3", "1,2,3,4,5",
    "../../etc/passwd", "px:0,1,0,1" + "0" * 5000, "20,70,280,20", "px:0,16,0,16"])))
def test_region_text_is_parsed_or_refused_cleanly(dashboards, spec):
    """Any text in the custom-box field or the URL's ``region``: a region, or a one-line UserError."""
    from core.errors import UserError

    for dash in dashboards:
        try:
            r = dash.check_region(spec)
        except UserError as exc:
            assert "\n" not in str(exc)
            continue
        assert r is not None


@pytest.fixture(scope="module")
def dashboards(tiny_app_env):  # noqa: F811
    from core import dashboard as D

    sets = D.find_run_sets([tiny_app_env["runs"]])
    return [D.Dashboard(rs) for rs in sets]


# --------------------------------------------------------------------------------------------------
# API keys


def test_api_key_only_from_the_environment():
    """No config dataclass (training config, narrator config) has a field that could hold a key."""
    import dataclasses

    from core import config as C
    from core.narratives.openai_backend import OpenAIConfig

    names = [k for k, _, _ in C.describe()] + [f.name for f in dataclasses.fields(OpenAIConfig)]
    # api_key_env holds the NAME of the variable (checked to be an identifier), max_tokens a length
    allowed = {"api_key_env", "max_tokens"}
    assert not [n for n in names if n not in allowed and any(w in n.lower() for w in ("key", "token", "secret",
                                                                                      "password"))], names
    from core.config import ConfigError

    with pytest.raises(ConfigError):
        OpenAIConfig(api_key_env="sk-live 123")  # a key pasted where the variable name goes is refused
    with pytest.raises(ConfigError):
        OpenAIConfig.from_mapping({"api_key": SECRET})


def test_api_key_never_reaches_the_page(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    pages = ["views/overview.py", "views/forecasts.py", "views/compare.py", "views/spectra.py", "views/semantics.py"]
    for page in pages:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        text = _all_text(at)
        assert "weather-tiny" in text and len(text) > 2000, page  # the check sees the page's content
        assert SECRET not in text, page
    cache = Path(os.environ["S2KD_DASHBOARD_CACHE"])
    for f in cache.rglob("*") if cache.exists() else []:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_api_key_never_reaches_checkpoints_logs_or_caches(tmp_path, monkeypatch, capfd, caplog):
    """A training run and a narrated window with the key in the environment: the key is in no file written,
    no log record and no output."""
    import logging

    import numpy as np

    from core.cache import SafeCache
    from core.narratives import narrate_cached
    from core.narratives.openai_backend import OpenAIConfig, OpenAINarrator
    from tests.test_faults import _train_inprocess
    from tests.test_narratives_openai import weather_window

    monkeypatch.setenv("S2KD_OPENAI_API_KEY", SECRET)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.DEBUG)
    _train_inprocess(tmp_path / "run")
    with socket.socket() as s:  # nothing listens: the narrator falls back, and says why
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = OpenAINarrator(config=OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=0.3, max_retries=0,
                                           images=False))
    with SafeCache(tmp_path / "cache") as cache:
        narrative, _ = narrate_cached(n, weather_window(), cache)
        cache.put_json("x", "y", {"n": 1})
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text
    assert SECRET not in json.dumps(narrative.to_json())
    assert SECRET not in repr(n) and SECRET not in repr(n.config)
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.name == "model.safetensors" for f in files)
    for f in files:
        assert SECRET.encode() not in f.read_bytes(), f
    assert np.isfinite(1.0)


def test_checkpoint_loaders_never_unpickle():
    """Every tensor read in core/ goes through safetensors or torch.load(weights_only=True)."""
    bad = []
    for path, node, name in _calls("core"):
        src = ast.unparse(node)
        if name == "load" and src.startswith("torch.load") and "weights_only=True" not in src:
            bad.append(f"{path.name}:{node.lineno}: {src}")
    assert bad == []
