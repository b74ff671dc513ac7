"""studies/cosa_training_dictionaries.py: regeneration from metadata, fingerprint refusal, reference-style sharing."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import cosa_training_dictionaries as td  # noqa: E402
from ripkit.checkpoints import load_adapter  # noqa: E402
from ripkit.conditioning import kron_conditioning  # noqa: E402

RUN = ROOT / "studies" / "runs" / "minilm" / "cosa-a128-b128-s0"


def test_metadata_alone_regenerates_the_checkpoint_dictionaries():
    layers = td.run_layers(RUN)
    assert len(layers) == 36 and len({r["key"] for r in layers}) == 36
    ckpt = {ly.name: ly for ly in load_adapter(RUN)}  # the checkpoint reader's own regeneration path
    for r in layers[:3]:
        left, right = ckpt[r["layer"]].dictionary()
        assert_allclose(r["dictionary"].left, left, rtol=0, atol=0)
        assert_allclose(r["dictionary"].right, right, rtol=0, atol=0)
        assert r["dictionary"].isometry_scale == pytest.approx(r["m"] * r["n"] / (r["a"] * r["b"]))


def test_fingerprint_mismatch_is_refused(tmp_path):
    folder = tmp_path / "cosa-bad"
    folder.mkdir()
    meta = json.loads((RUN / "ripkit_adapter.json").read_text())
    name = sorted(meta["layers"])[0]
    meta["layers"][name]["fingerprints"]["left"] = "0" * 16
    (folder / "ripkit_adapter.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fingerprints"):
        td.run_layers(folder)


def test_reference_style_shares_one_dictionary_per_shape():
    ref = td.reference_layers(td.run_layers(RUN))
    keys = {(r["m"], r["n"]): set() for r in ref}
    for r in ref:
        keys[(r["m"], r["n"])].add(r["key"])
    assert all(len(v) == 1 for v in keys.values()) and len(keys) == 3
    # L depends only on (seed, m, a): the 384-row L is the same in the 384×384 and 384×1536 dictionaries
    by_shape = {(r["m"], r["n"]): r["dictionary"] for r in ref}
    assert np.array_equal(by_shape[(384, 384)].left, by_shape[(384, 1536)].left)
    row = td.conditioning_row(ref[0])
    assert row["kappa"] == kron_conditioning(ref[0]["dictionary"]).kappa and "dictionary" not in row


def test_run_discovery(tmp_path):
    shutil.copytree(RUN, tmp_path / "cosa-a128-b128", ignore=shutil.ignore_patterns("*.safetensors"))
    (tmp_path / "minilm" / "lora-r8-s0").mkdir(parents=True)
    (tmp_path / "minilm" / "lora-r8-s0" / "ripkit_adapter.json").write_text(json.dumps({"method": "lora"}))
    assert [f.name for f in td.cosa_runs(tmp_path)] == ["cosa-a128-b128"]
