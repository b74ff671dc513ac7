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


def _exit_now_process(body: str) -> subprocess.CompletedProcess:
    code = "import atexit, sys, threading\nfrom ripkit._cli import exit_now\n" + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("status", [0, 2, 3])
def test_exit_now_flushes_runs_atexit_handlers_and_keeps_the_status(status):
    proc = _exit_now_process("atexit.register(lambda: print('handler ran', file=sys.stderr))\n"
                             f"sys.stdout.write('unflushed output')\nexit_now({status})\n")
    assert proc.returncode == status
    assert proc.stdout == "unflushed output" and proc.stderr.strip() == "handler ran"


def test_exit_now_waits_for_a_live_thread_like_an_ordinary_exit():
    proc = _exit_now_process("import time\n"
                             "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
                             "exit_now(0)\n")
    assert proc.returncode == 0 and proc.stdout.strip() == "thread done"


@pytest.mark.parametrize("module", ["ripkit.rip", "ripkit.analyze", "ripkit.train"])
def test_cli_entry_points_exit_with_main_status(module, tmp_path):
    """``python -m`` ends through ``exit_now``: usage errors still exit 2, with their one line."""
    proc = subprocess.run([sys.executable, "-m", module, "--no-such-flag"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"python -m {module}: error:")


def test_rip_entry_point_writes_its_output_and_exits_0(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "ripkit.rip", "--m", "12", "--n", "10", "--a", "4", "--b", "3",
                           "--sparsity", "2", "--samples", "20", "--trials", "1", "--estimator", "bracket",
                           "--format", "json", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(out.read_text())["records"][0]["estimator"] == "bracket"
