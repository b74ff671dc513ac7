"""Bad ``python -m ripkit.train`` command lines: exit 2, one stderr line naming the flag, no traceback,
nothing written; ``--version``; ``--resume`` refuses a changed command."""
import json

import pytest
import torch

from ripkit.train import main


def call(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits itself
        return exc.code


BAD = [  # (flags, text the one error line must contain)
    (["--batch-size", "0"], "--batch-size"),
    (["--eval-every", "0"], "--eval-every"),
    (["--ckpt-every", "-3"], "--ckpt-every"),
    (["--steps", "-1"], "--steps"),
    (["--steps", "2.5"], "--steps"),
    (["--scaling", "nan"], "--scaling"),
    (["--scaling", "inf"], "--scaling"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--alpha", "-1"], "--alpha"),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--warmup", "1.5"], "--warmup"),
    (["--epochs", "0"], "--epochs"),
    (["--a", "0"], "--a"),
    (["--b", "x"], "--b"),
    (["--r", "0"], "--r"),
    (["--k", "-2"], "--k"),
    (["--seed", "-1"], "--seed"),
    (["--threads", "-2"], "--threads"),
    (["--max-length", "1"], "--max-length"),
    (["--eval-size", "0"], "--eval-size"),
    (["--grad-accum", "0"], "--grad-accum"),
    (["--stop-after", "x"], "--stop-after"),
    (["--repartition-every", "-1"], "--repartition-every"),
    (["--device", "nope"], "--device"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nope:0"], "--device"),
    (["--dtype", "float16"], "--dtype"),
    (["--method", "nope"], "--method"),
    (["--task", "nope"], "--task"),
    (["--data", "nope"], "--data"),
    (["--partitioner", "nope"], "--partitioner"),
    (["--kind", "nope"], "--kind"),
    (["--nope"], "--nope"),
    (["--model", "/no/such/folder"], "--model"),
    (["--task", "lm", "--model", "minilm"], "--task lm"),
    (["--task", "lm", "--head", "score"], "--head"),
    (["--method", "block-lora", "--r", "6", "--k", "4"], "--r 6 must be divisible by --k 4"),
    (["--method", "cps-lora", "--r", "5", "--k", "2"], "--r 5 must be divisible by --k 2"),
    (["--batch-size", "6", "--grad-accum", "4"], "--grad-accum"),
    (["--resume"], "--resume"),
]


def assert_one_line_error(capsys, code, flag):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and flag in lines[0], err
    assert lines[0].startswith("python -m ripkit.train: error:"), err


@pytest.mark.parametrize("flags,flag", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_command_line(tmp_path, capsys, flags, flag):
    out = tmp_path / "run"
    assert_one_line_error(capsys, call(["--out", str(out), *flags]), flag)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_missing_and_unwritable_out(tmp_path, capsys):
    assert_one_line_error(capsys, call(["--steps", "1"]), "--out")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(capsys, call(["--out", str(tmp_path / "file" / "run")]), "--out")
    assert_one_line_error(capsys, call(["--out", str(tmp_path / "file")]), "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("flags,flag", [(["--targets", "no_such_layer"], "--targets"),
                                        (["--head", "no_such_head"], "--head"),
                                        (["--r", "100"], "--r 100 exceeds"),
                                        (["--method", "cps-lora", "--k", "32", "--r", "32"], "--k 32 exceeds"),
                                        (["--max-length", "5", "--task", "lm"], "--max-length 5 leaves no room")])
def test_bad_values_found_at_the_model(tiny_llama_dir, tmp_path, capsys, flags, flag):
    argv = ["--model", str(tiny_llama_dir), "--method", "lora", "--steps", "1", "--quiet", *flags]
    assert_one_line_error(capsys, call([*argv, "--out", str(tmp_path / "run")]), flag)
    assert list(tmp_path.iterdir()) == []


def test_version(capsys):
    assert call(["--version"]) == 0
    assert "ripkit" in capsys.readouterr().out


def test_resume_refuses_a_changed_command(tiny_llama_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_llama_dir), "--task", "lm", "--method", "lora", "--r", "4", "--steps", "4",
            "--batch-size", "2", "--max-length", "24", "--eval-size", "2", "--threads", "1", "--quiet",
            "--out", str(tmp_path)]
    assert call([*argv, "--stop-after", "2"]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_one_line_error(capsys, call([*argv, "--resume", "--lr", "1e-3"]), "--lr 0.005 → 0.001")
    assert_one_line_error(capsys, call([*argv, "--resume", "--steps", "8"]), "learning-rate schedule")
    assert_one_line_error(capsys, call([*argv, "--seed", "3", "--resume"]), "--seed 0 → 3")
    assert_one_line_error(capsys, call(argv), "--out")  # an unfinished run is not overwritten silently
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # runtime-only flags may change: threads, device, quiet, ckpt-every
    assert call([*argv, "--resume", "--threads", "2", "--device", "cpu", "--ckpt-every", "3"]) == 0
    capsys.readouterr()
    meta = json.loads((tmp_path / "ripkit_adapter.json").read_text())
    assert meta["metrics"]["steps"] == 4
    assert_one_line_error(capsys, call([*argv, "--resume"]), "the run there is finished")
