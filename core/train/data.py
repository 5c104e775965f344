"""The data side of a training run: splits → normaliser (train only) → window datasets + a description.

:func:`build_data` reads a dataset folder as named by ``[data]``; :func:`bundle_from_splits` does the
rest from canonical DataArrays already split (tests and notebooks use it directly).  The description
(:attr:`DataBundle.description`) is saved in ``model.json`` so that a loaded model can refuse input whose
channels or grid differ from the training ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.errors import ConfigError, DataError


class WindowSubset:
    """Windows ``indices`` of a ``WindowDataset`` (items keep the parent's ``index``)."""

    def __init__(self, parent, indices):
        self.parent = parent
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int):
        return self.parent[int(self.indices[i])]

    def window_times(self, i: int):
        return self.parent.window_times(int(self.indices[i]))

    def __getattr__(self, name):  # channels, grid, cadence, context(), ...
        if name in ("parent", "indices"):
            raise AttributeError(name)
        return getattr(self.parent, name)


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """``k`` of ``range(n)`` spread evenly (all of them if ``k`` is 0 or ≥ ``n``)."""
    if k <= 0 or k >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


@dataclass
class DataBundle:
    """Training and validation windows, the normaliser fitted on train, and a JSON description."""

    train: Any
    val: Any
    normalizer: Any
    description: dict[str, Any] = field(default_factory=dict)
    test: Any = None
    fields: dict[str, Any] = field(default_factory=dict)  # the split DataArrays (physical units)
    text: Any = None  # a core.train.text.TextTable when a text teacher needs narratives

    @property
    def in_shape(self) -> tuple[int, int, int, int]:
        d = self.description
        return (int(d["t_in"]), len(d["channels"]), *[len(v) for v in d["coords"].values()])

    @property
    def t_out(self) -> int:
        return int(self.description["t_out"])


def describe_fields(fields, t_in: int, t_out: int, stride: int = 1, step: int = 1, **extra) -> dict[str, Any]:
    """The JSON description of the training data saved with every model."""
    spatial = [d for d in fields.dims if d not in ("time", "channel")]
    coords = {d: [float(v) for v in np.asarray(fields[d].values)] if d in fields.coords
              else list(range(fields.sizes[d])) for d in spatial}
    units = ([str(u) for u in fields["units"].values]
             if "units" in fields.coords and fields["units"].dims == ("channel",) else None)
    grid = fields.attrs.get("grid") or ("latlon" if spatial == ["lat", "lon"] else "city")
    return {
        "channels": [str(c) for c in fields["channel"].values],
        "units": units,
        "dims": spatial,
        "coords": coords,
        "grid": grid,
        "periodic": [False, grid == "latlon"],
        "cadence": fields.attrs.get("cadence"),
        "source": fields.attrs.get("source"),
        "root": fields.attrs.get("root"),
        "t_in": int(t_in),
        "t_out": int(t_out),
        "stride": int(stride),
        "step": int(step),
        **extra,
    }


def bundle_from_splits(splits: Mapping[str, Any], t_in: int, t_out: int, stride: int = 1, step: int = 1,
                       max_train_windows: int = 0, max_val_windows: int = 0, **extra) -> DataBundle:
    """Windows + normaliser from canonical split DataArrays ``{"train", "val"[, "test"]}``."""
    from core.data.normalize import Normalizer
    from core.data.windows import WindowDataset

    for name in ("train", "val"):
        if name not in splits:
            raise DataError(f"the data has no {name!r} split")
    train_fields = splits["train"].load() if hasattr(splits["train"], "load") else splits["train"]
    normalizer = Normalizer.fit(train_fields)
    train = WindowDataset(train_fields, t_in, t_out, stride=stride, step=step, normalizer=normalizer)
    val = WindowDataset(splits["val"], t_in, t_out, stride=stride, step=step, normalizer=normalizer)
    test = None
    if splits.get("test") is not None:
        try:
            test = WindowDataset(splits["test"], t_in, t_out, stride=stride, step=step, normalizer=normalizer,
                                 load=False)
        except DataError:
            test = None
    if max_train_windows:
        train = WindowSubset(train, evenly_spaced(len(train), max_train_windows))
    if max_val_windows:
        val = WindowSubset(val, evenly_spaced(len(val), max_val_windows))
    description = describe_fields(train_fields, t_in, t_out, stride, step,
                                  n_train_windows=len(train), n_val_windows=len(val), **extra)
    return DataBundle(train, val, normalizer, description, test, dict(splits))


def build_data(section) -> DataBundle:
    """Open the dataset named by a ``[data]`` section and cut it into windows.

    Splits come from the folder's ``s2kd_dataset.json``; a real archive without one is split by the
    standard of its format: WeatherBench years (train 2010–2015, val 2016, test 2017–2018) for
    ``weatherbench``/``wb2``/``netcdf``, the last 28 days as test (and the 28 before as validation) for
    TaxiBJ.
    """
    from core.data import open_source
    from core.data.splits import (MANIFEST_NAME, TAXIBJ_TEST_DAYS, WEATHERBENCH_YEARS, read_dataset_manifest,
                                  split_by_last_days, split_by_years, split_from_manifest)

    if not section.root:
        raise ConfigError("data.root: no dataset folder given (e.g. data.root=data/tiny/weather)")
    root = Path(section.root)
    if not root.exists():
        raise DataError("data folder not found (generate one with `s2kd data synth`)", path=root)
    manifest = read_dataset_manifest(root) if (root / MANIFEST_NAME).is_file() else None
    source = section.source or (manifest or {}).get("source")
    if not source:
        raise ConfigError(f"data.source: no reader named and no {MANIFEST_NAME} in {root}")
    t_in = section.t_in or (manifest or {}).get("t_in")
    t_out = section.t_out or (manifest or {}).get("t_out")
    if not t_in or not t_out:
        raise ConfigError(f"data.t_in / data.t_out: not set and not given by {MANIFEST_NAME} in {root}")
    fields = open_source(source, root, variables=list(section.variables) or None)
    if manifest is not None:
        splits = split_from_manifest(fields, root)
    elif source.startswith("taxibj"):
        splits = split_by_last_days(fields, test_days=TAXIBJ_TEST_DAYS, val_days=TAXIBJ_TEST_DAYS)
    else:
        splits = split_by_years(fields, WEATHERBENCH_YEARS)
    extra = {"kind": (manifest or {}).get("kind", source), "split_dates": (manifest or {}).get("splits"),
             "nonstationary_rule": (manifest or {}).get("nonstationary_rule")}
    bundle = bundle_from_splits(splits, int(t_in), int(t_out), section.stride, section.step,
                                section.max_train_windows, section.max_val_windows, **extra)
    bundle.description["source"] = source
    bundle.description["root"] = str(root)
    return bundle


def check_compatible(description: Mapping[str, Any], fields_or_desc, what: str = "input") -> None:
    """One-line DataError unless channels and grid match the training description."""
    if isinstance(fields_or_desc, Mapping):
        other = fields_or_desc
    else:
        other = describe_fields(fields_or_desc, description.get("t_in", 1), description.get("t_out", 1))
    if list(other["channels"]) != list(description["channels"]):
        raise DataError(f"{what} channels {list(other['channels'])} differ from the training channels "
                        f"{list(description['channels'])}")
    if list(other["dims"]) != list(description["dims"]):
        raise DataError(f"{what} grid dims {list(other['dims'])} differ from the training grid "
                        f"{list(description['dims'])}")
    for d in description["dims"]:
        a, b = np.asarray(other["coords"][d], float), np.asarray(description["coords"][d], float)
        if a.shape != b.shape or not np.allclose(a, b, atol=1e-4):
            raise DataError(f"{what} grid along {d!r} ({a.size} points, {a[0] if a.size else '-'}…"
                            f"{a[-1] if a.size else '-'}) differs from the training grid ({b.size} points, "
                            f"{b[0]}…{b[-1]})")


def replace_description(bundle: DataBundle, **kw) -> DataBundle:
    return dataclasses.replace(bundle, description={**bundle.description, **kw})
