"""Atomic writes: the target is either the old file or the complete new one."""

import json
import os

import pytest

from core.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["a.txt"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_json_is_sorted_and_handles_numpy(tmp_path):
    import numpy as np

    target = tmp_path / "x.json"
    atomic_write_json(target, {"b": np.float32(1.5), "a": np.arange(3)})
    text = target.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [0, 1, 2], "b": 1.5}


def test_json_refuses_unserialisable_without_writing(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"f": object()})
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_written_files_get_umask_permissions(tmp_path):
    from core.io import current_umask

    target = tmp_path / "p.txt"
    atomic_write_text(target, "x")
    assert (target.stat().st_mode & 0o777) == (0o666 & ~current_umask())
