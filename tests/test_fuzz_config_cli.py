"""Property-based fuzzing of training configs and of the whole command line (RELIABILITY.md, "Config / CLI").

Properties:

* any TOML table (known and unknown keys, values of every TOML type, out-of-range numbers) either
  builds a :class:`core.config.Config` that respects every bound and choice and survives the TOML
  round trip, or raises one one-line :class:`ConfigError` naming the key -- nothing else;
* any ``key=value`` override text and any config *file* bytes behave the same way;
* any command line built from the real parsers (every command, every option, values drawn from a pool
  of odd strings, numbers and paths) ends in an exit status with at most a one-line ``s2kd: error:``,
  never an uncaught exception or a file written outside the temporary folder.

``S2KD_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_config_cli.py`` runs a longer campaign.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import io
import os
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import config as C
from core.cli import build_parser, main
from core.errors import ConfigError, UserError

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("S2KD_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(default: int):
    return settings(max_examples=N or default, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------------------------------
# TOML values and key paths

toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 2**31, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.5, 1.0]),
    st.booleans(), st.text(max_size=12), st.sampled_from(["", "auto", "cpu", "cuda:9", "student", "s2kd", "none",
                                                          "context", "privileged", "tiny", "../../etc", "ü ✓"]),
    st.just(dt.datetime(2020, 1, 1)), st.just(dt.date(2020, 1, 1)),
)
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)), max_leaves=6)


def _known_paths() -> list[tuple[str, ...]]:
    out = [("name",)]
    for sec in ("data", "train", "runtime", "narratives"):
        cls = {f.name: f.type for f in dataclasses.fields(C.Config)}[sec]
        cls = getattr(C, cls) if isinstance(cls, str) else cls
        out += [(sec, f.name) for f in dataclasses.fields(cls)]
    out += [("model", "name"), ("model", "size"), ("distill", "teacher"), ("distill", "cache"),
            ("distill", "method"), ("distill", "alpha"), ("distill", "weights"), ("distill", "weights", "output"),
            ("distill", "periodic"), ("model", "student", "latent_dim"), ("model", "student", "depth"),
            ("model", "teacher-s2", "latent_dim"), ("model", "simvp", "hid_s")]
    return out


KNOWN = _known_paths()
key_paths = st.one_of(st.sampled_from(KNOWN),
                      st.lists(st.sampled_from(["data", "train", "model", "distill", "runtime", "narratives",
                                                "epochz", "student", "weights", "x", ""]), min_size=1, max_size=3
                               ).map(tuple),
                      st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3).map(tuple))


def base_table() -> dict:
    with open(ROOT / "configs" / "weather" / "tiny.toml", "rb") as fh:
        return tomllib.load(fh)


def set_path(table: dict, path: tuple[str, ...], value) -> bool:
    node = table
    for p in path[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            return False
        node = child
    node[path[-1]] = value
    return True


def check_config_error(exc: ConfigError) -> None:
    msg = str(exc)
    assert "\n" not in msg and msg.strip(), msg


def check_accepted(cfg: C.Config) -> None:
    """An accepted config respects every bound/choice and survives the TOML round trip."""
    for sec in ("data", "train", "runtime", "narratives"):
        obj = getattr(cfg, sec)
        for f in dataclasses.fields(obj):
            v, meta = getattr(obj, f.name), f.metadata
            if "choices" in meta:
                assert v in meta["choices"], (sec, f.name, v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                for name, ok in (("ge", v >= meta.get("ge", v)), ("gt", "gt" not in meta or v > meta["gt"]),
                                 ("le", v <= meta.get("le", v)), ("lt", "lt" not in meta or v < meta["lt"])):
                    assert ok, (sec, f.name, v, name)
            if f.type in (int, "int"):
                assert isinstance(v, int) and not isinstance(v, bool), (sec, f.name, v)
    text = C.dumps_toml(C.to_dict(cfg))
    again = C.config_from_dict(tomllib.loads(text), source="round trip")
    assert again == cfg


COUNTS: dict[str, dict[str, int]] = {}


def count(family: str, outcome: str) -> None:
    COUNTS.setdefault(family, {}).setdefault(outcome, 0)
    COUNTS[family][outcome] += 1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for fam, c in sorted(COUNTS.items()):
        print(f"\n[fuzz config/cli] {fam}: {c}")


@fuzz_settings(300)
@given(edits=st.lists(st.tuples(key_paths, toml_values), min_size=1, max_size=4), from_empty=st.booleans())
def test_config_tables(edits, from_empty):
    table = {} if from_empty else base_table()
    for path, value in edits:
        set_path(table, path, value)
    try:
        cfg = C.config_from_dict(table, source="fuzz.toml")
    except ConfigError as exc:
        check_config_error(exc)
        count("tables", "ConfigError")
        return
    check_accepted(cfg)
    count("tables", "accepted")


plausible = st.one_of(st.integers(-3, 100), st.floats(-2, 2), st.booleans(), st.sampled_from(
    ["", "auto", "cpu", "student", "teacher-s2", "s2kd", "output", "none", "context", "privileged", "tiny", "paper",
     "diagnostic", "openai", "weatherbench", "t2m"]), st.lists(st.sampled_from(["t2m", "z500", 1, True]), max_size=3))


@fuzz_settings(300)
@given(edits=st.lists(st.tuples(st.sampled_from(KNOWN), plausible), min_size=1, max_size=3))
def test_config_known_keys(edits):
    """Known keys with plausible-looking values: exercises the type, range and choice checks."""
    table = base_table()
    for path, value in edits:
        set_path(table, path, value)
    try:
        cfg = C.config_from_dict(table, source="fuzz.toml")
    except ConfigError as exc:
        check_config_error(exc)
        assert any(".".join(p[:2]) in str(exc) or p[-1] in str(exc) for p, _ in edits), str(exc)
        count("known keys", "ConfigError")
        return
    check_accepted(cfg)
    count("known keys", "accepted")


@fuzz_settings(300)
@given(items=st.lists(st.one_of(
    st.tuples(st.sampled_from([".".join(p) for p in KNOWN]), st.text(max_size=10)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.tuples(st.sampled_from([".".join(p) for p in KNOWN]),
              st.sampled_from(["3", "-1", "0", "1e999", "nan", "inf", "true", "[1, 2]", "{a = 1}", '"x"', "'",
                               "[", "2020-01-01", "1_000", "0x10", "9223372036854775808", ""])
              ).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(max_size=20)), min_size=1, max_size=4))
def test_config_overrides(items):
    try:
        cfg = C.load_config(None, items)
    except ConfigError as exc:
        check_config_error(exc)
        count("overrides", "ConfigError")
        return
    check_accepted(cfg)
    count("overrides", "accepted")


@fuzz_settings(150)
@given(blob=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                      st.sampled_from([b"\xff\xfe[train]\n", b"[train]\nepochs = 1\n[train]\nepochs = 2\n",
                                       b"model = 3\n", b"distill = [1, 2]\n", b"model = \"student\"\n",
                                       b"[model]\nstudent = 3\n", b"data = 1\n", b"[[train]]\nlr = 1\n",
                                       b"[model.student]\nlatent_dim = -5\n", b"[train]\nlr = nan\n",
                                       b"[train]\nbatch_size = 99999999999999999999\n"])))
def test_config_files(blob, tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "c ü.toml"
    p.write_bytes(blob)
    try:
        cfg = C.load_config(p)
    except ConfigError as exc:
        check_config_error(exc)
        assert str(p) in str(exc), str(exc)
        count("files", "ConfigError")
        return
    check_accepted(cfg)
    count("files", "accepted")


# --------------------------------------------------------------------------------------------------
# the whole command line

#: commands whose successful run would do real work (training a suite, rebuilding assets, generating demo
#: data; covered by their own tests): only their
#: argument parsing is fuzzed -- through argv that always misses a required option or has a bad value
HEAVY = {("bench",), ("assets", "build"), ("data", "prepare"), ("data", "synth")}  # prepare/synth: minutes of data


def _commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    out = {}

    def walk(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[path] = parser
            return
        for name, sub in subs[0].choices.items():
            walk(sub, path + (name,))

    walk(build_parser(), ())
    return out


COMMANDS = _commands()
SLOWEST: list = []


@st.composite
def argvs(draw, tmp: Path):
    path = draw(st.sampled_from(sorted(COMMANDS)))
    parser = COMMANDS[path]
    opts = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    pool = st.one_of(
        st.sampled_from(["", "0", "-1", "3", "1e9", "nan", "abc", "ü ✓", "../../../etc/passwd", "/dev/null",
                         "/nonexistent/dir", str(tmp / "x"), str(tmp / "sp ace ü"), str(tmp), "train", "test",
                         "student", "weatherbench", "taxibj", "--", "-", "2016-2018", "2016,twenty", "PT1H",
                         "9" * 30, "t2m,z500", ",", "cpu", "cuda:99", "2016-01-01T00:00"]),
        st.text(max_size=8))
    argv = list(path)
    if draw(st.booleans()):  # usually give every required option, to get past argument parsing
        for act in opts:
            if act.required:
                argv += [act.option_strings[0], draw(pool)]
    for _ in range(draw(st.integers(0, 5))):
        if opts and draw(st.booleans()):
            act = draw(st.sampled_from(opts))
            argv.append(draw(st.sampled_from(act.option_strings)))
            if act.nargs != 0:
                argv.append(draw(pool))
        else:
            argv.append(draw(pool))
    if path in HEAVY:
        argv.append("--no-such-option")
    return argv


def test_cli_argv(tmp_path):
    before = set(os.listdir(ROOT))

    @fuzz_settings(300)
    @given(data=st.data())
    def run(data):
        argv = data.draw(argvs(tmp_path), label="argv")
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp_path)  # relative outputs land here
        t0 = time.monotonic()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(argv)
                except SystemExit as exc:  # argparse --version
                    status = exc.code
        finally:
            os.chdir(cwd)
            SLOWEST.append((time.monotonic() - t0, argv))
        assert isinstance(status, int), (argv, status)
        text = err.getvalue()
        if status == 2:
            lines = [ln for ln in text.splitlines() if ln.startswith("s2kd: error: ")]
            assert len(lines) == 1, (argv, text)
        assert "Traceback" not in text, (argv, text)
        count("argv", f"exit {status}")

    run()
    assert set(os.listdir(ROOT)) == before, "a fuzzed command wrote into the repository"
    SLOWEST.sort(key=lambda t: -t[0])
    print("\n[fuzz config/cli] slowest argv:", [(round(t, 2), a) for t, a in SLOWEST[:3]])


def test_every_command_rejects_unknown_option_in_one_line(capsys):
    """Every leaf command: an unknown option is a one-line usage error, exit 2."""
    for path in sorted(COMMANDS):
        status = main([*path, "--definitely-not-an-option"])
        out, err = capsys.readouterr()
        assert status == 2, path
        assert err.count("\n") == 1 and err.startswith("s2kd: error: "), (path, err)
        count("unknown option", "exit 2")
