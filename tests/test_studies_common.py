"""studies/_common.py: the committed figures/ change only with --update-figures (issue 12, 'no accidents')."""
import subprocess
import sys
from pathlib import Path

import pytest

from studies._common import FIGURES, SCRATCH, output_dir, study_parser

ROOT = Path(__file__).resolve().parent.parent


def test_default_output_is_the_scratch_folder():
    assert output_dir(None, update_figures=False, quick=True) == SCRATCH
    assert output_dir(None, update_figures=False, quick=False) == SCRATCH
    assert output_dir(None, update_figures=True, quick=False) == FIGURES
    assert study_parser("x", "d").parse_args([]).out == SCRATCH


@pytest.mark.parametrize("argv, message", [
    (["--quick", "--update-figures"], "--update-figures cannot be combined with --quick"),
    (["--out", str(FIGURES)], "--out figures/ is the committed folder: pass --update-figures"),
    (["--out", "/etc/hostname"], "argument --out: '/etc/hostname' exists and is not a folder"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
])
def test_study_flags_refused_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        study_parser("x", "d").parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--quick", "--update-figures"], "--update-figures cannot be combined with --quick"),
    (["--only", "no_such_study"], "--only: unknown study no_such_study"),
    (["--out", "figures"], "--out figures/ is the committed folder"),
])
def test_python_m_studies_refuses_bad_flags(argv, message):
    proc = subprocess.run([sys.executable, "-m", "studies", *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
