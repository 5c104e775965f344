"""Fault injection: training killed at random points, full disks, malicious checkpoints, corrupted caches,
hanging and garbage-speaking narrator servers (RELIABILITY.md, "Faults").

Extends tests/test_train.py (one SIGKILL at a fixed step, one SIGTERM), tests/test_cache.py (planted
pickle, truncated value file, killed and concurrent writers) and tests/test_narratives_openai.py (HTTP
500/429/reset/slow/malformed) with what they do not cover.

Bounded in ``make test``; longer: ``S2KD_FAULT_SEEDS=10 S2KD_FUZZ_EXAMPLES=200 pytest tests/test_faults.py``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import checkpoint as ckpt
from core.cli import main
from core.errors import DataError, UserError
from tests.test_train import COMMON, _child, _env, _progress, _wait_for_step, make_bundle, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
SEEDS = int(os.environ.get("S2KD_FAULT_SEEDS", "3") or 3)
N = int(os.environ.get("S2KD_FUZZ_EXAMPLES", "0") or 0)


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _leftover_temp_files(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp" in p.name)


def _check_run_files_consistent(run: Path) -> None:
    """Whatever exists in a run directory after a fault is complete and loadable."""
    if (run / ckpt.STATE_WEIGHTS).exists():
        st_ = ckpt.load_state(run)  # loads, not truncated
        assert st_.progress["global_step"] >= 0
    if (run / ckpt.MODEL_JSON).exists():
        meta = ckpt.load_model_meta(run)
        ckpt.load_model_weights(run, meta)  # sha256 recorded in model.json matches the weights
    if (run / ckpt.METRICS_JSONL).exists():
        ckpt.read_metrics(run)
    if (run / ckpt.CONFIG_TOML).exists():
        import tomllib

        tomllib.loads((run / ckpt.CONFIG_TOML).read_text())


# --------------------------------------------------------------------------------------------------
# SIGKILL at random points, several seeds, then --resume: always completes, same weights, nothing corrupt


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    res = subprocess.run(_child(run, *COMMON), env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


@pytest.mark.parametrize("seed", range(SEEDS))
def test_sigkill_at_random_points_then_resume(tmp_path, reference, seed):
    """Two SIGKILLs at seeded random moments (anywhere, including before the first checkpoint and in the
    middle of a checkpoint write), then ``--resume`` until finished: the result equals the uninterrupted
    run bit for bit, and after every kill the run directory holds only complete, loadable files."""
    rng = np.random.default_rng(1000 + seed)
    run = tmp_path / "run"
    kills = []
    for attempt in range(2):
        resume = (run / ckpt.STATE_WEIGHTS).exists() or attempt > 0
        proc = subprocess.Popen(_child(run, *COMMON, delay=0.02, resume=resume), env=_env(), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = _progress(run)["global_step"] if _progress(run) else 0
        # 20 steps in all (2 epochs × 10); every third seed is first killed before any checkpoint exists
        target = 0 if attempt == 0 and seed % 3 == 0 else int(rng.integers(max(done, 1), 20))
        try:
            if target > 0:
                _wait_for_step(proc, run, target)
            else:  # before any checkpoint: while the process is still starting or in step 1
                time.sleep(float(rng.uniform(0.5, 4.0)))
        except AssertionError:
            proc.wait()
            break  # the child finished first: nothing to kill
        time.sleep(float(rng.uniform(0.0, 0.08)))  # between checkpoints or in the middle of one
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills.append((target, proc.returncode))
        if run.exists():
            _check_run_files_consistent(run)
    for _ in range(3):
        res = subprocess.run(_child(run, *COMMON, resume=True), env=_env(), cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        if _progress(run)["status"] == "finished":
            break
    assert _progress(run)["status"] == "finished", kills
    _check_run_files_consistent(run)
    assert _leftover_temp_files(run) == []
    a, b = _weights(run / ckpt.MODEL_WEIGHTS), _weights(reference / ckpt.MODEL_WEIGHTS)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), kills
    hist = [json.loads(x)["val_mse"] for x in (run / ckpt.METRICS_JSONL).read_text().splitlines()]
    ref = [json.loads(x)["val_mse"] for x in (reference / ckpt.METRICS_JSONL).read_text().splitlines()]
    assert hist == ref
    print(f"[faults] seed {seed}: killed at steps {[k[0] for k in kills]}, resumed to the reference weights")


# --------------------------------------------------------------------------------------------------
# full disk: the k-th fsync fails with ENOSPC (after a partial write); the last good checkpoint survives


def _train_inprocess(run: Path, resume: bool = False):
    import torch

    from core.config import load_config
    from core.train import train

    torch.set_num_threads(1)
    cfg = load_config(None, ["runtime.device=cpu", "distill.method=none", "runtime.progress=false", *COMMON])
    return train(cfg, run, resume=resume, data=make_bundle(), spec=tiny_spec())


@pytest.fixture(scope="module")
def inprocess_reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref-inproc") / "run"
    res = _train_inprocess(run)
    assert res.status == "finished"
    return run


@pytest.mark.parametrize("fail_at", [1, 4, 9, 17, 30])
def test_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, inprocess_reference, fail_at):
    """The ``fail_at``-th fsync of the run (a config, metrics, state or model write) fails with ENOSPC after
    the bytes were written: the write raises, every file already in the run directory is still complete
    (state loads, model.json's sha256 matches the weights), no temporary file is left, and --resume
    with space again ends on the reference weights."""
    import core.io as cio

    run = tmp_path / "run"
    calls = {"n": 0}
    real_fsync = os.fsync

    def full_disk_fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(cio.os, "fsync", full_disk_fsync)
    with pytest.raises(OSError) as info:
        _train_inprocess(run)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(cio.os, "fsync", real_fsync)
    _check_run_files_consistent(run)
    assert _leftover_temp_files(run) == []
    res = _train_inprocess(run, resume=True)
    assert res.status == "finished"
    a, b = _weights(run / ckpt.MODEL_WEIGHTS), _weights(inprocess_reference / ckpt.MODEL_WEIGHTS)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_full_disk_during_safetensors_save(tmp_path, monkeypatch):
    """safetensors' own writer dies half-way with ENOSPC: the previous state file is untouched."""
    import safetensors.torch as stt
    import torch

    run = tmp_path / "run"
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))])
    ckpt.save_state(run, {"w": torch.ones(3)}, opt, {"global_step": 1})
    before = (run / ckpt.STATE_WEIGHTS).read_bytes()
    real = stt.save_file

    def half_then_enospc(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stt, "save_file", half_then_enospc)
    with pytest.raises(OSError):
        ckpt.save_state(run, {"w": torch.zeros(3)}, opt, {"global_step": 2})
    assert (run / ckpt.STATE_WEIGHTS).read_bytes() == before
    assert ckpt.load_state(run).progress["global_step"] == 1
    assert _leftover_temp_files(run) == []


def test_full_disk_is_a_one_line_cli_error(tmp_path, monkeypatch, capsys):
    """``s2kd train`` turns ENOSPC (and other OS write errors) into one line naming the run, exit 2."""
    import core.train.loop as loop

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "state.safetensors"))

    monkeypatch.setattr(loop, "train", enospc)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nroot = 'x'\n")
    status = main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("s2kd: error: "), err
    assert "No space left on device" in err and "--resume" in err


# --------------------------------------------------------------------------------------------------
# malicious checkpoints


class _Boom:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _tiny_run(run: Path) -> None:
    """A real run folder of a registry model (student, tiny) to tamper with."""
    import torch

    import models
    from core.config import load_config

    cfg = load_config(None, ["model.name=student"])
    ccls = models.config_class("student")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(ccls)}
    kw = {"in_shape": (2, 1, 8, 16), "t_out": 2} if {"in_shape", "t_out"} <= fields else {}
    try:
        conf = ccls(**kw)
    except TypeError:
        pytest.skip("student config needs more arguments")
    module = models.build("student", dataclasses.asdict(conf))
    ckpt.save_model(run, module.state_dict(), {"model": {"name": "student", "config": dataclasses.asdict(conf)}})
    assert cfg  # the config machinery is importable alongside
    del torch


def _safetensors_with_header(header: dict | bytes, payload: bytes, declared_len: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if declared_len is None else declared_len
    return struct.pack("<Q", n) + raw + payload


MALICIOUS = {
    "pickle renamed .safetensors": lambda m: pickle.dumps(_Boom(m)),
    "torch.save file": None,  # filled in the test (needs torch)
    "header length 2**63": lambda m: _safetensors_with_header({"w": {"dtype": "F32", "shape": [2], "data_offsets":
                                                                     [0, 8]}}, b"\0" * 8, declared_len=2**63),
    "offsets beyond the file": lambda m: _safetensors_with_header(
        {"w": {"dtype": "F32", "shape": [1 << 20], "data_offsets": [0, 4 << 20]}}, b"\0" * 16),
    "shape lies about size": lambda m: _safetensors_with_header(
        {"w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8),
    "header not JSON": lambda m: _safetensors_with_header(b"\x80\x04\x95cos\nsystem\n", b""),
    "empty file": lambda m: b"",
}


@pytest.mark.parametrize("kind", sorted(MALICIOUS))
def test_malicious_checkpoint_is_rejected_with_a_clear_error(tmp_path, capsys, kind):
    import torch

    from core.forecaster import load_forecaster

    run = tmp_path / "run"
    _tiny_run(run)
    marker = tmp_path / "PWNED"
    if kind == "torch.save file":
        path = tmp_path / "t.pt"
        torch.save({"w": torch.ones(2), "boom": _Boom(str(marker))}, path)
        blob = path.read_bytes()
    else:
        blob = MALICIOUS[kind](str(marker))
    (run / ckpt.MODEL_WEIGHTS).write_bytes(blob)
    meta = ckpt.load_model_meta(run)
    meta.pop("weights_sha256")  # so that only the file format check stands between us and the payload
    (run / ckpt.MODEL_JSON).write_text(json.dumps(meta))
    with pytest.raises(DataError) as info:
        load_forecaster(run, device="cpu")
    msg = str(info.value)
    assert "\n" not in msg and str(run / ckpt.MODEL_WEIGHTS) in msg and "safetensors" in msg, msg
    assert not marker.exists()
    # the same through the command line: one line, exit 2
    status = main(["predict", "--run", str(run), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("s2kd: error: "), err
    assert not marker.exists()
    # and as a resume state
    (run / ckpt.STATE_WEIGHTS).write_bytes(blob)
    with pytest.raises(DataError):
        ckpt.load_state(run)
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_the_code():
    """Static check (AST): no pickle/cloudpickle/joblib/marshal/shelve loads, no yaml.load, no eval/exec,
    no torch.load without weights_only=True, no allow_pickle=True in core/, models/, app/."""
    import ast

    bad = []
    for sub in ("core", "models", "app"):
        for path in (ROOT / sub).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
                kw = {k.arg: k.value for k in node.keywords}
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if isinstance(f, ast.Name) and name in ("eval", "exec"):
                    bad.append(f"{where}: {name}()")
                if owner in ("pickle", "cloudpickle", "joblib", "marshal", "shelve", "dill") and name in (
                        "load", "loads", "open", "Unpickler"):
                    bad.append(f"{where}: {owner}.{name}()")
                if owner == "yaml" and name == "load":
                    bad.append(f"{where}: yaml.load()")
                if owner == "torch" and name == "load":
                    w = kw.get("weights_only")
                    if not (isinstance(w, ast.Constant) and w.value is True):
                        bad.append(f"{where}: torch.load without weights_only=True")
                a = kw.get("allow_pickle")
                if a is not None and not (isinstance(a, ast.Constant) and a.value is False):
                    bad.append(f"{where}: allow_pickle not False")
    assert bad == []


# --------------------------------------------------------------------------------------------------
# caches: random corruption of any file of the cache folder never yields a wrong value or a crash


def _cache_values():
    rng = np.random.default_rng(0)
    return {"j0": {"text": "héllo ✓", "n": [1, 2.5]}, "j1": {"x": None},
            "a0": rng.normal(size=(4, 5)).astype(np.float32), "a1": rng.normal(size=(200, 64)).astype(np.float32)}


@settings(max_examples=N or 40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_cache_corruption_never_returns_a_wrong_value(tmp_path_factory, data):
    from core.cache import SafeCache

    d = tmp_path_factory.mktemp("cache") / "c"
    values = _cache_values()
    with SafeCache(d) as cache:
        for k, v in values.items():
            (cache.put_json if k.startswith("j") else cache.put_array)("ns", k, v)
    files = sorted(p for p in d.rglob("*") if p.is_file())
    # file sizes vary a little between runs (SQLite pages): draw positions as numbers taken modulo the size
    names = sorted(p.name for p in files)
    pick = data.draw(st.sampled_from(["cache.db", "value file"]), label="which")
    vals = [p for p in files if p.suffix == ".val"]
    target = d / "cache.db" if pick == "cache.db" or not vals else vals[0]
    assert "cache.db" in names
    raw = bytearray(target.read_bytes())
    mode = data.draw(st.sampled_from(["truncate", "flip", "zero"]), label="mode")
    if mode == "truncate":
        raw = raw[: data.draw(st.integers(0, 2**31), label="cut") % max(len(raw), 1)]
    elif raw:
        for off in data.draw(st.lists(st.integers(0, 2**31), min_size=1, max_size=16), label="offsets"):
            off %= len(raw)
            raw[off] = (raw[off] ^ 0xA5) if mode == "flip" else 0
    target.write_bytes(bytes(raw))
    try:
        cache = SafeCache(d)
    except DataError as exc:  # a destroyed index: a clear one-line error ("delete the folder")
        assert "\n" not in str(exc)
        return
    with cache:
        for k, v in values.items():
            got = (cache.get_json if k.startswith("j") else cache.get_array)("ns", k)
            if got is None:
                continue
            if k.startswith("j"):
                assert got == v, (k, got)
            else:
                assert got.dtype == v.dtype and np.array_equal(got, v), k
        cache.put_json("ns", "after", {"ok": True})  # still writable (or quietly failing), never a crash
        assert cache.get_json("ns", "after") in ({"ok": True}, None)


# --------------------------------------------------------------------------------------------------
# narrator: raw-socket servers that hang forever or speak garbage


class _RawServer:
    """Accepts TCP connections on 127.0.0.1 and either never answers, or answers ``reply`` bytes and closes."""

    def __init__(self, reply: bytes | None):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.reply is not None:
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                finally:
                    conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


GARBAGE = {
    "hang": None,
    "not http": b"\x00\xffSSH-2.0-OpenSSH\r\n" * 4,
    "http without body": b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{\"choices\"",
    "html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\n\r\n<html>oops</html",
    "huge header": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 200_000 + b"\r\n\r\n",
    "json with wrong types": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n"
                              b'{"choices": [{"message": {"content": 42}}]}  '),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_narrator_against_hanging_and_garbage_servers(tmp_path, monkeypatch, caplog, kind):
    import logging

    from core.cache import SafeCache
    from core.narratives import NARRATIVE_NAMESPACE, narrate_cached
    from core.narratives.openai_backend import OpenAIConfig, OpenAINarrator
    from tests.test_narratives_openai import weather_window

    secret = "sk-test-SECRET-fault-0123456789"
    monkeypatch.setenv("S2KD_OPENAI_API_KEY", secret)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.DEBUG)
    srv = _RawServer(GARBAGE[kind])
    try:
        n = OpenAINarrator(config=OpenAIConfig(base_url=f"http://127.0.0.1:{srv.port}/v1", model="m", timeout_s=0.5,
                                               max_retries=2, backoff_s=0.01, max_backoff_s=0.05, images=False,
                                               total_timeout_s=3.0))
        t0 = time.monotonic()
        with SafeCache(tmp_path / "cache") as cache:
            narrative, hit = narrate_cached(n, weather_window(), cache)
            assert list(cache.keys(NARRATIVE_NAMESPACE)) == []  # nothing bad cached
        elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert elapsed < 5.0, elapsed  # bounded
    p = narrative.provenance
    assert p.fallback and p.backend == "diagnostic" and p.fallback_reason, p
    assert secret not in json.dumps(narrative.to_json()) and secret not in caplog.text
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes()


def test_user_error_type_is_what_cli_prints():
    """Guard: the error classes the fault tests rely on keep their exit status."""
    assert UserError("x").exit_code == 2 and issubclass(DataError, UserError)
