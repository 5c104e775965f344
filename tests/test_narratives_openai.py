"""The OpenAI-compatible backend against a real chat-completions HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.cache import SafeCache
from core.errors import ConfigError
from core.narratives import NARRATIVE_NAMESPACE, narrate_cached, narrate_many
from core.narratives.openai_backend import PROMPT_VERSION, OpenAIConfig, OpenAINarrator
from tests.test_narratives import city_window, weather_window

SECRET = "sk-test-SECRET-7f3a9c"
ANSWER = "A deep low over the North Atlantic drives a cold front toward Europe while heights rise over Africa."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.plan: list[str] = []
        self.default = "ok"
        self.requests: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self.slow_s = 1.0

    def handle_error(self, request, client_address):  # resets and client timeouts are expected here
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        srv: _Server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with srv.lock:
            srv.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            behaviour = srv.plan.pop(0) if srv.plan else srv.default
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        ok = json.dumps({"id": "c1", "object": "chat.completion", "model": "test-vlm", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}]}).encode()
        try:
            if behaviour == "ok":
                self._send(200, ok)
            elif behaviour == "busy":
                time.sleep(0.15)
                self._send(200, ok)
            elif behaviour == "slow":
                time.sleep(srv.slow_s)
                self._send(200, ok)
            elif behaviour == "500":
                self._send(500, b'{"error": {"message": "internal error"}}')
            elif behaviour == "429":
                self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0"})
            elif behaviour == "401":
                self._send(401, b'{"error": {"message": "bad key"}}')
            elif behaviour == "malformed":
                self._send(200, b'{"choices": [{"message": {"content": "A deep lo')
            elif behaviour == "nochoices":
                self._send(200, b'{"object": "chat.completion", "choices": []}')
            elif behaviour == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
        except OSError:
            pass
        finally:
            with srv.lock:
                srv.inflight -= 1


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("S2KD_OPENAI_API_KEY", SECRET)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def narrator(server, **kw) -> OpenAINarrator:
    scope = kw.pop("scope", "context")
    cfg = dict(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="test-vlm", timeout_s=2.0,
               max_retries=2, backoff_s=0.01, max_backoff_s=0.05, images=False, total_timeout_s=20.0)
    cfg.update(kw)
    return OpenAINarrator(scope=scope, config=OpenAIConfig(**cfg))


def _no_secret_anywhere(tmp_path, caplog, narratives):
    for n in narratives:
        assert SECRET not in json.dumps(n.to_json())
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in caplog.text


def test_normal_answer_with_images_and_grounding(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    n = narrator(server, images=True, max_frames=2)
    w = weather_window()
    with SafeCache(tmp_path / "cache") as cache:
        narrative, hit = narrate_cached(n, w, cache)
        again, hit2 = narrate_cached(n, w, cache)
    assert narrative.text == ANSWER and not hit and hit2 and again.text == ANSWER
    p = narrative.provenance
    assert (p.backend, p.model, p.prompt_version, p.scope, p.fallback) == ("openai", "test-vlm", PROMPT_VERSION,
                                                                           "context", False)
    assert p.facts["kind"] == "weather" and p.created_at.endswith("Z")
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {SECRET}"  # the key is used, only in the header
    body = req["body"]
    assert body["model"] == "test-vlm" and body["messages"][0]["role"] == "system"
    parts = body["messages"][1]["content"]
    text = parts[0]["text"]
    assert '"kind":"weather"' in text and "z500" in text  # the diagnostic facts as grounding
    images = [q["image_url"]["url"] for q in parts if q["type"] == "image_url"]
    assert len(images) == 3  # one per channel
    for url in images:
        assert url.startswith("data:image/png;base64,")
        assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    _no_secret_anywhere(tmp_path, caplog, [narrative])


@pytest.mark.parametrize("first", ["500", "429", "reset"])
def test_transient_errors_are_retried(server, first):
    server.plan = [first]
    narrative = narrator(server).narrate(city_window())
    assert narrative.text == ANSWER and not narrative.provenance.fallback
    assert len(server.requests) == 2


@pytest.mark.parametrize("behaviour,attempts,reason", [
    ("500", 3, "HTTP 500 (after 3 attempt(s))"),
    ("429", 3, "HTTP 429 (after 3 attempt(s))"),
    ("reset", 3, "connection error"),
    ("malformed", 1, "malformed JSON"),
    ("nochoices", 1, "unexpected answer"),
    ("401", 1, "HTTP 401"),
])
def test_failures_fall_back_to_diagnostic_and_are_not_cached(server, tmp_path, caplog, behaviour, attempts, reason):
    caplog.set_level(logging.DEBUG)
    server.default = behaviour
    n = narrator(server)
    w = weather_window()
    t0 = time.monotonic()
    with SafeCache(tmp_path / "cache") as cache:
        narrative, hit = narrate_cached(n, w, cache)
        assert list(cache.keys(NARRATIVE_NAMESPACE)) == []  # a failure is never cached
    assert time.monotonic() - t0 < 10
    p = narrative.provenance
    assert p.fallback and p.backend == "diagnostic" and p.requested_backend == "openai"
    assert reason in p.fallback_reason
    assert "diagnostic narrator" in narrative.text.lower()
    assert len(server.requests) == attempts
    _no_secret_anywhere(tmp_path, caplog, [narrative])


def test_slow_answer_times_out_retries_then_falls_back(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.default, server.slow_s = "slow", 1.5
    n = narrator(server, timeout_s=0.3, max_retries=1)
    t0 = time.monotonic()
    narrative = n.narrate(weather_window())
    elapsed = time.monotonic() - t0
    assert narrative.provenance.fallback and "timed out" in narrative.provenance.fallback_reason
    assert len(server.requests) == 2 and elapsed < 1.5
    # a slow first answer, then a fast one: recovered by the retry
    server.requests.clear()
    server.plan, server.default = ["slow"], "ok"
    ok = n.narrate(weather_window())
    assert ok.text == ANSWER and len(server.requests) == 2
    _no_secret_anywhere(tmp_path, caplog, [narrative, ok])


def test_total_time_is_bounded(server):
    server.default, server.slow_s = "slow", 1.5
    n = narrator(server, timeout_s=0.25, max_retries=50, total_timeout_s=0.8)
    t0 = time.monotonic()
    narrative = n.narrate(weather_window())
    assert time.monotonic() - t0 < 1.6
    assert narrative.provenance.fallback
    assert len(server.requests) <= 4


def test_concurrency_is_limited(server, tmp_path):
    server.default = "busy"
    n = narrator(server, max_concurrency=2)
    windows = [weather_window(start=f"2017-01-{d:02d}T00") for d in range(1, 7)]
    with SafeCache(tmp_path / "cache") as cache:
        results = narrate_many(n, windows, cache, max_workers=6)  # more threads than slots
    assert all(r.text == ANSWER for r, _ in results)
    assert server.max_inflight == 2
    assert len(server.requests) == 6


def test_config_is_checked_and_keyless():
    with pytest.raises(ConfigError):
        OpenAIConfig.from_mapping({"api_key": SECRET})
    with pytest.raises(ConfigError):
        OpenAIConfig.from_mapping({"base_url": "http://x", "colour": "red"})
    with pytest.raises(ConfigError):
        OpenAIConfig(base_url="ftp://example.org")
    cfg = OpenAIConfig.from_mapping({"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0})
    assert SECRET not in repr(cfg)


def test_no_key_means_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("S2KD_OPENAI_API_KEY")
    narrator(server).narrate(weather_window())
    assert "Authorization" not in server.requests[0]["headers"]


def test_unreachable_server_falls_back_quickly():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = OpenAINarrator(config=OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=0.5, max_retries=1,
                                           backoff_s=0.01, images=False))
    t0 = time.monotonic()
    narrative = n.narrate(weather_window())
    assert narrative.provenance.fallback and "connection error" in narrative.provenance.fallback_reason
    assert time.monotonic() - t0 < 3
