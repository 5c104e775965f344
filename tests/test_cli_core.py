"""The command-line shell: help, one-line usage errors with exit 2, python -m core."""

import subprocess
import sys

import pytest

from core.cli import Registry, _Parser, main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "data" in out


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s2kd: error:")


def test_bad_option_value_is_one_line_exit_2(capsys):
    assert main(["data", "synth", "--kind", "weather", "--seed", "abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid int value" in err[0]


def test_registry_refuses_duplicate_commands():
    reg = Registry(_Parser(prog="x"))
    reg.command(("a", "b"), help="first")
    with pytest.raises(ValueError):
        reg.command(("a", "b"), help="again")


def test_python_dash_m_core_runs():
    proc = subprocess.run([sys.executable, "-m", "core", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.startswith("s2kd ")


def test_synth_refuses_nonempty_out_without_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["data", "synth", "--kind", "weather", "--preset", "tiny", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"
