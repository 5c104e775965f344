"""``s2kd data inspect`` in-process and as a subprocess, on files in the real layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.data.commands import parse_years
from core.errors import UserError
from tests import factories as fx

ROOT = Path(__file__).resolve().parents[1]


def _inspect_json(capsys, *argv) -> dict:
    assert main(["data", "inspect", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out  # exactly one JSON object
    return json.loads(lines[0])


def test_parse_years():
    assert parse_years("2016,2017") == [2016, 2017]
    assert parse_years("2016-2018") == [2016, 2017, 2018]
    assert parse_years("2018, 2010-2011") == [2010, 2011, 2018]
    for bad in ("2018-2016", "20x6", ","):
        with pytest.raises(UserError):
            parse_years(bad)


def test_inspect_weatherbench_json(tmp_path, capsys):
    w = fx.write_weatherbench(tmp_path, years=(2016, 2017, 2018), variables=("z500", "t850"), n_times_per_year=3)
    s = _inspect_json(capsys, "--source", "weatherbench", "--root", str(tmp_path), "--variables", "t850,z500",
                      "--years", "2016-2017")
    assert s["source"] == "weatherbench"
    assert s["variables"] == ["t850", "z500"]
    assert s["dims"] == {"time": 6, "channel": 2, "lat": 32, "lon": 64}
    assert s["n_times"] == 6 and s["cadence"] == "PT1H" and s["n_gaps"] == 1
    assert s["time_start"] == "2016-01-01T00:00:00" and s["time_end"] == "2017-01-01T02:00:00"
    assert s["units"] == {"t850": "K", "z500": "m**2 s**-2"}
    assert s["stats"]["z500"]["max"] == pytest.approx(float(w["values"]["z500"][:6].max()))


def test_inspect_taxibj_text_and_json(tmp_path, capsys):
    fx.write_taxibj(tmp_path, n_days=1, drop=["2013070120"])
    assert main(["data", "inspect", "--source", "taxibj", "--root", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "inflow" in text and "outflow" in text and "PT30M" in text and "1 gap" in text
    s = _inspect_json(capsys, "--source", "taxibj", "--root", str(tmp_path), "--no-stats")
    assert s["n_times"] == 47 and s["n_gaps"] == 1 and "stats" not in s
    assert s["dims"] == {"time": 47, "channel": 2, "y": 32, "x": 32}
    assert "holiday" in s["time_coords"] and "weather" in s["time_coords"]


@pytest.mark.parametrize("source", ["wb2", "taxibj-npz", "taxibj+", "netcdf"])
def test_inspect_every_other_source(tmp_path, capsys, source):
    if source == "wb2":
        fx.write_wb2_zarr(tmp_path / "s.zarr", n_times=4)
        root, n_times, variables = tmp_path / "s.zarr", 4, ["t2m", "z500", "z850", "t500", "t850"]
    elif source == "taxibj-npz":
        fx.write_taxibj_npz(tmp_path / "dataset.npz", n_train=2, n_test=1)
        root, n_times, variables = tmp_path, 24, ["inflow", "outflow"]
    elif source == "taxibj+":
        fx.write_taxibjplus_npy(tmp_path, n={"train": 1, "val": 1, "test": 1}, size=128)
        root, n_times, variables = tmp_path, 72, ["inflow", "outflow"]
    else:
        fx.write_cf_netcdf(tmp_path / "x.nc", {"tas": "K"}, n_times=5)
        root, n_times, variables = tmp_path / "x.nc", 5, ["tas"]
    s = _inspect_json(capsys, "--source", source, "--root", str(root))
    assert s["source"] == source and s["variables"] == variables and s["n_times"] == n_times
    assert set(s) >= {"dims", "time_start", "time_end", "cadence", "n_gaps", "units"}
    assert np.datetime64(s["time_start"]) <= np.datetime64(s["time_end"])


def test_inspect_subprocess_json(tmp_path):
    fx.write_weatherbench(tmp_path, years=(2016,), variables=("t2m",), n_times_per_year=2)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "core", "data", "inspect", "--source", "weatherbench", "--root",
                           str(tmp_path), "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["variables"] == ["t2m"] and s["n_times"] == 2 and s["dims"]["lat"] == 32
