"""Evaluation of one forecaster (a trained run or a simple baseline) on one split of a dataset folder.

    data = load_test_data("data/tiny/weather", t_in=12, t_out=12)      # or test_data_for_run(fc)
    result = evaluate(load_forecaster("runs/student"), data, region="Europe")
    result["test"]["rmse"]                 # per-lead list over all channels (physical units)
    result["test_nonstationary"]["acc"]    # the same on the non-stationary windows only

What is computed, in one pass over the windows of the split (batches of ``batch_size``):

* the forecaster's prediction is brought back to **physical units** (a trained model forecasts in the
  normalised units of its run: its inputs are normalised with the run's own :class:`Normalizer` and its
  outputs inverted with it; a baseline works in physical units directly);
* every metric of :mod:`core.metrics` (defaults: :data:`core.metrics.DEFAULT_WEATHER_METRICS` on lat-lon
  grids, :data:`core.metrics.DEFAULT_CITY_METRICS` on city grids — these include the spectral scores of
  :mod:`core.spectral`: the high-band power ratio ``high_band_ratio`` and the log-spectral distance
  ``lsd``) is accumulated in streaming form three times: on all windows (``test``), on the non-stationary
  windows (``test_nonstationary``, :func:`core.data.nonstationary.nonstationary_mask` with the folder's
  ``events.json``) and on the rest (``test_normal``); the two subsets partition the windows;
* optionally restricted to a region (:func:`core.data.regions.parse_region`: every spatial mean/sum is
  over the region's grid points only);
* the mean spectra of prediction and truth per lead and channel (the spectra the ``lsd`` metric compares:
  zonal energy spectrum on lat-lon grids, radially averaged PSD on city grids).

Context for the metrics: latitude weights on lat-lon grids; ``acc`` against a climatology of the
*training* split (the ``climatology`` baseline of :mod:`core.baselines` fitted on the training split:
the mean by month and hour of day, at each target time);
OpenSTL frame metrics (``openstl_mse``, ``ssim``, ``psnr``...) on frames scaled to [0, 1] with the
training split's min and max over all channels (OpenSTL's TaxiBJ is min-max scaled that way).

Result (JSON-ready dict; non-finite numbers become ``None``)::

    {"model", "run", "split", "region", "privileged", "dataset": {...}, "channels", "units", "lead_hours",
     "metrics": [names], "n_windows": {"test": N, "test_nonstationary": k, "test_normal": N - k},
     "test": {metric: [T_out floats]}, "test_nonstationary": {...}, "test_normal": {...},
     "overall": {subset: {metric: float}}, "per_channel": {subset: {metric: {channel: [T_out floats]}}},
     "spectra": {"kind", "wavenumbers", "truth": {channel: [[K floats] per lead]}, "pred": {...}},
     "seconds"}
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from core.errors import DataError, UserError

__all__ = ["SUBSETS", "TestData", "load_test_data", "test_data_for_run", "Predictor", "model_predictor",
           "fit_simple_baseline", "baseline_forecast", "Scorer", "evaluate", "evaluate_run", "format_table"]

#: Names of the three window subsets, as they appear in every result.
SUBSETS = ("test", "test_nonstationary", "test_normal")


# --------------------------------------------------------------------------------------------------
# data


_UNSET = object()


@dataclass
class TestData:
    """The windows of one split of a dataset folder, in physical units, with what the metrics need.

    ``dataset`` is a :class:`core.data.windows.WindowDataset` *without* a normaliser (physical units);
    ``nonstationary`` its boolean mask ``(N,)``; ``lat`` the latitudes of the rows (lat-lon grids) or None;
    ``data_range`` ``(lo, hi)`` of the training split (scaling to [0, 1] for the OpenSTL frame metrics);
    ``splits`` the split DataArrays (``train`` is used for climatologies and baselines).
    """

    root: Path
    source: str
    split: str
    dataset: Any
    splits: dict[str, Any]
    nonstationary: np.ndarray
    grid: str
    lat: np.ndarray | None
    manifest: dict[str, Any] = field(default_factory=dict)
    _climatology: Any = None
    _data_range: Any = field(default=_UNSET, repr=False)

    @property
    def data_range(self) -> tuple[float, float] | None:
        """``(lo, hi)`` of the training split on city grids, else None; read on first use (a pass over the
        training split that only the frame metrics need, not the dashboard's first page)."""
        if self._data_range is _UNSET:
            self._data_range = _train_range(self.splits, self.grid)
        return self._data_range

    @property
    def channels(self) -> list[str]:
        return list(self.dataset.channels)

    @property
    def units(self) -> list[str] | None:
        return self.dataset.units

    @property
    def t_in(self) -> int:
        return self.dataset.t_in

    @property
    def t_out(self) -> int:
        return self.dataset.t_out

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def lead_hours(self) -> list[float]:
        step = np.timedelta64(self.dataset.cadence, "ns") * self.dataset.step
        hours = step / np.timedelta64(1, "h")
        return [float(hours * (k + 1)) for k in range(self.t_out)]

    def frames(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the windows ``indices``: ``(n, T_in, C, H, W)``, ``(n, T_out, C, H, W)`` float32."""
        pairs = [self.dataset.window_arrays(int(i)) for i in indices]
        return np.stack([x for x, _ in pairs]), np.stack([y for _, y in pairs])

    def target_times(self, indices: Sequence[int]) -> np.ndarray:
        """``(n, T_out)`` datetime64[ns] target times of the windows ``indices``."""
        return np.stack([self.dataset.window_times(int(i))[1] for i in indices])

    def input_times(self, indices: Sequence[int]) -> np.ndarray:
        """``(n, T_in)`` datetime64[ns] input times of the windows ``indices``."""
        return np.stack([self.dataset.window_times(int(i))[0] for i in indices])

    def climatology(self, indices: Sequence[int]) -> np.ndarray | None:
        """The training climatology at the target times of ``indices`` (lat-lon grids; None otherwise)."""
        if self.grid != "latlon":
            return None
        if self._climatology is None:
            self._climatology = fit_simple_baseline("climatology", self)
        return baseline_forecast(self._climatology, self, indices)

    def region_mask(self, region: Any) -> np.ndarray | None:
        """Boolean ``(H, W)`` grid mask of ``region`` (a name, a box string or a Region); None for no region."""
        if region is None or region == "":
            return None
        from core.data.regions import parse_region

        reg = parse_region(region)
        frame = self.splits[self.split].isel(time=0)
        return np.asarray(reg.mask(frame).values, dtype=bool)

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root), "source": self.source, "split": self.split,
                "kind": self.manifest.get("kind"), "grid": self.grid, "n_windows": len(self),
                "t_in": self.t_in, "t_out": self.t_out, "cadence": str(self.dataset.attrs.get("cadence") or ""),
                "step": int(self.dataset.step), "nonstationary_rule": self.manifest.get("nonstationary_rule")}


def load_test_data(root: str | os.PathLike, *, source: str | None = None, channels: Sequence[str] | None = None,
                   t_in: int | None = None, t_out: int | None = None, step: int = 1, stride: int = 1,
                   split: str = "test") -> TestData:
    """Open the dataset folder ``root`` (with its ``s2kd_dataset.json``) and cut ``split`` into windows.

    ``source``/``t_in``/``t_out`` default to the folder's manifest.  Bad input raises a one-line
    :class:`DataError` / :class:`UserError`.
    """
    from core.data import open_source
    from core.data.nonstationary import nonstationary_mask
    from core.data.splits import read_dataset_manifest, split_from_manifest
    from core.data.windows import WindowDataset

    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", path=root)
    manifest = read_dataset_manifest(root)
    source = source or manifest.get("source")
    t_in = int(t_in or manifest.get("t_in") or 0)
    t_out = int(t_out or manifest.get("t_out") or 0)
    if t_in < 1 or t_out < 1:
        raise DataError("t_in / t_out are not given and not in s2kd_dataset.json", path=root)
    fields = open_source(source, root, variables=list(channels) if channels else None)
    splits = split_from_manifest(fields, root)
    if split not in splits:
        raise UserError(f"no split {split!r} in {root} (have {', '.join(splits)})")
    test = splits[split].load() if hasattr(splits[split], "load") else splits[split]
    splits = dict(splits, **{split: test})
    ds = WindowDataset(test, t_in, t_out, stride=stride, step=step, normalizer=None, load=True)
    ns = np.asarray(nonstationary_mask(ds, events=root), dtype=bool)
    grid = str(fields.attrs.get("grid") or ("latlon" if "lat" in fields.dims else "city"))
    lat = np.asarray(fields["lat"].values, dtype=np.float64) if grid == "latlon" and "lat" in fields.dims else None
    return TestData(root=root, source=str(source), split=split, dataset=ds, splits=splits, nonstationary=ns,
                    grid=grid, lat=lat, manifest=manifest)


def _train_range(splits: Mapping[str, Any], grid: str) -> tuple[float, float] | None:
    """``(lo, hi)`` of the training split on city grids, in one pass (None on lat-lon grids, without a
    training split, or for a constant field)."""
    if grid == "latlon" or "train" not in splits:
        return None
    train = splits["train"]
    lo, hi = train.min(), train.max()
    if hasattr(lo.data, "dask"):
        import dask

        lo, hi = dask.compute(lo.data, hi.data)
    lo, hi = float(np.asarray(lo)), float(np.asarray(hi))
    return (lo, hi) if hi > lo else None


def test_data_for_run(fc, root: str | os.PathLike | None = None, split: str = "test") -> TestData:
    """The ``split`` windows of the data a loaded run (:class:`core.forecaster.ModelForecaster`) was trained on."""
    from core.train.data import check_compatible

    desc = dict(getattr(fc, "description", {}) or {})
    root = Path(root or desc.get("root") or "")
    if not str(root) or not root.is_dir():
        raise DataError("data folder not found (pass --data DIR)", path=root)
    data = load_test_data(root, source=desc.get("source"), channels=fc.channels or None, t_in=fc.t_in,
                          t_out=fc.t_out, step=int(desc.get("step", 1) or 1), split=split)
    if desc.get("channels") and desc.get("dims"):
        check_compatible(desc, data.splits[split], what=f"data in {root}")
    return data


# --------------------------------------------------------------------------------------------------
# predictors: (x physical, window indices) -> forecast physical


Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def model_predictor(fc, data: TestData, narratives: Callable[[np.ndarray], Sequence[str]] | None = None
                    ) -> Predictor:
    """A :data:`Predictor` for a loaded run: normalise the input with the run's normaliser, forecast,
    invert.  ``narratives(indices)`` gives the texts of a text teacher (None: no text)."""
    import torch

    if getattr(fc, "normalizer", None) is None:
        raise DataError("the run has no normaliser statistics", path=getattr(fc, "run_dir", None))
    fc.normalizer.check_channels(data.channels, what="test data")
    norm = fc.normalizer

    def predict(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        xn = np.ascontiguousarray(norm.apply(x), dtype=np.float32)
        texts = list(narratives(indices)) if narratives is not None else None
        y = fc.predict(torch.from_numpy(xn), texts)
        y = y.detach().float().cpu().numpy() if hasattr(y, "detach") else np.asarray(y, dtype=np.float32)
        return np.asarray(norm.invert(y), dtype=np.float64)

    return predict


def fit_simple_baseline(name: str, data: TestData):
    """A simple baseline of :mod:`core.baselines` (``persistence``, ``climatology``,
    ``historical-average``) fitted on ``data``'s training split."""
    from core.baselines import fit_baseline

    if "train" not in data.splits:
        raise DataError("the dataset has no training split to fit a baseline on", path=data.root)
    desc = {"cadence": data.dataset.attrs.get("cadence") or None, "step": int(data.dataset.step)}
    return fit_baseline(name, data.splits["train"], data.t_in, data.t_out, {k: v for k, v in desc.items() if v})


def is_baseline(obj) -> bool:
    """True for the simple baselines of :mod:`core.baselines`."""
    from core.baselines import BASELINES

    return getattr(obj, "name", None) in BASELINES and hasattr(obj, "forecast_times")


def baseline_forecast(baseline, data: TestData, indices: Sequence[int], x: np.ndarray | None = None) -> np.ndarray:
    """A simple baseline's forecast ``(n, T_out, C, H, W)`` (physical units) for the windows ``indices``:
    persistence from the input frames, the others from the target times."""
    if baseline.name == "persistence":
        if x is None:
            x, _ = data.frames(indices)
        return np.asarray(baseline.predict(np.asarray(x)), dtype=np.float64)
    times = data.target_times(indices)
    return np.stack([baseline.forecast_times(t) for t in times]).astype(np.float64)


def _as_predictor(obj, data: TestData, narratives=None) -> Predictor:
    """A loaded run, a simple baseline (:mod:`core.baselines`) or a plain predictor function."""
    if is_baseline(obj):
        return lambda x, idx: baseline_forecast(obj, data, idx, x)
    if hasattr(obj, "normalizer") and hasattr(obj, "predict"):
        return model_predictor(obj, data, narratives)
    if callable(obj):
        return obj
    raise TypeError(f"cannot evaluate a {type(obj).__name__}: give a loaded run, a baseline or a function")


# --------------------------------------------------------------------------------------------------
# scoring


def _json_float(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _json_list(a: Any) -> list:
    return [_json_float(v) for v in np.asarray(a).reshape(-1)]


class Scorer:
    """Streaming scores of one forecaster on the three subsets (one :class:`core.metrics.MetricSet` each)
    plus the mean spectra of prediction and truth.  ``update(pred, truth, nonstationary, climatology)``
    per batch; ``to_json(channels)`` at the end."""

    def __init__(self, metrics: Sequence[str] | None, *, grid: str, lat: Any = None, region_mask: Any = None,
                 data_range: Any = None, climatology: bool = False):
        from core.metrics import DEFAULT_CITY_METRICS, DEFAULT_WEATHER_METRICS, MetricSet

        if metrics is None:
            metrics = DEFAULT_WEATHER_METRICS if grid == "latlon" else DEFAULT_CITY_METRICS
            if not climatology:
                metrics = tuple(m for m in metrics if m != "acc")
        self.names = list(metrics)
        opts = dict(region_mask=region_mask, data_range=data_range)
        if lat is not None:
            opts["lat"] = lat
        self.sets = {s: MetricSet(self.names, **opts) for s in SUBSETS}
        self.n = {s: 0 for s in SUBSETS}
        # the spectra the ``lsd`` metric compares (its own spectrum function)
        from core.metrics import make_metric

        self._spec = make_metric("lsd", **opts)
        self._spec_sum: dict[str, np.ndarray] | None = None
        self._spec_n = 0

    def update(self, pred: np.ndarray, truth: np.ndarray, nonstationary: np.ndarray,
               climatology: np.ndarray | None = None) -> None:
        ns = np.asarray(nonstationary, dtype=bool)
        masks = {"test": None, "test_nonstationary": ns, "test_normal": ~ns}
        for s, m in masks.items():
            self.sets[s].update(pred, truth, sample_mask=m, climatology=climatology)
            self.n[s] += len(pred) if m is None else int(m.sum())
        sp, st = self._spec.spectrum(pred).sum(axis=0), self._spec.spectrum(truth).sum(axis=0)
        if self._spec_sum is None:
            self._spec_sum = {"pred": np.zeros_like(sp), "truth": np.zeros_like(st)}
        self._spec_sum["pred"] += sp
        self._spec_sum["truth"] += st
        self._spec_n += len(pred)

    def to_json(self, channels: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"n_windows": dict(self.n)}
        overall: dict[str, Any] = {}
        per_channel: dict[str, Any] = {}
        for s, ms in self.sets.items():
            out[s] = {}
            overall[s] = {}
            per_channel[s] = {}
            for name, m in ms.metrics.items():
                try:
                    js = m.to_json(channels)
                except DataError:  # nothing accumulated (no window scored)
                    out[s][name] = overall[s][name] = per_channel[s][name] = None
                    continue
                out[s][name] = js["per_lead"]
                overall[s][name] = js["overall"]
                per_channel[s][name] = js["per_channel"]
        out["overall"] = overall
        out["per_channel"] = per_channel
        if self._spec_sum is not None and self._spec_n:
            k = self._spec_sum["pred"].shape[-1]
            out["spectra"] = {
                "kind": "zonal energy spectrum" if self._spec.lat is not None else "radially averaged PSD",
                "wavenumbers": list(range(k)),
                **{key: {c: [_json_list(row) for row in (v[:, i] / self._spec_n)] for i, c in enumerate(channels)}
                   for key, v in self._spec_sum.items()},
            }
        return out


def evaluate(forecaster, data: TestData, *, region: Any = None, metrics: Sequence[str] | None = None,
             batch_size: int = 16, narratives: Callable[[np.ndarray], Sequence[str]] | None = None,
             name: str | None = None, progress: bool = False, windows: Sequence[int] | None = None
             ) -> dict[str, Any]:
    """Score ``forecaster`` on the windows of ``data`` (see the module docstring for the result).

    ``forecaster``: a loaded run (:func:`core.forecaster.load_forecaster`), a baseline of
    :mod:`core.baselines`, or a function ``f(x_physical (n, T_in, C, H, W), indices) -> forecast
    physical (n, T_out, C, H, W)``.  ``windows``: indices of the windows to score (default: all of them).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    predict = _as_predictor(forecaster, data, narratives)
    region_mask = data.region_mask(region)
    if windows is None:
        order = np.arange(len(data))
    else:
        order = np.asarray(windows, dtype=np.int64).reshape(-1)
        if order.size and (order.min() < 0 or order.max() >= len(data)):
            raise UserError(f"window indices out of range: the {data.split} split has {len(data)} windows")
    n = int(order.size)
    if n == 0:
        raise DataError(f"the {data.split} split has no window to score", path=data.root)
    use_clim = data.grid == "latlon" and (metrics is None or "acc" in metrics)
    scorer = Scorer(metrics, grid=data.grid, lat=data.lat, region_mask=region_mask, data_range=data.data_range,
                    climatology=use_clim)
    bs = max(1, int(batch_size))
    label = name or getattr(forecaster, "name", None) or "forecast"
    bar = tqdm(total=n, desc=f"evaluate {label}", unit="win", disable=None if progress else True, file=sys.stderr,
               dynamic_ncols=True)
    for start in range(0, n, bs):
        idx = order[start:start + bs]
        x, y = data.frames(idx)
        pred = np.asarray(predict(x, idx), dtype=np.float64)
        if pred.shape != y.shape:
            raise DataError(f"{label}: forecast of shape {pred.shape} for targets of shape {y.shape}")
        clim = data.climatology(idx) if use_clim else None
        scorer.update(pred, y.astype(np.float64), data.nonstationary[idx], clim)
        bar.update(len(idx))
    bar.close()
    region_name = None
    if region_mask is not None:
        from core.data.regions import parse_region

        region_name = parse_region(region).name
    result: dict[str, Any] = {
        "model": label,
        "run": str(getattr(forecaster, "run_dir", "")) or None,
        "split": data.split,
        "region": region_name,
        "privileged": False,
        "dataset": data.describe(),
        "channels": data.channels,
        "units": data.units,
        "lead_hours": data.lead_hours,
        "metrics": list(scorer.names),
        "data_range": list(data.data_range) if data.data_range else None,
        "windows": "all" if windows is None else f"{n} of {len(data)}",
    }
    result.update(scorer.to_json(data.channels))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def evaluate_run(run_dir: str | os.PathLike, *, data_root: str | os.PathLike | None = None, split: str = "test",
                 region: Any = None, batch_size: int = 16, device: str = "auto", progress: bool = False,
                 data: TestData | None = None, narratives=None, forecaster=None,
                 windows: Sequence[int] | None = None) -> dict[str, Any]:
    """Load the run in ``run_dir`` and :func:`evaluate` it on ``split`` of its data folder (or ``data_root``).

    A text teacher is given the narratives of its own configuration (backend and scope of the run's
    ``[narratives]``); its scores are marked ``privileged`` when that scope is ``privileged``.
    """
    from core.forecaster import load_forecaster

    fc = forecaster if forecaster is not None else load_forecaster(run_dir, device=device)
    if data is None:
        data = test_data_for_run(fc, data_root, split)
    privileged = False
    if fc.uses_text and narratives is None:
        narratives, privileged = run_narratives(fc, data)
    elif fc.uses_text:
        privileged = _run_scope(fc) == "privileged"
    result = evaluate(fc, data, region=region, batch_size=batch_size, narratives=narratives, name=fc.name,
                      progress=progress, windows=windows)
    result["privileged"] = bool(privileged)
    result["run"] = str(run_dir)
    training = dict(fc.meta.get("training") or {})
    result["training"] = {k: training.get(k) for k in ("method", "teacher", "seed") if k in training}
    result["weights_sha256"] = fc.meta.get("weights_sha256")
    return result


def _run_config(fc) -> dict[str, Any]:
    from core import checkpoint as ckpt
    from core.config import read_toml

    path = Path(fc.run_dir) / ckpt.CONFIG_TOML
    return read_toml(path) if path.is_file() else {}


def _run_narrative_settings(fc) -> dict[str, Any]:
    """The narrator settings a text teacher was trained with: the provenance saved in its data description
    (``backend``, ``scope``), else its config's ``[narratives]``; plus the cache folder."""
    section = dict(_run_config(fc).get("narratives") or {})
    saved = dict((getattr(fc, "description", {}) or {}).get("narratives") or {})
    return {"backend": str(saved.get("backend") or section.get("backend") or "diagnostic"),
            "scope": str(saved.get("scope") or section.get("scope") or "context"),
            "cache": section.get("cache") or ""}


def _run_scope(fc) -> str:
    return _run_narrative_settings(fc)["scope"]


def run_narratives(fc, data: TestData) -> tuple[Callable[[np.ndarray], Sequence[str]], bool]:
    """``(narratives(indices) -> texts, privileged)`` for a text teacher on ``data``'s windows: the
    narrator and scope of the run's own ``[narratives]`` settings, through the narrative cache."""
    from core.narratives import build_narrator, narrate_cached
    from core.narratives.commands import dataset_context, default_cache_dir, window_input

    settings = _run_narrative_settings(fc)
    backend, scope = settings["backend"], settings["scope"]
    cache_dir = Path(settings["cache"] or default_cache_dir(data.root))
    narrator = build_narrator(backend, scope=scope)
    events, clim = dataset_context(data.root, data.splits[data.split], data.splits.get("train"))
    from core.cache import SafeCache

    memo: dict[int, str] = {}

    def narratives(indices: np.ndarray) -> list[str]:
        missing = [int(i) for i in indices if int(i) not in memo]
        if missing:
            with SafeCache(cache_dir) as cache:
                for i in missing:
                    window = window_input(data.dataset, i, events, clim, data.source)
                    nar, _ = narrate_cached(narrator, window, cache)
                    memo[i] = nar.text
        return [memo[int(i)] for i in indices]

    return narratives, scope == "privileged"


# --------------------------------------------------------------------------------------------------
# display


def _pick_leads(t: int) -> list[int]:
    return sorted({0, (t - 1) // 2, t - 1})


def format_table(result: Mapping[str, Any], subsets: Sequence[str] = ("test", "test_nonstationary")) -> str:
    """A plain-text table: metrics × (first, middle, last lead) for each subset."""
    leads = result.get("lead_hours") or []
    cols = _pick_leads(len(leads)) if leads else []
    head = [f"+{leads[i]:g}h" for i in cols]
    lines = [f"{result.get('model')}  ({result.get('split')}"
             + (f", region {result['region']}" if result.get("region") else "")
             + (", privileged narratives" if result.get("privileged") else "") + ")"]
    for s in subsets:
        n = (result.get("n_windows") or {}).get(s)
        lines.append(f"\n[{s}]  {n} windows")
        lines.append(f"{'metric':<18}" + "".join(f"{h:>14}" for h in head))
        for name in result.get("metrics", []):
            vals = (result.get(s) or {}).get(name)
            cells = []
            for i in cols:
                v = None if not vals else vals[i]
                cells.append(f"{'-' if v is None else format(v, '.5g'):>14}")
            lines.append(f"{name:<18}" + "".join(cells))
    return "\n".join(lines)
