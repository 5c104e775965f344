"""The benchmark: train (or reuse) every model of a suite with one budget per dataset, score, write a table.

    s2kd bench --suite tiny  --out runs/bench-tiny             # the test suite (tiny data, tiny models)
    s2kd bench --suite bench --out benchmarks                  # the benchmark (~2 h on 2 CPU cores)
    s2kd bench --suite paper --out runs/paper --data-root /data  # OpenSTL-scale models, real archives, GPU

For each dataset of the suite (:data:`SUITES`), in this order:

1. **data**: embedded suites generate the dataset with the simulator (``s2kd data synth``) into
   ``<data-root>/<kind>`` (default ``data/<preset>/<kind>``) unless it is already there; the ``paper``
   suite reads real archives under ``--data-root`` (``<data-root>/weather``, ``<data-root>/taxibj``, each
   with an ``s2kd_dataset.json`` naming the reader and the splits);
2. **train** into ``<out>/runs/<dataset>/<model>``: ``teacher-vision``, ``teacher-s2``, the student with
   every distillation method of :data:`core.losses` (``student-none`` … ``student-s2kd-no-spec``), all
   distilled from ``teacher-s2`` (its outputs cached once by the trainer's teacher cache), ``simvp`` and
   ``convlstm`` — every model with the same budget (``[train]`` epochs/batch/steps, same training windows);
   the config of each run is the dataset's preset ``configs/<setting>/<size>.toml`` + the suite budget +
   the model + the user's ``KEY=VALUE`` overrides.  A finished run is reused, an unfinished one resumed;
3. **evaluate** every run and the simple baselines (``persistence``, and ``climatology`` for weather /
   ``historical-average`` for crowd flow) on the test split with :func:`core.evaluate.evaluate`
   (``teacher-s2`` is labelled privileged when its narratives are of ``privileged`` scope), and measure
   the compute cost with :func:`core.cost.measure_cost` on the same input shape (the student without its
   training-only heads, the text teacher with a real narrative);
4. write ``<out>/results.json`` and ``<out>/results.md`` atomically (after every dataset, so a stop keeps
   what is done).

Scores and costs are cached in ``<out>/runs/<dataset>/evals/<model>.json``, keyed by the weights' hash (a
retrained run is re-scored); a rerun of a finished benchmark only reads files.  Everything but the two
results files lives under ``<out>/runs/`` (git-ignored for ``--out benchmarks``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from core.errors import DataError, UserError

__all__ = ["DatasetPlan", "Suite", "SUITES", "methods", "BenchStopped", "model_names", "run_bench",
           "write_markdown"]

def methods() -> tuple[str, ...]:
    """The student's distillation methods, in table order: the one list, ``core.losses.METHODS``
    (imported on use, so that ``s2kd --help`` does not load torch)."""
    from core.losses import METHODS

    return tuple(METHODS)

TEACHERS = ("teacher-vision", "teacher-s2")
REFERENCES = ("simvp", "convlstm")
DISTILL_TEACHER = "teacher-s2"


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a suite: its simulator kind, its config preset folder, the simple baselines and the
    training budget (dotted config overrides applied to every model of the dataset)."""

    name: str
    kind: str
    setting: str
    baselines: tuple[str, ...]
    budget: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: data preset (None = real archives under ``--data-root``), model size, datasets."""

    name: str
    preset: str | None
    size: str
    datasets: tuple[DatasetPlan, ...]
    seed: int = 0
    eval_batch_size: int = 16
    eval_max_windows: int = 0  # 0 = every test window; else that many, evenly spaced over the test split
    cost_batch_sizes: tuple[int, ...] = (1, 32)
    cost_warmup: int = 3
    cost_repeats: int = 10
    cost_memory: bool = True
    description: str = ""


def _weather(budget: Mapping[str, Any]) -> DatasetPlan:
    return DatasetPlan("weather", "weather", "weather", ("persistence", "climatology"), dict(budget))


def _taxibj(budget: Mapping[str, Any]) -> DatasetPlan:
    return DatasetPlan("taxibj", "taxibj", "taxibj", ("persistence", "historical-average"), dict(budget))


#: The suites.  One budget per dataset: every model of a dataset trains with exactly these settings.
SUITES: dict[str, Suite] = {
    s.name: s for s in (
        Suite("tiny", "tiny", "tiny", (
            _weather({"train.epochs": 1, "train.batch_size": 4, "data.max_train_windows": 4,
                      "data.max_val_windows": 2}),
            _taxibj({"train.epochs": 1, "train.batch_size": 4, "data.max_train_windows": 4,
                     "data.max_val_windows": 2}),
        ), eval_batch_size=16, eval_max_windows=8, cost_batch_sizes=(1, 32), cost_warmup=0, cost_repeats=1,
            cost_memory=False,
            description="tests: tiny data, tiny models, one short epoch"),
        Suite("bench", "bench", "bench", (
            # sized from measured single-thread CPU costs per training sample summed over the 12 trained models
            # (weather ≈ 1.45 s, TaxiBJ ≈ 0.21 s; OMP_NUM_THREADS=1): weather ≈ 37 min, TaxiBJ ≈ 14 min.  Steps,
            # not samples, limited the students: at 48 steps (the first budget) every student was still far
            # from converged (BENCHMARKS.md), so batches are small.
            _weather({"train.epochs": 6, "train.batch_size": 8, "data.max_train_windows": 256,
                      "data.max_val_windows": 64, "train.patience": 0}),
            _taxibj({"train.epochs": 8, "train.batch_size": 8, "data.max_train_windows": 480,
                     "data.max_val_windows": 96, "train.patience": 0}),
        ), eval_batch_size=32, eval_max_windows=256,
            description="the benchmark: embedded weather and TaxiBJ data, about 2 h on 2 CPU cores"),
        Suite("paper", None, "paper", (
            _weather({}),
            _taxibj({}),
        ), eval_batch_size=32, description="OpenSTL-scale models on the real archives (GPU)"),
    )
}


def model_names(plan: DatasetPlan) -> list[str]:
    """Every model of a dataset, in table order."""
    return [*TEACHERS, *(f"student-{m}" for m in methods()), *REFERENCES, *plan.baselines]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# data


def prepare_data(suite: Suite, plan: DatasetPlan, data_root: Path | None, log: Callable[[str], None] = _log) -> Path:
    """The dataset folder of ``plan``: generated (embedded suites) or checked (real archives)."""
    from core.data.splits import MANIFEST_NAME

    if suite.preset is None:
        if data_root is None:
            raise UserError(f"the {suite.name} suite reads real archives: pass --data-root DIR holding "
                            f"{', '.join(p.name for p in suite.datasets)}")
        folder = data_root / plan.name
        if not folder.is_dir():
            raise DataError(f"no {plan.name} archive folder here (expected {folder})", path=data_root)
        if not (folder / MANIFEST_NAME).is_file():
            raise DataError(f"the archive folder has no {MANIFEST_NAME} naming its reader and splits", path=folder)
        log(f"[{plan.name}] data: {folder}")
        return folder
    root = data_root if data_root is not None else Path("data") / suite.preset
    folder = root / plan.kind
    if (folder / MANIFEST_NAME).is_file():
        log(f"[{plan.name}] data: reusing {folder}")
        return folder
    if folder.exists() and not folder.is_dir():
        raise DataError("exists and is not a directory", path=folder)
    from core.synth.commands import synthesize

    log(f"[{plan.name}] data: generating the {suite.preset} {plan.kind} dataset in {folder} ...")
    summary = synthesize(plan.kind, suite.preset, suite.seed, folder, overwrite=True)
    log(f"[{plan.name}] data: generated in {summary.get('seconds', 0):.1f} s")
    return folder


# --------------------------------------------------------------------------------------------------
# training


def _model_and_method(model: str) -> tuple[str, str]:
    if model.startswith("student-"):
        return "student", model[len("student-"):]
    return model, "none"


def base_config_path(suite: Suite, plan: DatasetPlan) -> Path:
    """``configs/<setting>/<size>.toml`` of the repository."""
    return Path(__file__).resolve().parents[1] / "configs" / plan.setting / f"{suite.size}.toml"


def run_overrides(suite: Suite, plan: DatasetPlan, model: str, data_dir: Path, runs: Path,
                  user: Sequence[str] = ()) -> list[str]:
    """The dotted overrides of one run: data folder, budget, model, method, teacher, then the user's."""
    name, method = _model_and_method(model)
    items = [f"data.root={_toml_str(data_dir)}", f"model.name={_toml_str(name)}",
             f"model.size={_toml_str(suite.size)}", f"distill.method={_toml_str(method)}",
             f"distill.teacher={_toml_str(runs / DISTILL_TEACHER)}", "distill.cache=''",
             f"name={_toml_str(f'bench {suite.name} {plan.name} {model}')}"]
    for key, value in plan.budget.items():
        items.append(f"{key}={_toml_value(value)}")
    return items + list(user)


def _toml_str(v: Any) -> str:
    return json.dumps(str(v))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return _toml_str(v)


def run_status(run_dir: Path) -> str:
    """``"finished"`` / ``"early-stopped"`` (reusable), ``"partial"`` (resumable) or ``"absent"``."""
    from core import checkpoint as ckpt

    if (run_dir / ckpt.MODEL_JSON).is_file():
        try:
            status = (ckpt.load_model_meta(run_dir).get("metrics") or {}).get("status")
        except UserError:
            status = None
        if status in ("finished", "early-stopped"):
            return str(status)
    if (run_dir / ckpt.STATE_WEIGHTS).is_file():
        return "partial"
    return "absent"


def train_model(suite: Suite, plan: DatasetPlan, model: str, data_dir: Path, runs: Path, user: Sequence[str],
                log: Callable[[str], None] = _log, data: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Train (or reuse / resume) one model; returns ``{"status", "seconds", "run_dir", "reused"}``.

    ``data(cfg)`` gives the :class:`core.train.data.DataBundle` to train on (shared by the models of a
    dataset: same windows, same normaliser, narratives embedded once); default: read from ``cfg.data``."""
    from core.config import load_config
    from core.train.loop import train

    run_dir = runs / model
    status = run_status(run_dir)
    cfg = load_config(base_config_path(suite, plan), run_overrides(suite, plan, model, data_dir, runs, user))
    if status in ("finished", "early-stopped"):
        _check_loss_weights(run_dir, cfg, model)
        log(f"[{plan.name}] {model}: reusing the {status} run in {run_dir}")
        return {"status": status, "seconds": 0.0, "run_dir": str(run_dir), "reused": True}
    resume = status == "partial"
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        # a run that died before its first checkpoint: nothing to resume, start it again
        import shutil

        shutil.rmtree(run_dir)
    log(f"[{plan.name}] {model}: {'resuming' if resume else 'training'} ({cfg.train.epochs} epoch(s), "
        f"batch {cfg.train.batch_size}) -> {run_dir}")
    t0 = time.perf_counter()
    result = train(cfg, run_dir, resume=resume, log=log, data=data(cfg) if data is not None else None)
    seconds = time.perf_counter() - t0
    if result.exit_code:
        raise BenchStopped(result.exit_code, f"[{plan.name}] {model}: stopped ({result.status}); rerun the same "
                                         f"command to resume")
    log(f"[{plan.name}] {model}: {result.status} after {result.epochs_done} epoch(s) in {seconds:.1f} s, "
        f"best val_mse {result.best_val:.4g}" if result.best_val is not None else
        f"[{plan.name}] {model}: {result.status} in {seconds:.1f} s")
    return {"status": result.status, "seconds": round(seconds, 2), "run_dir": str(run_dir), "reused": False}


def _check_loss_weights(run_dir: Path, cfg: Any, model: str) -> None:
    """Refuse to reuse a finished run whose distillation loss weights (``model.json`` → ``training`` →
    ``loss_weights``, resolved from the method's row of :data:`core.losses.METHOD_WEIGHTS` and the
    overrides) differ from the ones this bench would train with, e.g. after a default changed.  Runs from
    before the weights were recorded are not checked."""
    from core import checkpoint as ckpt
    from core.config import distill_config

    saved = (ckpt.load_model_meta(run_dir).get("training") or {}).get("loss_weights")
    if saved is None:
        return
    wanted = distill_config(cfg.distill).resolved_weights()
    changed = [f"{k} {saved.get(k)} -> {wanted.get(k)}" for k in sorted(set(saved) | set(wanted))
               if float(saved.get(k) or 0.0) != float(wanted.get(k) or 0.0)]
    if changed:
        raise UserError(f"{model} was trained with other loss weights ({', '.join(changed)}): remove the run to "
                        f"retrain it, or use another --out", path=run_dir)


def shared_data_loader(name: str, log: Callable[[str], None] = _log) -> Callable[[Any], Any]:
    """``data(cfg)`` for :func:`train_model`: the :class:`core.train.data.DataBundle` of ``cfg.data``, built
    on the first call and returned again to every later one (all models of a dataset train on the same
    windows, normaliser and narrative embeddings)."""
    bundle: dict[str, Any] = {}

    def data(cfg):
        if "data" not in bundle:
            from core.train.data import build_data

            t0 = time.perf_counter()
            bundle["data"] = b = build_data(cfg.data)
            log(f"[{name}] training data: {len(b.train)} train / {len(b.val)} val windows "
                f"({time.perf_counter() - t0:.1f} s)")
        return bundle["data"]

    return data


class BenchStopped(Exception):
    """A training run of the suite was stopped by a signal (its state is saved); ``code`` is the exit status."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------------
# evaluation and cost


def _cost_module(fc):
    """The inference network of a loaded run (the student without its training-only heads)."""
    import models

    if fc.name == "student" and fc.config.get("kd_heads", False):
        return models.build("student", {**fc.config, "kd_heads": False})
    return fc.module


def _text_inputs(fc, data) -> dict[str, Any] | None:
    """One real narrative of the test split, encoded, as the text teacher's keyword inputs (batch dim 1)."""
    if not fc.uses_text:
        return None
    from core.evaluate import run_narratives
    from core.semantics import SentenceEncoder

    import numpy as np

    narratives, _ = run_narratives(fc, data)
    text = narratives(np.arange(1))[0]
    enc = SentenceEncoder().encode([text])
    return {"text_tokens": enc.tokens.float(), "text_mask": enc.mask.bool(), "text_pooled": enc.pooled.float()}


def measure_run_cost(fc, data, suite: Suite) -> dict[str, Any]:
    """:func:`core.cost.measure_cost` of a loaded run on one test-shaped input."""
    from core.cost import count_parameters, measure_cost

    module = _cost_module(fc)
    module = fc.runtime.prepare(module).eval()
    report = measure_cost(module, fc.in_shape, extra_inputs=_text_inputs(fc, data),
                          batch_sizes=suite.cost_batch_sizes, warmup=suite.cost_warmup, repeats=suite.cost_repeats,
                          memory=suite.cost_memory)
    out = report.to_json()
    out["params_with_training_heads"] = count_parameters(fc.module)[0]
    return out


def _windows(suite: Suite, data):
    """The test windows a suite scores: all, or ``eval_max_windows`` evenly spaced ones."""
    if not suite.eval_max_windows or suite.eval_max_windows >= len(data):
        return None
    from core.train.data import evenly_spaced

    return evenly_spaced(len(data), suite.eval_max_windows)


def _scored_counts(suite: Suite, data) -> dict[str, Any]:
    w = _windows(suite, data)
    ns = data.nonstationary if w is None else data.nonstationary[w]
    return {"test": int(ns.size), "test_nonstationary": int(ns.sum()), "test_normal": int((~ns).sum()),
            "split_windows": len(data)}


def _eval_path(out: Path, plan: DatasetPlan, model: str) -> Path:
    return out / "runs" / plan.name / "evals" / f"{model}.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def evaluate_model(suite: Suite, plan: DatasetPlan, model: str, runs: Path, out: Path, data,
                   log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Scores + cost of one trained run (cached by its weights' hash)."""
    from core import checkpoint as ckpt
    from core.evaluate import evaluate_run
    from core.forecaster import load_forecaster
    from core.io import atomic_write_json

    run_dir = runs / model
    sha = ckpt.load_model_meta(run_dir).get("weights_sha256")
    path = _eval_path(out, plan, model)
    cached = _read_json(path)
    if cached and cached.get("weights_sha256") == sha and sha:
        log(f"[{plan.name}] {model}: reusing scores from {path}")
        return cached
    log(f"[{plan.name}] {model}: evaluating on {_scored_counts(suite, data)['test']} test windows ...")
    t0 = time.perf_counter()
    fc = load_forecaster(run_dir)
    result = evaluate_run(run_dir, data=data, batch_size=suite.eval_batch_size, progress=True, forecaster=fc,
                          windows=_windows(suite, data))
    log(f"[{plan.name}] {model}: scored in {time.perf_counter() - t0:.1f} s; measuring cost ...")
    result["cost"] = measure_run_cost(fc, data, suite)
    result["weights_sha256"] = sha
    meta = ckpt.load_model_meta(run_dir)
    result["train"] = {**dict(meta.get("metrics") or {}), "history_seconds": round(
        sum(float(r.get("seconds") or 0) for r in ckpt.read_metrics(run_dir)), 2)}
    atomic_write_json(path, result)
    return result


def evaluate_baseline(suite: Suite, plan: DatasetPlan, name: str, out: Path, data,
                      log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Scores + cost of a simple baseline fitted on the training split (cached by the dataset's manifest)."""
    from core.cache import content_key
    from core.evaluate import evaluate, fit_simple_baseline
    from core.io import atomic_write_json

    key = content_key("bench-baseline-v1", name, json.dumps(data.manifest, sort_keys=True, default=str),
                      data.t_in, data.t_out, data.channels)
    path = _eval_path(out, plan, name)
    cached = _read_json(path)
    if cached and cached.get("data_key") == key:
        log(f"[{plan.name}] {name}: reusing scores from {path}")
        return cached
    log(f"[{plan.name}] {name}: fitting on the training split and evaluating ...")
    baseline = fit_simple_baseline(name, data)
    result = evaluate(baseline, data, batch_size=suite.eval_batch_size, name=name, progress=True,
                      windows=_windows(suite, data))
    result["cost"] = baseline_cost(baseline, data, suite)
    result["data_key"] = key
    atomic_write_json(path, result)
    return result


def _baseline_module(baseline, data):
    """An ``nn.Module`` that runs a simple baseline on a batch, for :func:`core.cost.measure_cost` (the
    table baselines forecast the target times of the first test windows, cycled to the batch size)."""
    import numpy as np
    import torch
    from torch import nn

    from core.evaluate import baseline_forecast

    class BaselineModule(nn.Module):
        def forward(self, x):
            n = x.shape[0]
            idx = np.arange(n) % len(data)
            y = baseline_forecast(baseline, data, idx, x.detach().cpu().numpy())
            return torch.from_numpy(y.astype(np.float32))

    return BaselineModule()


def baseline_cost(baseline, data, suite: Suite) -> dict[str, Any]:
    """:func:`core.cost.measure_cost` of a simple baseline on the same input as the models.

    A baseline has no trainable parameters; ``params`` is reported as 0 and the size of its fitted
    table (number of stored values) as ``table_values``; its FLOPs (table look-ups, copies) count 0."""
    import numpy as np

    from core.cost import measure_cost

    shape = (data.t_in, len(data.channels), *data.splits[data.split].shape[-2:])
    report = measure_cost(_baseline_module(baseline, data), shape, batch_sizes=suite.cost_batch_sizes,
                          warmup=suite.cost_warmup, repeats=suite.cost_repeats, memory=suite.cost_memory).to_json()
    tables = [getattr(baseline, "overall", None), *getattr(baseline, "fine", {}).values(),
              *getattr(baseline, "coarse", {}).values()]
    report["table_values"] = int(sum(np.asarray(t).size for t in tables if t is not None))
    return report


# --------------------------------------------------------------------------------------------------
# results


def _entry(model: str, result: Mapping[str, Any], train: Mapping[str, Any] | None) -> dict[str, Any]:
    cost = dict(result.get("cost") or {})
    kind = ("teacher" if model in TEACHERS else "student" if model.startswith("student-") else
            "reference" if model in REFERENCES else "baseline")
    entry: dict[str, Any] = {
        "kind": kind,
        "method": _model_and_method(model)[1] if kind == "student" else None,
        "privileged": bool(result.get("privileged")),
        "params": cost.get("params"),
        "flops": cost.get("flops"),
        "latency_ms": {b: (cost.get("latency_ms") or {}).get(b) for b in ("b1", "b32")},
        "throughput": cost.get("throughput"),
        "peak_memory_bytes": cost.get("peak_memory_bytes"),
        "cost": cost,
        "lead_hours": result.get("lead_hours"),
        "n_windows": result.get("n_windows"),
    }
    for s in ("test", "test_nonstationary", "test_normal"):
        entry[s] = result.get(s)
    entry["overall"] = result.get("overall")
    entry["per_channel"] = result.get("per_channel")
    entry["spectra"] = result.get("spectra")
    if train is not None:
        entry["train"] = {**dict(result.get("train") or {}), **dict(train)}
        entry["run_dir"] = train.get("run_dir")
        entry["config"] = str(Path(train["run_dir"]) / "config.toml") if train.get("run_dir") else None
    return entry


def machine_info() -> dict[str, Any]:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "processor": platform.processor()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_bench(suite_name: str, out: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
              only: Sequence[str] | None = None, datasets: Sequence[str] | None = None,
              overrides: Sequence[str] = (), log: Callable[[str], None] = _log,
              command: str | None = None) -> dict[str, Any]:
    """Run the suite ``suite_name`` into ``out`` (see the module docstring); returns the results dict."""
    from core import __version__
    from core.config import parse_override
    from core.io import atomic_write_json, atomic_write_text

    if suite_name not in SUITES:
        raise UserError(f"unknown suite {suite_name!r}; choose from {', '.join(SUITES)}")
    suite = SUITES[suite_name]
    for item in overrides:
        parse_override(item)  # a malformed KEY=VALUE fails before any work
    plans = list(suite.datasets)
    if datasets:
        known = {p.name for p in plans}
        bad = [d for d in datasets if d not in known]
        if bad:
            raise UserError(f"--datasets: unknown dataset(s) {', '.join(bad)} (the {suite.name} suite has "
                            f"{', '.join(sorted(known))})")
        plans = [p for p in plans if p.name in datasets]
    if only:
        every = {m for p in plans for m in model_names(p)}
        bad = [m for m in only if m not in every]
        if bad:
            raise UserError(f"--only: unknown model(s) {', '.join(bad)} (known: {', '.join(model_names(plans[0]))})")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("--out exists and is not a directory", path=out)
    root = Path(data_root) if data_root is not None else None
    if suite.preset is None and root is None:
        raise UserError(f"the {suite.name} suite reads real archives: pass --data-root DIR")
    if suite.preset is None and not root.is_dir():
        raise DataError("--data-root not found", path=root)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    previous = _read_json(results_path) or {}
    results: dict[str, Any] = {
        "suite": suite.name, "description": suite.description, "created": _now(), "code_version": __version__,
        "command": command, "machine": machine_info(), "overrides": list(overrides),
        "datasets": dict(previous.get("datasets") or {}) if previous.get("suite") == suite.name else {},
    }
    t_all = time.perf_counter()
    try:
        for plan in plans:
            t_ds = time.perf_counter()
            ds_created = _now()
            data_dir = prepare_data(suite, plan, root, log)
            runs = out / "runs" / plan.name
            wanted = [m for m in model_names(plan) if not only or m in only]
            trained = [m for m in wanted if m not in plan.baselines]
            # students need the teacher they distil from, even when --only leaves it out of the table
            need = list(trained)
            if any(m.startswith("student-") and m != "student-none" for m in trained) and DISTILL_TEACHER not in need:
                need.insert(0, DISTILL_TEACHER)
            order = [m for m in model_names(plan) if m in need]
            train_info: dict[str, dict[str, Any]] = {}
            shared_data = shared_data_loader(plan.name, log)
            for i, model in enumerate(order, 1):
                log(f"[{plan.name}] ({i}/{len(order)}) {model}")
                train_info[model] = train_model(suite, plan, model, data_dir, runs, overrides, log, shared_data)
            del shared_data  # the training windows are not needed for scoring
            data = _test_data(data_dir, runs, trained, plan, log)
            entries = dict((results["datasets"].get(plan.name) or {}).get("models") or {})
            for model in wanted:
                if model in plan.baselines:
                    res = evaluate_baseline(suite, plan, model, out, data, log)
                    entries[model] = _entry(model, res, None)
                else:
                    res = evaluate_model(suite, plan, model, runs, out, data, log)
                    entries[model] = _entry(model, res, train_info.get(model))
            ordered = {m: entries[m] for m in model_names(plan) if m in entries}
            results["datasets"][plan.name] = {
                # each dataset keeps its own provenance, as a later ``--datasets``/``--only`` run merges into
                # this file: every command that wrote scores into this entry, oldest first, with the models it
                # scored, and the code and machine of the latest
                "history": list((results["datasets"].get(plan.name) or {}).get("history") or []) + [
                    {"created": ds_created, "command": command, "models": list(wanted)}],
                "code_version": __version__, "machine": results["machine"],
                "data": {**data.describe(), "preset": suite.preset, "seed": suite.seed,
                         "n_windows": _scored_counts(suite, data)},
                "budget": dict(plan.budget), "overrides": list(overrides),
                "config_preset": str(base_config_path(suite, plan).relative_to(Path(__file__).resolve().parents[1])),
                "baseline_for_relative": "student-none",
                "seconds": round(time.perf_counter() - t_ds, 1),
                "model_order": list(ordered),
                "models": ordered,
            }
            results["seconds"] = round(time.perf_counter() - t_all, 1)
            atomic_write_json(results_path, results)
            atomic_write_text(out / "results.md", write_markdown(results))
            log(f"[{plan.name}] done in {time.perf_counter() - t_ds:.1f} s; wrote {results_path}")
    except BenchStopped as stop:
        log(str(stop))
        raise
    return results


def _test_data(data_dir: Path, runs: Path, trained: Sequence[str], plan: DatasetPlan, log):
    """The test windows, cut with the shape of the trained runs (t_in/t_out/channels/step of their data)."""
    from core import checkpoint as ckpt
    from core.evaluate import load_test_data

    desc: dict[str, Any] = {}
    for model in trained:
        if (runs / model / ckpt.MODEL_JSON).is_file():
            desc = dict(ckpt.load_model_meta(runs / model).get("data") or {})
            break
    data = load_test_data(data_dir, source=desc.get("source"), channels=desc.get("channels"),
                          t_in=desc.get("t_in"), t_out=desc.get("t_out"), step=int(desc.get("step", 1) or 1))
    log(f"[{plan.name}] test split: {len(data)} windows, {int(data.nonstationary.sum())} non-stationary")
    return data


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Markdown

_UNIT_METRICS = {"mse", "mae", "rmse", "wmse", "wrmse", "wmae"}
#: Key metrics of the tables, per grid (higher is better for acc, ssim, psnr; 1 is best for high_band_ratio).
KEY_METRICS = {"latlon": ("wrmse", "acc", "high_band_ratio", "lsd"),
               "city": ("openstl_mse", "mae", "ssim", "psnr", "high_band_ratio", "lsd")}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.3e}"
    return f"{v:.4g}"


def _si(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    for unit, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= k:
            return f"{v / k:.3g}{unit}"
    return f"{v:.3g}"


def _rel(v: Any, ref: Any) -> str:
    if v is None or ref is None or float(ref) == 0:
        return ""
    return f" ({100.0 * (float(v) - float(ref)) / abs(float(ref)):+.1f}%)"


def _series(entry: Mapping[str, Any], subset: str, metric: str, channel: str | None):
    if channel is None:
        return (entry.get(subset) or {}).get(metric)
    pc = ((entry.get("per_channel") or {}).get(subset) or {}).get(metric) or {}
    return pc.get(channel)


def write_markdown(results: Mapping[str, Any]) -> str:
    """The results as Markdown: per dataset a cost table and one table per key metric (first / middle /
    last lead on the test split, last lead on the non-stationary subset), relative to ``student-none``."""
    lines = [f"# s2kd benchmark: suite `{results.get('suite')}`", "",
             f"Last written {results.get('created')} with s2kd {results.get('code_version')}"
             + (f" by `{results['command']}`" if results.get("command") else "") + ".", ""]
    m = results.get("machine") or {}
    lines += [f"Machine: {m.get('platform')}, {m.get('cpu_count')} CPU(s), torch {m.get('torch')}"
              + (f", GPU {m['gpu']}" if m.get("gpu") else "") + ".", ""]
    suite = SUITES.get(str(results.get("suite")))
    ds_order = [p.name for p in suite.datasets] if suite else []
    datasets = sorted((results.get("datasets") or {}).items(),  # the suite's order (the JSON sorts its keys)
                      key=lambda kv: (ds_order.index(kv[0]) if kv[0] in ds_order else len(ds_order), kv[0]))
    for name, ds in datasets:
        models = ds.get("models") or {}
        order = [m for m in ds.get("model_order") or [] if m in models]
        models = {m: models[m] for m in order + [m for m in models if m not in order]}
        info = ds.get("data") or {}
        grid = info.get("grid", "latlon")
        lines += [f"## {name}", ""]
        for h in ds.get("history") or []:
            models_ = h.get("models")
            lines += [f"- {h['created']}: " + (f"`{h['command']}`" if h.get("command") else "(command not recorded)")
                      + (f" scored {', '.join(models_)}" if models_ else "")]
        if ds.get("history"):
            dm = ds.get("machine") or {}
            lines += ["", f"Latest run with s2kd {ds.get('code_version')}"
                      + (f" on {dm.get('cpu_count')} CPU(s), torch {dm.get('torch')}" if dm else "") + ".", ""]
        lines += [
                  f"Data: `{info.get('root')}` ({info.get('source')}), {info.get('t_in')} → {info.get('t_out')} "
                  f"frames, {(info.get('n_windows') or {}).get('test')} test windows scored "
                  f"(of {(info.get('n_windows') or {}).get('split_windows')})"
                  f", {(info.get('n_windows') or {}).get('test_nonstationary')} of them non-stationary. "
                  f"Budget (every trained model): "
                  + ", ".join(f"`{k}={v}`" for k, v in (ds.get("budget") or {}).items())
                  + (" + " + ", ".join(f"`{o}`" for o in ds.get("overrides") or []) if ds.get("overrides") else "")
                  + f"; preset `{ds.get('config_preset')}`.", ""]
        lines += ["| model | params | FLOPs | latency b1 (ms) | latency b32 (ms) | train (s) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for model, e in models.items():
            lat = e.get("latency_ms") or {}
            tr = e.get("train") or {}
            secs = tr.get("history_seconds")
            lines.append(f"| {_label(model, e)} | {_si(e.get('params'))} | {_si(e.get('flops'))} | "
                         f"{_fmt(lat.get('b1'))} | {_fmt(lat.get('b32'))} | {_fmt(secs) if secs else '–'} |")
        lines.append("")
        first = next(iter(models.values()), {})
        leads = first.get("lead_hours") or []
        cols = sorted({0, (len(leads) - 1) // 2, len(leads) - 1}) if leads else []
        ref = models.get("student-none")
        channels = list(((first.get("per_channel") or {}).get("test") or {}).get(
            next(iter((first.get("test") or {})), ""), {}) or {})
        for metric in KEY_METRICS.get(grid, KEY_METRICS["latlon"]):
            if not any((e.get("test") or {}).get(metric) is not None for e in models.values()):
                continue
            per_channel = metric in _UNIT_METRICS and grid == "latlon" and len(channels) > 1
            for ch in (channels if per_channel else [None]):
                title = f"`{metric}`" + (f" — {ch}" if ch else "")
                head = [f"+{leads[i]:g} h" for i in cols] + [f"non-stationary +{leads[cols[-1]]:g} h"] if cols else []
                lines += [f"**{title}** (test split; in parentheses: relative to student-none)", "",
                          "| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
                for model, e in models.items():
                    cells = []
                    for subset, i in [("test", i) for i in cols] + [("test_nonstationary", cols[-1])]:
                        s = _series(e, subset, metric, ch)
                        r = _series(ref, subset, metric, ch) if ref and model != "student-none" else None
                        v = s[i] if s else None
                        cells.append(_fmt(v) + (_rel(v, r[i]) if r else ""))
                    lines.append(f"| {_label(model, e)} | " + " | ".join(cells) + " |")
                lines.append("")
    lines += ["Metrics: see `core/metrics.py` and `core/spectral.py` (formulas in the docstrings). "
              "`high_band_ratio`: predicted / true power in the high band (1 is ideal); `lsd`: log-spectral "
              "distance in dB. Privileged: the teacher's narratives describe the target window, so its scores "
              "are not those of a forecast.", ""]
    return "\n".join(lines)


def _label(model: str, e: Mapping[str, Any]) -> str:
    return f"{model} (privileged)" if e.get("privileged") else model
