"""``s2kd bench``: the tiny suite end to end (every model, finite numbers, the results files), reuse on a
rerun, retraining of a missing run only, and one-line errors for bad input."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from core.cli import main
from tests.test_evaluate import ensure_tiny_data

MODELS = {
    "weather": ["teacher-vision", "teacher-s2", "student-none", "student-output", "student-feature",
                "student-spectral", "student-s2kd", "student-s2kd-no-sem", "student-s2kd-no-att",
                "student-s2kd-no-spec", "simvp", "convlstm", "persistence", "climatology"],
}
MODELS["taxibj"] = MODELS["weather"][:-1] + ["historical-average"]
TRAINED = [m for m in MODELS["weather"] if m not in ("persistence", "climatology")]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@pytest.fixture(scope="module")
def bench_tiny(tmp_path_factory):
    root = ensure_tiny_data(tmp_path_factory)
    out = tmp_path_factory.mktemp("bench") / "tiny"
    t0 = time.perf_counter()
    assert main(["bench", "--suite", "tiny", "--out", str(out), "--data-root", str(root)]) == 0
    return out, root, time.perf_counter() - t0


@pytest.mark.slow
def test_bench_tiny_writes_every_model_with_finite_numbers(bench_tiny):
    out, _, _ = bench_tiny
    results = json.loads((out / "results.json").read_text())
    assert results["suite"] == "tiny"
    assert set(results["datasets"]) == {"weather", "taxibj"}
    for name, ds in results["datasets"].items():
        models = ds["models"]
        assert ds["model_order"] == MODELS[name] and set(models) == set(MODELS[name])
        t_out = ds["data"]["t_out"]
        for model, e in models.items():
            assert isinstance(e["params"], int) and e["params"] >= 0, model
            assert isinstance(e["flops"], int) and e["flops"] >= 0, model
            assert _finite(e["latency_ms"]["b1"]) and e["latency_ms"]["b1"] > 0, model
            assert _finite(e["latency_ms"]["b32"]) and e["latency_ms"]["b32"] > 0, model
            for metric in ("mse", "mae", "rmse", "high_band_ratio", "lsd"):
                values = e["test"][metric]
                assert len(values) == t_out and all(_finite(v) for v in values), (name, model, metric)
            assert set(e["test_nonstationary"]) == set(e["test"])
            if model in TRAINED:
                assert e["params"] > 0 and e["flops"] > 0
                assert Path(e["run_dir"], "model.safetensors").is_file()
        assert models["teacher-s2"]["privileged"] is False  # context-scope narratives (the default)
        assert models["persistence"]["params"] == 0
        # the student is scored as deployed: without its training-only heads
        assert models["student-s2kd"]["params"] < models["student-s2kd"]["cost"]["params_with_training_heads"]
        assert models["student-none"]["params"] == models["student-s2kd"]["params"]
    weather = results["datasets"]["weather"]["models"]
    assert "acc" in weather["climatology"]["test"] and "ssim" in results["datasets"]["taxibj"]["models"]["simvp"]["test"]
    md = (out / "results.md").read_text()
    for name, models in MODELS.items():
        assert f"## {name}" in md
        for model in models:
            assert f"| {model} |" in md
    # one budget per dataset: every trained model ran the same number of optimiser steps
    for name in ("weather", "taxibj"):
        steps = {m: json.loads((out / "runs" / name / m / "model.json").read_text())["metrics"]["global_step"]
                 for m in TRAINED}
        assert len(set(steps.values())) == 1, steps


@pytest.mark.slow
def test_bench_rerun_reuses_finished_runs_and_retrains_only_what_is_missing(bench_tiny, capsys):
    import shutil

    out, root, first = bench_tiny
    runs = out / "runs"
    stamp = {p: p.stat().st_mtime_ns for p in runs.glob("*/*/model.safetensors")}
    assert len(stamp) == 2 * len(TRAINED)
    before = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["bench", "--suite", "tiny", "--out", str(out), "--data-root", str(root)]) == 0
    rerun = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert ": training (" not in err and "reusing the finished run" in err
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/*/model.safetensors")} == stamp
    after = json.loads((out / "results.json").read_text())
    for name in ("weather", "taxibj"):
        for model in MODELS[name]:
            assert after["datasets"][name]["models"][model]["test"] == before["datasets"][name]["models"][model]["test"]
    assert rerun < first / 2
    # a run that is gone is trained again, alone
    shutil.rmtree(runs / "taxibj" / "student-none")
    assert main(["bench", "--suite", "tiny", "--out", str(out), "--data-root", str(root), "--datasets", "taxibj",
                 "--only", "student-none"]) == 0
    err = capsys.readouterr().err
    assert "student-none: training" in err and err.count(": training (") == 1
    assert (runs / "taxibj" / "student-none" / "model.safetensors").is_file()
    for p, t in stamp.items():
        if "student-none" not in str(p):
            assert p.stat().st_mtime_ns == t


def test_bench_refuses_a_finished_run_trained_with_other_loss_weights(bench_tiny, tmp_path, capsys, monkeypatch):
    """A default of METHOD_WEIGHTS that changed after a run was trained: the run is not reused silently."""
    import shutil

    from core import losses

    out, root, _ = bench_tiny
    copy = tmp_path / "bench"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "runs" / "weather" / "student-spectral" / "model.json").read_text())
    assert meta["training"]["loss_weights"]["spectral"] == losses.METHOD_WEIGHTS["spectral"]["spectral"]
    monkeypatch.setitem(losses.METHOD_WEIGHTS, "spectral", {**losses.METHOD_WEIGHTS["spectral"], "spectral": 0.5})
    capsys.readouterr()
    assert main(["bench", "--suite", "tiny", "--out", str(copy), "--data-root", str(root), "--datasets", "weather",
                 "--only", "student-spectral"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "student-spectral" in err and "spectral 0.1 -> 0.5" in err and "remove the run" in err, err


@pytest.mark.parametrize("argv, words", [
    (["bench", "--suite", "huge", "--out", "X"], "invalid choice"),
    (["bench", "--suite", "paper", "--out", "X"], "--data-root"),
    (["bench", "--suite", "paper", "--out", "X", "--data-root", "/nonexistent/archives"], "not found"),
    (["bench", "--suite", "tiny", "--out", "X", "--only", "student-magic"], "unknown model"),
    (["bench", "--suite", "tiny", "--out", "X", "--datasets", "mnist"], "unknown dataset"),
    (["bench", "--suite", "tiny", "--out", "X", "train.epochs"], "key=value"),
])
def test_bench_bad_input_exits_2(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("s2kd: error:") and words in err and err.count("\n") == 1
    assert not (tmp_path / "X" / "results.json").exists()


def test_bench_paper_needs_the_archive_folders(tmp_path, capsys):
    (tmp_path / "archives").mkdir()
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path / "out"), "--data-root",
                 str(tmp_path / "archives")]) == 2
    assert "no weather archive folder" in capsys.readouterr().err


@pytest.mark.slow
def test_teacher_with_privileged_narratives_is_labelled(bench_tiny, tmp_path):
    import shutil

    from core.bench import write_markdown
    from core.evaluate import evaluate_run

    out, root, _ = bench_tiny
    run = tmp_path / "teacher-s2-privileged"
    shutil.copytree(out / "runs" / "weather" / "teacher-s2", run, ignore=shutil.ignore_patterns("teacher-cache"))
    meta = json.loads((run / "model.json").read_text())
    assert meta["data"]["narratives"]["scope"] == "context"
    meta["data"]["narratives"]["scope"] = "privileged"
    (run / "model.json").write_text(json.dumps(meta))
    res = evaluate_run(run, device="cpu", windows=[0, 1])
    assert res["privileged"] is True and res["n_windows"]["test"] == 2
    context = evaluate_run(out / "runs" / "weather" / "teacher-s2", device="cpu", windows=[0, 1])
    assert context["privileged"] is False
    results = json.loads((out / "results.json").read_text())
    results["datasets"]["weather"]["models"]["teacher-s2"]["privileged"] = True
    assert "| teacher-s2 (privileged) |" in write_markdown(results)


def test_kd_sweep_table_means_over_seeds_and_compares_on_the_same_seeds():
    """scripts/kd_sweep.py's table: mean and min–max per variant; the change against ``none`` uses only the
    seeds both have (hand-computed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kd_sweep", Path(__file__).resolve().parents[1] / "scripts" / "kd_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    rows = [{"variant": "none", "seed": 0, "best_val_mse": 0.10}, {"variant": "none", "seed": 1, "best_val_mse": 0.14},
            {"variant": "output", "seed": 0, "best_val_mse": 0.09}, {"variant": "output", "seed": 1, "best_val_mse": 0.11},
            {"variant": "s2kd (λ_spec=1)", "best_val_mse": 0.12}]  # seed 0 implied
    lines = sweep.table("weather", rows).splitlines()
    assert lines[2] == "| none | 0,1 | 0.12 | 0.1–0.14 | – |"
    assert lines[3] == "| output | 0,1 | 0.1 | 0.09–0.11 | -16.7% |"   # (0.09+0.11)/(0.10+0.14) - 1
    assert lines[4] == "| s2kd (λ_spec=1) | 0 | 0.12 | – | +20.0% |"   # against none's seed 0 only
    assert sweep._slug("s2kd (λ_spec=0.01)") == "s2kd-spec-0-01"
