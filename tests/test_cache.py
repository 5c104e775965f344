"""core.cache.SafeCache: JSON / raw arrays only, never unpickles, survives killed and concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import diskcache
import numpy as np
import pytest

from core.cache import SafeCache, content_key, decode_array, encode_array

REPO = Path(__file__).resolve().parents[1]


class _Boom:
    """A payload whose unpickling would create ``marker`` (stands in for arbitrary code execution)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _expected(i: int) -> np.ndarray:
    n = 10 if i % 2 == 0 else 20_000  # below and above diskcache's 32 KiB file threshold
    return (np.arange(n, dtype=np.float32) + i).reshape(-1, 10)


def test_json_and_array_roundtrip(tmp_path):
    with SafeCache(tmp_path / "c") as cache:
        cache.put_json("ns", "k", {"text": "é ✓", "n": [1, 2.5, None, True]})
        assert cache.get_json("ns", "k") == {"text": "é ✓", "n": [1, 2.5, None, True]}
        for dtype in (np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex64):
            a = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
            cache.put_array("arr", str(np.dtype(dtype)), a)
            b = cache.get_array("arr", str(np.dtype(dtype)))
            assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
        big = np.random.default_rng(0).normal(size=(64, 384)).astype(np.float32)  # a file-backed entry
        cache.put_arrays("multi", "k", {"tokens": big, "pooled": big[0]})
        got = cache.get_arrays("multi", "k")
        assert set(got) == {"tokens", "pooled"} and np.array_equal(got["tokens"], big)
        assert cache.get_json("ns", "missing") is None and cache.get_array("arr", "missing") is None
        # namespaces are separate; a JSON entry is not readable as an array
        assert cache.get_array("ns", "k") is None
        assert sorted(cache.keys("multi")) == ["k"]


def test_refuses_unsafe_values(tmp_path):
    with SafeCache(tmp_path / "c") as cache:
        with pytest.raises(TypeError):
            cache.put_array("a", "k", np.array([object()], dtype=object))
        with pytest.raises(ValueError):
            cache.put_json("a", "k", {"x": float("nan")})
        with pytest.raises(TypeError):
            cache._cache.set("raw", {"a": 1})  # the Disk itself refuses non-bytes (no pickling path)
        with pytest.raises(TypeError):
            cache._cache.set(("tuple", "key"), b"x")


def test_content_key_is_deterministic_and_sensitive():
    a = np.zeros((2, 3), np.float32)
    k = content_key("v1", a, {"b": 1, "a": [1, 2]}, "openai", "m", "p1", "context")
    assert k == content_key("v1", a.copy(), {"a": [1, 2], "b": 1}, "openai", "m", "p1", "context")
    b = a.copy()
    b[1, 2] = 1e-7
    variants = [
        content_key("v1", b, {"b": 1, "a": [1, 2]}, "openai", "m", "p1", "context"),
        content_key("v1", a.astype(np.float64), {"b": 1, "a": [1, 2]}, "openai", "m", "p1", "context"),
        content_key("v1", a.reshape(3, 2), {"b": 1, "a": [1, 2]}, "openai", "m", "p1", "context"),
        content_key("v1", a, {"b": 2, "a": [1, 2]}, "openai", "m", "p1", "context"),
        content_key("v1", a, {"b": 1, "a": [1, 2]}, "diagnostic", "m", "p1", "context"),
        content_key("v1", a, {"b": 1, "a": [1, 2]}, "openai", "m2", "p1", "context"),
        content_key("v1", a, {"b": 1, "a": [1, 2]}, "openai", "m", "p2", "context"),
        content_key("v1", a, {"b": 1, "a": [1, 2]}, "openai", "m", "p1", "privileged"),
    ]
    assert len({k, *variants}) == len(variants) + 1
    assert content_key("ab", "c") != content_key("a", "bc")


@pytest.mark.parametrize("size", [10, 100_000])  # in the SQLite row and in a value file
def test_planted_pickle_is_never_unpickled(tmp_path, size):
    d = tmp_path / "c"
    marker = tmp_path / "pwned"
    with SafeCache(d) as cache:
        cache.put_json("narratives", "k", {"ok": 1})
    plain = diskcache.Cache(str(d))  # an attacker with write access to the folder, default (pickling) Disk
    plain.set("narratives/k", [_Boom(str(marker)), "x" * size])
    plain.set("narratives/text", "some text entry")  # text mode is refused too
    plain.set("narratives/int", 42)
    plain.set(("pickled", "key"), b"v")  # a pickled *key*
    plain.close()
    with SafeCache(d) as cache:
        assert cache.get_json("narratives", "k") is None
        assert cache.get_json("narratives", "text") is None
        assert cache.get_json("narratives", "int") is None
        assert list(cache.keys("narratives")) == []  # all three unsafe entries were deleted unread
        assert not cache.contains("narratives", "k")  # the unsafe entry was deleted unread
        assert not marker.exists()
        cache.put_json("narratives", "k", {"ok": 2})  # and the cache keeps working
        assert cache.get_json("narratives", "k") == {"ok": 2}
    assert not marker.exists()
    # the planted payload is live: the default diskcache would run it (so this test can fail)
    live = diskcache.Cache(str(tmp_path / "plain"))
    live.set("k", [_Boom(str(tmp_path / "live")), "x" * size])
    live.get("k")
    live.close()
    assert (tmp_path / "live").exists()


def test_truncated_and_altered_entries_are_misses(tmp_path):
    d = tmp_path / "c"
    with SafeCache(d) as cache:
        cache.put_array("a", "big", _expected(1))
        cache.put_array("a", "small", _expected(0))
        files = sorted(d.rglob("*.val"))
        assert len(files) == 1
        data = files[0].read_bytes()
        files[0].write_bytes(data[: len(data) // 2])  # truncated value file
        assert cache.get_array("a", "big") is None
        assert not cache.contains("a", "big")
        blob = bytearray(encode_array(_expected(0)))
        blob[-3] ^= 0xFF  # one flipped bit in the buffer
        cache._cache.set("a/flipped", bytes(blob))
        assert cache.get_array("a", "flipped") is None
        cache._cache.set("a/garbage", b"\x80\x04not an envelope")
        assert cache.get_array("a", "garbage") is None
        assert np.array_equal(cache.get_array("a", "small"), _expected(0))
        cache.put_array("a", "big", _expected(1))
        assert np.array_equal(cache.get_array("a", "big"), _expected(1))
    with pytest.raises(Exception):
        decode_array(b"S2KD\x01A" + b"\0" * 40)


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from core.cache import SafeCache
    def expected(i):
        n = 10 if i % 2 == 0 else 20_000
        return (np.arange(n, dtype=np.float32) + i).reshape(-1, 10)
    cache = SafeCache(sys.argv[1])
    first, last, tag = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    for i in range(first, last):
        cache.put_array("a", str(i), expected(i))
        cache.put_json("j", str(i), {"i": i, "tag": "same"})
        if i == first + 5:
            print("started", flush=True)
    print("done", flush=True)
""")


def _spawn(d: Path, first: int, last: int, tag: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(d), str(first), str(last), tag], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_all_valid(cache: SafeCache) -> int:
    n = 0
    for key in list(cache.keys("a")):
        got = cache.get_array("a", key)
        if got is not None:  # a missing entry is acceptable, a wrong one never
            assert np.array_equal(got, _expected(int(key))), key
            n += 1
    return n


def test_survives_a_writer_killed_mid_write(tmp_path):
    d = tmp_path / "c"
    SafeCache(d).close()
    proc = _spawn(d, 0, 100_000, "kill")
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with SafeCache(d) as cache:
        assert _check_all_valid(cache) >= 6
        cache.put_array("a", "999999", _expected(999999))
        assert np.array_equal(cache.get_array("a", "999999"), _expected(999999))
        assert cache._cache.check(fix=True) is not None  # diskcache's own consistency check runs


def test_concurrent_writers_processes_and_threads(tmp_path):
    d = tmp_path / "c"
    SafeCache(d).close()
    procs = [_spawn(d, 0, 60, "p1"), _spawn(d, 30, 90, "p2")]  # keys 30..59 written by both
    errors: list[BaseException] = []

    def thread_writer(offset: int):
        try:
            with SafeCache(d) as c:
                for i in range(offset, offset + 40):
                    c.put_array("a", str(i), _expected(i))
                    assert c.get_json("j", "missing") is None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_writer, args=(o,)) for o in (50, 70)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert out.strip().endswith("done")
    assert not errors, errors
    with SafeCache(d) as cache:
        assert _check_all_valid(cache) == 110  # keys 0..109, every one valid
        assert all(cache.get_json("j", str(i)) == {"i": i, "tag": "same"} for i in range(90))


def test_handle_travels_as_settings_only(tmp_path):
    import pickle

    with SafeCache(tmp_path / "c") as cache:
        cache.put_json("ns", "k", [1, 2])
        blob = pickle.dumps(cache)  # e.g. a DataLoader worker with the spawn start method
    assert b"[1, 2]" not in blob
    clone = pickle.loads(blob)
    assert clone.get_json("ns", "k") == [1, 2]
    clone.close()
