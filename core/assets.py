"""The shipped demo runs: ``s2kd assets build`` regenerates every file under ``assets/runs`` from scratch.

    s2kd assets build                       # both settings, into assets/ (work files in build/assets-work)
    s2kd assets build --only taxibj         # one setting
    s2kd assets verify                      # every file of assets/MANIFEST.json against its sha256

For each setting of :data:`SETTINGS` (the weather setting, 12 → 12 hourly frames, and the TaxiBJ setting,
4 → 4 half-hour frames), with the project's own commands, in the build's work folder (``--work``):

1. **data**: ``s2kd data prepare`` (:func:`core.synth.commands.prepare`, seed 0) writes
   ``data/demo/{weather,taxibj}`` — the very data ``make app`` prepares on a fresh clone.  The sha256 of
   every file is recorded in the manifest (``datasets``), so a test can tell whether a local ``data/demo``
   is the data the runs were trained on.
2. **narratives**: every training/validation window the teacher sees and every test window scored is
   narrated (diagnostic narrator, ``context`` scope) and embedded with the frozen MiniLM encoder, into the
   dataset's narrative cache (``core.cache.SafeCache``; the trainer and the evaluator read the same cache).
3. **train**: ``s2kd train --config configs/<setting>/demo.toml --out runs/<set>/<model> ...`` for
   ``teacher-s2``, ``teacher-vision``, then ``student-s2kd``, ``student-spectral`` (distilled from
   ``teacher-s2``; its outputs are computed once into the trainer's teacher-output cache) and
   ``student-none``, each with the demo budget of the setting (:attr:`Setting.budget`).
4. **evaluate**: :func:`core.evaluate.evaluate_run` on the demo test windows (the test split cut with a
   window stride, :attr:`Setting.eval_stride`) → ``scores.json``, and on the *check* windows (a larger
   stride, :attr:`Setting.check_stride`: a dozen windows spread over the test split) → ``scores-check.json``,
   which ``tests/test_assets.py`` recomputes from regenerated data in seconds.  The simple baselines
   (``persistence``, and ``climatology`` / ``historical-average``) are fitted on the training split
   (:mod:`core.baselines`) and scored the same way.
5. **attention**: the teacher's text-grounded attention maps (whole narrative: every demo test window;
   per token: the check windows) and the absorbed map of ``student-s2kd`` → ``attention.safetensors`` +
   ``attention.json`` beside the run (safetensors and JSON only, never pickle).
6. **ship**: ``model.safetensors``, ``model.json``, ``config.toml``, ``metrics.jsonl``, the scores and the
   attention files are copied to ``<out>/runs/<set>/<model>/`` (no optimiser state, no caches), and
   ``<out>/MANIFEST.json`` is written atomically: each file with what it is, the command and config that
   made it, its sha256 and size.

Measured (first full build, 1 December 2026, on the shared 2-core development machine with other jobs
running, one torch thread per process): about 26 minutes wall time (weather ~19.5 min, TaxiBJ ~6 min);
15.7 MB shipped in 90 files.

Resumable: every stage records a key (its command, config hash and inputs) in ``<work>/state.json``; a
rerun reuses a finished stage whose key is unchanged, resumes an interrupted training run (``--resume``)
and redoes the rest.  Each stage prints a progress line to stderr with its time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from core.errors import DataError, UserError

__all__ = ["SETTINGS", "MODELS", "Setting", "ModelPlan", "REPO", "DEFAULT_OUT", "DEFAULT_WORK", "MANIFEST_NAME",
           "build", "verify", "read_manifest", "data_fingerprint", "data_matches", "test_windows", "score_run",
           "scores_close"]

#: The repository root (configs/ and the default folders are found from here).
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "assets"
DEFAULT_WORK = REPO / "build" / "assets-work"
MANIFEST_NAME = "MANIFEST.json"
FORMAT = "s2kd-assets/1"
STATE_NAME = "state.json"

#: The files of a run directory that are shipped (never the optimiser state or the caches).
RUN_FILES = ("model.safetensors", "model.json", "config.toml", "metrics.jsonl")


@dataclass(frozen=True)
class ModelPlan:
    """One shipped model: its run-set name, the registry model, the distillation method."""

    name: str
    model: str
    method: str

    @property
    def distilled(self) -> bool:
        return self.method != "none"


#: λ_spec of the shipped demo students that use the spectral term: they were trained when the default in
#: ``core.losses.METHOD_WEIGHTS`` was 1.0 (the bench's validation sweep later chose 0.1); kept explicit so
#: that ``make assets`` rebuilds the runs that are shipped.
DEMO_SPECTRAL_WEIGHT = 1.0
DEMO_SPECTRAL_METHODS = ("spectral", "s2kd")

#: The trained models of every setting, in training order (students after the teacher they distil from).
MODELS: tuple[ModelPlan, ...] = (
    ModelPlan("teacher-s2", "teacher-s2", "none"),
    ModelPlan("teacher-vision", "teacher-vision", "none"),
    ModelPlan("student-s2kd", "student", "s2kd"),
    ModelPlan("student-spectral", "student", "spectral"),
    ModelPlan("student-none", "student", "none"),
)


@dataclass(frozen=True)
class Setting:
    """One shipped run set.

    ``budget``: dotted config overrides applied to every trained model of the setting (the demo budget);
    ``eval_stride``: the stride of the demo test windows scored into ``scores.json``; ``check_stride``: the
    stride of the few check windows scored into ``scores-check.json`` (the honesty test recomputes them);
    ``token_maps``: how many check windows keep per-token attention maps.
    """

    key: str
    kind: str
    setting: str
    baselines: tuple[str, ...]
    budget: Mapping[str, Any]
    eval_stride: int
    check_stride: int
    preset: str = "demo"
    seed: int = 0

    @property
    def run_set(self) -> str:
        return f"{self.kind}-{self.preset}"

    @property
    def config(self) -> str:
        """The config preset, relative to the repository (and to the work folder, where it is copied)."""
        return f"configs/{self.setting}/{self.preset}.toml"

    @property
    def data_dir(self) -> str:
        """The dataset folder, relative to the work folder (and to the repository for ``make app``)."""
        return f"data/{self.preset}/{self.kind}"

    @property
    def plans(self) -> tuple[ModelPlan, ...]:
        """The trained models, then the simple baselines (fitted by ``s2kd train model.name=<baseline>``)."""
        return MODELS + tuple(ModelPlan(b, b, "none") for b in self.baselines)


# The demo budgets.  Chosen so that the whole build (both settings, data included) takes well under an
# hour on 2 CPU cores (one torch thread per process): every trained model of a setting sees the same
# training windows (weather: all 361 at the config's stride of 6 h; TaxiBJ: 768 evenly spaced of the
# windows at stride 1 h) for the same 12 epochs; validation (model selection) uses a fixed, evenly spaced
# subset of the validation windows.  ``eval_stride`` is the config's window stride.
SETTINGS: dict[str, Setting] = {
    "weather": Setting(
        "weather", "weather", "weather", ("persistence", "climatology"),
        {"train.epochs": 12, "train.batch_size": 16, "data.max_train_windows": 0, "data.max_val_windows": 48,
         "train.patience": 0},
        eval_stride=6, check_stride=120),
    "taxibj": Setting(
        "taxibj", "taxibj", "taxibj", ("persistence", "historical-average"),
        {"train.epochs": 12, "train.batch_size": 16, "data.max_train_windows": 768, "data.max_val_windows": 64,
         "train.patience": 0},
        eval_stride=2, check_stride=56),
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


#: Source files whose change makes recorded scores and attention maps stale (they are recomputed).
SCORING_CODE = ("core/evaluate.py", "core/metrics.py", "core/spectral.py", "core/baselines.py", "core/forecaster.py",
                "core/semantics.py", "core/narratives", "core/data", "models")


#: The narrator and the text encoder: narratives are cached by the content of the window (and the narrator's
#: prompt version), not by this code, so the build empties its narrative cache when this code changes.
NARRATIVE_CODE = ("core/narratives", "core/semantics.py")


def code_hash(paths: Iterable[str] = SCORING_CODE) -> str:
    """sha256 over the Python sources of ``paths`` (files or folders, relative to the repository)."""
    h = hashlib.sha256()
    for rel in paths:
        p = REPO / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            h.update(f.relative_to(REPO).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


# --------------------------------------------------------------------------------------------------
# data


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()``): the weather simulator's output
    was byte-identical only on a CPU of the same kind (measured; most likely numpy's run-time SIMD choice)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def data_fingerprint(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a dataset folder (hidden caches left out)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        out[rel.as_posix()] = _sha256(path)
    return out


def data_matches(folder: str | os.PathLike, fingerprint: Mapping[str, str]) -> bool:
    """Whether ``folder`` holds exactly the files of ``fingerprint`` with the same content."""
    folder = Path(folder)
    if not folder.is_dir() or not fingerprint:
        return False
    try:
        return data_fingerprint(folder) == dict(fingerprint)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# scoring (shared by the build and the honesty test, so both compute exactly the same thing)


def test_windows(data_root: str | os.PathLike, description: Mapping[str, Any], stride: int):
    """The test windows of ``data_root`` cut like the run described by ``description`` (its ``data`` in
    ``model.json``), every ``stride``-th window start (:func:`core.evaluate.load_test_data`)."""
    from core.evaluate import load_test_data

    return load_test_data(data_root, source=description.get("source"), channels=description.get("channels"),
                          t_in=description.get("t_in"), t_out=description.get("t_out"),
                          step=int(description.get("step", 1) or 1), stride=int(stride))


def _portable(result: dict[str, Any], run_name: str | None, data_dir: str, stride: int) -> dict[str, Any]:
    """Replace machine paths in an evaluation result by the portable names of the shipped files."""
    result = dict(result)
    if run_name is not None:
        result["run"] = run_name
    ds = dict(result.get("dataset") or {})
    ds["root"] = data_dir
    ds["stride"] = int(stride)
    result["dataset"] = ds
    result.pop("seconds", None)
    return result


def narratives_for(description: Mapping[str, Any], data, cache_dir: str | os.PathLike):
    """``narratives(indices) -> texts`` of the test windows of ``data`` for a text teacher, with the narrator
    (backend, scope) recorded in its data ``description``, through the narrative cache in ``cache_dir``."""
    import numpy as np

    from core.cache import SafeCache
    from core.narratives import build_narrator, narrate_cached
    from core.narratives.commands import dataset_context, window_input

    settings = dict(description.get("narratives") or {})
    narrator = build_narrator(str(settings.get("backend") or "diagnostic"),
                              scope=str(settings.get("scope") or "context"))
    events, clim = dataset_context(data.root, data.splits[data.split], data.splits.get("train"))
    memo: dict[int, str] = {}

    def narratives(indices) -> list[str]:
        missing = [int(i) for i in np.asarray(indices).reshape(-1) if int(i) not in memo]
        if missing:
            with SafeCache(cache_dir) as cache:
                for i in missing:
                    memo[i] = narrate_cached(narrator, window_input(data.dataset, i, events, clim, data.source),
                                             cache)[0].text
        return [memo[int(i)] for i in np.asarray(indices).reshape(-1)]

    return narratives


def score_run(run_dir: str | os.PathLike, data_root: str | os.PathLike, stride: int, *, data=None,
              batch_size: int = 16, run_name: str | None = None, data_dir: str | None = None,
              narrative_cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`core.evaluate.evaluate_run` of a run on every ``stride``-th test window of ``data_root``.

    A text teacher reads its narratives through ``narrative_cache`` (default: the dataset's own narrative
    cache, ``<data_root>/.s2kd-cache/narratives``)."""
    from core import checkpoint as ckpt
    from core.evaluate import evaluate_run
    from core.narratives.commands import default_cache_dir

    meta = ckpt.load_model_meta(run_dir)
    desc = dict(meta.get("data") or {})
    if data is None:
        data = test_windows(data_root, desc, stride)
    narratives = None
    if bool(((meta.get("model") or {}).get("config") or {}).get("use_text")):  # a text teacher
        narratives = narratives_for(desc, data, narrative_cache or default_cache_dir(data.root))
    result = evaluate_run(run_dir, data=data, batch_size=batch_size, device="cpu", narratives=narratives)
    return _portable(result, run_name, data_dir or str(desc.get("root") or data_root), stride)


def _flat_scores(result: Mapping[str, Any]) -> dict[str, float | None]:
    out = {}
    for subset in ("test", "test_nonstationary", "test_normal"):
        for metric, values in (result.get(subset) or {}).items():
            for i, v in enumerate(values or []):
                out[f"{subset}/{metric}/{i}"] = v
    return out


def scores_close(recorded: Mapping[str, Any], fresh: Mapping[str, Any], rtol: float = 1e-4,
                 atol: float = 1e-6) -> list[str]:
    """Differences between two evaluation results (per subset, metric and lead); empty when they agree."""
    import math

    a, b = _flat_scores(recorded), _flat_scores(fresh)
    problems = []
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))
        problems.append(f"different score keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if recorded.get("n_windows") != fresh.get("n_windows"):
        problems.append(f"window counts differ: {recorded.get('n_windows')} vs {fresh.get('n_windows')}")
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x is None or y is None:
            if x is not y:
                problems.append(f"{key}: {x} vs {y}")
            continue
        if not math.isclose(float(x), float(y), rel_tol=rtol, abs_tol=atol):
            problems.append(f"{key}: recorded {x!r}, recomputed {y!r}")
    return problems


# --------------------------------------------------------------------------------------------------
# attention maps


def attention_maps(teacher_dir: Path, student_dir: Path | None, data, indices: Sequence[int],
                   token_indices: Sequence[int], cache_dir: Path) -> tuple[dict, dict]:
    """The teacher's text-grounded maps (and the student's absorbed maps) on the test windows ``indices``.

    Returns ``(arrays, info)``: arrays ``window`` (N,) int64 test-window starts (stride-1 index),
    ``attention`` (N, h, w) float32 (teacher, whole narrative), ``absorbed`` (N, h, w) (student) when a
    student is given, ``token_attention`` (K, L, h, w) float32 + ``token_mask`` (K, L) for the first
    windows of ``token_indices``; info: the narratives, their tokens, the provenance and the times.
    """
    import numpy as np
    import torch

    from core.forecaster import load_forecaster

    teacher = load_forecaster(teacher_dir, device="cpu")
    narratives = narratives_for(teacher.description, data, cache_dir)
    privileged = (teacher.description.get("narratives") or {}).get("scope") == "privileged"
    idx = np.asarray(list(indices), dtype=np.int64)
    texts = list(narratives(idx))
    norm = teacher.normalizer
    maps, tok_maps, tok_masks, tokens = [], [], [], {}
    student = load_forecaster(student_dir, device="cpu") if student_dir is not None else None
    absorbed = []
    token_set = [int(i) for i in token_indices]
    for start in range(0, len(idx), 16):
        part = idx[start: start + 16]
        x, _ = data.frames(part)
        xn = torch.from_numpy(np.ascontiguousarray(norm.apply(x), dtype=np.float32))
        out = teacher.outputs(xn, texts[start: start + 16])
        maps.append(out["attention"].float().cpu().numpy())
        if student is not None:
            xs = torch.from_numpy(np.ascontiguousarray(student.normalizer.apply(x), dtype=np.float32))
            absorbed.append(student.attention(xs).float().cpu().numpy())
    encoder = teacher._encoder_or_load()
    for i in token_set:
        k = int(np.flatnonzero(idx == i)[0])
        x, _ = data.frames(np.asarray([i]))
        xn = torch.from_numpy(np.ascontiguousarray(norm.apply(x), dtype=np.float32))
        tok = teacher.outputs(xn, [texts[k]])["attention_tokens"][0].float().cpu().numpy()  # (L, h, w)
        tok_maps.append(tok)
        ids = encoder.tokenizer(texts[k], truncation=True, max_length=encoder.max_length)["input_ids"]
        tokens[str(i)] = encoder.tokenizer.convert_ids_to_tokens(ids)
    arrays: dict[str, Any] = {"window": idx, "attention": np.concatenate(maps).astype(np.float32)}
    if absorbed:
        arrays["absorbed"] = np.concatenate(absorbed).astype(np.float32)
    if tok_maps:
        length = max(t.shape[0] for t in tok_maps)
        h, w = tok_maps[0].shape[1:]
        tm = np.zeros((len(tok_maps), length, h, w), dtype=np.float32)
        mask = np.zeros((len(tok_maps), length), dtype=np.uint8)
        for k, t in enumerate(tok_maps):
            tm[k, : t.shape[0]] = t
            mask[k, : t.shape[0]] = 1
        arrays["token_attention"] = tm
        arrays["token_mask"] = mask
        arrays["token_window"] = np.asarray(token_set, dtype=np.int64)
    in_times = data.input_times(idx)
    out_times = data.target_times(idx)
    info = {
        "windows": [{"window": int(i), "init": str(np.datetime64(a[-1], "s")), "first_target":
                     str(np.datetime64(b[0], "s")), "narrative": t}
                    for i, a, b, t in zip(idx, in_times, out_times, texts)],
        "tokens": tokens,
        "privileged": bool(privileged),
        "narratives": dict((teacher.description.get("narratives") or {})),
        "latent_grid": list(arrays["attention"].shape[1:]),
        "student": student.run_dir.name if student is not None else None,
    }
    return arrays, info


# --------------------------------------------------------------------------------------------------
# the build


class _State:
    """``<work>/state.json``: the key and result of every finished stage (resumability)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = _read_json(path) or {}

    def done(self, stage: str, key: str) -> dict | None:
        rec = self.data.get(stage)
        return rec if isinstance(rec, dict) and rec.get("key") == key else None

    def record(self, stage: str, key: str, **info) -> None:
        from core.io import atomic_write_json

        self.data[stage] = {"key": key, "finished": _now(), **info}
        atomic_write_json(self.path, self.data)


@dataclass
class _Ctx:
    work: Path
    out: Path
    state: _State
    log: Callable[[str], None]
    python: str
    threads: int | None
    files: list[dict[str, Any]] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)


def _train_command(setting: Setting, plan: ModelPlan) -> list[str]:
    """The ``s2kd train`` arguments of one model (run in the work folder)."""
    args = ["train", "--config", setting.config, "--out", f"runs/{setting.run_set}/{plan.name}",
            f"model.name={plan.model}", f"distill.method={plan.method}"]
    if plan.distilled:
        args.append(f"distill.teacher=runs/{setting.run_set}/teacher-s2")
    if plan.method in DEMO_SPECTRAL_METHODS:
        args.append(f"distill.weights.spectral={DEMO_SPECTRAL_WEIGHT!r}")
    args += [f"{k}={_toml_value(v)}" for k, v in setting.budget.items()]
    return args


def _run_cli(ctx: _Ctx, args: Sequence[str], label: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if ctx.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(ctx.threads)
    cmd = [ctx.python, "-m", "core", *args]
    proc = subprocess.run(cmd, cwd=ctx.work, env=env)
    if proc.returncode != 0:
        raise UserError(f"{label}: `s2kd {shlex.join(args)}` failed with exit status {proc.returncode} "
                        f"(in {ctx.work}); rerun `s2kd assets build` to resume")


def _stage(ctx: _Ctx, name: str, t0: float) -> None:
    dt = time.perf_counter() - t0
    ctx.times[name] = round(ctx.times.get(name, 0.0) + dt, 1)


def _copy_configs(ctx: _Ctx, setting: Setting) -> str:
    src = REPO / setting.config
    if not src.is_file():
        raise UserError("config preset not found", path=src)
    dst = ctx.work / setting.config
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.is_file() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    return _sha256(dst)


def _stage_data(ctx: _Ctx, setting: Setting) -> dict[str, str]:
    from core.synth.commands import prepare

    t0 = time.perf_counter()
    folder = ctx.work / setting.data_dir
    key = _key("data", setting.kind, setting.preset, setting.seed, code_hash(("core/synth",)))
    rec = ctx.state.done(f"{setting.run_set}/data", key)
    if rec and data_matches(folder, rec.get("fingerprint") or {}):
        ctx.log(f"[{setting.run_set}] data: reusing {folder}")
        return rec["fingerprint"]
    if folder.exists():
        shutil.rmtree(folder)
    ctx.log(f"[{setting.run_set}] data: s2kd data prepare --preset {setting.preset} --kinds {setting.kind} "
            f"--seed {setting.seed} ...")
    prepare(setting.preset, (setting.kind,), seed=setting.seed, root=ctx.work / "data")
    fingerprint = data_fingerprint(folder)
    ctx.state.record(f"{setting.run_set}/data", key, fingerprint=fingerprint,
                     seconds=round(time.perf_counter() - t0, 1))
    _stage(ctx, f"{setting.run_set}/data", t0)
    ctx.log(f"[{setting.run_set}] data: generated {len(fingerprint)} files in {time.perf_counter() - t0:.1f} s")
    return fingerprint


def _narrate_test(data, cache_dir: Path, indices: Sequence[int]) -> list[str]:
    """Narrate the test windows ``indices`` of ``data`` into ``cache_dir`` (diagnostic, context); their
    embeddings are not cached: the teacher encodes its narratives itself when it forecasts."""
    from core.cache import SafeCache
    from core.narratives import build_narrator, narrate_many
    from core.narratives.commands import dataset_context, window_input

    narrator = build_narrator("diagnostic", scope="context")
    events, clim = dataset_context(data.root, data.splits[data.split], data.splits.get("train"))
    texts = []
    with SafeCache(cache_dir) as cache:
        for start in range(0, len(indices), 64):
            chunk = [int(i) for i in indices[start: start + 64]]
            inputs = [window_input(data.dataset, i, events, clim, data.source) for i in chunk]
            texts += [r.text for r, _ in narrate_many(narrator, inputs, cache)]
    return texts


def _stage_narratives(ctx: _Ctx, setting: Setting, fingerprint: Mapping[str, str], config_sha: str) -> str:
    """Narrate + embed the teacher's training/validation windows, narrate the scored test windows.

    The narrative cache is emptied first whenever the narrator's code changed (its entries are keyed by
    window content and prompt version only).  Returns a digest of every narrative text (the teacher's
    training key), so a changed narrator retrains ``teacher-s2`` and the students distilled from it."""
    t0 = time.perf_counter()
    key = _key("narratives-v2", fingerprint, config_sha, setting.budget, setting.eval_stride, setting.check_stride,
               code_hash(NARRATIVE_CODE))
    stage = f"{setting.run_set}/narratives"
    rec = ctx.state.done(stage, key)
    if rec and rec.get("digest"):
        ctx.log(f"[{setting.run_set}] narratives: cached")
        return str(rec["digest"])
    from core.config import load_config
    from core.narratives.commands import default_cache_dir
    from core.semantics import SentenceEncoder
    from core.train.data import build_data
    from core.train.text import narrate_windows

    root = ctx.work / setting.data_dir
    cache_dir = default_cache_dir(root)
    if cache_dir.exists():
        shutil.rmtree(cache_dir)
    overrides = [a for a in _train_command(setting, MODELS[0])[5:]] + [f"data.root={json.dumps(str(root))}"]
    cfg = load_config(ctx.work / setting.config, overrides)
    bundle = build_data(cfg.data)
    ctx.log(f"[{setting.run_set}] narratives: {len(bundle.train)} training + {len(bundle.val)} validation "
            f"windows (diagnostic narrator, context scope) ...")
    encoder = SentenceEncoder(device="cpu")
    table = narrate_windows(cfg, bundle, encoder=encoder, log=ctx.log)
    texts = [table.texts[split][i] for split in sorted(table.texts) for i in sorted(table.texts[split])]
    desc = bundle.description
    n = 0
    for stride in (setting.eval_stride, setting.check_stride):
        data = test_windows(root, desc, stride)
        got = _narrate_test(data, cache_dir, range(len(data)))
        texts += got
        n += len(got)
    digest = _key("narrative-texts", texts)
    ctx.state.record(stage, key, digest=digest, seconds=round(time.perf_counter() - t0, 1))
    _stage(ctx, stage, t0)
    ctx.log(f"[{setting.run_set}] narratives: done ({n} test windows too) in {time.perf_counter() - t0:.1f} s")
    return digest


def _run_status(run_dir: Path) -> str:
    from core.bench import run_status

    return run_status(run_dir)


def _stage_train(ctx: _Ctx, setting: Setting, plan: ModelPlan, fingerprint, config_sha: str,
                 teacher_sha: str | None, narratives: str | None = None) -> str:
    """Train one model (or reuse / resume it); returns its weights' sha256."""
    from core import checkpoint as ckpt

    t0 = time.perf_counter()
    args = _train_command(setting, plan)
    run_dir = ctx.work / "runs" / setting.run_set / plan.name
    stage = f"{setting.run_set}/train/{plan.name}"
    key = _key("train", args, config_sha, fingerprint, teacher_sha, narratives)
    status = _run_status(run_dir)
    rec = ctx.state.done(stage, key)
    if rec and status in ("finished", "early-stopped"):
        sha = ckpt.load_model_meta(run_dir).get("weights_sha256")
        if sha and sha == rec.get("weights_sha256") and _sha256(run_dir / ckpt.MODEL_WEIGHTS) == sha:
            ctx.log(f"[{setting.run_set}] {plan.name}: reusing the {status} run")
            return sha
    pending = ctx.state.data.get(f"{stage}/started")
    resume = status == "partial" and isinstance(pending, dict) and pending.get("key") == key
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    if resume:
        args = ["train", "--out", f"runs/{setting.run_set}/{plan.name}", "--resume"]
    ctx.state.record(f"{stage}/started", key)
    ctx.log(f"[{setting.run_set}] {plan.name}: s2kd {shlex.join(args)}")
    _run_cli(ctx, args, f"[{setting.run_set}] {plan.name}")
    meta = ckpt.load_model_meta(run_dir)
    sha = meta.get("weights_sha256") or _sha256(run_dir / ckpt.MODEL_WEIGHTS)
    m = meta.get("metrics") or {}
    ctx.state.record(stage, key, weights_sha256=sha, seconds=round(time.perf_counter() - t0, 1),
                     command="s2kd " + shlex.join(_train_command(setting, plan)))
    _stage(ctx, stage, t0)
    ctx.log(f"[{setting.run_set}] {plan.name}: {m.get('status')} after {m.get('epochs_done')} epoch(s), best "
            f"val_mse {m.get('best_val_mse')} (epoch {m.get('best_epoch')}) in {time.perf_counter() - t0:.1f} s")
    return sha


def _stage_scores(ctx: _Ctx, setting: Setting, plan_name: str, weights_sha: str | None, fingerprint,
                  datasets: Mapping[int, Any], narratives: str = "") -> None:
    """scores.json (demo test windows) and scores-check.json (check windows) of a run or a baseline."""
    from core.io import atomic_write_json
    from core.narratives.commands import default_cache_dir

    t0 = time.perf_counter()
    folder = ctx.work / "scores" / setting.run_set / plan_name
    stage = f"{setting.run_set}/scores/{plan_name}"
    key = _key("scores-v1", weights_sha, fingerprint, setting.eval_stride, setting.check_stride, code_hash(),
               narratives)
    if ctx.state.done(stage, key) and (folder / "scores.json").is_file() and (folder / "scores-check.json").is_file():
        ctx.log(f"[{setting.run_set}] {plan_name}: reusing scores")
        return
    folder.mkdir(parents=True, exist_ok=True)
    run_dir = ctx.work / "runs" / setting.run_set / plan_name
    for stride, fname in ((setting.eval_stride, "scores.json"), (setting.check_stride, "scores-check.json")):
        data = datasets[stride]
        result = score_run(run_dir, data.root, stride, data=data, run_name=plan_name, data_dir=setting.data_dir,
                           narrative_cache=default_cache_dir(data.root))
        result["windows"] = {"split": data.split, "stride": stride, "count": len(data),
                             "what": ("demo test windows: every window start of the test split at this stride"
                                      if fname == "scores.json" else
                                      "check windows: the few test windows tests/test_assets.py rescores")}
        atomic_write_json(folder / fname, result)
    ctx.state.record(stage, key, seconds=round(time.perf_counter() - t0, 1))
    _stage(ctx, stage, t0)
    n = len(datasets[setting.eval_stride])
    ctx.log(f"[{setting.run_set}] {plan_name}: scored on {n} demo test windows (+ "
            f"{len(datasets[setting.check_stride])} check windows) in {time.perf_counter() - t0:.1f} s")


def _cost(run_dir: Path, data) -> dict[str, Any]:
    """Parameters and FLOPs (batch 1) of a run's inference network; latency at batch 1 (median of 5)."""
    from core.bench import Suite, measure_run_cost
    from core.forecaster import load_forecaster

    fc = load_forecaster(run_dir, device="cpu")
    if not hasattr(fc, "module"):  # a simple baseline: no network
        return {"params": 0, "flops": None, "latency_ms": {}}
    suite = Suite("assets", None, "demo", (), cost_batch_sizes=(1,), cost_warmup=1, cost_repeats=5,
                  cost_memory=False)
    return measure_run_cost(fc, data, suite)


def _stage_results(ctx: _Ctx, setting: Setting, shas: Mapping[str, str], datasets: Mapping[int, Any]) -> None:
    """``results.json`` of the run set: every model's scores on the demo test windows (the layout of
    ``s2kd bench`` results, which the dashboard reads) and its size (parameters, FLOPs)."""
    from core.io import atomic_write_json

    t0 = time.perf_counter()
    stage = f"{setting.run_set}/results"
    folder = ctx.work / "scores" / setting.run_set
    key = _key("results-v1", dict(shas), setting.eval_stride)
    rec = ctx.state.done(stage, key)
    costs = dict(rec.get("costs") or {}) if rec else {}
    data = datasets[setting.eval_stride]
    models: dict[str, Any] = {}
    for plan in setting.plans:
        result = _read_json(folder / plan.name / "scores.json") or {}
        if plan.name not in costs:
            try:
                costs[plan.name] = _cost(ctx.work / "runs" / setting.run_set / plan.name, data)
            except Exception as exc:  # noqa: BLE001 - the size table is informative only
                ctx.log(f"[{setting.run_set}] {plan.name}: cost not measured ({type(exc).__name__}: {exc})")
                costs[plan.name] = {}
        cost = costs[plan.name]
        kind = ("teacher" if plan.name.startswith("teacher") else "student" if plan.model == "student" else
                "baseline")
        models[plan.name] = {
            "kind": kind, "method": plan.method if kind == "student" else None,
            "privileged": bool(result.get("privileged")), "params": cost.get("params"), "flops": cost.get("flops"),
            "latency_ms": dict(cost.get("latency_ms") or {}), "cost": cost,
            "lead_hours": result.get("lead_hours"), "n_windows": result.get("n_windows"),
            **{k: result.get(k) for k in ("test", "test_nonstationary", "test_normal", "overall", "per_channel",
                                          "spectra")},
            "run_dir": plan.name,
        }
    first = _read_json(folder / "teacher-s2" / "scores.json") or {}
    results = {
        "suite": "assets", "description": f"shipped demo runs ({setting.run_set}), core.assets",
        "created": _now(),
        "datasets": {setting.run_set: {
            "data": {**dict(first.get("dataset") or {}), "preset": setting.preset, "seed": setting.seed},
            "budget": dict(setting.budget), "config_preset": setting.config,
            "windows": {"split": "test", "stride": setting.eval_stride, "count": len(data),
                        "note": "scores on every window start of the test split at this stride (the stride of "
                                "the setting's training windows), not on every window"},
            "baseline_for_relative": "student-none",
            "models": models,
        }},
    }
    atomic_write_json(folder / "results.json", results)
    ctx.state.record(stage, key, costs=costs, seconds=round(time.perf_counter() - t0, 1))
    _stage(ctx, stage, t0)


def _stage_attention(ctx: _Ctx, setting: Setting, teacher_sha: str, student_sha: str, fingerprint,
                     datasets: Mapping[int, Any]) -> None:
    from safetensors.numpy import save_file

    from core.io import atomic_path, atomic_write_json

    t0 = time.perf_counter()
    folder = ctx.work / "attention" / setting.run_set
    stage = f"{setting.run_set}/attention"
    key = _key("attention-v1", teacher_sha, student_sha, fingerprint, setting.eval_stride, setting.check_stride,
               code_hash())
    if ctx.state.done(stage, key) and (folder / "attention.safetensors").is_file():
        ctx.log(f"[{setting.run_set}] attention maps: reusing")
        return
    folder.mkdir(parents=True, exist_ok=True)
    data = datasets[setting.eval_stride]
    check = datasets[setting.check_stride]
    import numpy as np

    runs = ctx.work / "runs" / setting.run_set
    # per-token maps on the check windows (the stride grids are anchored at the same origin, so every
    # check window is also a demo test window: match them by their first target time)
    check_t0 = set(np.asarray(check.dataset.target_start_times).astype("datetime64[ns]").astype(np.int64).tolist())
    eval_t0 = np.asarray(data.dataset.target_start_times).astype("datetime64[ns]").astype(np.int64)
    token_idx = [i for i, t in enumerate(eval_t0.tolist()) if t in check_t0]
    from core.narratives.commands import default_cache_dir

    arrays, info = attention_maps(runs / "teacher-s2", runs / "student-s2kd", data, range(len(data)),
                                  token_indices=token_idx, cache_dir=default_cache_dir(data.root))
    arrays["t0_ns"] = eval_t0
    info.update(what="teacher-s2 text-grounded attention (whole narrative) and student-s2kd absorbed attention on "
                     "the demo test windows; per-token teacher maps on the check windows",
                window_index="index of the window among the demo test windows (test split, stride eval_stride); "
                             "t0_ns: its first target time (ns since 1970)",
                eval_stride=setting.eval_stride, check_stride=setting.check_stride, data=setting.data_dir,
                arrays={k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()})
    with atomic_path(folder / "attention.safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
                  metadata={"format": "s2kd-attention/1"})
    atomic_write_json(folder / "attention.json", info)
    ctx.state.record(stage, key, seconds=round(time.perf_counter() - t0, 1))
    _stage(ctx, stage, t0)
    ctx.log(f"[{setting.run_set}] attention maps: {len(arrays['window'])} windows in {time.perf_counter() - t0:.1f} s")


_WHAT = {
    "model.safetensors": "weights of the selected epoch (best validation MSE), safetensors",
    "model.json": "model name and config, normaliser statistics, data description, training metrics",
    "config.toml": "the resolved training config (all values)",
    "metrics.jsonl": "training log: one JSON object per epoch",
    "scores.json": "evaluation (core.evaluate) on the demo test windows: per-lead metrics, all / non-stationary / "
                   "normal windows, spectra",
    "scores-check.json": "the same evaluation on the check windows (recomputed by tests/test_assets.py)",
    "results.json": "the run set's scores on the demo test windows in the layout of `s2kd bench` results "
                    "(read by the dashboard for headline scores and the size table)",
    "attention.safetensors": "cached attention maps (teacher-s2 text-grounded, student-s2kd absorbed), safetensors",
    "attention.json": "the windows, narratives, tokens and provenance of attention.safetensors",
}


def _ship_file(ctx: _Ctx, src: Path, dst: Path, command: str, config: Mapping[str, Any] | None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    from core.io import atomic_write_bytes

    data = src.read_bytes()
    if not dst.is_file() or dst.read_bytes() != data:
        atomic_write_bytes(dst, data)
    ctx.files.append({"path": dst.relative_to(ctx.out).as_posix(), "what": _WHAT.get(dst.name, ""),
                      "command": command, "config": dict(config) if config else None,
                      "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})


def _ship_setting(ctx: _Ctx, setting: Setting, config_sha: str) -> list[str]:
    """Copy the setting's final artefacts into ``<out>/runs/<set>/``; returns the shipped model names."""
    from core.io import atomic_write_json

    dest = ctx.out / "runs" / setting.run_set
    keep: set[Path] = set()
    shipped = []
    config = {"preset": setting.config, "sha256": config_sha, "overrides": None}
    score_cmd = (f"core.assets.score_run(run, {setting.data_dir!r}, stride)  # core.evaluate.evaluate_run on "
                 f"every stride-th test window; stride {setting.eval_stride} (scores.json), "
                 f"{setting.check_stride} (scores-check.json)")
    for plan in setting.plans:
        run = ctx.work / "runs" / setting.run_set / plan.name
        args = _train_command(setting, plan)
        train_cmd = "s2kd " + shlex.join(args)
        cfg = {**config, "overrides": args[5:]}
        for name in RUN_FILES:
            _ship_file(ctx, run / name, dest / plan.name / name, train_cmd, cfg)
            keep.add(dest / plan.name / name)
        for name in ("scores.json", "scores-check.json"):
            _ship_file(ctx, ctx.work / "scores" / setting.run_set / plan.name / name, dest / plan.name / name,
                       score_cmd, cfg)
            keep.add(dest / plan.name / name)
        shipped.append(plan.name)
    att = ctx.work / "attention" / setting.run_set
    for name in ("attention.safetensors", "attention.json"):
        _ship_file(ctx, att / name, dest / "teacher-s2" / name,
                   "core.assets.attention_maps(teacher-s2, student-s2kd, demo test windows)", config)
        keep.add(dest / "teacher-s2" / name)
    results = ctx.work / "scores" / setting.run_set / "results.json"
    _ship_file(ctx, results, dest / "results.json", "core.assets (collects the scores.json of every run)", config)
    keep.add(dest / "results.json")
    # leftovers of an earlier build of this setting (other files) are removed
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return shipped


def _git_head() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _recorded_seconds(state: _State, run_sets: Sequence[str]) -> dict[str, float]:
    """Sum of the seconds each stage of a setting took when it last ran (stages reused by this run count
    with their earlier time; a stage rerun by this run counts with its new time)."""
    out: dict[str, float] = {}
    for stage, rec in state.data.items():
        if not isinstance(rec, dict) or "seconds" not in rec:
            continue
        rs = stage.split("/", 1)[0]
        if rs in run_sets:
            out[rs] = round(out.get(rs, 0.0) + float(rec["seconds"]), 1)
    out["total"] = round(sum(out.values()), 1)
    return out


def read_manifest(out: str | os.PathLike = DEFAULT_OUT) -> dict[str, Any]:
    """``<out>/MANIFEST.json`` (a one-line DataError when missing or malformed)."""
    path = Path(out) / MANIFEST_NAME
    if not path.is_file():
        raise DataError("no asset manifest (build the assets with `s2kd assets build`)", path=path)
    obj = _read_json(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("files"), list):
        raise DataError(f"not an s2kd asset manifest ({FORMAT})", path=path)
    return obj


def verify(out: str | os.PathLike = DEFAULT_OUT) -> list[str]:
    """Check every file of the manifest (exists, size, sha256) and that no shipped run file is unlisted.
    Returns the problems (empty: all good)."""
    out = Path(out)
    manifest = read_manifest(out)
    problems = []
    listed = set()
    for entry in manifest["files"]:
        rel = str(entry.get("path", ""))
        listed.add(rel)
        path = out / rel
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"{rel!r}: not a path inside {out}")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        if path.stat().st_size != entry.get("size"):
            problems.append(f"{rel}: size {path.stat().st_size}, manifest says {entry.get('size')}")
        if _sha256(path) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest")
    runs = out / "runs"
    if runs.is_dir():
        for path in sorted(runs.rglob("*")):
            rel = path.relative_to(out).as_posix()
            if path.is_file() and rel not in listed:
                problems.append(f"{rel}: not in the manifest")
    return problems


def build(out: str | os.PathLike = DEFAULT_OUT, work: str | os.PathLike = DEFAULT_WORK,
          only: Sequence[str] | None = None, *, settings: Mapping[str, Setting] | None = None,
          threads: int | None = None, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Build (or resume building) the shipped assets; returns the manifest (see the module docstring)."""
    from core import __version__
    from core.io import atomic_write_json

    settings = dict(settings or SETTINGS)
    keys = list(only) if only else list(settings)
    bad = [k for k in keys if k not in settings]
    if bad:
        raise UserError(f"--only: unknown setting(s) {', '.join(bad)}; choose from {', '.join(settings)}")
    out, work = Path(out).resolve(), Path(work).resolve()
    if out.exists() and not out.is_dir():
        raise UserError("--out exists and is not a directory", path=out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(work=work, out=out, state=_State(work / STATE_NAME), log=log, python=sys.executable, threads=threads)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    previous = _read_json(out / MANIFEST_NAME) if (out / MANIFEST_NAME).is_file() else None
    t_all = time.perf_counter()
    datasets_info: dict[str, Any] = {}
    run_sets: dict[str, Any] = {}
    for k in keys:
        setting = settings[k]
        t_set = time.perf_counter()
        log(f"[{setting.run_set}] === {setting.kind} setting ({setting.config}, budget "
            + ", ".join(f"{a}={b}" for a, b in setting.budget.items()) + ")")
        config_sha = _copy_configs(ctx, setting)
        fingerprint = _stage_data(ctx, setting)
        digest = _stage_narratives(ctx, setting, fingerprint, config_sha)
        shas: dict[str, str] = {}
        for plan in setting.plans:
            teacher_sha = shas.get("teacher-s2") if plan.distilled else None
            shas[plan.name] = _stage_train(ctx, setting, plan, fingerprint, config_sha, teacher_sha,
                                           digest if plan.model == "teacher-s2" else None)
        # the test windows, cut like the runs (all runs of a setting share the data description)
        from core import checkpoint as ckpt

        desc = dict(ckpt.load_model_meta(work / "runs" / setting.run_set / "teacher-s2").get("data") or {})
        root = work / setting.data_dir
        datasets = {s: test_windows(root, desc, s) for s in (setting.eval_stride, setting.check_stride)}
        log(f"[{setting.run_set}] test split: {len(datasets[setting.eval_stride])} demo test windows (stride "
            f"{setting.eval_stride}), {len(datasets[setting.check_stride])} check windows (stride "
            f"{setting.check_stride})")
        for plan in setting.plans:
            _stage_scores(ctx, setting, plan.name, shas[plan.name], fingerprint, datasets, digest)
        _stage_results(ctx, setting, shas, datasets)
        _stage_attention(ctx, setting, shas["teacher-s2"], shas["student-s2kd"], fingerprint, datasets)
        shipped = _ship_setting(ctx, setting, config_sha)
        datasets_info[setting.run_set] = {
            "kind": setting.kind, "preset": setting.preset, "seed": setting.seed, "folder": setting.data_dir,
            "command": f"s2kd data prepare --preset {setting.preset} --kinds {setting.kind} --seed {setting.seed}",
            "files": fingerprint,
        }
        run_sets[setting.run_set] = {
            "setting": setting.key, "config": setting.config, "budget": dict(setting.budget),
            "models": shipped, "distilled_from": "teacher-s2",
            "narratives": {"backend": "diagnostic", "scope": "context"},
            "eval_windows": {"split": "test", "stride": setting.eval_stride,
                             "count": len(datasets[setting.eval_stride])},
            "check_windows": {"split": "test", "stride": setting.check_stride,
                              "count": len(datasets[setting.check_stride])},
            "seconds": round(time.perf_counter() - t_set, 1),
        }
        log(f"[{setting.run_set}] === done in {time.perf_counter() - t_set:.1f} s")
    # keep the entries of settings not rebuilt this time (``--only``)
    files = list(ctx.files)
    if previous and isinstance(previous.get("files"), list):
        rebuilt = {f"runs/{settings[k].run_set}/" for k in keys}
        files = [f for f in previous["files"] if not any(str(f.get("path", "")).startswith(p) for p in rebuilt)] + files
        for k, v in (previous.get("datasets") or {}).items():
            datasets_info.setdefault(k, v)
        for k, v in (previous.get("run_sets") or {}).items():
            run_sets.setdefault(k, v)
    files.sort(key=lambda f: f["path"])
    total = sum(int(f["size"]) for f in files)
    import torch

    manifest = {
        "format": FORMAT,
        "created": _now(),
        "code_version": __version__,
        "git_head": _git_head(),
        "command": "s2kd assets build" + (f" --only {','.join(only)}" if only else ""),
        "work_folder": "the build's work folder (default build/assets-work); train commands run there",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                    "torch_threads": threads or torch.get_num_threads()},
        "seconds": {"this_run": round(time.perf_counter() - t_all, 1), "stages_this_run": dict(ctx.times),
                    "stages_last_recorded": _recorded_seconds(ctx.state, [settings[k].run_set for k in keys])},
        "total_bytes": total,
        "datasets": datasets_info,
        "run_sets": run_sets,
        "files": files,
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    log(f"assets: {len(files)} files, {total / 1e6:.2f} MB, manifest {out / MANIFEST_NAME}; "
        f"built in {time.perf_counter() - t_all:.1f} s")
    return manifest
