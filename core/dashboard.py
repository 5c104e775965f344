"""The dashboard's library layer: everything the Streamlit pages show is computed here.

The pages (``app/views/*.py``) read the shared sidebar state, call this module and draw what it returns;
they never touch model internals or the trainer (direction ``app → core → models``).

Run sets
    A *run set* is a folder whose sub-folders are run directories (``model.json`` + ``model.safetensors``);
    the model's display name is the sub-folder name (``teacher-s2``, ``student-s2kd``, ``student-none``...).
    :func:`find_run_sets` looks in ``$S2KD_RUN_ROOTS`` (``os.pathsep``-separated, searched first), then
    ``assets/runs``, ``runs`` and ``benchmarks/runs`` of the project (a root may itself be a run set, or hold
    run sets up to two levels down).  A ``results.json`` written by ``s2kd bench`` in the run set folder or
    one of its two parents is read for the headline scores and the size/speed table.

:class:`Dashboard`
    One per run set (the app keeps it in ``st.cache_resource``): it loads every model once, opens the run
    set's test split through the runs' own data description (``root``, ``source``, splits of the
    folder's ``s2kd_dataset.json``; :func:`core.evaluate.test_data_for_run`), and computes, for an init
    time, the forecasts of every model for *all* leads in one forward pass each (a lead change only
    slices).  Derived results are memoised inside the object under explicit keys (init index, region
    spec, channel, ...), never by hashing arrays.

Pure helpers with hand-checkable results: :func:`agreement` (Pearson correlation and IoU of the top
regions), :func:`top_mask`, :func:`token_indices_for_span` / :func:`phrase_span`, :func:`upsample`,
:func:`relative_difference`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from core.errors import DataError, UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Folders (relative to the project root) searched for run sets, after ``$S2KD_RUN_ROOTS``.
DEFAULT_RUN_ROOTS = ("assets/runs", "runs", "benchmarks/runs")
RUN_ROOTS_ENV = "S2KD_RUN_ROOTS"
RESULTS_JSON = "results.json"
SCORES_JSON = "scores.json"
#: Fraction of grid cells forming the "top region" of an attention map.
TOP_FRACTION = 0.10
#: At most this many init times are offered (evenly spaced over the test split).
MAX_INIT_TIMES = 400
#: Scores computed here (when results.json does not cover a view) use this many evenly spaced test windows.
MAX_SCORE_WINDOWS = 48
#: Names of simple baselines shown beside the trained models, per grid.
BASELINES = {"latlon": ("persistence", "climatology"), "city": ("persistence", "historical-average")}
BASELINE_NAMES = ("persistence", "climatology", "historical-average")
REFERENCE_MODEL = "student-none"
SUBSET_LABELS = {"test": "all test windows", "test_nonstationary": "non-stationary windows",
                 "test_normal": "normal (stationary) windows"}
METRIC_LABELS = {
    "mse": "MSE", "mae": "MAE", "rmse": "RMSE", "wrmse": "RMSE (lat-weighted)", "wmae": "MAE (lat-weighted)",
    "wmse": "MSE (lat-weighted)", "acc": "ACC", "high_band_ratio": "high-band power ratio",
    "lsd": "log-spectral distance (dB)", "openstl_mse": "MSE (OpenSTL, per frame)",
    "openstl_mae": "MAE (OpenSTL, per frame)", "ssim": "SSIM", "psnr": "PSNR (dB)",
}
#: Metrics where larger is better (the scorecard colours them the other way round).
HIGHER_IS_BETTER = {"acc", "ssim", "psnr"}

CMD_PREPARE = "s2kd data prepare"
CMD_TRAIN = ("s2kd train --config configs/weather/demo.toml --out runs/weather-demo/teacher-s2 "
             "model.name=teacher-s2 distill.method=none")
CMD_BENCH = "s2kd bench --suite bench --out benchmarks"


# ================================================================================================
# empty states
# ================================================================================================

@dataclass(frozen=True)
class EmptyState:
    """What the app shows instead of a page when something is missing: a message and the command to run."""

    title: str
    message: str
    command: str = ""


class DashboardUnavailable(UserError):
    """Raised with an :class:`EmptyState` when a run set cannot be shown."""

    def __init__(self, state: EmptyState):
        super().__init__(f"{state.title}: {state.message}")
        self.state = state


def no_runs_state(roots: Sequence[Path]) -> EmptyState:
    where = ", ".join(_rel(r) for r in roots) or "(none)"
    return EmptyState(
        "No trained runs found",
        f"The dashboard looks for run sets (folders of run directories with model.json) in {where} and in "
        f"${RUN_ROOTS_ENV}. Prepare the data, then train a teacher and students into one folder, e.g. "
        "runs/weather-demo/{teacher-s2,student-s2kd,student-none}, or run the benchmark.",
        f"{CMD_PREPARE}\n{CMD_TRAIN}\n{CMD_BENCH}")


# ================================================================================================
# run-set discovery
# ================================================================================================

@dataclass(frozen=True)
class RunSet:
    """A folder of run directories.  ``runs``: (model name, run dir) in display order."""

    key: str
    name: str
    path: str
    runs: tuple[tuple[str, str], ...]
    dataset: str
    grid: str
    results_path: str | None = None
    signature: str = ""

    @property
    def models(self) -> list[str]:
        return [n for n, _ in self.runs]

    @property
    def label(self) -> str:
        return f"{self.name} — {len(self.runs)} models ({_rel(Path(self.path).parent)})"


def _rel(p: Path | str) -> str:
    p = Path(p)
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(p)


def model_sort_key(name: str) -> tuple[int, str]:
    """Display order: teacher-s2, other teachers, student-s2kd, other students, other nets, baselines."""
    if name == "teacher-s2":
        return (0, name)
    if name.startswith("teacher"):
        return (1, name)
    if name == "student-s2kd":
        return (2, name)
    if name.startswith("student"):
        return (3, name)
    if name in ("persistence", "climatology", "historical-average"):
        return (9, name)
    return (5, name)


def run_roots(extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """The folders searched for run sets: ``extra``, then ``$S2KD_RUN_ROOTS``, then the defaults."""
    roots: list[Path] = [Path(p) for p in extra]
    env = os.environ.get(RUN_ROOTS_ENV, "")
    roots += [Path(p) for p in env.split(os.pathsep) if p.strip()]
    roots += [PROJECT_ROOT / r for r in DEFAULT_RUN_ROOTS]
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve()) if r.exists() else str(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _is_run_dir(p: Path) -> bool:
    return (p / "model.json").is_file()


def _run_children(folder: Path) -> list[Path]:
    try:
        return sorted(c for c in folder.iterdir() if c.is_dir() and _is_run_dir(c))
    except OSError:
        return []


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _make_run_set(folder: Path, runs: list[Path]) -> RunSet | None:
    desc: dict = {}
    sig = []
    for r in runs:
        try:
            st = (r / "model.json").stat()
            sig.append(f"{r.name}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            continue
        if not desc:
            meta = _read_json(r / "model.json") or {}
            desc = dict(meta.get("data") or {})
    if not sig:
        return None
    grid = str(desc.get("grid") or "latlon")
    kind = str(desc.get("kind") or desc.get("source") or "data")
    root = str(desc.get("root") or "?")
    results = None
    for up in (folder, folder.parent, folder.parent.parent):
        if (up / RESULTS_JSON).is_file():
            results = str(up / RESULTS_JSON)
            break
    ordered = sorted(runs, key=lambda p: model_sort_key(p.name))
    return RunSet(key=_rel(folder), name=folder.name, path=str(folder), dataset=f"{kind} · {_rel(root)}",
                  grid=grid, runs=tuple((p.name, str(p)) for p in ordered), results_path=results,
                  signature="|".join(sig))


def find_run_sets(roots: Sequence[str | os.PathLike] | None = None) -> list[RunSet]:
    """All run sets under ``roots`` (default :func:`run_roots`), each found once, in search order."""
    roots = run_roots() if roots is None else [Path(r) for r in roots]
    found: list[RunSet] = []
    seen: set[str] = set()

    def visit(folder: Path, depth: int) -> None:
        if not folder.is_dir() or folder.name.startswith("."):
            return
        real = str(folder.resolve())
        if real in seen:
            return
        runs = _run_children(folder)
        if runs:
            seen.add(real)
            rs = _make_run_set(folder, runs)
            if rs is not None:
                found.append(rs)
        if depth > 0 and not _is_run_dir(folder):
            try:
                children = sorted(c for c in folder.iterdir() if c.is_dir() and not _is_run_dir(c))
            except OSError:
                return
            for c in children:
                visit(c, depth - 1)

    for root in roots:
        visit(Path(root), 2)
    return found


def datasets_of(run_sets: Sequence[RunSet]) -> dict[str, list[RunSet]]:
    """Run sets grouped by the data they were trained on (label ``kind · root``), in discovery order."""
    out: dict[str, list[RunSet]] = {}
    for rs in run_sets:
        out.setdefault(rs.dataset, []).append(rs)
    return out


def results_for(run_set: RunSet) -> dict | None:
    """The ``datasets → NAME`` entry of the run set's ``results.json`` (``{"models": {...}}``), or None.

    The entry is the one named like the run set folder, else one whose name occurs in the folder name or
    the dataset kind, else the only one.
    """
    if not run_set.results_path:
        return None
    obj = _read_json(Path(run_set.results_path))
    if not obj:
        return None
    sets = obj.get("datasets")
    if isinstance(sets, Mapping) and sets:
        names = list(sets)
        kind = run_set.dataset.split(" · ")[0]
        pick = None
        for cand in (run_set.name, *[n for n in names if n in run_set.name], *[n for n in names if n == kind]):
            if cand in sets:
                pick = cand
                break
        if pick is None and len(names) == 1:
            pick = names[0]
        entry = sets.get(pick) if pick else None
        return dict(entry) if isinstance(entry, Mapping) and isinstance(entry.get("models"), Mapping) else None
    if isinstance(obj.get("models"), Mapping):
        return dict(obj)
    return None


# ================================================================================================
# pure helpers (tested with hand-checkable values)
# ================================================================================================

def top_mask(a: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Boolean mask of the ``ceil(fraction · n)`` largest cells of ``a`` (ties broken by position)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    k = max(1, int(math.ceil(fraction * a.size - 1e-9)))
    order = np.argsort(-a, kind="stable")
    m = np.zeros(a.size, dtype=bool)
    m[order[:k]] = True
    return m


def agreement(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION,
              mask: np.ndarray | None = None) -> dict[str, float]:
    """How two maps on the same grid agree: ``pearson`` correlation of the values and ``iou``
    (|A∩B| / |A∪B|) of their top-``fraction`` regions, over the cells of ``mask`` (all by default).

    Identical maps give ``pearson = 1`` and ``iou = 1``; a constant map has no defined correlation (NaN).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"agreement: maps of shapes {a.shape} and {b.shape} differ")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        a, b = a[m], b[m]
    a, b = a.reshape(-1), b.reshape(-1)
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    pearson = float((da * db).sum() / denom) if denom > 0 else float("nan")
    ta, tb = top_mask(a, fraction), top_mask(b, fraction)
    union = int((ta | tb).sum())
    iou = float((ta & tb).sum() / union) if union else float("nan")
    return {"pearson": pearson, "iou": iou, "top_fraction": float(fraction), "cells": int(a.size)}


#: Below this spatial variation (coefficient of variation) an attention map is reported as almost uniform.
FLAT_MAP_CV = 0.01


def map_contrast(m: np.ndarray) -> float:
    """Spatial variation of a non-negative map: its coefficient of variation ``std(m) / mean(m)`` (0 for a
    uniform map; NaN when the mean is not positive).  The overlays stretch the colour scale to each map's
    own range, so a map whose values differ by 0.05 % looks as structured as one that differs by 50 %:
    this number says which it is."""
    a = np.asarray(m, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    mean = float(a.mean()) if a.size else 0.0
    return float(a.std() / mean) if mean > 0 else float("nan")


def upsample(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A latent-grid map ``(h, w)`` on the field grid ``shape``: block repeat when the sizes divide,
    bilinear interpolation otherwise."""
    m = np.asarray(m, dtype=np.float32)
    h, w = m.shape[-2:]
    H, W = int(shape[0]), int(shape[1])
    if (h, w) == (H, W):
        return m.copy()
    if H % h == 0 and W % w == 0:
        return np.repeat(np.repeat(m, H // h, axis=-2), W // w, axis=-1)
    import torch

    t = torch.from_numpy(np.ascontiguousarray(m)).reshape(1, 1, h, w)
    return torch.nn.functional.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()


def phrase_span(text: str, phrase: str) -> tuple[int, int] | None:
    """Character span ``[start, end)`` of the first occurrence of ``phrase`` in ``text`` (case-insensitive,
    whitespace-tolerant), or None."""
    phrase = " ".join(str(phrase).split())
    if not phrase:
        return None
    pattern = r"\s+".join(re.escape(w) for w in phrase.split(" "))
    m = re.search(pattern, text, flags=re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def token_indices_for_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of the tokens whose character offsets overlap ``[start, end)``; special tokens (offset
    ``(0, 0)``) never count."""
    out = []
    for i, (a, b) in enumerate(offsets):
        a, b = int(a), int(b)
        if a == b:
            continue
        if a < end and b > start:
            out.append(i)
    return out


def split_phrases(text: str) -> list[str]:
    """Sentences of a narrative and their comma/semicolon clauses (≥ 2 words), in order, without repeats."""
    out: list[str] = []
    for sent in re.split(r"(?<=[.!?])\s+", text.strip()):
        sent = sent.strip()
        if not sent:
            continue
        out.append(sent)
        parts = [p.strip(" .") for p in re.split(r"[,;:]\s+", sent)]
        if len(parts) > 1:
            out += [p for p in parts if len(p.split()) >= 2]
    return list(dict.fromkeys(out))


def thin_polyline(x: np.ndarray, y: np.ndarray, min_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop the points of NaN-separated polylines that lie closer than ``min_step`` to the last kept point
    (the first and last point of every piece are kept); float32 output (compact in the browser)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.zeros(x.size, dtype=bool)
    gap = ~np.isfinite(x) | ~np.isfinite(y)
    last = None
    for i in range(x.size):
        if gap[i]:
            keep[i] = True
            if last is not None and not keep[i - 1] and i - 1 != last:
                keep[i - 1] = True  # the piece's last point
            last = None
            continue
        if last is None or abs(x[i] - x[last]) + abs(y[i] - y[last]) >= min_step:
            keep[i] = True
            last = i
    if x.size and not gap[-1]:
        keep[-1] = True
    x, y, gap = x[keep], y[keep], gap[keep]
    # drop pieces smaller than the step (tiny islands: invisible at this resolution)
    piece = np.cumsum(gap)
    out = np.ones(x.size, dtype=bool)
    for pid in np.unique(piece[~gap]):
        sel = (piece == pid) & ~gap
        if np.ptp(x[sel]) + np.ptp(y[sel]) < min_step:
            out[sel] = False
            nxt = np.flatnonzero((piece == pid) & gap)
            out[nxt[:1]] = False
    return x[out].astype(np.float32), y[out].astype(np.float32)


def relative_difference(values: Mapping[str, Sequence[float | None]], reference: str,
                        higher_is_better: bool = False) -> dict[str, list[float | None]]:
    """``(v − v_ref) / |v_ref|`` per lead for every model (None where undefined).  For a metric where
    higher is better the sign is flipped, so that negative always means *better* than the reference."""
    ref = values.get(reference)
    out: dict[str, list[float | None]] = {}
    if ref is None:
        return out
    sign = -1.0 if higher_is_better else 1.0
    for name, vals in values.items():
        row = []
        for v, r in zip(vals, ref):
            if v is None or r is None or not np.isfinite(v) or not np.isfinite(r) or r == 0:
                row.append(None)
            else:
                row.append(sign * (float(v) - float(r)) / abs(float(r)))
        out[name] = row
    return out


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def pretty_units(units: str) -> str:
    """ECMWF-style unit strings for display: ``"m**2 s**-2"`` → ``"m² s⁻²"`` (no markdown asterisks)."""
    return re.sub(r"\*\*(-?\d+)", lambda m: m.group(1).translate(_SUPERSCRIPT), str(units or ""))


def _coverage(results: Mapping[str, Any]) -> str:
    """Which test windows a results.json entry scored, in words (``"333 test windows at stride 2"``)."""
    windows = results.get("windows") if isinstance(results.get("windows"), Mapping) else {}
    count = windows.get("count") or (results.get("data") or {}).get("n_windows")
    stride = windows.get("stride") or (results.get("data") or {}).get("stride")
    split = windows.get("split") or "test"
    if not count:
        return f"{split} split"
    return f"{count} {split} windows" + (f" (window starts every {stride} steps)" if stride and stride != 1 else "")


def _finite_or_none(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ================================================================================================
# views returned to the pages
# ================================================================================================

@dataclass
class FieldView:
    """Maps of one channel at one lead inside one region, ready for ``app.figures.field_panels``."""

    panels: list[tuple[str, np.ndarray]]
    differences: list[tuple[str, np.ndarray]]
    x: np.ndarray
    y: np.ndarray
    outlines: tuple[np.ndarray, np.ndarray] | None
    units: str
    geo: bool
    region: str
    channel: str
    lead_label: str
    valid_time: str
    init_time: str


@dataclass
class AttentionView:
    """Attention maps on the field grid of the region, with the field they are drawn over."""

    field: np.ndarray
    x: np.ndarray
    y: np.ndarray
    outlines: tuple[np.ndarray, np.ndarray] | None
    geo: bool
    teacher: np.ndarray | None
    phrase: np.ndarray | None
    phrase_text: str | None
    phrase_tokens: list[str]
    students: dict[str, np.ndarray]
    agreement: dict[str, dict[str, float]]
    phrase_agreement: dict[str, dict[str, float]]
    note: str = ""


@dataclass
class ScoreTable:
    """Scores per lead for every model: ``values[model] = [T_out floats or None]``."""

    metric: str
    region: str
    subset: str
    leads: list[float]
    values: dict[str, list[float | None]]
    source: str
    n_windows: int | None = None

    def to_frame(self):
        import pandas as pd

        cols = {f"+{h:g} h": [self.values[m][i] for m in self.values] for i, h in enumerate(self.leads)}
        return pd.DataFrame(cols, index=list(self.values))

    def to_csv_bytes(self) -> bytes:
        frame = self.to_frame()
        frame.index.name = "model"
        header = (f"# metric={self.metric}; region={self.region}; subset={self.subset}; "
                  f"source={self.source}\n")
        return (header + frame.to_csv()).encode("utf-8")


@dataclass
class ForecastBundle:
    """Everything computed for one init time (all leads at once), physical units."""

    index: int
    x: np.ndarray                     # (T_in, C, H, W)
    truth: np.ndarray                 # (T_out, C, H, W)
    preds: dict[str, np.ndarray]      # model -> (T_out, C, H, W)
    input_times: list[str]
    target_times: list[str]
    narrative: Any = None             # core.narratives.Narrative for text teachers
    attention: dict[str, np.ndarray] = field(default_factory=dict)          # model -> (h, w)
    attention_tokens: dict[str, np.ndarray] = field(default_factory=dict)   # model -> (L, h, w)
    bands: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # model -> (d,h,w) x2
    errors: dict[str, str] = field(default_factory=dict)


def _iso_minutes(t: Any) -> str:
    return str(np.datetime64(t, "m")).replace("T", " ")


# ================================================================================================
# the dashboard of one run set
# ================================================================================================

class Dashboard:
    """All results the pages show for one run set (see the module docstring)."""

    def __init__(self, run_set: RunSet, device: str = "cpu", max_init_times: int = MAX_INIT_TIMES,
                 max_score_windows: int = MAX_SCORE_WINDOWS, encoder=None, cache_dir: str | os.PathLike | None = None):
        self.run_set = run_set
        self.device = device
        self.max_score_windows = int(max_score_windows)
        self._lock = threading.RLock()
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._memo_size = 96  # forecast bundles are the big entries (all leads × models)
        self.problems: dict[str, str] = {}
        self._models: dict[str, Any] | None = None
        self._encoder = encoder
        self._enc_lock = threading.Lock()
        self._read_metas()
        if not self.metas:
            raise DashboardUnavailable(EmptyState(
                "No model of this run set could be loaded",
                "; ".join(f"{k}: {v}" for k, v in self.problems.items()) or "no run directories",
                CMD_TRAIN))
        self._open_data()
        n = len(self.data)
        self.init_indices = np.unique(np.linspace(0, n - 1, min(n, max_init_times)).round().astype(int))
        self.baselines: dict[str, Any] = {}
        self._load_baselines()
        self.results = results_for(run_set)
        self._disk = _open_disk_cache(cache_dir)

    # ------------------------------------------------------------------ loading
    def _read_metas(self) -> None:
        """Read every run's model.json (cheap); the weights load on first need (:attr:`models`)."""
        from core.checkpoint import load_model_meta

        self.metas: dict[str, dict] = {}
        self._baseline_runs: dict[str, str] = {}
        for name, run_dir in self.run_set.runs:
            try:
                meta = load_model_meta(run_dir)
                meta["model"]["config"]  # noqa: B018 - malformed files are reported here
            except (UserError, OSError, KeyError, TypeError) as exc:
                self.problems[name] = str(exc)
                continue
            if meta["model"].get("name") in BASELINE_NAMES:  # a fitted baseline saved as a run
                self._baseline_runs[name] = str(run_dir)
            else:
                self.metas[name] = meta
        if self.metas:
            first_name, first = next(iter(self.metas.items()))
            ref = _shape_of(first)
            for name, meta in list(self.metas.items()):
                if _shape_of(meta) != ref:
                    self.problems[name] = (f"trained on other data ({_shape_of(meta)}) than {first_name} ({ref}); "
                                           "not shown")
                    del self.metas[name]

    @property
    def models(self) -> dict[str, Any]:
        """The loaded forecasters (weights read once, on first use)."""
        with self._lock:
            if self._models is None:
                self._models = self._load_models()
            return self._models

    def _load_models(self) -> dict[str, Any]:
        from core.forecaster import load_forecaster

        models: dict[str, Any] = {}
        encoder = self.encoder() if any(_uses_text(m) for m in self.metas.values()) else None
        for name, meta in self.metas.items():
            run_dir = dict(self.run_set.runs)[name]
            try:
                models[name] = load_forecaster(run_dir, device=self.device, encoder=encoder)
            except (UserError, OSError, ValueError, RuntimeError, KeyError) as exc:
                self.problems[name] = f"{type(exc).__name__}: {exc}"
        return models

    def encoder(self):
        """The frozen sentence encoder (loaded once, on first need), or None when it cannot load."""
        with self._enc_lock:
            if self._encoder is None and "sentence encoder" not in self.problems:
                try:
                    from core.semantics import SentenceEncoder

                    self._encoder = SentenceEncoder(device="cpu")
                except Exception as exc:  # noqa: BLE001 - shown as a problem, the vision models still work
                    self.problems["sentence encoder"] = f"{type(exc).__name__}: {exc}"
            return self._encoder

    def _open_data(self) -> None:
        from core.evaluate import load_test_data
        from core.train.data import check_compatible

        desc = dict(next(iter(self.metas.values())).get("data") or {})
        root = Path(str(desc.get("root") or ""))
        found = _resolve_data_root(str(desc.get("root") or ""), self.run_set.path)
        if found is None:
            raise DashboardUnavailable(EmptyState(
                "The test data of this run set is missing",
                f"the runs were trained on {desc.get('root')!r} ({desc.get('kind') or desc.get('source')}), "
                "which is not on this machine. Generate it again (same preset and seed) or point the runs at it.",
                CMD_PREPARE if "demo" in str(root) else f"s2kd data synth --kind {desc.get('kind', 'weather')} "
                f"--preset tiny --out {root}"))
        try:
            self.data = load_test_data(found, source=desc.get("source"), channels=desc.get("channels") or None,
                                       t_in=desc.get("t_in"), t_out=desc.get("t_out"),
                                       step=int(desc.get("step", 1) or 1))
            if desc.get("channels"):
                check_compatible(desc, self.data.splits[self.data.split], what=f"data in {found}")
        except (UserError, OSError) as exc:
            raise DashboardUnavailable(EmptyState("The test data cannot be read", str(exc), CMD_PREPARE)) from None
        if len(self.data) == 0:
            raise DashboardUnavailable(EmptyState("The test split has no window", str(found), CMD_PREPARE))
        self.data_root = found
        ds = self.data.dataset
        dims = list(ds.spatial_dims)
        self.grid = self.data.grid
        self.ydim, self.xdim = dims[0], dims[1]
        self.ycoord = np.asarray(ds.grid[self.ydim], dtype=np.float64)
        self.xcoord = np.asarray(ds.grid[self.xdim], dtype=np.float64)
        self.description = desc

    def _load_baselines(self) -> None:
        """The simple baselines shown beside the models: saved baseline runs of the set, else the grid's
        default ones (fitted on the training split on first use, :func:`core.evaluate.fit_simple_baseline`)."""
        for name in self._baseline_runs:
            self.baselines[name] = ("run", self._baseline_runs[name])
        for name in BASELINES.get(self.grid, ("persistence",)):
            if name not in self.baselines and name not in self.metas:
                self.baselines[name] = ("fit", name)

    def baseline(self, name: str):
        """The baseline object ``name`` (loaded or fitted once); None when it cannot be built."""
        def make():
            kind, what = self.baselines[name]
            try:
                if kind == "run":
                    from core.forecaster import load_forecaster

                    return load_forecaster(what)
                from core.evaluate import fit_simple_baseline

                return fit_simple_baseline(name, self.data)
            except ImportError:
                return _Persistence() if name == "persistence" else None
            except Exception as exc:  # noqa: BLE001 - a missing baseline is reported, not fatal
                self.problems[name] = f"{type(exc).__name__}: {exc}"
                return _Persistence() if name == "persistence" else None

        return self._memoize(("baseline", name), make)

    def _baseline_forecast(self, name: str, indices: np.ndarray, x: np.ndarray | None = None) -> np.ndarray | None:
        """``(n, T_out, C, H, W)`` physical-unit forecast of baseline ``name`` for test windows ``indices``."""
        base = self.baseline(name)
        if base is None:
            return None
        indices = np.asarray(indices, dtype=int)
        if isinstance(base, _Persistence):
            return base.predict_windows(self.data, indices)
        from core.evaluate import baseline_forecast

        return np.asarray(baseline_forecast(base, self.data, indices, x), dtype=np.float32)

    def preds(self, index: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Forecasts ``{name: (T_out, C, H, W)}`` for window ``index``: the models' from :meth:`forecast`,
        the baselines' computed on first request (fitting a climatology costs a moment)."""
        b = self.forecast(index)
        wanted = list(names) if names is not None else self.all_names
        with self._lock:
            for n in wanted:
                if n in self.baselines and n not in b.preds and n not in b.errors:
                    try:
                        p = self._baseline_forecast(n, np.array([index]), b.x[None])
                        if p is not None:
                            b.preds[n] = np.asarray(p, dtype=np.float32)[0]
                    except Exception as exc:  # noqa: BLE001
                        b.errors[n] = f"{type(exc).__name__}: {exc}"
        return {n: b.preds[n] for n in wanted if n in b.preds}

    # ------------------------------------------------------------------ memo
    def _memoize(self, key: tuple, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            value = fn()
            self._memo[key] = value
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
            return value

    # ------------------------------------------------------------------ basic facts
    @property
    def channels(self) -> list[str]:
        return list(self.data.channels)

    @property
    def units(self) -> list[str]:
        return list(self.data.units or [""] * len(self.channels))

    @property
    def t_out(self) -> int:
        return int(self.data.t_out)

    @property
    def lead_hours(self) -> list[float]:
        return list(self.data.lead_hours)

    def lead_label(self, lead: int) -> str:
        """``lead`` is 1-based (1 … T_out)."""
        h = self.lead_hours[int(lead) - 1]
        return f"+{h:g} h" if h < 72 or h % 24 else f"+{h / 24:g} d"

    @property
    def teacher(self) -> str | None:
        for name, meta in self.metas.items():
            if _uses_text(meta):
                return name
        return None

    @property
    def students(self) -> list[str]:
        return [n for n, meta in self.metas.items() if meta["model"].get("name") == "student" or n.startswith("student")]

    @property
    def model_names(self) -> list[str]:
        return list(self.metas)

    @property
    def all_names(self) -> list[str]:
        """Trained models then baselines."""
        return list(self.metas) + [b for b in self.baselines if b not in self.metas]

    def default_models(self) -> list[str]:
        """The models the Forecasts page shows first: the text teacher and up to four students (at most
        four in all), then the first baseline."""
        names = self.all_names
        out = [n for n in names if n == self.teacher or n in self.students][:4]
        baseline = next((n for n in names if n in self.baselines), None)
        return out + ([baseline] if baseline else [])

    def default_lead(self) -> int:
        """The lead the sidebar starts at (1-based)."""
        return min(3, self.t_out)

    def warm_default_view(self) -> "FieldView":
        """The first Forecasts view of this run set (sidebar defaults: first region, channel and init time,
        :meth:`default_lead`, :meth:`default_models`), computed so that what it needs is memoised: the
        forecast bundle (from the disk cache when it is there), the baselines, the region's indices and
        outlines.  Used by :func:`preload` in the server process."""
        index = int(self.init_indices[0])
        return self.field_view(index, self.default_lead(), self.channels[0], self.regions()[0],
                               self.default_models())

    def init_times(self) -> list[str]:
        """Labels of the offered init times (the time of the last input frame), in order."""
        ds = self.data.dataset
        return [_iso_minutes(ds.window_times(int(i))[0][-1]) for i in self.init_indices]

    def init_index(self, label: str | None) -> int:
        """Dataset window index for an init-time label (the first offered one when unknown)."""
        labels = self.init_times()
        pos = labels.index(label) if label in labels else 0
        return int(self.init_indices[pos])

    def regions(self) -> list[Any]:
        """Named regions for this grid: lat/lon boxes, or the whole city and its districts (pixel boxes)."""
        from core.data.regions import Region, list_regions

        if self.grid == "latlon":
            return list_regions(pixel=False)
        h, w = self.ycoord.size, self.xcoord.size
        out = [Region("Whole city", y0=0, y1=h, x0=0, x1=w)]
        for name, d in self.city_layout().get("districts", {}).items():
            y0, y1, x0, x1 = d["box"]
            if y1 > y0 and x1 > x0:
                out.append(Region(name, y0=int(y0), y1=int(y1), x0=int(x0), x1=int(x1)))
        return out

    def region(self, spec: str | None):
        """A region from its name (this grid's list) or box text (``lat0,lat1,lon0,lon1`` / ``px:y0,y1,x0,x1``).

        Unknown or unusable text falls back to the first region (Global / Whole city) — use
        :meth:`check_region` to get the error message for the user.
        """
        try:
            return self.check_region(spec)
        except UserError:
            return self.regions()[0]

    def check_region(self, spec: str | None):
        from core.data.regions import parse_region

        regions = self.regions()
        if not spec:
            return regions[0]
        for r in regions:
            if r.name.lower() == str(spec).strip().lower():
                return r
        r = parse_region(str(spec))
        if r.is_pixel != (self.grid == "city"):
            raise UserError(f"region '{spec}': use a {'pixel box px:y0,y1,x0,x1' if self.grid == 'city' else 'lat/lon box'} "
                            "on this grid")
        self._region_indices(r)  # raises for an empty box
        return r

    def city_layout(self) -> dict:
        if self.grid != "city":
            return {}

        def make():
            try:
                from core.synth.citymap import city_layout

                return city_layout(int(self.ycoord.size))
            except (ImportError, ValueError):
                return {}

        return self._memoize(("layout",), make)

    # ------------------------------------------------------------------ regions → indices, coordinates
    def _region_indices(self, region) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of ``region`` in display order (eastward across the seam)."""
        import xarray as xr

        def make():
            H, W = self.ycoord.size, self.xcoord.size
            rows = xr.DataArray(np.repeat(np.arange(H)[:, None], W, 1), dims=(self.ydim, self.xdim),
                                coords={self.ydim: self.ycoord, self.xdim: self.xcoord})
            cols = xr.DataArray(np.repeat(np.arange(W)[None, :], H, 0), dims=(self.ydim, self.xdim),
                                coords={self.ydim: self.ycoord, self.xdim: self.xcoord})
            r = np.asarray(region.select(rows).values)[:, 0]
            c = np.asarray(region.select(cols).values)[0, :]
            return r, c

        return self._memoize(("region", region.spec, region.name), make)

    def _display_xy(self, region) -> tuple[np.ndarray, np.ndarray]:
        from core.geo import to_display_lon

        r, c = self._region_indices(region)
        y = self.ycoord[r]
        x = self.xcoord[c]
        if self.grid == "latlon":
            lon0 = 0.0 if region.full_circle else float(region.lon_min)
            x = to_display_lon(x, lon0)
            if x.size > 1 and np.any(np.diff(x) <= 0):  # keep monotonic (whole circle starting mid-grid)
                x = np.unwrap(np.deg2rad(x)) * 180 / np.pi
        return x, y

    def _outlines(self, region) -> tuple[np.ndarray, np.ndarray] | None:
        """Coastlines + borders (lat-lon; clipped to the region, seam handled) or district outlines (city),
        as NaN-separated float32 (x, y) thinned to half a grid cell (light in the browser)."""

        def make():
            if self.grid == "latlon":
                from core.geo import line_trace_xy

                lon_range = (0.0, 360.0) if region.full_circle else (float(region.lon_min), float(region.lon_max))
                span = 360.0 if region.full_circle else (float(region.lon_max) - float(region.lon_min)) % 360.0
                # borders only on regional views: on a hemisphere they are clutter at this resolution
                layers = ("coastline", "borders") if span <= 150.0 else ("coastline",)
                try:
                    x, y = line_trace_xy(layers, lon_range, (float(region.lat_min), float(region.lat_max)))
                except (UserError, OSError, ImportError):
                    return None
                step = 0.5 * float(np.median(np.abs(np.diff(self.ycoord)))) if self.ycoord.size > 1 else 0.5
                return thin_polyline(x, y, step)
            layout = self.city_layout()
            xs: list[float] = []
            ys: list[float] = []
            for d in layout.get("districts", {}).values():
                poly = list(d["polygon"]) + [d["polygon"][0]]
                for rr, cc in poly:
                    ys.append(float(rr))
                    xs.append(float(cc))
                xs.append(float("nan"))
                ys.append(float("nan"))
            return (np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.float32)) if xs else None

        return self._memoize(("outlines", region.spec), make)

    def _crop(self, a: np.ndarray, region) -> np.ndarray:
        r, c = self._region_indices(region)
        return np.asarray(a)[..., r[:, None], c[None, :]]

    def region_mask(self, region) -> np.ndarray:
        H, W = self.ycoord.size, self.xcoord.size
        r, c = self._region_indices(region)
        m = np.zeros((H, W), dtype=bool)
        m[np.ix_(r, c)] = True
        return m

    # ------------------------------------------------------------------ narratives
    def narrative(self, index: int):
        """The teacher's narrative for window ``index`` (the run's narrator settings; offline backends only)."""
        return self._memoize(("narrative", int(index)), lambda: self._make_narrative(int(index)))

    def _narrator_settings(self) -> dict[str, str]:
        meta = self.metas.get(self.teacher or "", None) or {}
        saved = dict((meta.get("data") or {}).get("narratives") or {})
        return {"backend": str(saved.get("backend") or "diagnostic"), "scope": str(saved.get("scope") or "context")}

    def _make_narrative(self, index: int):
        from core.narratives import build_narrator, narrate_cached
        from core.narratives.commands import dataset_context, window_input

        settings = self._narrator_settings()
        backend = settings["backend"]
        note = ""
        if backend != "diagnostic":
            note = (f"The teacher was trained with '{backend}' narratives; the dashboard runs offline and shows "
                    "the diagnostic narrator's text.")
            backend = "diagnostic"
        narrator = build_narrator(backend, scope=settings["scope"])
        ctx = self._memoize(("context",), lambda: dataset_context(self.data_root, self.data.splits[self.data.split],
                                                                  self.data.splits.get("train")))
        window = window_input(self.data.dataset, index, ctx[0], ctx[1], self.data.source)
        # stored in the dashboard's disk cache (keyed by the visible window, context and narrator code): a
        # restarted app finds the default view's narrative, and with it the forecast key, without computing it
        narrative, _ = narrate_cached(narrator, window, self._disk)
        if note:
            narrative = _with_note(narrative, note)
        return narrative

    def phrases(self, index: int) -> list[str]:
        nar = self.narrative(index) if self.teacher else None
        return split_phrases(nar.text) if nar is not None else []

    def tokens(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """The sentence encoder's tokens of ``text`` and their character offsets (specials at ``(0, 0)``)."""
        enc = self.encoder()
        if enc is None:
            raise UserError("no sentence encoder is loaded (the run set has no text teacher)")
        out = enc.tokenizer(text, truncation=True, max_length=enc.max_length, return_offsets_mapping=True)
        ids = out["input_ids"]
        return enc.tokenizer.convert_ids_to_tokens(ids), [tuple(o) for o in out["offset_mapping"]]

    def phrase_tokens(self, text: str, phrase: str) -> list[int]:
        """Token indices (into the teacher's per-token attention) covering ``phrase`` inside ``text``."""
        span = phrase_span(text, phrase)
        if span is None:
            return []
        _, offsets = self.tokens(text)
        return token_indices_for_span(offsets, *span)

    # ------------------------------------------------------------------ forecasts
    def forecast(self, index: int) -> ForecastBundle:
        """Forecasts of every model (and baseline) for window ``index``, all leads at once.

        Kept in memory, and on disk (:func:`_open_disk_cache`, raw arrays + JSON, keyed by a content hash
        of the window, the weights and the narrator settings) so that a restarted app shows a viewed init
        time without loading the models."""
        return self._memoize(("forecast", int(index)), lambda: self._cached_forecast(int(index)))

    def _forecast_key(self, index: int) -> str:
        from core.cache import content_key

        from core import __version__

        x, y = self.data.dataset.window_arrays(index)
        weights = sorted((n, str(m.get("weights_sha256") or dict(self.run_set.runs)[n])) for n, m in self.metas.items())
        # the narrative's text is part of the key: a changed narrator never serves a stale teacher forecast
        text = self.narrative(index).text if self.teacher is not None else None
        return content_key(FORECAST_CACHE_VERSION, __version__, weights, sorted(self.baselines),
                           self._narrator_settings(), text, x, y, self.data.source)

    def _cached_forecast(self, index: int) -> ForecastBundle:
        key = None
        if self._disk is not None:
            try:
                key = self._forecast_key(index)
                hit = _bundle_from_cache(self._disk, key, index,
                                         self.narrative(index) if self.teacher is not None else None)
                if hit is not None:
                    return hit
            except Exception:  # noqa: BLE001 - a broken cache entry is recomputed
                key = key
        bundle = self._make_forecast(index)
        if self._disk is not None and key is not None and not bundle.errors:
            try:
                _bundle_to_cache(self._disk, key, bundle)
            except Exception:  # noqa: BLE001 - caching is an optimisation only
                pass
        return bundle

    def _make_forecast(self, index: int) -> ForecastBundle:
        import torch

        ds = self.data.dataset
        x, y = ds.window_arrays(index)
        t_in, t_out = ds.window_times(index)
        bundle = ForecastBundle(index=index, x=x, truth=y, preds={}, input_times=[_iso_minutes(t) for t in t_in],
                                target_times=[_iso_minutes(t) for t in t_out])
        narrative = None
        if self.teacher is not None:
            try:
                narrative = self.narrative(index)
            except Exception as exc:  # noqa: BLE001 - the teacher then forecasts without text
                bundle.errors["narrative"] = f"{type(exc).__name__}: {exc}"
        bundle.narrative = narrative
        for name, fc in self.models.items():
            try:
                xn = np.ascontiguousarray(fc.normalizer.apply(x), dtype=np.float32)[None]
                text = narrative.text if (fc.uses_text and narrative is not None) else None
                out = fc.outputs(torch.from_numpy(xn), text, features=True)
                f = out["forecast"][0].detach().cpu().numpy()
                bundle.preds[name] = np.asarray(fc.normalizer.invert(f), dtype=np.float32)
                for key in ("attention", "absorbed_attention"):
                    if key in out and out[key] is not None and (key == "absorbed_attention" or text is not None):
                        bundle.attention[name] = out[key][0].detach().cpu().numpy().astype(np.float32)
                        break
                if "attention_tokens" in out and text is not None:
                    bundle.attention_tokens[name] = out["attention_tokens"][0].detach().cpu().numpy().astype(np.float32)
                if "latent_low" in out and "latent_high" in out:
                    bundle.bands[name] = (out["latent_low"][0].detach().cpu().numpy().astype(np.float32),
                                          out["latent_high"][0].detach().cpu().numpy().astype(np.float32))
            except Exception as exc:  # noqa: BLE001 - one broken model must not blank the page
                bundle.errors[name] = f"{type(exc).__name__}: {exc}"
        if "persistence" in self.baselines:  # cheap; the others are added on request (self.preds)
            try:
                p = self._baseline_forecast("persistence", np.array([index]), x[None])
                if p is not None:
                    bundle.preds["persistence"] = np.asarray(p, dtype=np.float32)[0]
            except Exception as exc:  # noqa: BLE001
                bundle.errors["persistence"] = f"{type(exc).__name__}: {exc}"
        return bundle

    def field_view(self, index: int, lead: int, channel: str, region, models: Sequence[str] | None = None,
                   n_inputs: int = 2) -> FieldView:
        """Input (last ``n_inputs`` frames), truth and each model's forecast at ``lead`` (1-based) for
        ``channel`` inside ``region``, and each model's difference to the truth."""
        b = self.forecast(index)
        self.preds(index, models)  # baselines on request
        ci = self._channel_index(channel)
        lead = int(np.clip(int(lead), 1, self.t_out))
        names = [m for m in (models if models is not None else list(b.preds)) if m in b.preds]
        panels: list[tuple[str, np.ndarray]] = []
        for k in range(min(n_inputs, b.x.shape[0]), 0, -1):
            t = b.input_times[-k]
            panels.append((f"input {t[5:]}" if k > 1 else f"input {t[5:]} (t0)", self._crop(b.x[-k, ci], region)))
        truth = self._crop(b.truth[lead - 1, ci], region)
        panels.append((f"truth {self.lead_label(lead)}", truth))
        diffs = []
        for m in names:
            f = self._crop(b.preds[m][lead - 1, ci], region)
            panels.append((m, f))
            diffs.append((f"{m} − truth", f - truth))
        x, y = self._display_xy(region)
        return FieldView(panels=panels, differences=diffs, x=x, y=y, outlines=self._outlines(region),
                         units=pretty_units(self.units[ci]), geo=self.grid == "latlon", region=region.name, channel=channel,
                         lead_label=self.lead_label(lead), valid_time=b.target_times[lead - 1],
                         init_time=b.input_times[-1])

    def lead_stack(self, index: int, channel: str, region, models: Sequence[str]) -> dict[str, np.ndarray]:
        """``{"truth": (T_out, h, w), model: (T_out, h, w)}`` cropped to the region (for animations)."""
        b = self.forecast(index)
        self.preds(index, models)  # baselines on request
        ci = self._channel_index(channel)
        out = {"truth": self._crop(b.truth[:, ci], region)}
        for m in models:
            if m in b.preds:
                out[m] = self._crop(b.preds[m][:, ci], region)
        return out

    def _channel_index(self, channel: str) -> int:
        try:
            return self.channels.index(str(channel))
        except ValueError:
            return 0

    # ------------------------------------------------------------------ export
    def netcdf_bytes(self, index: int, region, models: Sequence[str] | None = None) -> bytes:
        """NetCDF (bytes) of the shown forecast: truth and each model for all leads and channels in the region."""
        import xarray as xr

        b = self.forecast(index)
        self.preds(index, models)  # baselines on request
        names = [m for m in (models if models is not None else list(b.preds)) if m in b.preds]
        r, c = self._region_indices(region)
        times = np.array([np.datetime64(t.replace(" ", "T")) for t in b.target_times], dtype="datetime64[ns]")
        coords = {"time": times, "channel": self.channels, "units": ("channel", self.units),
                  self.ydim: self.ycoord[r], self.xdim: self.xcoord[c],
                  "lead_hours": ("time", np.asarray(self.lead_hours, dtype=np.float64))}
        dims = ("time", "channel", self.ydim, self.xdim)
        data_vars = {"truth": (dims, self._crop(b.truth, region).astype(np.float32))}
        for m in names:
            data_vars[_var_name(m)] = (dims, self._crop(b.preds[m], region).astype(np.float32))
        ds = xr.Dataset(data_vars, coords=coords, attrs={
            "title": f"s2kd forecasts from {b.input_times[-1]} ({self.run_set.name})",
            "init_time": b.input_times[-1], "region": region.name, "run_set": self.run_set.key,
            "models": ", ".join(names), "source": str(self.data.source), "grid": self.grid,
            "Conventions": "CF-1.8"})
        for m in names:
            ds[_var_name(m)].attrs["model"] = m
        try:
            return bytes(ds.to_netcdf(path=None, engine="scipy"))
        except (ValueError, ImportError):
            return bytes(ds.to_netcdf(path=None))

    def static_map_png(self, view: FieldView, cols: int = 4, dpi: int = 110) -> bytes:
        """A static PNG of the panels of ``view`` (cartopy map panels for lat-lon grids, reading only the
        shipped Natural Earth files; plain image panels for city grids)."""
        return static_map_png(view, cols=cols, dpi=dpi)

    # ------------------------------------------------------------------ attention
    def attention_view(self, index: int, channel: str, region, lead: int = 1, phrase: str | None = None,
                       fraction: float = TOP_FRACTION) -> AttentionView:
        """Teacher (whole narrative), teacher (one phrase), students' absorbed maps and their agreement,
        on the field grid of ``region``, over the truth at ``lead``."""
        b = self.forecast(index)
        ci = self._channel_index(channel)
        H, W = self.ycoord.size, self.xcoord.size
        field_ = self._crop(b.truth[int(np.clip(lead, 1, self.t_out)) - 1, ci], region)
        x, y = self._display_xy(region)
        teacher = None
        phrase_map = None
        tokens: list[str] = []
        note = ""
        t = self.teacher
        if t is not None and t in b.attention:
            teacher = self._crop(_normalise_map(upsample(b.attention[t], (H, W))), region)
            if phrase and t in b.attention_tokens and b.narrative is not None:
                idx = self.phrase_tokens(b.narrative.text, phrase)
                per_tok = b.attention_tokens[t]
                idx = [i for i in idx if i < per_tok.shape[0]]
                if idx:
                    phrase_map = self._crop(_normalise_map(upsample(per_tok[idx].sum(0), (H, W))), region)
                    toks, _ = self.tokens(b.narrative.text)
                    tokens = [toks[i] for i in idx if i < len(toks)]
                else:
                    note = f"the phrase {phrase!r} does not occur in the narrative"
        elif t is None:
            note = "this run set has no text teacher (teacher-s2): no text-grounded attention to show"
        students = {}
        for s in self.students:
            if s in b.attention:
                students[s] = self._crop(_normalise_map(upsample(b.attention[s], (H, W))), region)
        agree = {s: agreement(teacher, m, fraction) for s, m in students.items()} if teacher is not None else {}
        pagree = {s: agreement(phrase_map, m, fraction) for s, m in students.items()} if phrase_map is not None else {}
        return AttentionView(field=field_, x=x, y=y, outlines=self._outlines(region), geo=self.grid == "latlon",
                             teacher=teacher, phrase=phrase_map, phrase_text=phrase if phrase_map is not None else None,
                             phrase_tokens=tokens, students=students, agreement=agree, phrase_agreement=pagree,
                             note=note)

    # ------------------------------------------------------------------ spectra
    def spectra(self, index: int, lead: int, channel: str, region, models: Sequence[str] | None = None) -> dict:
        """Spectra of truth and each model at ``lead``: zonal energy spectrum over the region's latitude
        rows (full circles) on lat-lon grids, radially averaged PSD of the region box on city grids."""
        from core.spectral import radial_psd, zonal_energy_spectrum

        b = self.forecast(index)
        self.preds(index, models)  # baselines on request
        ci = self._channel_index(channel)
        lead = int(np.clip(int(lead), 1, self.t_out))
        names = [m for m in (models if models is not None else list(b.preds)) if m in b.preds]
        fields = {"truth": b.truth[lead - 1, ci], **{m: b.preds[m][lead - 1, ci] for m in names}}
        r, c = self._region_indices(region)
        if self.grid == "latlon":
            rows = np.zeros(self.ycoord.size, dtype=bool)
            rows[r] = True
            spec = {k: zonal_energy_spectrum(v, rows=rows) for k, v in fields.items()}
            k = np.arange(next(iter(spec.values())).size)
            xlabel, ylabel = "zonal wavenumber", f"energy ({pretty_units(self.units[ci])})²"
            cutoff = 0.25 * (self.xcoord.size / 2)
        else:
            spec = {k: radial_psd(self._crop(v, region)) for k, v in fields.items()}
            k = np.arange(next(iter(spec.values())).size)
            xlabel, ylabel = "radial wavenumber (cycles per box)", f"PSD ({pretty_units(self.units[ci])})²"
            cutoff = 0.25 * (min(len(r), len(c)) / 2)
        return {"k": k, "spectra": spec, "xlabel": xlabel, "ylabel": ylabel, "cutoff_k": cutoff,
                "lead_label": self.lead_label(lead)}

    def high_band_ratio(self, index: int, channel: str, region, models: Sequence[str] | None = None,
                        cutoff: float = 0.25) -> dict[str, list[float | None]]:
        """Predicted / true power in the high band (the project's band split) per lead, for this init
        time: ``{model: [T_out ratios]}`` (1 = as much small-scale detail as the truth)."""
        from core.spectral import high_band_power

        b = self.forecast(index)
        self.preds(index, models)  # baselines on request
        ci = self._channel_index(channel)
        names = [m for m in (models if models is not None else list(b.preds)) if m in b.preds]
        periodic = (False, True) if self.grid == "latlon" else (False, False)
        weights = self.region_mask(region).astype(np.float64)
        if self.grid == "latlon":
            from core.metrics import lat_weights

            weights = weights * lat_weights(self.ycoord)[:, None]
        true = high_band_power(b.truth[:, ci], cutoff, periodic, weights)
        out = {}
        for m in names:
            p = high_band_power(b.preds[m][:, ci], cutoff, periodic, weights)
            out[m] = [_finite_or_none(v) for v in (p / np.where(true > 0, true, np.nan))]
        return out

    def teacher_bands(self, index: int, region, model: str | None = None) -> dict | None:
        """The teacher's latent low and high bands (RMS over the latent channels), on the field grid."""
        b = self.forecast(index)
        name = model or self.teacher or next((n for n in b.bands if n.startswith("teacher")), None)
        if name is None or name not in b.bands:
            return None
        low, high = b.bands[name]
        H, W = self.ycoord.size, self.xcoord.size
        lo = np.sqrt((low.astype(np.float64) ** 2).mean(0))
        hi = np.sqrt((high.astype(np.float64) ** 2).mean(0))
        x, y = self._display_xy(region)
        return {"model": name, "latent_shape": tuple(low.shape), "x": x, "y": y, "outlines": self._outlines(region),
                "geo": self.grid == "latlon", "low": self._crop(upsample(lo, (H, W)), region),
                "high": self._crop(upsample(hi, (H, W)), region),
                "low_energy": float((low.astype(np.float64) ** 2).mean()),
                "high_energy": float((high.astype(np.float64) ** 2).mean())}

    # ------------------------------------------------------------------ scores
    def metrics(self) -> list[str]:
        """Metric names offered on the Compare page."""
        from core.metrics import DEFAULT_CITY_METRICS, DEFAULT_WEATHER_METRICS

        names = list(DEFAULT_WEATHER_METRICS if self.grid == "latlon" else DEFAULT_CITY_METRICS)
        if "climatology" not in self.baselines:
            names = [m for m in names if m != "acc"]
        if self.results:
            for entry in self.results["models"].values():
                for k in (entry.get("test") or {}):
                    if k not in names:
                        names.append(k)
        return names

    def scores(self, metric: str, region, subset: str = "test") -> ScoreTable:
        """Scores per lead of every model: from ``results.json`` when it covers this view (whole domain;
        the windows it scored are stated), computed here with :func:`core.evaluate.evaluate` otherwise."""
        key = ("scores", metric, region.spec, region.name, subset)
        return self._memoize(key, lambda: self._make_scores(metric, region, subset))

    def _make_scores(self, metric: str, region, subset: str, allow_compute: bool = True) -> ScoreTable | None:
        whole = region.is_global if not region.is_pixel else (
            region.y0 == 0 and region.x0 == 0 and region.y1 == self.ycoord.size and region.x1 == self.xcoord.size)
        if whole and self.results:
            vals: dict[str, list[float | None]] = {}
            for name in self.all_names:
                entry = self.results["models"].get(name)
                series = ((entry or {}).get(subset) or {}).get(metric) if entry else None
                if series is not None:
                    vals[name] = [_finite_or_none(v) for v in series]
            if vals and all(n in vals for n in self.metas):
                return ScoreTable(metric, region.name, subset, self.lead_hours, vals,
                                  source=f"results.json ({_rel(self.run_set.results_path)}), {_coverage(self.results)}")
        if whole:
            files = self._score_files()
            vals = {}
            n = None
            for name in self.all_names:
                series = ((files.get(name) or {}).get(subset) or {}).get(metric)
                if series is not None:
                    vals[name] = [_finite_or_none(v) for v in series]
                    n = ((files[name].get("n_windows") or {}).get(subset)) or n
            if vals and all(m in vals for m in self.metas):
                return ScoreTable(metric, region.name, subset, self.lead_hours, vals,
                                  source=f"{SCORES_JSON} of each run (core.evaluate on the test split)", n_windows=n)
        if not allow_compute:
            return None
        computed = self._computed_scores(region)
        vals = {}
        n = None
        for name, res in computed.items():
            series = (res.get(subset) or {}).get(metric)
            if series is not None:
                vals[name] = [_finite_or_none(v) for v in series]
                n = (res.get("n_windows") or {}).get(subset, n)
        return ScoreTable(metric, region.name, subset, self.lead_hours, vals,
                          source=f"computed here on {len(self._score_windows())} evenly spaced test windows",
                          n_windows=n)

    def _score_files(self) -> dict[str, dict]:
        """``scores.json`` (a :func:`core.evaluate.evaluate_run` result, whole domain) beside each run."""
        def make():
            out = {}
            for name, run_dir in self.run_set.runs:
                obj = _read_json(Path(run_dir) / SCORES_JSON)
                if obj and not obj.get("region") and isinstance(obj.get("test"), Mapping):
                    out[name] = obj
            return out

        return self._memoize(("score-files",), make)

    def _score_windows(self) -> np.ndarray:
        n = len(self.data)
        return np.unique(np.linspace(0, n - 1, min(n, self.max_score_windows)).round().astype(int))

    def _score_predictions(self) -> dict[str, np.ndarray]:
        """Forecasts (physical units) of every model on the scoring windows, computed once."""

        def make():
            import torch

            idx = self._score_windows()
            x, _ = self.data.frames(idx)
            out: dict[str, np.ndarray] = {}
            for name, fc in self.models.items():
                try:
                    texts = [self.narrative(int(i)).text for i in idx] if fc.uses_text else None
                    preds = []
                    for s in range(0, len(idx), 16):
                        xn = np.ascontiguousarray(fc.normalizer.apply(x[s:s + 16]), dtype=np.float32)
                        y = fc.predict(torch.from_numpy(xn), texts[s:s + 16] if texts else None)
                        preds.append(np.asarray(fc.normalizer.invert(y.detach().cpu().numpy()), dtype=np.float32))
                    out[name] = np.concatenate(preds)
                except Exception as exc:  # noqa: BLE001
                    self.problems[name] = f"scoring failed: {type(exc).__name__}: {exc}"
            for name in self.baselines:
                try:
                    p = self._baseline_forecast(name, idx, x)
                    if p is not None:
                        out[name] = np.asarray(p, dtype=np.float32)
                except Exception as exc:  # noqa: BLE001
                    self.problems[name] = f"scoring failed: {type(exc).__name__}: {exc}"
            return out

        return self._memoize(("score-preds",), make)

    def _computed_scores(self, region) -> dict[str, dict]:
        def make():
            import dataclasses

            from core.evaluate import evaluate
            from core.train.data import WindowSubset

            idx = self._score_windows()
            sub = dataclasses.replace(self.data, dataset=WindowSubset(self.data.dataset, idx),
                                      nonstationary=np.asarray(self.data.nonstationary)[idx])
            preds = self._score_predictions()
            metrics = self.metrics()
            if self.grid == "latlon" and "climatology" not in self.baselines:
                metrics = [m for m in metrics if m != "acc"]
            from core.metrics import metric_names

            metrics = [m for m in metrics if m in metric_names()]
            out = {}
            for name, p in preds.items():
                fn = (lambda arr: (lambda xb, ib: arr[np.asarray(ib, dtype=int)]))(p)
                try:
                    out[name] = evaluate(fn, sub, region=region if not _is_whole(region, self) else None,
                                         metrics=metrics, name=name)
                except Exception as exc:  # noqa: BLE001
                    self.problems[name] = f"scoring failed: {type(exc).__name__}: {exc}"
            return out

        return self._memoize(("computed-scores", region.spec, region.name), make)

    def scorecard(self, metric: str, region, subset: str = "test", reference: str = REFERENCE_MODEL):
        """Relative difference to ``reference`` per lead (negative = better), as a DataFrame, or None
        when the reference has no scores."""
        import pandas as pd

        table = self.scores(metric, region, subset)
        if reference not in table.values:
            return None
        rel = relative_difference(table.values, reference, metric in HIGHER_IS_BETTER)
        cols = {f"+{h:g} h": [rel[m][i] for m in rel] for i, h in enumerate(table.leads)}
        return pd.DataFrame(cols, index=list(rel))

    def cost_table(self):
        """Size and speed of every model: params, FLOPs, latency at batch 1 and 32 (results.json when
        present, else parameters and FLOPs measured here; latency only from the benchmark)."""
        import pandas as pd

        def make():
            rows = []
            bench = (self.results or {}).get("models", {}) if self.results else {}
            for name, fc in self.models.items():
                entry = bench.get(name) or {}
                lat = entry.get("latency_ms") or {}
                params = entry.get("params")
                flops = entry.get("flops")
                source = "results.json" if entry else "measured here"
                if params is None or flops is None:
                    try:
                        from core.cost import count_flops, count_parameters

                        params = params if params is not None else count_parameters(fc.module)[0]
                        if flops is None:
                            extra = None
                            if fc.uses_text:  # a narrative of 32 tokens (the teacher's cost grows with its length)
                                import torch

                                extra = {"text_tokens": (32, 384), "text_mask": torch.ones(1, 32, dtype=torch.bool),
                                         "text_pooled": (384,)}
                            flops = count_flops(fc.module, tuple(fc.in_shape), extra_inputs=extra)
                    except Exception:  # noqa: BLE001
                        pass
                rows.append({"model": name, "params": params, "FLOPs": flops,
                             "latency b1 (ms)": lat.get("b1"), "latency b32 (ms)": lat.get("b32"),
                             "source": source})
            return rows

        rows = self._memoize(("cost",), make)
        frame = pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()
        return frame

    # ------------------------------------------------------------------ overview
    def overview(self) -> dict:
        """What is loaded: data, models (name, kind, training method, sizes, run folder), problems."""
        d = self.description
        models = []
        runs = dict(self.run_set.runs)
        for name, meta in self.metas.items():
            training = dict(meta.get("training") or {})
            metrics = dict(meta.get("metrics") or {})
            try:
                size = (Path(runs[name]) / "model.safetensors").stat().st_size / 1e6
            except OSError:
                size = None
            models.append({"model": name, "architecture": meta["model"]["name"],
                           "text input": "yes" if _uses_text(meta) else "no",
                           "distillation": training.get("method"),
                           "teacher": _rel(training["teacher"]) if training.get("teacher") else None,
                           "weights (MB)": None if size is None else round(size, 3),
                           "best val MSE": _finite_or_none(metrics.get("best_val_mse")),
                           "epochs": metrics.get("epochs_done"), "run": _rel(runs[name])})
        for name in self.baselines:
            models.append({"model": name, "architecture": "baseline", "text input": "no", "distillation": None,
                           "teacher": None, "weights (MB)": None, "best val MSE": None, "epochs": None,
                           "run": _rel(self.baselines[name][1]) if self.baselines[name][0] == "run"
                           else "core.baselines (fitted on the training split)"})
        return {
            "run_set": self.run_set.key, "dataset": self.run_set.dataset, "grid": self.grid,
            "source": self.data.source, "root": _rel(self.data_root), "channels": self.channels,
            "units": self.units, "t_in": int(self.data.t_in), "t_out": self.t_out,
            "cadence": str(d.get("cadence") or ""), "test_windows": len(self.data),
            "nonstationary_windows": int(np.asarray(self.data.nonstationary).sum()),
            "split_dates": d.get("split_dates"), "models": models, "problems": dict(self.problems),
            "results": self.run_set.results_path and _rel(self.run_set.results_path),
            "grid_shape": (int(self.ycoord.size), int(self.xcoord.size)),
        }

    def headline(self, region=None, compute: bool = False) -> ScoreTable | None:
        """The headline score (lat-weighted RMSE on weather, MSE on city grids) on all test windows of the
        whole domain: from results.json, or computed here when ``compute`` (None otherwise)."""
        region = region or self.regions()[0]
        metric = "wrmse" if self.grid == "latlon" else "mse"
        if not compute and not self.results and not self._score_files():
            return None
        try:
            table = self.scores(metric, region, "test") if compute else self._make_scores(metric, region, "test",
                                                                                           allow_compute=False)
        except Exception:  # noqa: BLE001
            return None
        return table if table is not None and table.values else None


WARM_NAMESPACE = "dashboard-warm"
WARM_VERSION = "dashboard-warm-v2"  # v2: narratives are cached too


def _resolve_data_root(root: str, run_set_path: str) -> Path | None:
    """The data folder a run's ``data.root`` names: absolute, or relative to the working directory, the
    project root or the run set folder (the first that exists)."""
    r = Path(str(root or ""))
    candidates = [r] if r.is_absolute() else [Path.cwd() / r, PROJECT_ROOT / r, Path(run_set_path) / r]
    return next((c for c in candidates if c.is_dir()), None)


def _warm_marker(run_set: RunSet, inits: int) -> str | None:
    """Content key of what a warm-up of ``run_set`` depends on: every run's ``model.json`` (which holds the
    sha256 of its weights and its narrator settings), the listing of the data folder (relative path, size,
    mtime of every file), the number of init times, the code and cache versions.  None when a file cannot
    be read (then the run set is warmed again)."""
    from core import __version__
    from core.cache import content_key

    import hashlib

    runs, root = [], None
    try:
        for name, run_dir in run_set.runs:
            blob = (Path(run_dir) / "model.json").read_bytes()
            runs.append((name, hashlib.sha256(blob).hexdigest()))
            if root is None:
                root = (json.loads(blob).get("data") or {}).get("root")
        data = _resolve_data_root(str(root or ""), run_set.path)
        if data is None:
            return None
        listing = []
        for dirpath, dirnames, filenames in os.walk(data):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                listing.append((os.path.relpath(os.path.join(dirpath, f), data), st.st_size, st.st_mtime_ns))
    except (OSError, ValueError, AttributeError):
        return None
    return content_key(WARM_VERSION, FORECAST_CACHE_VERSION, __version__, runs, listing, int(inits))


def warm_cache(roots: Sequence[str | os.PathLike] | None = None, inits: int = 1,
               cache_dir: str | os.PathLike | None = None, force: bool = False,
               log: Callable[[str], None] | None = None) -> list[str]:
    """Compute and store (on-disk forecast cache) the forecasts of the first ``inits`` init times of every
    run set, so that the app's first Forecasts page after a start loads no model.  Returns the run-set keys
    warm at the end; run sets that cannot be shown are skipped.  ``make app`` calls it before starting the
    server (``s2kd data prepare --warm-dashboard``).

    A run set already warmed for the same runs and data (:func:`_warm_marker`, a JSON entry of the same
    disk cache) is skipped without opening it, unless ``force``: a start then costs no model, data or
    library load.  The marker only decides whether to warm again; the forecasts themselves are always
    looked up by their own content keys."""
    import time

    say = log or (lambda _msg: None)
    disk = _open_disk_cache(cache_dir)
    if disk is None:
        say("dashboard cache: off or not writable; nothing warmed")
        return []
    done = []
    for rs in find_run_sets(roots):
        marker = _warm_marker(rs, inits)
        if marker is not None and not force and disk.get_json(WARM_NAMESPACE, marker) is not None:
            say(f"dashboard cache: {rs.key} already warm")
            done.append(rs.key)
            continue
        t0 = time.perf_counter()
        try:
            d = Dashboard(rs, cache_dir=cache_dir)
        except DashboardUnavailable as exc:
            say(f"dashboard cache: {rs.key} skipped ({exc})")
            continue
        errors: dict[str, str] = {}
        for label in d.init_times()[: max(1, int(inits))]:
            errors.update(d.forecast(d.init_index(label)).errors)  # a bundle with errors is not cached
        if not errors and marker is not None:
            disk.put_json(WARM_NAMESPACE, marker, {"run_set": rs.key, "inits": int(inits)})
        done.append(rs.key)
        say(f"dashboard cache: {rs.key} warmed in {time.perf_counter() - t0:.1f} s"
            + (f" (not cached, {len(errors)} problem(s): {', '.join(sorted(errors))})" if errors else ""))
    return done


# ------------------------------------------------------------------------------------------------
# preloading in the server process (app/serve.py): the first page finds its run set loaded
# ------------------------------------------------------------------------------------------------

#: How many run sets :func:`preload` builds (the app's ``st.cache_resource`` keeps four).
PRELOAD_MAX_SETS = 4
_PRELOAD_LOCK = threading.Lock()
_PRELOADS: dict[str, tuple[str, Any]] = {}   # run-set key -> (signature, concurrent.futures.Future)
_PRELOAD_QUEUE: list[tuple[RunSet, Any]] = []  # not started yet, in order
_PRELOAD_ACTIVITY = [0.0]  # time.monotonic() of the app's last script run (note_activity)
_PRELOAD_WAITERS = [0]     # pages waiting in take_preloaded
#: The preload thread starts its next step only after the app has been idle this long (no script run),
#: unless a page is waiting for it: one interpreter lock and two cores, so background work would slow the
#: page the user is looking at, which the browser is still drawing seconds after the script run ended.
PRELOAD_YIELD_S = 6.0
#: What the dashboards import to open their test data and show a warmed view: imported first, before any
#: run set.  Nothing here imports torch (the data path, the disk cache and the narratives do not).
PRELOAD_MODULES = ("numpy", "pandas", "xarray", "dask.array", "h5py", "netCDF4", "core.cache",
                   "core.checkpoint", "core.evaluate", "core.data", "core.data.windows", "core.data.splits",
                   "core.data.nonstationary", "core.data.regions", "core.baselines", "core.narratives",
                   "core.narratives.commands", "core.geo", "core.spectral")
#: What a page needs once it runs a model (an init time not in the disk cache, the teacher's attention for
#: a picked phrase, the latent bands): imported last, when every run set is built and the app is idle.
PRELOAD_LATE_MODULES = ("torch", "core.forecaster", "models", "core.semantics")


def note_activity() -> None:
    """Called by the app at every script run: the preload thread waits :data:`PRELOAD_YIELD_S` after it."""
    import time

    _PRELOAD_ACTIVITY[0] = time.monotonic()


def _wait_until_idle() -> None:
    """Sleep until the app has been idle :data:`PRELOAD_YIELD_S` or a page waits for a preload."""
    import time

    while not _PRELOAD_WAITERS[0]:
        wait = _PRELOAD_ACTIVITY[0] + PRELOAD_YIELD_S - time.monotonic()
        if wait <= 0:
            return
        time.sleep(min(wait, 0.05))


def preload(run_sets: Sequence[RunSet] | None = None, cache_dir: str | os.PathLike | None = None,
            max_sets: int = PRELOAD_MAX_SETS, on_ready: Callable[["Dashboard"], None] | None = None,
            log: Callable[[str], None] | None = None) -> threading.Thread | None:
    """Build the :class:`Dashboard` of the first ``max_sets`` run sets (default: :func:`find_run_sets`, in
    the app's order) one after the other in a background thread, each with its default Forecasts view
    computed (:meth:`Dashboard.warm_default_view`, served from the disk cache that ``make app`` warmed, so
    no model and no torch is needed), then import :data:`PRELOAD_LATE_MODULES`.

    The app takes them with :func:`take_preloaded` instead of building them itself: a page opened while
    the server is still starting waits for what is left of that work (the libraries of
    :data:`PRELOAD_MODULES` first, then its own run set, which moves to the front of the queue), one opened
    later finds it done.  Between steps the thread waits until the app has been idle for
    :data:`PRELOAD_YIELD_S` (:func:`note_activity`) unless a page waits for it.  Everything is built in this
    one thread, so the page's thread never imports the heavy libraries at the same time.
    ``on_ready(dashboard)`` runs in the thread after each one (the app warms its figure code there); ``log``
    gets one line per run set.  Returns the thread (None when there is nothing to build)."""
    import time
    from concurrent.futures import Future

    say = log or (lambda _msg: None)

    sets = list(find_run_sets() if run_sets is None else run_sets)[: max(0, int(max_sets))]
    added = 0
    with _PRELOAD_LOCK:
        for rs in sets:
            if rs.key not in _PRELOADS:
                fut: Future = Future()
                _PRELOADS[rs.key] = (rs.signature, fut)
                _PRELOAD_QUEUE.append((rs, fut))
                added += 1
    if not added:
        return None

    def import_all(names: Sequence[str]) -> None:
        import importlib

        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - an optional library: imported when needed, if ever
                pass

    def work() -> None:
        import_all(PRELOAD_MODULES)
        while True:
            _wait_until_idle()
            with _PRELOAD_LOCK:
                if not _PRELOAD_QUEUE:
                    break
                rs, fut = _PRELOAD_QUEUE.pop(0)
            if not fut.set_running_or_notify_cancel():
                continue
            t0 = time.perf_counter()
            try:
                d = Dashboard(rs, cache_dir=cache_dir)
            except BaseException as exc:  # noqa: BLE001 - handed to the page that asks for this run set
                fut.set_exception(exc)
                say(f"dashboard: {rs.key} cannot be shown ({exc})")
                continue
            try:
                d.warm_default_view()
                if on_ready is not None:
                    on_ready(d)
            except Exception:  # noqa: BLE001 - only a head start: the page computes (and reports) it itself
                pass
            fut.set_result(d)
            say(f"dashboard: {rs.key} loaded in {time.perf_counter() - t0:.1f} s"
                f"{'' if d._models is None else ' (models loaded: the forecast was not in the disk cache)'}")
        _wait_until_idle()
        t0 = time.perf_counter()
        import_all(PRELOAD_LATE_MODULES)
        say(f"dashboard: model libraries imported in {time.perf_counter() - t0:.1f} s")

    thread = threading.Thread(target=work, name="s2kd-preload", daemon=True)
    thread.start()
    return thread


def take_preloaded(run_set: RunSet) -> "Dashboard | None":
    """The preloaded :class:`Dashboard` of ``run_set``, waiting while the preload thread gets to it (it
    moves to the front of the queue) and builds it; None when it was not preloaded or was preloaded for
    other runs (the signature changed).  Raises what building it raised (e.g. :class:`DashboardUnavailable`).
    Each preloaded object is handed out once."""
    with _PRELOAD_LOCK:
        entry = _PRELOADS.pop(run_set.key, None)
        if entry is None:
            return None
        signature, fut = entry
        queued = [job for job in _PRELOAD_QUEUE if job[1] is fut]
        if queued:
            _PRELOAD_QUEUE.remove(queued[0])
            _PRELOAD_QUEUE.insert(0, queued[0])
    if signature != run_set.signature:
        fut.cancel()  # not wanted any more (a running build finishes and is dropped)
        return None
    with _PRELOAD_LOCK:
        _PRELOAD_WAITERS[0] += 1
    try:
        return fut.result()
    finally:
        with _PRELOAD_LOCK:
            _PRELOAD_WAITERS[0] -= 1
        note_activity()


# ================================================================================================
# small internals
# ================================================================================================

class _Persistence:
    """The last input frame repeated for every lead (only when ``core.evaluate`` cannot provide one)."""

    name = "persistence"

    def predict_windows(self, data, indices) -> np.ndarray:
        x, _ = data.frames(np.asarray(indices, dtype=int))
        return np.repeat(x[:, -1:], data.t_out, axis=1)


def _uses_text(meta: Mapping[str, Any]) -> bool:
    return bool((meta.get("model", {}).get("config") or {}).get("use_text"))


def _shape_of(meta: Mapping[str, Any]) -> tuple:
    """(channels, grid sizes, t_in, t_out) of a run's training data, to check that runs belong together."""
    d = meta.get("data") or {}
    cfg = meta.get("model", {}).get("config") or {}
    grid = tuple(len(v) for v in (d.get("coords") or {}).values()) or tuple(cfg.get("in_shape", [])[2:])
    return (tuple(d.get("channels") or ()), grid, d.get("t_in"), d.get("t_out"))


FORECAST_CACHE_VERSION = "dashboard-forecast-v1"
CACHE_DIR_ENV = "S2KD_DASHBOARD_CACHE"


def default_cache_dir() -> Path:
    """``$S2KD_DASHBOARD_CACHE``, else ``$XDG_CACHE_HOME/s2kd/dashboard`` (``~/.cache/s2kd/dashboard``)."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s2kd" / "dashboard"


def _open_disk_cache(cache_dir: str | os.PathLike | None):
    """A :class:`core.cache.SafeCache` for forecast bundles, or None (``cache_dir="off"`` or not writable)."""
    if str(cache_dir) == "off" or os.environ.get(CACHE_DIR_ENV) == "off":
        return None
    try:
        from core.cache import SafeCache

        path = Path(cache_dir) if cache_dir else default_cache_dir()
        path.mkdir(parents=True, exist_ok=True)
        return SafeCache(path, size_limit=2 ** 30)
    except Exception:  # noqa: BLE001 - no cache: everything is computed
        return None


_NS = "dashboard-forecasts"


def _bundle_to_cache(cache, key: str, b: ForecastBundle) -> None:
    arrays = {"x": b.x, "truth": b.truth}
    for n, a in b.preds.items():
        arrays[f"pred/{n}"] = a
    for n, a in b.attention.items():
        arrays[f"att/{n}"] = a
    for n, a in b.attention_tokens.items():
        arrays[f"tok/{n}"] = a
    for n, (lo, hi) in b.bands.items():
        arrays[f"low/{n}"] = lo
        arrays[f"high/{n}"] = hi
    cache.put_arrays(_NS, key, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()})
    cache.put_json(_NS, key + ":meta", {"input_times": b.input_times, "target_times": b.target_times,
                                        "narrative": b.narrative.to_json() if b.narrative is not None else None})


def _bundle_from_cache(cache, key: str, index: int, fresh_narrative=None) -> ForecastBundle | None:
    meta = cache.get_json(_NS, key + ":meta")
    arrays = cache.get_arrays(_NS, key) if meta is not None else None
    if meta is None or arrays is None or "x" not in arrays:
        return None
    narrative = None
    if meta.get("narrative"):
        from core.narratives import Narrative

        narrative = Narrative.from_json(meta["narrative"])
    b = ForecastBundle(index=index, x=arrays["x"], truth=arrays["truth"], preds={}, input_times=meta["input_times"],
                       target_times=meta["target_times"], narrative=narrative)
    if narrative is not None and fresh_narrative is not None:
        b.narrative = fresh_narrative  # same text (it is in the key); keep this session's provenance object
    for k, v in arrays.items():
        kind, _, name = k.partition("/")
        if kind == "pred":
            b.preds[name] = v
        elif kind == "att":
            b.attention[name] = v
        elif kind == "tok":
            b.attention_tokens[name] = v
        elif kind == "low":
            b.bands[name] = (v, arrays[f"high/{name}"])
    b.preds = {n: b.preds[n] for n in sorted(b.preds, key=model_sort_key)}
    return b


def _is_whole(region, dash: Dashboard) -> bool:
    if region.is_pixel:
        return region.y0 == 0 and region.x0 == 0 and region.y1 == dash.ycoord.size and region.x1 == dash.xcoord.size
    return bool(region.is_global)


def _normalise_map(m: np.ndarray) -> np.ndarray:
    """A non-negative map scaled to sum 1 (so maps from different models compare)."""
    m = np.asarray(m, dtype=np.float64)
    m = m - min(0.0, float(m.min()))
    s = float(m.sum())
    return (m / s if s > 0 else m).astype(np.float32)


def _var_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", model)


def _with_note(narrative, note: str):
    import dataclasses

    try:
        facts = dict(narrative.provenance.facts or {})
        facts["dashboard_note"] = note
        return dataclasses.replace(narrative, provenance=dataclasses.replace(narrative.provenance, facts=facts))
    except (TypeError, ValueError):
        return narrative


def provenance_rows(narrative) -> list[tuple[str, str]]:
    """(label, value) rows describing where a narrative came from; the diagnostic narrator is named as such."""
    if narrative is None:
        return []
    p = narrative.provenance
    backend = str(p.backend)
    label = "diagnostic narrator (computed facts written as sentences; no language model)" \
        if backend == "diagnostic" else backend
    rows = [("backend", label), ("model", str(p.model)), ("scope", str(p.scope)),
            ("prompt version", str(p.prompt_version)), ("created", str(p.created_at))]
    if p.fallback:
        rows.append(("fallback", f"yes ({p.fallback_reason or 'unknown reason'})"))
    note = (p.facts or {}).get("dashboard_note") if isinstance(p.facts, Mapping) else None
    if note:
        rows.append(("note", str(note)))
    return rows


def cartopy_download_dir() -> Path:
    return default_cache_dir() / "cartopy-downloads-unused"


def configure_cartopy() -> None:
    """Point cartopy at the shipped Natural Earth files and forbid downloads."""
    import cartopy

    from core.geo import NATURAL_EARTH_DIR

    cartopy.config["pre_existing_data_dir"] = str(NATURAL_EARTH_DIR)
    # where cartopy would put downloads: a cache folder of ours, which must stay empty (tests check it)
    cartopy.config["data_dir"] = str(cartopy_download_dir())
    # cartopy's Natural Earth downloader first looks in pre_existing_data_dir, where every file it can want
    # for these maps (110m coastline and borders) is shipped, so it never reaches for the network.


def static_map_png(view: FieldView, cols: int = 4, dpi: int = 110) -> bytes:
    """PNG bytes of the panels of ``view``: cartopy PlateCarree maps with the shipped coastlines and
    borders on lat-lon grids, image panels with district outlines on city grids; one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(view.panels)
    n = len(panels)
    cols = max(1, min(cols, n))
    rows = int(math.ceil(n / cols))
    allv = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for _, p in panels])
    vmin, vmax = float(np.nanmin(allv)), float(np.nanmax(allv))
    x, y = np.asarray(view.x, dtype=np.float64), np.asarray(view.y, dtype=np.float64)
    dx = float(np.median(np.diff(x))) if x.size > 1 else 1.0
    dy = float(np.median(np.diff(y))) if y.size > 1 else 1.0
    extent = [x.min() - dx / 2, x.max() + dx / 2, y.min() - abs(dy) / 2, y.max() + abs(dy) / 2]
    if view.geo:
        configure_cartopy()
        import cartopy.crs as ccrs
        import cartopy.feature as cfeature

        center = float((extent[0] + extent[1]) / 2)
        proj = ccrs.PlateCarree(central_longitude=center)
        width = extent[1] - extent[0]
        height = extent[3] - extent[2]
        fig = plt.figure(figsize=(3.4 * cols, 3.4 * rows * max(0.35, min(1.2, height / max(width, 1e-6))) + 0.8))
        data_crs = ccrs.PlateCarree(central_longitude=center)
        im = None
        for i, (title, f) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1, projection=proj)
            im = ax.imshow(np.asarray(f), origin="lower", extent=[extent[0] - center, extent[1] - center,
                                                                   extent[2], extent[3]],
                           transform=data_crs, vmin=vmin, vmax=vmax, cmap="viridis", interpolation="nearest")
            ax.add_feature(cfeature.NaturalEarthFeature("physical", "coastline", "110m"), facecolor="none",
                           edgecolor="k", linewidth=0.6)
            ax.add_feature(cfeature.NaturalEarthFeature("cultural", "admin_0_boundary_lines_land", "110m"),
                           facecolor="none", edgecolor="k", linewidth=0.3, linestyle=":")
            ax.set_extent([extent[0] - center, extent[1] - center, extent[2], extent[3]], crs=data_crs)
            ax.set_title(title, fontsize=8)
    else:
        fig = plt.figure(figsize=(3.0 * cols, 3.0 * rows + 0.8))
        im = None
        for i, (title, f) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1)
            im = ax.imshow(np.asarray(f), origin="upper", extent=[extent[0], extent[1], extent[3], extent[2]],
                           vmin=vmin, vmax=vmax, cmap="viridis", interpolation="nearest")
            if view.outlines is not None:
                ax.plot(view.outlines[0], view.outlines[1], color="k", linewidth=0.4)
                ax.set_xlim(extent[0], extent[1])
                ax.set_ylim(extent[3], extent[2])
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=fig.axes, orientation="horizontal", fraction=0.05, pad=0.06,
                     label=f"{view.channel} ({view.units})")
    fig.suptitle(f"{view.channel} {view.lead_label}, valid {view.valid_time}, init {view.init_time} — {view.region}",
                 fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


__all__ = [
    "PROJECT_ROOT", "DEFAULT_RUN_ROOTS", "RUN_ROOTS_ENV", "TOP_FRACTION", "EmptyState", "DashboardUnavailable",
    "RunSet", "find_run_sets", "datasets_of", "results_for", "run_roots", "no_runs_state", "top_mask",
    "agreement", "map_contrast", "FLAT_MAP_CV", "upsample", "phrase_span", "token_indices_for_span", "split_phrases", "relative_difference",
    "pretty_units", "FieldView", "AttentionView", "ScoreTable", "ForecastBundle", "Dashboard", "provenance_rows",
    "static_map_png", "configure_cartopy", "warm_cache", "preload", "take_preloaded", "METRIC_LABELS", "SUBSET_LABELS", "model_sort_key",
]
