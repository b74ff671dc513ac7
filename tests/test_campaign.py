"""studies/campaign.py: the run list, its order and recipe, and an idempotent, resuming runner."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studies"))
import campaign  # noqa: E402


def test_minilm_list_counts_order_and_recipe():
    runs = campaign.RUNS["minilm"]
    names = [r.name for r in runs]
    assert len(names) == len(set(names)) == 65
    runnable = [r for r in runs if r.requires is None]
    assert runnable == runs  # everything on MiniLM runs on the CPU
    # seed-major main methods first: a cut-off campaign has every method at the same seeds
    assert names[:5] == ["cosa-a128-b128-s0", "lora-r8-s0", "block-lora-k2-r8-s0", "cps-lora-k2-r8-s0", "full-s0"]
    groups = [r.group for r in runnable]
    assert groups == sorted(groups, key=["main", "orthogonal", "granularity", "ab-grid", "control"].index)
    seeds = {g: sum(r.group == g for r in runs) for g in ("main", "orthogonal", "granularity", "ab-grid", "control")}
    assert seeds == {"main": 25, "orthogonal": 5, "granularity": 6, "ab-grid": 24, "control": 5}
    # seed 0 is the README's committed recipe (bit-identical to the earlier single-seed runs)
    lora = next(r for r in runs if r.name == "lora-r8-s0").args
    assert " ".join(lora) == ("--model minilm --data rotten-tomatoes --steps 100 --eval-every 50 --eval-size 500 "
                              "--threads 1 --method lora --r 8 --lr 5e-3 --seed 0")
    orth = next(r for r in runs if r.name == "cosa-a128-b128-orth-s3").args
    assert "--kind" in orth and orth[orth.index("--kind") + 1] == "orthogonal"
    assert all("--partitioner" in r.args for r in runs if r.group == "control")


def test_smollm2_entries_are_listed_and_all_pending():
    runs = campaign.RUNS["smollm2"]
    assert len(runs) == 36 and all(r.requires and "CUDA" in r.requires for r in runs)
    assert all("--task" in r.args and "--dtype" in r.args for r in runs)


def _fake_trainer(monkeypatch, calls):
    def command(run, out, *, resume=False):
        calls.append((run.name, resume))
        code = (f"import pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(parents=True, exist_ok=True); "
                "(p / 'ripkit_adapter.json').write_text('{}'); import shutil; shutil.rmtree(p / 'state', True)")
        return [sys.executable, "-c", code]
    monkeypatch.setattr(campaign, "train_command", command)
    monkeypatch.setattr(campaign.time, "sleep", lambda s: None)


def test_runner_skips_done_resumes_saved_state_and_skips_pending(tmp_path, monkeypatch):
    runs = [campaign.Run(f"x-s{i}", "minilm", "main", ("--seed", str(i))) for i in range(3)]
    runs.append(campaign.Run("y-s0", "minilm", "control", (), requires="later"))
    (tmp_path / "x-s0").mkdir()
    (tmp_path / "x-s0" / "ripkit_adapter.json").write_text("{}")          # done
    (tmp_path / "x-s1" / "state").mkdir(parents=True)
    (tmp_path / "x-s1" / "state" / "state.json").write_text("{}")         # interrupted with a state
    assert [campaign.run_state(tmp_path / r.name) for r in runs] == ["done", "resumable", "missing", "missing"]
    calls = []
    _fake_trainer(monkeypatch, calls)
    assert campaign.run_campaign(runs, tmp_path, tmp_path, 2, tmp_path / "log") == 0
    assert sorted(calls) == [("x-s1", True), ("x-s2", False)]
    assert [campaign.run_state(tmp_path / r.name) for r in runs[:3]] == ["done"] * 3
    calls.clear()
    assert campaign.run_campaign(runs, tmp_path, tmp_path, 2, None) == 0  # idempotent: nothing left
    assert calls == []
    assert "finished: 0 failed" in (tmp_path / "log").read_text()


def test_cli_list_and_status(capsys, tmp_path):
    assert campaign.main(["--list", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 65 and sum("# requires" in l for l in lines) == 0
    assert lines[0].endswith(f"--out {tmp_path / 'minilm' / 'cosa-a128-b128-s0'}")
    assert campaign.main(["--status", "--root", str(tmp_path)]) == 0
    assert "missing" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        campaign.main(["--workers", "0"])
