"""Narrator backed by any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, …).

``POST {base_url}/chat/completions`` with the rendered input frames as ``data:image/png;base64`` URLs and
the diagnostic facts as grounding, using the versioned prompt template :data:`PROMPT_VERSION`.

- Base URL, model and limits come from :class:`OpenAIConfig` (TOML table ``[narrator.openai]`` or CLI).
- The API key is read from the environment variable named by ``api_key_env`` (default
  ``S2KD_OPENAI_API_KEY``) at request time, sent only in the ``Authorization`` header, and never logged,
  cached, put in provenance or in error messages.
- Each attempt has a socket timeout; 429, 5xx, timeouts and connection errors are retried at most
  ``max_retries`` times with exponential backoff (``Retry-After`` honoured up to ``max_backoff_s``); the
  whole call is bounded by ``total_timeout_s``.  Other HTTP errors and malformed answers are not retried.
- At most ``max_concurrency`` requests are in flight per narrator (a semaphore), however many threads
  call :meth:`OpenAINarrator.narrate` (``narrate_many`` uses that many threads).
- On failure the diagnostic narrator writes the narrative; its provenance says ``fallback=True`` with
  the reason and ``requested_backend="openai"``, and such narratives are never cached.

Standard library only (``urllib``): no extra dependency.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping

from core.errors import ConfigError
from core.narratives import MAX_WORDS, BaseNarrator, NarrationInput, Narrative, limit_words
from core.narratives.diagnostic import DiagnosticNarrator
from core.narratives.facts import compute_facts

__all__ = ["OpenAIConfig", "OpenAINarrator", "NarratorFailure", "PROMPT_VERSION", "build_messages"]

log = logging.getLogger(__name__)

PROMPT_VERSION = "openai-v1"

SYSTEM_PROMPT = (
    "You are an expert {expert} writing short situation narratives for a forecasting model. "
    "Describe what is happening in the input window and why, in plain prose, at most {max_words} words, "
    "no lists, no markdown. Ground every statement in the images and the computed facts; do not invent "
    "numbers or places. {scope_rule}"
)
SCOPE_RULES = {
    "context": "Use only what is known at forecast time: the input frames, the calendar and the scheduled "
               "context. Do not describe the future beyond scheduled events.",
    "privileged": "You are also shown the target (future) frames: describe how the situation evolves.",
}
USER_PROMPT = (
    "Data: {kind} fields ({channels}) on a {grid} grid, input frames {t0} to {t1}, forecast until {t2}.\n"
    "Computed facts (JSON, trustworthy):\n{facts}\n"
    "The images show the input frames per channel (first to last, left to right). "
    "Write the narrative now."
)


@dataclass(frozen=True)
class OpenAIConfig:
    """Settings of the OpenAI-compatible backend (no secrets: the key lives in ``api_key_env``)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    api_key_env: str = "S2KD_OPENAI_API_KEY"
    timeout_s: float = 60.0
    total_timeout_s: float = 300.0
    max_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 16.0
    max_concurrency: int = 4
    temperature: float = 0.2
    max_tokens: int = 256
    images: bool = True
    max_frames: int = 3

    def __post_init__(self):
        if not re.match(r"^https?://", self.base_url):
            raise ConfigError(f"narrator.openai.base_url must start with http:// or https://, got {self.base_url!r}")
        for name in ("timeout_s", "total_timeout_s", "backoff_s", "max_backoff_s"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"narrator.openai.{name} must be >= 0")
        if int(self.max_retries) < 0 or int(self.max_concurrency) < 1 or int(self.max_frames) < 1:
            raise ConfigError("narrator.openai: max_retries >= 0, max_concurrency >= 1 and max_frames >= 1 required")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.api_key_env):
            raise ConfigError(f"narrator.openai.api_key_env must be an environment variable name, got {self.api_key_env!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "OpenAIConfig":
        """Build from a TOML table; unknown keys are rejected (and a literal ``api_key`` explicitly)."""
        known = {f.name for f in dataclasses.fields(cls)}
        if "api_key" in values:
            raise ConfigError("narrator.openai.api_key is not allowed: put the key in an environment variable "
                              "and name it with api_key_env")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown narrator.openai setting(s): {', '.join(unknown)}")
        return cls(**dict(values))


class NarratorFailure(RuntimeError):
    """The backend could not produce a narrative; ``str()`` is a one-line, secret-free reason."""


class _Retriable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _expert(kind: str) -> str:
    return "meteorologist" if kind == "weather" else "urban mobility analyst"


def build_messages(window: NarrationInput, facts: Mapping[str, Any], images: list[bytes], scope: str,
                   max_words: int = MAX_WORDS) -> list[dict]:
    """Chat messages of prompt template :data:`PROMPT_VERSION` (text + images as data URLs)."""
    system = SYSTEM_PROMPT.format(expert=_expert(window.kind), max_words=max_words, scope_rule=SCOPE_RULES[scope])
    user_text = USER_PROMPT.format(
        kind=window.kind, channels=", ".join(window.channels), grid=window.grid, t0=window.input_times[0],
        t1=window.input_times[-1], t2=window.target_times[-1] if window.target_times else window.input_times[-1],
        facts=json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    content: list[dict] | str
    if images:
        content = [{"type": "text", "text": user_text}] + [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}}
            for png in images]
    else:
        content = user_text
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


def _answer_text(obj: Any) -> str:
    """The assistant text of a chat-completions response; raises ValueError when malformed."""
    try:
        message = obj["choices"][0]["message"]
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("response has no choices[0].message") from None
    if isinstance(content, list):  # some servers return content parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ValueError("message content is not text")
    content = re.sub(r"<think>.*?</think>", " ", content, flags=re.S)
    content = " ".join(content.split())
    if not content:
        raise ValueError("empty message content")
    return content


class OpenAINarrator(BaseNarrator):
    """Narrates with an OpenAI-compatible server; falls back to the diagnostic narrator on failure."""

    backend = "openai"
    prompt_version = PROMPT_VERSION

    def __init__(self, scope: str = "context", config: OpenAIConfig | Mapping[str, Any] | None = None,
                 max_words: int = MAX_WORDS, **overrides):
        super().__init__(scope)
        if config is None:
            config = OpenAIConfig()
        elif not isinstance(config, OpenAIConfig):
            config = OpenAIConfig.from_mapping(config)
        if overrides:
            known = {f.name for f in dataclasses.fields(OpenAIConfig)}
            bad = sorted(set(overrides) - known)
            if bad:
                raise ConfigError(f"unknown narrator.openai setting(s): {', '.join(bad)}")
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.model = config.model
        self.max_words = int(max_words)
        self.max_concurrency = int(config.max_concurrency)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._diagnostic = DiagnosticNarrator(scope=scope, max_words=max_words)
        self.endpoint = config.base_url.rstrip("/") + "/chat/completions"

    # -- narration
    def _narrate(self, window: NarrationInput) -> Narrative:
        facts = compute_facts(window)
        try:
            images: list[bytes] = []
            if self.config.images:
                from core.narratives.render import render_pngs

                images = render_pngs(window, max_frames=self.config.max_frames)
            payload = {"model": self.config.model,
                       "messages": build_messages(window, facts, images, self.scope, self.max_words),
                       "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
                       "stream": False}
            text = self.complete(payload)
        except NarratorFailure as exc:
            reason = self._scrub(str(exc))
            log.warning("openai narrator failed (%s); falling back to the diagnostic narrator", reason)
            return self._diagnostic.from_facts(facts, fallback=True, fallback_reason=reason,
                                               requested_backend=self.backend)
        return Narrative(text=limit_words(text, self.max_words), provenance=self.provenance(facts))

    # -- HTTP
    def _api_key(self) -> str | None:
        key = os.environ.get(self.config.api_key_env)
        return key.strip() if key and key.strip() else None

    def _scrub(self, text: str) -> str:
        key = self._api_key()
        return text.replace(key, "***") if key else text

    def _attempt(self, body: bytes, timeout: float) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with self._slots:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    raw = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = None
            with _suppress():
                retry_after = float(exc.headers.get("Retry-After")) if exc.headers.get("Retry-After") else None
            with _suppress():
                exc.close()
            if status == 429 or 500 <= status < 600:
                raise _Retriable(f"HTTP {status}", retry_after) from None
            raise NarratorFailure(f"HTTP {status} from {self.endpoint}") from None
        except (TimeoutError, socket.timeout):
            raise _Retriable(f"timed out after {timeout:.1f} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retriable(f"timed out after {timeout:.1f} s") from None
            raise _Retriable(f"connection error ({type(exc.reason).__name__})") from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retriable(f"connection error ({type(exc).__name__})") from None
        try:
            return _answer_text(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise NarratorFailure(f"malformed JSON from {self.endpoint}") from None
        except ValueError as exc:
            raise NarratorFailure(f"unexpected answer from {self.endpoint}: {exc}") from None

    def complete(self, payload: Mapping[str, Any]) -> str:
        """POST ``payload`` with retries; the answer text, or :class:`NarratorFailure`."""
        cfg = self.config
        body = json.dumps(payload).encode("utf-8")
        deadline = time.monotonic() + float(cfg.total_timeout_s)
        attempts = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NarratorFailure(f"gave up after {attempts} attempt(s): total time limit {cfg.total_timeout_s:g} s")
            attempts += 1
            try:
                return self._attempt(body, timeout=max(0.05, min(float(cfg.timeout_s), remaining)))
            except _Retriable as exc:
                if attempts > int(cfg.max_retries):
                    raise NarratorFailure(f"{exc.reason} (after {attempts} attempt(s))") from None
                delay = min(float(cfg.max_backoff_s), float(cfg.backoff_s) * 2 ** (attempts - 1))
                if exc.retry_after is not None:
                    delay = min(float(cfg.max_backoff_s), max(delay, exc.retry_after))
                delay = min(delay, max(0.0, deadline - time.monotonic()))
                log.info("openai narrator: %s; retry %d/%d in %.2f s", exc.reason, attempts, cfg.max_retries, delay)
                time.sleep(delay)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, (TypeError, ValueError, AttributeError))
