"""TaxiBJ+ reader: 128×128 in/out flows, 30-minute slots.

Two layouts are accepted in ``root`` (the HDF5 one wins when both are present):

* the published loaders' arrays ``{train,val,test}_{input,output}_data_reshaped.npy``, each
  ``(N, 12, 2, 128, 128)`` (12 → 12 frames, channel 0 inflow, 1 outflow), without timestamps.  They are
  laid out on a synthetic time axis exactly like OpenSTL's TaxiBJ npz (see
  :func:`core.data.taxibj.samples_to_fields`): splits ``train``, ``val``, ``test`` in that order, one gap
  slot between samples, time coords ``split``/``sample``/``frame``, attrs ``synthetic_time``,
  ``t_in``, ``t_out``, ``splits``; units ``"1"`` (values as stored).  Arrays are memory-mapped and
  read lazily.  :func:`load_taxibjplus_npy` returns the arrays themselves.
* the TaxiBJ HDF5 layout at 128×128: ``*_M128x128_T30_InOut.h5`` (``data (N, 2, 128, 128)``, ``date``
  ``YYYYMMDDNN``) plus optional ``BJ_Meteorology.h5`` / ``BJ_Holiday.txt`` -- real timestamps, gaps
  kept, exactly as :mod:`core.data.taxibj` (``years`` applies here only).

Output: canonical ``fields`` ``(time, channel, y, x)`` float32 with ``source="taxibj+"``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.data.base import guard_finite, short_error
from core.data.taxibj import _pick_channels, channel_names, flow_files, open_flow_h5, samples_to_fields
from core.errors import DataError

SIZE = 128
SPLITS: tuple[str, ...] = ("train", "val", "test")


def npy_paths(root: Path) -> dict[str, Path]:
    """``{"train_input": path, ...}`` for the ``*_data_reshaped.npy`` files present in ``root``."""
    out = {}
    for split in SPLITS:
        for part in ("input", "output"):
            p = root / f"{split}_{part}_data_reshaped.npy"
            if p.exists():
                out[f"{split}_{part}"] = p
    return out


def _check_npy_header(path: Path) -> None:
    """Reject a ``.npy`` file whose header declares more (or fewer) bytes than the file holds, or an
    object dtype (pickle), before memory-mapping it."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise DataError("holds Python objects (a pickle), refused", path=path)
    declared = dtype.itemsize
    for n in shape:
        declared *= int(n)
    actual = os.path.getsize(path) - offset
    if declared != actual:
        raise DataError(f"header declares shape {tuple(shape)} {dtype} ({declared} bytes) but the file holds "
                        f"{actual} bytes: truncated or damaged", path=path)


def load_taxibjplus_npy(root: str | os.PathLike, mmap: bool = True) -> dict[str, np.ndarray]:
    """The TaxiBJ+ arrays in ``root``: ``{"train_input": (N, 12, 2, H, W), "train_output": ..., "val_...",
    "test_..."}`` (memory-mapped when ``mmap``; splits whose two files are both absent are skipped).

    Checks that each split has both files, 5-D shapes with matching N, C, H, W, and a numeric dtype.
    Values are not scanned here (the ``taxibj+`` source checks them lazily for NaN/Inf).
    """
    root = Path(root)
    paths = npy_paths(root)
    if not paths:
        raise DataError("no {train,val,test}_{input,output}_data_reshaped.npy files", path=root)
    arrays: dict[str, np.ndarray] = {}
    for key, path in paths.items():
        try:
            _check_npy_header(path)
            with warnings.catch_warnings():  # numpy warns (to stderr) on overflowing header sizes
                warnings.simplefilter("ignore", RuntimeWarning)
                arrays[key] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except DataError:
            raise
        except Exception as exc:  # ValueError for truncated/pickled/non-npy files
            raise DataError(f"not a readable .npy file ({type(exc).__name__}: {short_error(exc)})", path=path) \
                from None
        a = arrays[key]
        if a.ndim != 5 or not np.issubdtype(a.dtype, np.number):
            raise DataError(f"shape {a.shape} dtype {a.dtype}, expected numeric (N, T, C, H, W)", path=path)
    frame_shapes = {a.shape[2:] for a in arrays.values()}
    if len(frame_shapes) != 1:
        raise DataError(f"arrays differ in (C, H, W): {sorted(frame_shapes)}", path=root)
    for split in SPLITS:
        have = [k for k in (f"{split}_input", f"{split}_output") if k in arrays]
        if len(have) == 1:
            missing = root / (f"{split}_output_data_reshaped.npy" if have[0].endswith("input")
                              else f"{split}_input_data_reshaped.npy")
            raise DataError(f"file not found (needed with {paths[have[0]].name})", path=missing)
        if len(have) == 2 and arrays[have[0]].shape[0] != arrays[have[1]].shape[0]:
            raise DataError(f"{split} input has {arrays[have[0]].shape[0]} samples, output "
                            f"{arrays[have[1]].shape[0]}", path=paths[have[1]])
    return arrays


class TaxiBJPlusSource:
    """:class:`core.data.base.FieldSource` for TaxiBJ+ (HDF5 at 128×128, or the reshaped ``.npy`` arrays)."""

    name = "taxibj+"

    def open(self, root: str | os.PathLike, variables: Sequence[str] | None = None,
             years: Iterable[int] | None = None, layout: str | None = None, **kw: Any):
        """``layout``: ``"h5"`` or ``"npy"`` to choose when both are present (default: HDF5 if present)."""
        import dask.array as dska

        if kw:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(sorted(kw))}")
        if layout not in (None, "h5", "npy"):
            raise DataError(f"{self.name}: layout must be 'h5' or 'npy', got {layout!r}")
        root = Path(root)
        if not root.is_dir():
            raise DataError("data folder not found", path=root)
        if layout == "h5" or (layout is None and flow_files(root, SIZE)):
            return open_flow_h5(root, SIZE, self.name, variables, years)
        if not npy_paths(root):
            raise DataError(f"no *_M{SIZE}x{SIZE}_T30_InOut.h5 files and no "
                            "{train,val,test}_{input,output}_data_reshaped.npy files", path=root)
        if years is not None:
            raise DataError("the *_data_reshaped.npy arrays have no calendar times; --years does not apply",
                            path=root)
        arrays = load_taxibjplus_npy(root)
        paths = npy_paths(root)
        first = next(iter(arrays.values()))
        idx = _pick_channels(variables, first.shape[2], root)
        names = channel_names(first.shape[2])
        splits = []
        for split in SPLITS:
            if f"{split}_input" not in arrays:
                continue
            parts = []
            for part in ("input", "output"):
                key = f"{split}_{part}"
                arr = arrays[key]
                a = dska.from_array(arr, chunks=(max(1, min(64, arr.shape[0])),) + arr.shape[1:], asarray=True,
                                    name=False)
                a = a.map_blocks(guard_finite, paths[key], key, dtype=a.dtype)
                parts.append(a[:, :, idx].astype(np.float32))
            splits.append((split, parts[0], parts[1]))
        return samples_to_fields(splits, source=self.name, root=root, channels=[names[i] for i in idx])
