"""The package trainer reproduces the pre-package trainer's runs bit for bit (golden.json, see _golden.py).

Recorded on x86_64 with torch 2.13 CPU and one thread; other builds may round differently,
so the test is skipped (with the reason) where the environment differs.
"""
import json
from pathlib import Path

import pytest
import torch

import _golden

GOLDEN = json.loads((Path(__file__).parent / "golden.json").read_text())


def assert_contains(want, got, where="") -> None:
    """``got`` equals ``want`` except for keys ``want`` does not have (new fields are allowed)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        for key in want:
            assert key in got, f"{where}.{key} missing"
            assert_contains(want[key], got[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            assert_contains(w, g, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.fixture(autouse=True)
def same_environment():
    env = _golden.environment()
    recorded = GOLDEN["environment"]
    if (env["torch"], env["machine"]) != (recorded["torch"], recorded["machine"]):
        pytest.skip(f"golden bits recorded with torch {recorded['torch']} on {recorded['machine']}; "
                    f"this is torch {env['torch']} on {env['machine']}")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(_golden.TINY_CASES))
def test_tiny_bert_runs_are_bit_identical(tmp_path, name):
    assert_contains(_golden.comparable(GOLDEN["cases"][name]), _golden.comparable(_golden.record(name, tmp_path)),
                    name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_golden.MINILM_CASES))
def test_minilm_runs_are_bit_identical(tmp_path, name):
    assert_contains(_golden.comparable(GOLDEN["cases"][name]), _golden.comparable(_golden.record(name, tmp_path)),
                    name)
