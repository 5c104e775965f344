"""Honesty checks of the shipped demo runs (``assets/``, built by ``s2kd assets build``, see core/assets.py).

1. Every file of ``assets/MANIFEST.json`` is there with its recorded sha256 and size, nothing unlisted lies
   in ``assets/runs``, and every shipped checkpoint loads with :func:`core.forecaster.load_forecaster`.
2. Every shipped run, evaluated again on regenerated demo data, reproduces its recorded scores: the
   *check windows* (``scores-check.json``: every ``check_stride``-th window of the test split, a dozen per
   setting, so the test takes seconds) are rescored with the same API the build used
   (:func:`core.assets.score_run` → :func:`core.evaluate.evaluate_run`) and compared per subset, metric and
   lead within a small float tolerance.  The data comes from ``data/demo`` (or the build's work copy) when
   its files match the sha256 recorded in the manifest, else from ``s2kd data prepare`` (seed 0) into a
   temporary folder (about two minutes on 2 CPU cores).  The simulators are deterministic on one machine,
   but the weather simulator's float results depend on the CPU (most likely numpy's run-time choice of SIMD
   kernels): on a CPU unlike the build's the regenerated weather files differ slightly, and the
   scores drift by up to about 1 % (measured: AMD EPYC vs the build machine).  So the scores must agree to
   ``rtol=1e-4`` when the files are byte-identical to the manifest's, and to ``CROSS_CPU_RTOL`` otherwise —
   still far tighter than any difference between models.  The text teacher's narratives are written afresh
   into an empty cache.
3. (browser) A fresh clone of the committed repository: ``python -m core data prepare`` there, the app
   started headless, and the Forecasts page shows the shipped teacher, students and a baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from core import assets

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("S2KD_TEST_ASSETS") or ROOT / "assets")
MAX_BYTES = 30 * 1024 * 1024
#: Score tolerance when regenerated data are not byte-identical to the build's (another CPU kind, see above).
CROSS_CPU_RTOL, CROSS_CPU_ATOL = 0.05, 1e-3


def _manifest_or_none() -> dict | None:
    try:
        return assets.read_manifest(ASSETS)
    except Exception:  # noqa: BLE001 - reported by test_manifest_present
        return None


MANIFEST = _manifest_or_none()
RUN_SETS = sorted((MANIFEST or {}).get("run_sets", {}).items())
SHIPPED = [(rs, model) for rs, info in RUN_SETS for model in info.get("models", [])]


@pytest.fixture(scope="module")
def manifest() -> dict:
    if MANIFEST is None:
        pytest.fail(f"no valid {ASSETS / assets.MANIFEST_NAME}: build the assets with `s2kd assets build`")
    return MANIFEST


# --------------------------------------------------------------------------------------------------
# 1. files, hashes, checkpoints


def test_manifest_present_and_complete(manifest):
    assert manifest["format"] == assets.FORMAT
    assert set(manifest["run_sets"]) == {"weather-demo", "taxibj-demo"}
    paths = {f["path"] for f in manifest["files"]}
    for rs, info in manifest["run_sets"].items():
        assert {"teacher-s2", "teacher-vision", "student-s2kd", "student-spectral", "student-none",
                "persistence"} <= set(info["models"]), rs
        assert ("climatology" if rs.startswith("weather") else "historical-average") in info["models"]
        for model in info["models"]:
            for name in (*assets.RUN_FILES, "scores.json", "scores-check.json"):
                assert f"runs/{rs}/{model}/{name}" in paths
        assert f"runs/{rs}/teacher-s2/attention.safetensors" in paths
        assert rs in manifest["datasets"] and manifest["datasets"][rs]["files"]
    for f in manifest["files"]:
        assert f["what"] and f["command"], f["path"]
        assert len(f["sha256"]) == 64 and f["size"] > 0
    assert manifest["total_bytes"] == sum(f["size"] for f in manifest["files"])
    assert manifest["total_bytes"] < MAX_BYTES


def test_every_file_matches_its_manifest_hash(manifest):
    assert assets.verify(ASSETS) == []


def test_verify_notices_a_changed_file(manifest, tmp_path):
    copy = tmp_path / "assets"
    shutil.copytree(ASSETS, copy, ignore=shutil.ignore_patterns("naturalearth"))
    assert assets.verify(copy) == []
    target = copy / next(f["path"] for f in manifest["files"] if f["path"].endswith("scores.json"))
    target.write_bytes(target.read_bytes().replace(b"0", b"1", 1))
    (copy / "runs" / "stray.txt").write_text("x")
    problems = assets.verify(copy)
    assert any("sha256 differs" in p for p in problems)
    assert any("stray.txt: not in the manifest" in p for p in problems)


@pytest.mark.parametrize("run_set,model", SHIPPED)
def test_shipped_checkpoint_loads(manifest, run_set, model):
    from core import checkpoint as ckpt
    from core.forecaster import load_forecaster

    run_dir = ASSETS / "runs" / run_set / model
    meta = ckpt.load_model_meta(run_dir)
    fc = load_forecaster(run_dir, device="cpu")
    entry = next(f for f in manifest["files"] if f["path"] == f"runs/{run_set}/{model}/model.safetensors")
    assert entry["sha256"] == ckpt.file_sha256(run_dir / "model.safetensors")
    if meta.get("weights_sha256"):
        assert meta["weights_sha256"] == entry["sha256"]
    if model.startswith("student-"):
        assert meta["model"]["name"] == "student"
        assert (meta.get("training") or {}).get("method") == model[len("student-"):]
        if model != "student-none":
            assert str((meta.get("training") or {}).get("teacher", "")).endswith("teacher-s2")
    else:
        assert meta["model"]["name"] == model
    assert fc.t_in == int(meta["data"]["t_in"]) and fc.t_out == int(meta["data"]["t_out"])
    assert meta["data"]["root"] == manifest["datasets"][run_set]["folder"]
    assert (meta.get("metrics") or {}).get("status") in ("finished", "early-stopped")


def test_data_fingerprint_sees_every_file_but_the_caches(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.nc").write_bytes(b"abc")
    (tmp_path / "s2kd_dataset.json").write_text("{}")
    (tmp_path / ".s2kd-cache").mkdir()
    (tmp_path / ".s2kd-cache" / "n.db").write_bytes(b"cache")
    fp = assets.data_fingerprint(tmp_path)
    assert set(fp) == {"a/x.nc", "s2kd_dataset.json"}
    assert fp["a/x.nc"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert assets.data_matches(tmp_path, fp)
    (tmp_path / "a" / "x.nc").write_bytes(b"abd")
    assert not assets.data_matches(tmp_path, fp)
    assert not assets.data_matches(tmp_path / "missing", fp)


def test_scores_close_compares_every_subset_metric_and_lead():
    rec = {"n_windows": {"test": 3}, "test": {"mse": [1.0, 2.0], "acc": [None, 0.5]},
           "test_nonstationary": {"mse": [4.0, 5.0]}}
    same = json.loads(json.dumps(rec))
    same["test"]["mse"][1] = 2.0 * (1 + 1e-7)
    assert assets.scores_close(rec, same) == []
    off = json.loads(json.dumps(rec))
    off["test_nonstationary"]["mse"][1] = 5.01
    assert assets.scores_close(rec, off) == ["test_nonstationary/mse/1: recorded 5.0, recomputed 5.01"]
    gone = json.loads(json.dumps(rec))
    del gone["test"]["acc"]
    assert any("different score keys" in p for p in assets.scores_close(rec, gone))
    fewer = dict(rec, n_windows={"test": 2})
    assert any("window counts differ" in p for p in assets.scores_close(rec, fewer))


# --------------------------------------------------------------------------------------------------
# 2. the recorded scores are real


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict:
    """``{run set: (dataset folder, whether its files are byte-identical to the build's)}``."""
    if MANIFEST is None:
        pytest.fail("no asset manifest")
    from core.synth.commands import prepare

    out = {}
    tmp = None
    for rs, info in MANIFEST["datasets"].items():
        # the app's data/demo, or the build's own copy, when their files are exactly the recorded ones
        local = next((c for c in (ROOT / info["folder"], assets.DEFAULT_WORK / info["folder"])
                      if assets.data_matches(c, info["files"])), None)
        if local is not None:
            out[rs] = (local, True)
            continue
        tmp = tmp or tmp_path_factory.mktemp("demo-data")
        prepare(info["preset"], (info["kind"],), seed=int(info["seed"]), root=tmp)
        folder = tmp / info["preset"] / info["kind"]
        fresh = assets.data_fingerprint(folder)
        assert sorted(fresh) == sorted(info["files"]), (
            f"regenerated {info['kind']} demo data has other files than the build's: rebuild the assets (`make assets`)")
        out[rs] = (folder, fresh == dict(info["files"]))
    return out


_TEST_DATA: dict = {}


def _check_windows(run_set: str, root: Path):
    """The check windows of ``run_set`` (cut once per session, shared by its runs)."""
    from core import checkpoint as ckpt

    if run_set not in _TEST_DATA:
        stride = MANIFEST["run_sets"][run_set]["check_windows"]["stride"]
        desc = ckpt.load_model_meta(ASSETS / "runs" / run_set / "teacher-s2")["data"]
        _TEST_DATA[run_set] = (assets.test_windows(root, desc, stride), stride)
    return _TEST_DATA[run_set]


@pytest.fixture(scope="session")
def fresh_narrative_cache(tmp_path_factory) -> Path:
    """An empty narrative cache: the text teacher's narratives are written again by the current narrator,
    never read from a cache filled by an earlier narrator (e.g. in ``data/demo``)."""
    return tmp_path_factory.mktemp("narratives")


@pytest.mark.parametrize("run_set,model", SHIPPED)
def test_recorded_scores_reproduce(demo_data, fresh_narrative_cache, run_set, model):
    run_dir = ASSETS / "runs" / run_set / model
    recorded = json.loads((run_dir / "scores-check.json").read_text())
    folder, identical = demo_data[run_set]
    data, stride = _check_windows(run_set, folder)
    assert recorded["windows"]["stride"] == stride and recorded["windows"]["count"] == len(data)
    fresh = assets.score_run(run_dir, folder, stride, data=data, run_name=model,
                             narrative_cache=fresh_narrative_cache / run_set)
    tol = {} if identical else {"rtol": CROSS_CPU_RTOL, "atol": CROSS_CPU_ATOL}
    problems = assets.scores_close(recorded, fresh, **tol)
    assert not problems, f"{run_set}/{model}: " + "; ".join(problems[:5])
    # the scores are not degenerate: the error of every lead is a positive finite number
    errors = recorded["test"].get("mse") or recorded["test"]["rmse"]
    assert len(errors) == int(fresh["dataset"]["t_out"]) and all(v is not None and v > 0 for v in errors)


def test_results_json_collects_the_recorded_scores(manifest):
    for rs, info in manifest["run_sets"].items():
        results = json.loads((ASSETS / "runs" / rs / "results.json").read_text())
        models = results["datasets"][rs]["models"]
        assert set(models) == set(info["models"])
        for model, entry in models.items():
            scores = json.loads((ASSETS / "runs" / rs / model / "scores.json").read_text())
            assert entry["test"] == scores["test"]
            assert entry["n_windows"] == scores["n_windows"]


def test_attention_maps_are_real_maps(manifest):
    from safetensors.numpy import load_file

    import numpy as np

    for rs in manifest["run_sets"]:
        folder = ASSETS / "runs" / rs / "teacher-s2"
        arrays = load_file(str(folder / "attention.safetensors"))
        info = json.loads((folder / "attention.json").read_text())
        att = arrays["attention"]
        n = len(info["windows"])
        assert att.shape[0] == n == arrays["absorbed"].shape[0] == arrays["t0_ns"].shape[0]
        assert np.isfinite(att).all() and np.isfinite(arrays["absorbed"]).all()
        assert all(w["narrative"] for w in info["windows"])
        # maps differ between windows (they depend on the narrative and the frames)
        assert float(att.reshape(n, -1).std(axis=0).max()) > 0
        tok = arrays["token_attention"]
        assert tok.shape[0] == len(info["tokens"]) > 0 and tok.shape[2:] == att.shape[1:]


# --------------------------------------------------------------------------------------------------
# 3. a fresh clone shows the shipped models


_PANEL_NAMES = """() => {
  const names = [];
  for (const p of document.querySelectorAll('.js-plotly-plot')) {
    for (const d of (p.data || [])) if (d.name) names.push(String(d.name));
    for (const a of ((p.layout && p.layout.annotations) || [])) if (a.text) names.push(String(a.text));
  }
  return names;
}"""

from tests.test_browser import _CHARTS_DRAWN, CHROMIUM, CHROMIUM_ARGS, _free_port, _stop  # noqa: E402  (one definition)


@pytest.mark.browser
def test_fresh_clone_shows_the_shipped_models(tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("S2KD_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing but S2KD_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    clone = tmp_path / "clone"
    source = os.environ.get("S2KD_CLONE_SOURCE") or str(ROOT)  # another repository to clone (checks of this test)
    subprocess.run(["git", "clone", "--quiet", source, str(clone)], check=True, timeout=120)
    missing = [p for p in ("assets/MANIFEST.json", "app/main.py", "core/assets.py") if not (clone / p).is_file()]
    if missing:
        pytest.skip(f"the committed HEAD lacks {', '.join(missing)} (not committed yet)")
    manifest = assets.read_manifest(clone / "assets")
    env = {k: v for k, v in os.environ.items() if k != "S2KD_RUN_ROOTS"}
    env.update(PYTHONPATH=str(clone), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               S2KD_DASHBOARD_CACHE=str(tmp_path / "dash-cache"))
    # the clone's own code, not the working tree's
    where = subprocess.run([sys.executable, "-c", "import core; print(core.__file__)"], cwd=clone, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(clone.resolve()), where
    # `make app`'s data step: the demo data, seeded -- the very data the shipped runs were trained on
    subprocess.run([sys.executable, "-m", "core", "data", "prepare"], cwd=clone, env=env, check=True, timeout=400)
    for rs, info in manifest["datasets"].items():
        # the same files (byte-identical only on a CPU of the build's kind, see the module docstring)
        assert sorted(assets.data_fingerprint(clone / info["folder"])) == sorted(info["files"]), rs

    port = _free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        t_end = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < t_end, "streamlit did not become healthy"
            time.sleep(0.3)
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                for rs, info in sorted(manifest["run_sets"].items()):
                    query = urllib.parse.urlencode({"runs": f"assets/runs/{rs}"})
                    page.goto(f"http://127.0.0.1:{port}/forecasts?{query}")
                    page.wait_for_function(_CHARTS_DRAWN, arg=2, timeout=180_000)
                    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {rs}"
                    names = " | ".join(page.evaluate(_PANEL_NAMES))
                    shown = [m for m in info["models"] if m in names]
                    for model in ("teacher-s2", "student-s2kd", "student-none"):
                        assert model in shown, f"{rs}: {model} not on the Forecasts page ({names[:300]})"
                    assert any(m in shown for m in ("persistence", "climatology", "historical-average")), names[:300]
                    page.screenshot(path=str(tmp_path / f"forecasts-{rs}.png"), full_page=True)
                assert not errors, errors[:3]
            finally:
                browser.close()
    finally:
        _stop(proc)
        log.close()
