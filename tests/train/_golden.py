"""Golden outputs of ``python -m ripkit.train`` recorded with the pre-package trainer (commit e3a55ab).

The MiniLM campaign was trained with that trainer; the package that replaced it must
reproduce its runs bit for bit for the same flags.  ``record(case)`` runs one case and
returns what must not change: a SHA-256 of every saved tensor (dtype, shape, bytes), the
log rows without the timing columns, and the run metadata without timings and versions.
New log columns and metadata fields are allowed (they are additive), so ``compare``
checks only the recorded keys.

Regenerate (only ever with the old trainer checked out):
``PYTHONPATH=$PWD python tests/train/_golden.py --write tests/train/golden.json``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (for _models)
from _models import synthetic_data, tiny_bert  # noqa: E402,F401  (synthetic_data: re-exported)

#: log columns and metadata fields that measure the machine, not the run
VOLATILE_LOG = {"step_time_s", "peak_mem_mb"}
VOLATILE_META = {"train_time_s", "mean_step_time_s", "peak_mem_mb", "ripkit_version", "torch_version"}
#: fields of the checkpoint *file format* (``ripkit.formats`` owns them: version 2 adds hashes), not of the run
FORMAT_META = {"format_version", "integrity"}

TINY = ["--steps", "12", "--batch-size", "8", "--eval-every", "4", "--ckpt-every", "5", "--lr", "1e-2",
        "--quiet", "--threads", "1", "--targets", "query,value,intermediate.dense"]
TINY_CASES = {
    "cosa": ["--method", "cosa", "--a", "8", "--b", "8"],
    "cosa-unit-rademacher": ["--method", "cosa", "--a", "8", "--b", "4", "--scale", "unit",
                             "--kind", "rademacher", "--scaling", "2"],
    "cosa-orthogonal": ["--method", "cosa", "--a", "8", "--b", "8", "--kind", "orthogonal"],
    "lora": ["--method", "lora", "--r", "4"],
    "lora-alpha": ["--method", "lora", "--r", "4", "--alpha", "8", "--seed", "3"],
    "block-lora": ["--method", "block-lora", "--k", "2", "--r", "4"],
    "block-lora-random": ["--method", "block-lora", "--partition", "random", "--k", "2", "--r", "4"],
    "cps-lora": ["--method", "cps-lora", "--k", "2", "--r", "4", "--repartition-every", "4"],
    "cps-lora-spectral": ["--method", "cps-lora", "--k", "2", "--r", "4", "--repartition-every", "5",
                          "--partitioner", "spectral"],
    "cps-lora-balance": ["--method", "cps-lora", "--k", "2", "--r", "4", "--repartition-every", "4",
                         "--partitioner", "balance"],
    "full": ["--method", "full", "--lr", "1e-3"],
}
MINILM = ["--model", "minilm", "--data", "rotten-tomatoes", "--steps", "3", "--eval-every", "2",
          "--eval-size", "64", "--threads", "1", "--quiet"]
MINILM_CASES = {
    "minilm-cosa": ["--method", "cosa", "--a", "128", "--b", "128", "--lr", "5e-4"],
    "minilm-cps-lora": ["--method", "cps-lora", "--k", "2", "--r", "8", "--lr", "5e-3", "--repartition-every", "2"],
}


def tensor_hashes(folder: Path) -> dict[str, str]:
    from safetensors.torch import load_file

    out = {}
    for key, t in sorted(load_file(str(folder / "adapter_model.safetensors")).items()):
        t = t.contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        out[key] = h.hexdigest()
    return out


def _strip(meta):
    if isinstance(meta, dict):
        return {k: _strip(v) for k, v in meta.items() if k not in VOLATILE_META}
    return meta


def comparable(record: dict) -> dict:
    """A recorded or new case without the file-format fields (compared: tensors, log, run metadata)."""
    if "meta" in record:
        return {**record, "meta": {k: v for k, v in record["meta"].items() if k not in FORMAT_META}}
    return {k: comparable(v) for k, v in record.items()}


def outputs(folder: Path) -> dict:
    with open(folder / "log.csv") as fh:
        rows = [{k: v for k, v in r.items() if k not in VOLATILE_LOG} for r in csv.DictReader(fh)]
    meta = json.loads((folder / "ripkit_adapter.json").read_text())
    return {"tensors": tensor_hashes(folder), "log": rows, "meta": _strip(meta)}


def _train(argv):
    from ripkit.train import build_parser, run

    args = build_parser().parse_args(argv)
    return run(args, model_factory=tiny_bert, data=synthetic_data())


def record(name: str, tmp: Path) -> dict:
    """Run one case into ``tmp``: the straight run, and for tiny cases a stop-after-6 + resume."""
    if name in MINILM_CASES:
        from ripkit.train import main

        out = tmp / name
        if main([*MINILM, *MINILM_CASES[name], "--out", str(out)]) != 0:
            raise RuntimeError(f"{name} failed")
        return outputs(out)
    argv = [*TINY, *TINY_CASES[name]]
    _train([*argv, "--out", str(tmp / "straight")])
    _train([*argv, "--out", str(tmp / "resumed"), "--stop-after", "6"])
    _train([*argv, "--out", str(tmp / "resumed"), "--resume"])
    return {"straight": outputs(tmp / "straight"), "resumed": outputs(tmp / "resumed")}


def environment() -> dict:
    return {"torch": torch.__version__, "machine": platform.machine(), "python": platform.python_version()}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--write", required=True)
    p.add_argument("--only", nargs="*")
    args = p.parse_args(argv)
    torch.use_deterministic_algorithms(False)
    names = args.only or [*TINY_CASES, *MINILM_CASES]
    result = {"environment": environment(), "cases": {}}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            result["cases"][name] = record(name, Path(tmp))
        print(name, "done", file=sys.stderr)
    Path(args.write).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
