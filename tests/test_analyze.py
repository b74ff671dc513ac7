"""ripkit.analyze against numpy on the dense ΔW that peft's own merge produces; the CLI's contract."""
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ripkit.analyze import COLUMNS, analyze, summarize_modules
from ripkit.analyze.cli import main

from formats._builders import merged_deltas, peft_checkpoint, tiny_bert, tiny_llama

ROOT = Path(__file__).resolve().parent.parent
COSA_RUN = ROOT / "studies" / "runs" / "minilm" / "cosa-a128-b128-s0"


def numpy_row(w, energy=0.95, threshold=1e-4, rel=1e-3) -> dict:
    """Every number of a row, written out independently from numpy.linalg.svd and the dense matrix."""
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    kept = s[s > max(w.shape) * np.finfo(float).eps * s[0]]
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    rms = np.linalg.norm(w) / np.sqrt(w.size)
    return {"frobenius_norm": np.linalg.norm(w), "sigma_max": s[0], "stable_rank": np.sum(s ** 2) / s[0] ** 2,
            "energy_rank": int(np.argmax(cum >= energy - 1e-12) + 1), "eber": np.exp(-np.sum(p * np.log(p))),
            "numerical_rank": np.linalg.matrix_rank(w), "condition_number": kept[0] / kept[-1], "rms": rms,
            "max_abs": np.abs(w).max(), "frac_below_abs": np.mean(np.abs(w) < threshold),
            "frac_below_rel": np.mean(np.abs(w) < rel * rms)}


def assert_row_matches(row, ref, prefix="", rtol=1e-10):
    for key, want in ref.items():
        got = row[prefix + key]
        if key in ("energy_rank", "numerical_rank", "frac_below_abs", "frac_below_rel"):
            assert got == want, (row["name"], prefix + key, got, want)   # exact counts
        else:
            assert math.isclose(got, want, rel_tol=rtol), (row["name"], prefix + key, got, want)


def records(df) -> list[dict]:
    """DataFrame rows with NaN / NA as None: what the JSON rows must equal."""
    return [{k: (None if v is None or (not isinstance(v, str) and pd.isna(v)) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def run_cli(args, capsys):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- fixtures: real peft checkpoints of a tiny BERT (LoRA + lora_bias) and a tiny Llama (DoRA) --------
@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    from peft import LoraConfig

    folder = tmp_path_factory.mktemp("lora")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "intermediate.dense"], lora_bias=True)
    model, w0 = peft_checkpoint(folder, tiny_bert(), config)
    return folder / "adapter", merged_deltas(model, w0)


@pytest.fixture(scope="module")
def dora(tmp_path_factory):
    from peft import LoraConfig

    folder = tmp_path_factory.mktemp("dora")
    model, w0 = peft_checkpoint(folder, tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], use_dora=True))
    return folder / "adapter", folder / "base", merged_deltas(model, w0)


# ---- numbers against numpy ----------------------------------------------------------------------------
def test_peft_lora_rows_equal_numpy_on_peft_merge(lora):
    folder, reference = lora
    df = analyze(folder)
    assert list(df.columns) == list(COLUMNS) and len(df) == 6
    for row in records(df):
        w = reference[row["name"] + ".weight"]
        assert row["method"] == "peft-lora" and row["factor_rank"] == 4 and row["missing"] is None
        assert (row["out_features"], row["in_features"]) == w.shape
        assert_row_matches(row, numpy_row(w))
        bias = reference[row["name"] + ".bias"]  # lora_bias: merging adds s·lora_B.bias
        assert math.isclose(row["bias_norm"], np.linalg.norm(bias), rel_tol=1e-12)
        assert row["core_eber"] is None and row["injective"] is None


def test_cosa_rows_equal_numpy_on_dense_l_y_r():
    from ripkit.formats import load_adapter

    pattern = r"layer\.0\.attention\.self\.(query|value)$"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the committed runs are format-1 checkpoints
        rows = records(analyze(COSA_RUN, layers=pattern))
        layers = {layer.name: layer for layer in load_adapter(COSA_RUN, layers=pattern)}
    assert len(rows) == 2
    for row in rows:
        layer = layers[row["name"]]
        (left, right), y = layer.dictionary(), layer.core()
        assert_row_matches(row, numpy_row(layer.scaling * left @ y @ right))
        assert_row_matches(row, numpy_row(y), prefix="core_")
        assert (row["core_rows"], row["core_cols"]) == y.shape
        assert math.isclose(row["projection_condition"], np.linalg.cond(left) * np.linalg.cond(right), rel_tol=1e-9)
        assert row["injective"] is True


def test_cosa_reference_without_hash_seed_keeps_core_rows(tmp_path):
    from formats.test_cosa_reference import HASH_SEED, reference_delta, write_reference_checkpoint

    cores, w0 = write_reference_checkpoint(tmp_path)
    with pytest.warns(UserWarning) as caught:
        bare = records(analyze(tmp_path / "adapter"))
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and "pass --base" in messages[1] and "pass --hash-seed N" in messages[0]
    assert len(bare) == len(cores)
    for row in bare:
        assert row["missing"] == "base,hash_seed" and row["frobenius_norm"] is None and row["out_features"] is None
        assert_row_matches(row, numpy_row(cores[row["name"]].astype(np.float64)), prefix="core_")
        assert "core Y statistics are given" in row["note"]
    full = records(analyze(tmp_path / "adapter", base=tmp_path / "base", hash_seed=HASH_SEED,
                           hash_algorithm="siphash13", layers=r"layers\.0\.self_attn\.q_proj"))
    (row,) = full
    out, inp = w0[row["name"] + ".weight"].shape
    assert row["missing"] is None and row["injective"] is True  # L (32, 8) and R (6, 32) have full rank
    assert_row_matches(row, numpy_row(reference_delta(cores[row["name"]].astype(np.float64), out, inp)), rtol=1e-9)


def test_dora_without_base_keeps_the_row_and_says_how(dora, capsys):
    folder, base, reference = dora
    with pytest.warns(UserWarning, match="--base"):
        rows = records(analyze(folder))
    assert {r["missing"] for r in rows} == {"base"}
    assert all(r["frobenius_norm"] is None and "base model's weights (--base)" in r["note"] for r in rows)
    rc, out, err = run_cli([folder, "--format", "json"], capsys)
    assert rc == 0 and len(err.strip().splitlines()) == 1 and "pass --base FOLDER_OR_FILE" in err
    with_base = records(analyze(folder, base=base))
    for row in with_base:  # a dense ΔW: numpy SVD after a memory check
        assert row["factor_rank"] is None and row["missing"] is None
        assert_row_matches(row, numpy_row(reference[row["name"] + ".weight"]), rtol=1e-9)


# ---- the CLI -------------------------------------------------------------------------------------------
def test_cli_json_rows_equal_the_dataframe(lora, capsys):
    folder, _ = lora
    rc, out, err = run_cli([folder, "--format", "json"], capsys)
    assert rc == 0 and err == ""
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["layers"] == records(analyze(folder))
    assert [m["module"] for m in doc["modules"]] == ["attention.self.query", "attention.self.value", "intermediate.dense"]
    assert set(doc["timings"]) >= {"load_seconds", "spectra_seconds", "entries_seconds", "total_seconds"}


def test_cli_layers_regex_and_csv(lora, capsys):
    folder, _ = lora
    rc, out, _ = run_cli([folder, "--layers", r"\.value$", "--format", "csv"], capsys)
    lines = out.strip().splitlines()
    assert rc == 0 and lines[0] == ",".join(COLUMNS) and len(lines) == 3
    assert all(".attention.self.value," in line for line in lines[1:])


@pytest.mark.parametrize("extra", [["--jobs", "2"], ["--jobs", "2", "--backend", "threading"], ["--jobs", "-1"]])
def test_jobs_and_backends_give_identical_numbers(lora, capsys, extra):
    folder, _ = lora
    one = json.loads(run_cli([folder, "--format", "json"], capsys)[1])["layers"]
    many = json.loads(run_cli([folder, "--format", "json", *extra], capsys)[1])["layers"]
    assert many == one


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_cluster_backends_give_identical_numbers(lora, backend):
    pytest.importorskip({"dask": "distributed", "ray": "ray"}[backend])
    folder, _ = lora
    pd.testing.assert_frame_equal(analyze(folder), analyze(folder, n_jobs=2, backend=backend))


def test_cli_table_and_out_folder(lora, capsys, tmp_path):
    folder, _ = lora
    rc, out, err = run_cli([folder, "--out", tmp_path / "report", "--no-progress"], capsys)
    assert rc == 0 and err == ""
    assert "per module type" in out and "intermediate.dense" in out and "‖Δb‖" in out
    files = {p.name for p in (tmp_path / "report").iterdir()}
    assert files == {"layers.csv", "modules.csv", "analysis.json", "spectra.csv", "spectra.png", "heatmaps.png"}
    assert json.loads((tmp_path / "report" / "analysis.json").read_text())["layers"] == records(analyze(folder))


def test_no_entries_leaves_entry_columns_null(lora):
    folder, _ = lora
    row = records(analyze(folder, entries=False, layers=r"layer\.0\.attention\.self\.query"))[0]
    assert row["eber"] is not None and row["frac_below_abs"] is None and row["max_abs"] is None


def _bad_cases(tmp):
    (tmp / "notes.txt").write_text("not a checkpoint")
    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "pickled").mkdir(exist_ok=True)
    (tmp / "pickled" / "adapter_model.bin").write_bytes(b"\x80\x04")
    return [
        ([tmp / "missing"], "argument PATH_OR_HUB_ID: '"),
        ([tmp / "notes.txt"], "has neither ripkit_adapter.json"),
        ([tmp / "pickled"], "is a pickle (.bin)"),
        (["{adapter}", "--layers", "("], "argument --layers: '(' is not a valid regular expression"),
        (["{adapter}", "--layers", "nothing-matches"], "no adapted layer matching layers='nothing-matches'"),
        (["{adapter}", "--jobs", "0"], "argument --jobs: 0 must be >= 1, or -1"),
        (["{adapter}", "--jobs", "x"], "argument --jobs: expected an integer, got 'x'"),
        (["{adapter}", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["{adapter}", "--backend", "mpi"], "argument --backend: invalid choice: 'mpi'"),
        (["{adapter}", "--out", tmp / "notes.txt"], "argument --out: "),
        (["{adapter}", "--out", "/proc/version/x"], "argument --out: "),
        (["{adapter}", "--hash-seed", "-1"], "argument --hash-seed: must be >= 0, got -1"),
        (["{adapter}", "--hash-seed", "4294967296"], "argument --hash-seed: must be <= 4294967295"),
        (["{adapter}", "--hash-algorithm", "md5"], "argument --hash-algorithm: invalid choice: 'md5'"),
        (["{adapter}", "--base", tmp / "nope"], "argument --base: '"),
        (["{adapter}", "--base", tmp / "empty"], "argument --base: base folder"),
        (["{adapter}", "--adapter-name", "a/b"], "argument --adapter-name: 'a/b' must be the name of an adapter"),
        (["{adapter}", "--adapter-name", "other"], "has no adapter 'other'"),
        (["{adapter}", "--threshold", "0"], "argument --threshold: must be > 0, got 0"),
        (["{adapter}", "--rel-threshold", "nan"], "argument --rel-threshold: must be a finite number"),
        (["{adapter}", "--energy", "1.5"], "argument --energy: must be in (0, 1], got 1.5"),
        (["{adapter}", "--bogus"], "unrecognized arguments: --bogus"),
    ]


@pytest.mark.parametrize("index", range(22))
def test_bad_command_lines_exit_2_with_one_line(lora, capsys, tmp_path, index):
    folder, _ = lora
    cases = _bad_cases(tmp_path)
    assert len(cases) == 22
    args, message = cases[index]
    rc, out, err = run_cli([str(a).replace("{adapter}", str(folder)) for a in args], capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("python -m ripkit.analyze: error: ") and message in err, err


def test_subprocess_errors_version_and_broken_pipe(lora, tmp_path):
    folder, _ = lora
    run = [sys.executable, "-m", "ripkit.analyze"]
    bad = subprocess.run(run + [str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    version = subprocess.run(run + ["--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "ripkit" in version.stdout
    for reader in ("head -1", "true"):
        cmd = f"set -o pipefail; {' '.join(run)} {folder} --format csv | {reader}"
        piped = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
        assert piped.returncode == 0 and piped.stderr == "", (reader, piped.stderr)


# ---- module summary --------------------------------------------------------------------------------------
def test_summarize_modules_means_and_median():
    base = dict.fromkeys(COLUMNS)
    rows = [base | {"name": f"m.{i}.q", "module": "q", "trainable_parameters": 10, "frobenius_norm": f,
                    "condition_number": c, "eber": e}
            for i, (f, c, e) in enumerate([(1.0, 2.0, 3.0), (3.0, 10.0, 5.0), (None, None, None)])]
    (q,) = summarize_modules(rows)
    assert (q["module"], q["layers"], q["analysed"], q["trainable_parameters"]) == ("q", 3, 2, 30)
    assert q["frobenius_norm"] == 2.0 and q["eber"] == 4.0 and q["condition_number"] == 6.0
    assert q["energy_rank"] is None
