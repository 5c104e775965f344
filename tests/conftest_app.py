"""Shared fixtures of the dashboard tests: tiny data from the simulators and tiny runs from the trainer.

``tiny_app_env`` (session scope) writes, under one temporary folder:

* ``data/tiny/{weather,taxibj}`` — ``core.synth.commands.synthesize(kind, "tiny", 0, ...)``;
* ``runs/weather-tiny/{teacher-s2,student-s2kd,student-none}`` and ``runs/taxibj-tiny/{teacher-s2,student-none}``
  — real trainer runs (``core.train.train``): one epoch on a handful of windows, CPU.  ``student-s2kd``
  is distilled from the teacher with the S²-KD loss; ``student-none`` trains alone;
* ``runs/weather-tiny/results.json`` — a small hand-written ``s2kd bench`` result for the weather run
  set (values chosen so that tests can recognise them), so both score sources are exercised.

Import the fixture in a test module with ``from tests.conftest_app import tiny_app_env  # noqa: F401``.
Everything is built once per test session (about 30–40 s on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Distinctive numbers in the fixture's results.json (RMSE per lead = 1000 + lead for student-none ...).
RESULTS_BASE = {"teacher-s2": 900.0, "student-s2kd": 950.0, "student-none": 1000.0, "persistence": 1500.0}


def _train(root: Path, run_dir: Path, model: str, method: str = "none", teacher: Path | None = None,
           windows: int = 4) -> None:
    from core.config import config_from_dict
    from core.train import train

    table = {"data": {"root": str(root), "max_train_windows": windows, "max_val_windows": 2},
             "model": {"name": model, "size": "tiny"},
             "train": {"epochs": 1, "batch_size": 4},
             "runtime": {"device": "cpu", "progress": False},
             "distill": {"method": method}}
    if teacher is not None:
        table["distill"]["teacher"] = str(teacher)
    train(config_from_dict(table), run_dir, log=lambda *_: None)


def _results(t_out: int) -> dict:
    models = {}
    for name, base in RESULTS_BASE.items():
        models[name] = {
            "params": int(base) * 10, "flops": int(base) * 1000, "latency_ms": {"b1": base / 100, "b32": base / 10},
            "test": {"rmse": [base + k + 1 for k in range(t_out)], "wrmse": [base + k + 1 for k in range(t_out)]},
            "test_nonstationary": {"rmse": [2 * base + k + 1 for k in range(t_out)],
                                   "wrmse": [2 * base + k + 1 for k in range(t_out)]},
        }
    return {"datasets": {"weather-tiny": {"models": models}}}


def build_tiny_app_env(base: Path) -> dict:
    """Make the tiny data and runs under ``base`` (see the module docstring); returns the paths."""
    from core.synth.commands import synthesize

    base = Path(base)
    data = base / "data" / "tiny"
    runs = base / "runs"
    for kind in ("weather", "taxibj"):
        if not (data / kind / "s2kd_dataset.json").is_file():
            synthesize(kind, "tiny", 0, data / kind, overwrite=True)
    w = runs / "weather-tiny"
    if not (w / "teacher-s2" / "model.json").is_file():
        _train(data / "weather", w / "teacher-s2", "teacher-s2")
    if not (w / "student-none" / "model.json").is_file():
        _train(data / "weather", w / "student-none", "student")
    if not (w / "student-s2kd" / "model.json").is_file():
        _train(data / "weather", w / "student-s2kd", "student", method="s2kd", teacher=w / "teacher-s2")
    t = runs / "taxibj-tiny"
    if not (t / "teacher-s2" / "model.json").is_file():
        _train(data / "taxibj", t / "teacher-s2", "teacher-s2")
    if not (t / "student-none" / "model.json").is_file():
        _train(data / "taxibj", t / "student-none", "student")
    t_out = json.loads((w / "teacher-s2" / "model.json").read_text())["data"]["t_out"]
    (w / "results.json").write_text(json.dumps(_results(int(t_out))))
    return {"base": base, "data": data, "runs": runs, "weather": w, "taxibj": t}


@pytest.fixture(scope="session")
def tiny_app_env(tmp_path_factory):
    """Tiny data + runs for the dashboard tests (built once per session; see the module docstring)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    cached = os.environ.get("S2KD_TEST_APP_ENV")  # a prepared folder, to iterate quickly by hand
    base = Path(cached) if cached else tmp_path_factory.mktemp("s2kd-app")
    return build_tiny_app_env(base)
