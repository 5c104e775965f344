"""Bad input: one-line ``s2kd: error: <file>: <problem>``, exit status 2, no traceback, for every reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data import open_source
from core.errors import DataError
from tests import factories as fx

ROOT = Path(__file__).resolve().parents[1]


def _fails(capsys, source: str, root, *needles: str, extra: tuple[str, ...] = ()) -> str:
    """Run ``s2kd data inspect`` in-process; check exit 2 and one error line holding every needle."""
    status = main(["data", "inspect", "--source", source, "--root", str(root), *extra])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("s2kd: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _wb(tmp_path, **kw):
    kw.setdefault("years", (2016,))
    kw.setdefault("variables", ("z500", "t2m"))
    kw.setdefault("n_times_per_year", 3)
    return fx.write_weatherbench(tmp_path / "wb", **kw)


T2M_2016 = Path("2m_temperature") / "2m_temperature_2016_5.625deg.nc"


# ------------------------------------------------------------------------------------ missing things


@pytest.mark.parametrize("source", ["weatherbench", "wb2", "taxibj", "taxibj-npz", "taxibj+", "netcdf"])
def test_missing_folder(tmp_path, capsys, source):
    _fails(capsys, source, tmp_path / "nowhere", str(tmp_path / "nowhere"), "not found")


def test_missing_variable(tmp_path, capsys):
    _wb(tmp_path)
    _fails(capsys, "weatherbench", tmp_path / "wb", "total_cloud_cover", "'tcc' not found",
           extra=("--variables", "tcc"))
    _fails(capsys, "weatherbench", tmp_path / "wb", "unknown WeatherBench variable 'sst'", extra=("--variables", "sst"))
    fx.write_wb2_zarr(tmp_path / "s.zarr", n_times=2, variables=("2m_temperature",))
    _fails(capsys, "wb2", tmp_path / "s.zarr", "s.zarr", "'z500' not found", extra=("--variables", "z500"))
    fx.write_cf_netcdf(tmp_path / "cf.nc", ["tas"])
    _fails(capsys, "netcdf", tmp_path / "cf.nc", "cf.nc", "'pr' not found", extra=("--variables", "pr"))
    fx.write_taxibj(tmp_path / "bj")
    _fails(capsys, "taxibj", tmp_path / "bj", "'speed' not found", extra=("--variables", "speed"))


def test_missing_year_and_wrong_layout(tmp_path, capsys):
    _wb(tmp_path)
    _fails(capsys, "weatherbench", tmp_path / "wb", "geopotential_500hPa_2017_5.625deg.nc", "no file for year 2017",
           extra=("--years", "2017"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, "weatherbench", empty, "no WeatherBench variable directories")
    _fails(capsys, "taxibj", empty, "no BJ??_M32x32_T30_InOut.h5")
    _fails(capsys, "taxibj+", empty, "_data_reshaped.npy")
    _fails(capsys, "taxibj-npz", empty, "dataset.npz", "not found")
    _fails(capsys, "netcdf", empty, "no NetCDF files")
    _fails(capsys, "weatherbench", tmp_path / "wb", "--years", extra=("--years", "twenty"))


def test_taxibjplus_split_missing_half(tmp_path, capsys):
    fx.write_taxibjplus_npy(tmp_path, n={"train": 1}, size=8)
    os.remove(tmp_path / "train_output_data_reshaped.npy")
    _fails(capsys, "taxibj+", tmp_path, "train_output_data_reshaped.npy", "not found")


# ------------------------------------------------------------------------------------ broken files


def test_truncated_netcdf(tmp_path, capsys):
    _wb(tmp_path)
    fx.truncate_file(tmp_path / "wb" / T2M_2016, keep=0.5)
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "truncated or damaged")


def test_non_netcdf_bytes(tmp_path, capsys):
    _wb(tmp_path)
    fx.write_garbage(tmp_path / "wb" / T2M_2016)
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "not a NetCDF file")
    fx.write_garbage(tmp_path / "junk.nc")
    _fails(capsys, "netcdf", tmp_path / "junk.nc", "junk.nc", "not a NetCDF file")
    (tmp_path / "empty.nc").write_bytes(b"")
    _fails(capsys, "netcdf", tmp_path / "empty.nc", "empty.nc", "empty file")


def test_broken_hdf5_npz_npy_zarr(tmp_path, capsys):
    w = fx.write_taxibj(tmp_path / "bj", n_days=1)
    fx.truncate_file(w["files"][13], keep=0.3)
    _fails(capsys, "taxibj", tmp_path / "bj", "BJ13_M32x32_T30_InOut.h5", "HDF5")
    fx.write_garbage(w["files"][13])
    _fails(capsys, "taxibj", tmp_path / "bj", "BJ13_M32x32_T30_InOut.h5", "not an HDF5 file")
    fx.write_taxibj(tmp_path / "bj2", n_days=1)
    fx.write_garbage(tmp_path / "bj2" / "BJ_Meteorology.h5")
    _fails(capsys, "taxibj", tmp_path / "bj2", "BJ_Meteorology.h5")
    fx.write_taxibj_npz(tmp_path / "npz" / "dataset.npz", n_train=1, n_test=1)
    fx.truncate_file(tmp_path / "npz" / "dataset.npz", keep=0.5)
    _fails(capsys, "taxibj-npz", tmp_path / "npz", "dataset.npz", "npz")
    fx.write_taxibjplus_npy(tmp_path / "plus", n={"train": 1}, size=8)
    fx.truncate_file(tmp_path / "plus" / "train_input_data_reshaped.npy", keep=0.5)
    _fails(capsys, "taxibj+", tmp_path / "plus", "train_input_data_reshaped.npy", "npy")
    (tmp_path / "notzarr.zarr").mkdir()
    _fails(capsys, "wb2", tmp_path / "notzarr.zarr", "notzarr.zarr", "zarr")


def test_missing_dataset_in_h5(tmp_path, capsys):
    import h5py

    from core.io import atomic_path

    path = tmp_path / "BJ14_M32x32_T30_InOut.h5"
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=np.zeros((2, 2, 32, 32)))
    _fails(capsys, "taxibj", tmp_path, "BJ14_M32x32_T30_InOut.h5", "dataset 'date' not found")


# ------------------------------------------------------------------------------------ wrong grid


def test_wrong_grid(tmp_path, capsys):
    fx.write_weatherbench(tmp_path / "wb", years=(2016,), variables=("t2m",), n_times_per_year=2, resolution=2.8125)
    d = tmp_path / "wb" / "2m_temperature"
    os.replace(d / "2m_temperature_2016_2.8125deg.nc", d / "2m_temperature_2016_5.625deg.nc")
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "wrong grid", "expected the 5.625° grid")
    # the right file name at its own resolution is fine
    fx.write_weatherbench(tmp_path / "hi", years=(2016,), variables=("t2m",), n_times_per_year=2, resolution=2.8125)
    assert open_source("weatherbench", tmp_path / "hi", resolution="2.8125deg").sizes["lat"] == 64
    w = fx.write_taxibj(tmp_path / "bj", n_days=1)
    fx.set_h5_values(w["files"][13], "data", (0,), 1.0)  # still 32×32: fine
    bad = tmp_path / "bj2"
    fx.write_taxibj(bad, n_days=1, size=16)
    os.replace(bad / "BJ13_M16x16_T30_InOut.h5", bad / "BJ13_M32x32_T30_InOut.h5")
    _fails(capsys, "taxibj", bad, "BJ13_M32x32_T30_InOut.h5", "expected (N, 2, 32, 32)")


# ------------------------------------------------------------------------------------ NaN / Inf


def test_nan_and_inf_values(tmp_path, capsys):
    _wb(tmp_path)
    fx.set_netcdf_values(tmp_path / "wb" / T2M_2016, "t2m", (1, 5, 7), np.nan)
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "NaN")
    # lazily opened: the error comes when values are read, still naming the file
    da = open_source("weatherbench", tmp_path / "wb")
    with pytest.raises(DataError, match="2m_temperature_2016_5.625deg.nc: 't2m' contains NaN"):
        da.load()
    fx.write_cf_netcdf(tmp_path / "cf.nc", ["tas"])
    fx.set_netcdf_values(tmp_path / "cf.nc", "tas", (0, 0, 0), np.inf)
    _fails(capsys, "netcdf", tmp_path / "cf.nc", "cf.nc", "Inf")
    w = fx.write_taxibj(tmp_path / "bj", n_days=1)
    fx.set_h5_values(w["files"][13], "data", (3, 1, 2, 2), np.nan)
    _fails(capsys, "taxibj", tmp_path / "bj", "BJ13_M32x32_T30_InOut.h5", "NaN")
    arrays = fx.write_taxibj_npz(tmp_path / "npz.npz", n_train=1, n_test=1)
    arrays["Y_test"][0, 0, 0, 0, 0] = np.inf
    from core.io import atomic_path

    with atomic_path(tmp_path / "npz" / "dataset.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _fails(capsys, "taxibj-npz", tmp_path / "npz", "dataset.npz", "Y_test", "Inf")


def test_wb2_nan(tmp_path, capsys):
    import xarray as xr

    fx.write_wb2_zarr(tmp_path / "a.zarr", n_times=3, variables=("2m_temperature",))
    with xr.open_zarr(tmp_path / "a.zarr") as ds:
        ds = ds.load()
    ds["2m_temperature"][1, 2, 3] = np.nan
    fx._atomic_dir(tmp_path / "b.zarr", lambda p: ds.to_zarr(p, zarr_format=2))
    _fails(capsys, "wb2", tmp_path / "b.zarr", "b.zarr", "'2m_temperature' contains NaN")


# ------------------------------------------------------------------------------------ times


def test_duplicated_and_unsorted_times_netcdf(tmp_path, capsys):
    _wb(tmp_path)
    t = np.array(["2016-01-01T00", "2016-01-01T01", "2016-01-01T01"], dtype="datetime64[ns]")
    fx.set_netcdf_values(tmp_path / "wb" / T2M_2016, "t2m", (0,), times=t)
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "duplicated time 2016-01-01T01:00:00")
    t = np.array(["2016-01-01T00", "2016-01-01T02", "2016-01-01T01"], dtype="datetime64[ns]")
    fx.set_netcdf_values(tmp_path / "wb" / T2M_2016, "t2m", (0,), times=t)
    _fails(capsys, "weatherbench", tmp_path / "wb", str(T2M_2016), "unsorted")
    fx.write_cf_netcdf(tmp_path / "d" / "a.nc", ["tas"], n_times=4, start="2020-01-01")
    fx.write_cf_netcdf(tmp_path / "d" / "b.nc", ["tas"], n_times=4, start="2020-01-01T06")
    _fails(capsys, "netcdf", tmp_path / "d", "overlap")


def test_time_axes_differ_between_variables(tmp_path, capsys):
    _wb(tmp_path)
    t = np.array(["2016-01-01T00", "2016-01-01T01", "2016-01-01T03"], dtype="datetime64[ns]")
    fx.set_netcdf_values(tmp_path / "wb" / T2M_2016, "t2m", (0,), times=t)
    _fails(capsys, "weatherbench", tmp_path / "wb", "2m_temperature", "time axis of 't2m'", "differs")


def test_duplicated_unsorted_and_malformed_taxibj_dates(tmp_path, capsys):
    fx.write_taxibj(tmp_path / "dup", n_days=1, duplicate=["2013070110"])
    _fails(capsys, "taxibj", tmp_path / "dup", "BJ13_M32x32_T30_InOut.h5", "duplicated time 2013-07-01T04:30:00")
    fx.write_taxibj(tmp_path / "uns", n_days=1, shuffle=True)
    _fails(capsys, "taxibj", tmp_path / "uns", "BJ13_M32x32_T30_InOut.h5", "unsorted")
    w = fx.write_taxibj(tmp_path / "bad", n_days=1)
    fx.set_h5_values(w["files"][13], "date", (7,), b"2013070149")
    _fails(capsys, "taxibj", tmp_path / "bad", "BJ13_M32x32_T30_InOut.h5", "'2013070149'", "01..48")
    fx.write_taxibj(tmp_path / "ovl", starts={13: "2013-07-01", 14: "2013-07-01"}, n_days=1)
    _fails(capsys, "taxibj", tmp_path / "ovl", "BJ14_M32x32_T30_InOut.h5", "overlap", "BJ13")
    fx.write_taxibj(tmp_path / "hol", n_days=1, holidays=["2013-07-01"])
    _fails(capsys, "taxibj", tmp_path / "hol", "BJ_Holiday.txt", "line 1", "YYYYMMDD")


def test_subprocess_error_has_no_traceback(tmp_path):
    fx.write_garbage(tmp_path / "x.nc")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core", "data", "inspect", "--source", "netcdf", "--root",
                           str(tmp_path / "x.nc"), "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"s2kd: error: {tmp_path / 'x.nc'}: not a NetCDF file")
