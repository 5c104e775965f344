"""Property-based fuzzing of every reader through ``s2kd data inspect`` (RELIABILITY.md, "Readers").

Every case ends either in exit 0 with a complete summary, or in exit 2 with exactly one line
``s2kd: error: ...`` that names the dataset -- never a traceback, a crash of the interpreter, a hang, or
a file left behind in the data folder.  Cases run in a separate long-lived worker process (restarted
after a crash or a hang), so a segfault inside libhdf5/libnetcdf or an endless loop is reported as a
failure instead of killing pytest.

Bounded in ``make test`` (a few examples per family); ``S2KD_FUZZ_EXAMPLES=200 pytest
tests/test_fuzz_readers.py`` runs a longer campaign.  Hypothesis runs derandomized (same cases every run).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories as fx

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("S2KD_FUZZ_EXAMPLES", "0") or 0)
CASE_TIMEOUT = float(os.environ.get("S2KD_FUZZ_CASE_TIMEOUT", "60"))
#: a directory name with spaces and non-ASCII letters: every fuzzed dataset lives under it
ODD_DIR = "data dir ünï cødé ✓"


def fuzz_settings(default: int):
    return settings(max_examples=N or default, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------------------------------
# the worker: runs core.cli.main in-process for each JSON line it reads; one JSON line back per case

_WORKER = r"""
import io, json, sys, traceback, contextlib, os
os.environ.setdefault("TQDM_DISABLE", "1")
from core.cli import main
print("ready", flush=True)
for line in sys.stdin:
    argv = json.loads(line)
    out, err = io.StringIO(), io.StringIO()
    status, tb = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        tb = traceback.format_exc()
    sys.__stdout__.write(json.dumps({"status": status, "out": out.getvalue(), "err": err.getvalue(), "tb": tb}) + "\n")
    sys.__stdout__.flush()
"""


class Worker:
    """A python process running ``core.cli.main`` for each argv sent; restarted after a crash or a hang."""

    def __init__(self):
        self.proc = None
        self.cases = 0

    def _start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env, bufsize=1)
        assert self._readline(120) == "ready"

    def _readline(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline().strip()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def run(self, argv: list[str]) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.cases += 1
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        t0 = time.monotonic()
        line = self._readline(CASE_TIMEOUT)
        elapsed = time.monotonic() - t0
        if line is None:
            self.stop()
            return {"hang": True, "elapsed": elapsed}
        if not line:  # EOF: the interpreter died (segfault, abort)
            rc = self.proc.wait()
            self.proc = None
            return {"crash": rc, "elapsed": elapsed}
        res = json.loads(line)
        res["elapsed"] = elapsed
        return res


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()
    print(f"\n[fuzz readers] {w.cases} cases run through s2kd data inspect")


def listing(root: Path) -> set[str]:
    if root.is_file():
        return {root.name}
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_outcome(res: dict, argv: list[str], root: Path, before: set[str], note: str = "") -> str:
    """Assert the contract; return "ok" or "error"."""
    ctx = f"{note} argv={argv}"
    assert not res.get("hang"), f"hang (> {CASE_TIMEOUT} s): {ctx}"
    assert "crash" not in res, f"interpreter crashed (rc {res.get('crash')}): {ctx}"
    assert res["tb"] is None, f"uncaught exception: {ctx}\n{res['tb']}"
    assert listing(root) == before, f"files changed in the data folder: {ctx}"
    if res["status"] == 0:
        json.loads(res["out"])  # a complete summary
        return "ok"
    assert res["status"] == 2, (ctx, res)
    lines = res["err"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s2kd: error: "), (ctx, res["err"])
    assert "Traceback" not in res["err"]
    return "error"


# --------------------------------------------------------------------------------------------------
# pristine datasets, one per reader (small), written once per module under a path with spaces/unicode


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp("pristine") / ODD_DIR
    out = {}
    fx.write_weatherbench(base / "wb", years=(2016,), variables=("z500", "t2m"), n_times_per_year=4)
    out["weatherbench"] = (base / "wb", "wb")
    fx.write_wb2_zarr(base / "era 5.zarr", n_times=3, variables=("2m_temperature", "geopotential"), levels=(500,))
    out["wb2"] = (base / "era 5.zarr", "era 5.zarr")
    fx.write_taxibj(base / "bj", n_days=1, size=32)
    out["taxibj"] = (base / "bj", "bj")
    fx.write_taxibj_npz(base / "npz" / "dataset.npz", n_train=2, n_test=2, t_in=2, t_out=2)
    out["taxibj-npz"] = (base / "npz", "npz")
    fx.write_taxibjplus_npy(base / "plus", n={"train": 2, "test": 1}, frames=2, size=8)
    out["taxibj+"] = (base / "plus", "plus")
    fx.write_cf_netcdf(base / "cf" / "tas é.nc", {"tas": "K", "pr": "kg m-2 s-1"}, n_times=4)
    out["netcdf"] = (base / "cf" / "tas é.nc", "tas é.nc")
    return out


def fresh_copy(pristine, source: str, tmp: Path) -> Path:
    src, name = pristine[source]
    dst = tmp / ODD_DIR / name
    if dst.exists() or dst.is_symlink():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst


def data_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file())


def inspect_argv(source: str, root: Path) -> list[str]:
    return ["data", "inspect", "--source", source, "--root", str(root), "--json"]


SOURCES = ["weatherbench", "wb2", "taxibj", "taxibj-npz", "taxibj+", "netcdf"]
TALLY: dict[str, dict[str, int]] = {}


def tally(family: str, outcome: str) -> None:
    TALLY.setdefault(family, {}).setdefault(outcome, 0)
    TALLY[family][outcome] += 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for fam, counts in sorted(TALLY.items()):
        print(f"[fuzz readers] {fam}: {counts}")


# --------------------------------------------------------------------------------------------------
# byte-level: truncation and bit flips of any file of any reader's layout


@pytest.mark.parametrize("source", SOURCES)
def test_truncated_files(source, pristine, worker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"trunc-{source}")

    @fuzz_settings(15)
    @given(st.data())
    def run(data):
        root = fresh_copy(pristine, source, tmp)
        files = data_files(root)
        target = data.draw(st.sampled_from(files), label="file")
        raw = target.read_bytes()
        cut = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="offset")
        target.write_bytes(raw[:cut])
        before = listing(root)
        argv = inspect_argv(source, root)
        outcome = check_outcome(worker.run(argv), argv, root, before, f"{target.name} cut at {cut}/{len(raw)}")
        tally(f"truncate/{source}", outcome)

    run()


@pytest.mark.parametrize("source", SOURCES)
def test_bit_flips(source, pristine, worker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"flip-{source}")

    @fuzz_settings(25)
    @given(st.data())
    def run(data):
        root = fresh_copy(pristine, source, tmp)
        files = data_files(root)
        target = data.draw(st.sampled_from(files), label="file")
        raw = bytearray(target.read_bytes())
        if not raw:
            return
        # flips concentrated in the first 4 KiB (headers, superblocks, metadata) or anywhere
        n_flip = data.draw(st.integers(1, 8), label="n_flips")
        header = data.draw(st.booleans(), label="in_header")
        hi = min(len(raw), 4096) if header else len(raw)
        flips = data.draw(st.lists(st.tuples(st.integers(0, hi - 1), st.integers(0, 7)), min_size=n_flip,
                                   max_size=n_flip), label="flips")
        for off, bit in flips:
            raw[off] ^= 1 << bit
        target.write_bytes(bytes(raw))
        before = listing(root)
        argv = inspect_argv(source, root)
        outcome = check_outcome(worker.run(argv), argv, root, before, f"{target.name} flips {flips}")
        tally(f"bitflip/{source}", outcome)

    run()


# --------------------------------------------------------------------------------------------------
# semantic: well-formed files with wrong contents


def _times_variant(kind: str, n: int, perm_seed: int) -> np.ndarray:
    base = np.datetime64("2020-01-01T00", "ns") + np.arange(n) * np.timedelta64(3, "h")
    rng = np.random.default_rng(perm_seed)
    if kind == "duplicated":
        i = int(rng.integers(1, n))
        base[i] = base[i - 1]
    elif kind == "unsorted":
        while n > 1:
            p = rng.permutation(n)
            if (p != np.arange(n)).any():
                return base[p]
    elif kind == "gappy":
        keep = np.sort(rng.choice(n, size=max(2, n - 2), replace=False))
        return base[keep]
    return base


@fuzz_settings(40)
@given(
    dtype=st.sampled_from(["float32", "float64", "int16", "int64", "uint8", "bool", "S4"]),
    times=st.sampled_from(["regular", "duplicated", "unsorted", "gappy"]),
    bad_value=st.sampled_from([None, "nan", "inf", "-inf", "1e38"]),
    coords=st.sampled_from(["ok", "missing_lat", "lat_out_of_range", "duplicated_lon", "lat_unsorted",
                            "string_lat", "no_time", "time_as_float"]),
    seed=st.integers(0, 2**16),
)
def test_cf_netcdf_wrong_contents(dtype, times, bad_value, coords, seed, worker, tmp_path_factory):
    """Generic NetCDF reader: wrong dtypes, wrong/missing coordinates, NaN/Inf, bad time axes."""
    import xarray as xr

    root = tmp_path_factory.mktemp("cf") / ODD_DIR / "f ü.nc"
    root.parent.mkdir(parents=True)
    n, ny, nx = 5, 4, 8
    t = _times_variant(times, n, seed)
    rng = np.random.default_rng(seed)
    vals = rng.standard_normal((t.size, ny, nx)) * 10
    if bad_value is not None:
        vals.flat[int(rng.integers(vals.size))] = float(bad_value)
    if dtype == "S4":
        arr = vals.astype("S4")
    elif dtype == "bool":
        arr = vals > 0
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            arr = vals.astype(dtype)
    lat = np.linspace(-78.75, 78.75, ny)
    lon = np.arange(nx) * 45.0
    cmap: dict = {"time": ("time", t), "lat": ("lat", lat), "lon": ("lon", lon)}
    if coords == "missing_lat":
        del cmap["lat"]
    elif coords == "lat_out_of_range":
        cmap["lat"] = ("lat", lat * 3)
    elif coords == "duplicated_lon":
        cmap["lon"] = ("lon", np.r_[lon[:-1], lon[-2]])
    elif coords == "lat_unsorted":
        cmap["lat"] = ("lat", lat[[1, 0, 2, 3]])
    elif coords == "string_lat":
        cmap["lat"] = ("lat", np.array(["a", "b", "c", "d"]))
    elif coords == "no_time":
        del cmap["time"]
    elif coords == "time_as_float":
        cmap["time"] = ("time", np.arange(t.size) * 0.5)
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), arr, {"units": "K"})}, coords=cmap)
    try:
        ds.to_netcdf(root, engine="netcdf4")
    except Exception:  # some combinations cannot be written at all (not the reader's business)
        return
    before = listing(root)
    argv = inspect_argv("netcdf", root)
    outcome = check_outcome(worker.run(argv), argv, root, before, f"{dtype} {times} {bad_value} {coords}")
    tally("semantic/netcdf", outcome)
    if outcome == "ok":
        # accepted: then it must be a correct reading (finite values, float32 canonical form)
        assert bad_value is None or bad_value == "1e38" or dtype in ("int16", "int64", "uint8", "bool"), \
            f"NaN/Inf accepted: {dtype} {bad_value}"
        assert times in ("regular", "gappy"), f"bad time axis accepted: {times}"
        assert coords not in ("missing_lat", "lat_out_of_range", "duplicated_lon", "string_lat", "no_time",
                              "time_as_float"), f"bad coordinates accepted: {coords}"


@fuzz_settings(30)
@given(
    shape=st.sampled_from([(48, 2, 32, 32), (48, 3, 32, 32), (48, 2, 32), (48, 2, 16, 16), (0, 2, 32, 32),
                           (48, 2, 32, 32, 1)]),
    data_dtype=st.sampled_from(["float64", "float32", "int32", "S3"]),
    date_kind=st.sampled_from(["ok", "unsorted", "duplicated", "int", "garbage", "short", "slot00"]),
    nan=st.booleans(),
    absurd=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_taxibj_h5_wrong_contents(shape, data_dtype, date_kind, nan, absurd, seed, worker, tmp_path_factory):
    """TaxiBJ HDF5: wrong shapes and dtypes, broken ``date`` datasets, NaN, absurd declared sizes."""
    import h5py

    root = tmp_path_factory.mktemp("bj") / ODD_DIR / "bj"
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n = shape[0]
    slots = fx.taxibj_slots("2013-07-01", 1)[:n]
    dates = np.array([s.encode() for s in slots], dtype="S10")
    if date_kind == "unsorted" and n > 2:
        dates[[0, 1]] = dates[[1, 0]]
    elif date_kind == "duplicated" and n > 2:
        dates[2] = dates[1]
    elif date_kind == "int":
        dates = np.arange(n)
    elif date_kind == "garbage":
        dates = np.array([b"\xff\xfe" * 5] * n, dtype="S10")
    elif date_kind == "short":
        dates = dates[: max(n - 3, 0)]
    elif date_kind == "slot00" and n:
        dates[0] = b"2013070100"
    data = rng.poisson(20, shape).astype("float64")
    if nan and data.size:
        data.flat[int(rng.integers(data.size))] = np.nan
    with h5py.File(root / "BJ13_M32x32_T30_InOut.h5", "w") as f:
        if absurd:
            # declared (2**40, 2, 32, 32) float64 (64 PiB), chunked, nothing stored: must not be allocated
            f.create_dataset("data", shape=(2**40, 2, 32, 32), dtype="float64", chunks=(1, 2, 32, 32))
            f.create_dataset("date", data=dates)
        else:
            with np.errstate(invalid="ignore"):  # NaN cast to an integer dtype: garbage on purpose
                f.create_dataset("data", data=data.astype(data_dtype))
            f.create_dataset("date", data=dates)
    before = listing(root)
    argv = inspect_argv("taxibj", root)
    outcome = check_outcome(worker.run(argv), argv, root, before, f"{shape} {data_dtype} {date_kind} nan={nan} "
                                                                  f"absurd={absurd}")
    tally("semantic/taxibj", outcome)
    if outcome == "ok":
        assert not (nan and data_dtype.startswith("float")) and not absurd and date_kind == "ok" and shape[1:] == (2, 32, 32) and data_dtype != "S3"


@fuzz_settings(30)
@given(
    header_shape=st.sampled_from([(2, 2, 2, 8, 8), (2**40, 2, 2, 8, 8), (2, 2, 2, 8), (2, 2, 3, 8, 8),
                                  (3, 2, 2, 8, 8), (2**62, 1, 1, 1, 1)]),
    descr=st.sampled_from(["<f4", "<f8", "|O", "<i2", ">f4", "|S4"]),
    fortran=st.booleans(),
    which=st.sampled_from(["train_input", "train_output", "dataset.npz"]),
    seed=st.integers(0, 1000),
)
def test_npy_headers_lie(header_shape, descr, fortran, which, seed, worker, tmp_path_factory):
    """TaxiBJ+ ``.npy`` and TaxiBJ ``dataset.npz``: headers that lie about shape/dtype (absurd sizes,
    object dtype = pickle) over the real payload."""
    base = tmp_path_factory.mktemp("npy") / ODD_DIR
    if which == "dataset.npz":
        root = base / "npz"
        fx.write_taxibj_npz(root / "dataset.npz", n_train=2, n_test=2, t_in=2, t_out=2, size=8, seed=seed)
        target, source = root / "dataset.npz", "taxibj-npz"
    else:
        root = base / "plus"
        fx.write_taxibjplus_npy(root, n={"train": 2}, frames=2, size=8, seed=seed)
        target, source = root / f"{which}_data_reshaped.npy", "taxibj+"
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %r, }" % (descr, fortran, tuple(header_shape))
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    if target.suffix == ".npy":
        raw = target.read_bytes()
        hlen = int.from_bytes(raw[8:10], "little")
        payload = raw[10 + hlen:]
        target.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload)
    else:
        import zipfile

        with zipfile.ZipFile(target) as z:
            members = {n: z.read(n) for n in z.namelist()}
        raw = members["X_train.npy"]
        hlen = int.from_bytes(raw[8:10], "little")
        members["X_train.npy"] = (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                                  + raw[10 + hlen:])
        with zipfile.ZipFile(target, "w") as z:
            for name, blob in members.items():
                z.writestr(name, blob)
    before = listing(root)
    argv = inspect_argv(source, root)
    outcome = check_outcome(worker.run(argv), argv, root, before, f"{which} {header.strip()}")
    tally(f"semantic/{source}", outcome)
    if outcome == "ok":
        assert descr in ("<f4", "<f8", "<i2", ">f4") and 2**40 not in header_shape and 2**62 not in header_shape


def test_absurd_netcdf_dimension(worker, tmp_path):
    """A NetCDF-4 variable declaring 2**40 time steps (unlimited, chunked, nothing stored): inspecting must not
    try to allocate it; ``--no-stats`` gives a summary and the stats pass ends in an error or a summary, bounded."""
    import netCDF4

    root = tmp_path / ODD_DIR / "huge.nc"
    root.parent.mkdir(parents=True)
    with netCDF4.Dataset(root, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 8)
        t = ds.createVariable("time", "i8", ("time",))
        t.units = "hours since 2000-01-01"
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-60, 60, 4)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(8) * 45.0
        v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(1, 4, 8))
        v.units = "K"
        t[2**20 - 1] = 2**20 - 1  # extends the unlimited dim to 2**20 without writing data chunks
    before = listing(root)
    for extra in (["--no-stats"], []):
        argv = inspect_argv("netcdf", root) + extra
        outcome = check_outcome(worker.run(argv), argv, root, before, "huge unlimited dim")
        tally("semantic/netcdf-huge", outcome)
