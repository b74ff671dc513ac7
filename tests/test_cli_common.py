"""ripkit._cli: flag types name the flag, JSON is strict, broken pipes are quiet."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ripkit._cli import Parser, dumps_json, jobs, positive_float, positive_int, writable_file


def _parse_error(capsys, flag_type, value):
    p = Parser(prog="prog")
    p.add_argument("--flag", type=flag_type)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--flag", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    return err


@pytest.mark.parametrize("flag_type, value, message", [
    (positive_int, "0", "argument --flag: must be >= 1, got 0"),
    (positive_int, "2.5", "argument --flag: expected an integer, got '2.5'"),
    (positive_float, "nan", "argument --flag: must be a finite number, got 'nan'"),
    (positive_float, "-1", "argument --flag: must be > 0, got -1"),
    (jobs, "0", "argument --flag: 0 must be >= 1, or -1"),
    (writable_file, "/", "argument --flag: '/' is a folder"),
])
def test_flag_types_name_the_flag(capsys, flag_type, value, message):
    assert message in _parse_error(capsys, flag_type, value)


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        Parser(prog="prog").parse_args(["--version"])
    assert exc.value.code == 0
    assert "ripkit" in capsys.readouterr().out


def test_dumps_json_is_strict():
    text = dumps_json({"a": math.nan, "b": [np.float64(np.inf), np.int64(3)], "c": np.arange(2)})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}")) == \
        {"a": None, "b": [None, 3], "c": [0, 1]}


def test_broken_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} -m ripkit.rip --config extreme --trials 3 --samples 50 "
                          f"--format csv | head -1", shell=True, capture_output=True, text=True)
    assert proc.stderr == ""
    assert proc.stdout.startswith("b,a,n,m,config") or proc.stdout.count("\n") == 1
