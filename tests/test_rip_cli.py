import json
import subprocess
import sys

import pytest

from ripkit.rip.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ripkit.rip", *args], capture_output=True, text=True)


def test_cli_table_smoke():
    proc = _run("--config", "extreme", "--trials", "2", "--samples", "200")
    assert proc.returncode == 0, proc.stderr
    assert "compression mn/ab = 512×" in proc.stdout
    assert "0.1580 ± 0.0510" in proc.stdout  # paper Table 4 beside ours
    assert "coherence μ" in proc.stdout


def test_cli_json_schema_and_out_file(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--m", "40", "--n", "30", "--a", "6", "--b", "5", "--sparsity", "2", "4", "--samples", "100",
                 "--trials", "3", "--estimator", "support", "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["config"] == "custom" and data["psi_shape"] == [1200, 30]
    assert data["compression_ratio"] == 40.0 and data["scale"] == "unit"
    assert [r["s"] for r in data["results"]] == [2, 4]
    assert set(data["results"][0]["estimators"]) == {"support"}
    assert len(data["coherence"]["values"]) == 3
    assert all(len(r["support"]) == r["s"] for r in data["records"])


def test_cli_csv(capsys):
    assert main(["--config", "extreme", "--trials", "2", "--samples", "50", "--format", "csv", "--jobs", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("seed,scale,b,a,n,m,config") and len(lines) == 1 + 2 * 3


@pytest.mark.parametrize("args, message", [
    (["--config", "nope"], "invalid choice: 'nope'"),
    (["--m", "4"], "missing: --n, --a, --b"),
    (["--config", "extreme", "--sparsity", "0"], "argument --sparsity: must be >= 1, got 0"),
    (["--config", "extreme", "--samples", "0"], "argument --samples: must be >= 1, got 0"),
    (["--config", "extreme", "--trials", "x"], "argument --trials: expected an integer, got 'x'"),
    (["--config", "extreme", "--sparsity", "300"], "--sparsity 300 must be <= a*b = 256"),
    (["--config", "extreme", "--seed", "-3"], "argument --seed: must be >= 0, got -3"),
    (["--config", "extreme", "--budget-seconds", "0"], "argument --budget-seconds: must be > 0, got 0"),
    (["--config", "extreme", "--budget-seconds", "nan"], "argument --budget-seconds: must be a finite number"),
    (["--config", "extreme", "--jobs", "0"], "argument --jobs: 0 must be >= 1, or -1"),
    (["--config", "extreme", "--out", "/"], "argument --out: '/' is a folder"),
    (["--config", "extreme", "--out", "/nonexistent/dir/x"], "argument --out: folder '/nonexistent/dir' does not exist"),
    (["--config", "extreme", "--out", "/etc/hostname/x"], "argument --out: folder '/etc/hostname' does not exist"),
    (["--m", "100000000", "--n", "100000000", "--a", "100000", "--b", "4"], "GiB of memory is available"),
    (["--config", "extreme", "--device", "nope"], "argument --device: unknown device 'nope'"),
    (["--config", "extreme", "--max-supports", "0"], "argument --max-supports: must be >= 1, got 0"),
])
def test_cli_errors_exit_2_with_one_line(args, message):
    proc = _run(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr


def test_cli_bracket_json_carries_supports(tmp_path):
    out = tmp_path / "b.json"
    assert main(["--m", "20", "--n", "16", "--a", "5", "--b", "4", "--sparsity", "2", "3", "--trials", "2",
                 "--samples", "100", "--estimator", "all", "--budget-seconds", "5", "--format", "json",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    brackets = [r for r in data["records"] if r["estimator"] == "bracket"]
    support = {(r["trial"], r["s"]): r["delta"] for r in data["records"] if r["estimator"] == "support"}
    assert len(brackets) == 4
    for r in brackets:
        assert r["lower"] <= r["upper"]
        assert r["lower"] >= support[(r["trial"], r["s"])] - 1e-12  # never below the best random support
        assert 1 <= len(r["lower_support"]) <= r["s"]
        assert r["lower_by"] in r["lower_candidates"]


def test_cli_table_shows_bracket(capsys):
    assert main(["--m", "20", "--n", "16", "--a", "5", "--b", "4", "--sparsity", "2", "--trials", "1",
                 "--samples", "50", "--estimator", "bracket"]) == 0
    out = capsys.readouterr().out
    assert "certified bracket per dictionary" in out and "lower" in out and "upper" in out


def _cli_in_fresh_process(args: list[str], module: str) -> tuple[subprocess.CompletedProcess, str]:
    """The CLI with ``args`` in a new interpreter: (the process, whether ``module`` was imported, as its stderr)."""
    code = (f"import sys; from ripkit.rip.cli import main; main({args!r}); "
            f"print({module!r} in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return proc, proc.stderr.strip()


_SMALL = ["--m", "12", "--n", "10", "--a", "4", "--b", "3", "--sparsity", "2", "--samples", "20",
          "--max-supports", "50"]


def test_cli_records_device_and_cap_and_does_not_import_torch_by_default():
    proc, imported = _cli_in_fresh_process(_SMALL + ["--trials", "1", "--estimator", "bracket", "--format", "json"],
                                           "torch")
    assert proc.returncode == 0 and imported == "False"
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["max_supports"] == 50


def test_cli_table_does_not_import_pandas():
    # pandas' import is ~0.2 s of the `llm` bracket run's 2 s target; the table needs none of it.
    proc, imported = _cli_in_fresh_process(_SMALL + ["--trials", "2", "--estimator", "all"], "pandas")
    assert proc.returncode == 0 and imported == "False", proc.stderr
    assert "certified bracket per dictionary" in proc.stdout
