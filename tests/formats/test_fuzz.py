"""Fuzz (issue 12 item 7): seeded corruptions of real checkpoints give a CheckpointError or an identical load.

Clean fixtures: tiny peft checkpoints (LoRA with an embedding and modules_to_save, DoRA, PiSSA, GraLoRA,
VeRA, AdaLoRA, LoHa, LoKr, IA3, FourierFT, OFT, BOFT, HRA, SHiRA), the CoSA reference layout, ripkit
format-2 checkpoints of every method and two committed format-1 runs.  Each case copies one fixture,
corrupts it (truncation, bit flip, edited safetensors header or JSON, NaN/Inf or relabelled bytes,
special files, pickles), loads it with what the clean load used (base, hash seed) and evaluates every
layer (ΔW, Δbias, factors), under a 5 s alarm.

The verdict rule, stated before running:
- never another exception, never a hang;
- ripkit format 2: every corruption is a CheckpointError (a load may only be identical when the
  files still say the same thing: same parsed JSON, same tensors);
- peft and format 1 (no hashes): a CheckpointError or an identical load, except where no format can
  tell — a bit flip inside tensor data, or a JSON value replaced by another valid one (0, null, a
  deleted key with a default) — which are counted and reported, not failed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ripkit.formats import CheckpointError, UnverifiedCheckpointWarning, load_adapter

from ._builders import peft_checkpoint, tiny_bert, tiny_llama

pytestmark = pytest.mark.slow  # ~35 s on 2 cores (half of it building the fixtures)
RUNS = Path(__file__).parents[2] / "studies" / "runs"
CASES_PER_FIXTURE = 24
SEED = 20240512


# ---- clean fixtures -------------------------------------------------------------------------------
@dataclass
class Fixture:
    name: str
    folder: Path
    family: str          # 'peft', 'ripkit2', 'ripkit1'
    kwargs: dict


def _peft_fixtures(root: Path) -> list[Fixture]:
    from peft import (AdaLoraConfig, BOFTConfig, FourierFTConfig, GraloraConfig, HRAConfig, IA3Config, LoHaConfig,
                      LoKrConfig, LoraConfig, OFTConfig, ShiraConfig, VeraConfig)

    from .test_cosa_reference import HASH_SEED, write_reference_checkpoint

    specs = {
        "peft-lora": (tiny_llama, LoraConfig(r=4, target_modules=["q_proj", "embed_tokens"], modules_to_save=["lm_head"])),
        "peft-dora": (tiny_llama, LoraConfig(r=4, target_modules=["v_proj"], use_dora=True)),
        "peft-pissa": (tiny_llama, LoraConfig(r=2, target_modules=["k_proj"], init_lora_weights="pissa")),
        "peft-gralora": (tiny_bert, GraloraConfig(r=4, gralora_k=2, alpha=8, hybrid_r=2, target_modules=["key"])),
        "peft-vera": (tiny_bert, VeraConfig(r=4, target_modules=["query", "intermediate.dense"], save_projection=True)),
        "peft-adalora": (tiny_llama, AdaLoraConfig(init_r=4, total_step=10, target_modules=["q_proj"])),
        "peft-loha": (tiny_llama, LoHaConfig(r=3, target_modules=["v_proj"])),
        "peft-lokr": (tiny_llama, LoKrConfig(r=1, decompose_both=True, target_modules=["q_proj"])),
        "peft-ia3": (tiny_bert, IA3Config(target_modules=["query", "output.dense"],
                                          feedforward_modules=["output.dense"])),
        "peft-fourierft": (tiny_llama, FourierFTConfig(n_frequency=16, target_modules=["q_proj"])),
        "peft-oft": (tiny_llama, OFTConfig(oft_block_size=8, r=0, coft=True, eps=0.1, target_modules=["q_proj"])),
        "peft-boft": (tiny_bert, BOFTConfig(boft_block_size=8, target_modules=["query"])),
        "peft-hra": (tiny_llama, HRAConfig(r=2, target_modules=["v_proj"])),
        "peft-shira": (tiny_bert, ShiraConfig(r=1, target_modules=["key"])),
    }
    out = []
    for name, (make, config) in specs.items():
        peft_checkpoint(root / name, make(), config, train="random")
        out.append(Fixture(name, root / name / "adapter", "peft", {"base": root / name / "base"}))
    (root / "cosa-ref").mkdir()
    write_reference_checkpoint(root / "cosa-ref")
    out.append(Fixture("cosa-reference", root / "cosa-ref" / "adapter", "peft",
                       {"base": root / "cosa-ref" / "base", "hash_seed": HASH_SEED, "hash_algorithm": "siphash13"}))
    return out


def _ripkit_fixtures(root: Path) -> list[Fixture]:
    from ripkit.formats import write_ripkit

    from .test_ripkit_format import trained_checkpoint

    out = []
    for method in ("cosa", "lora", "cps-lora"):
        trained_checkpoint(root / method, method)
        out.append(Fixture(f"ripkit-{method}", root / method, "ripkit2", {}))
    rng = np.random.default_rng(0)
    write_ripkit(root / "full", {"x.delta": rng.standard_normal((6, 5))},
                 {"layers": {"x": {"method": "full", "shape": [6, 5]}}, "head": {}})
    write_ripkit(root / "pissa", {f"x.{k}": rng.standard_normal(s).astype(np.float32) for k, s in
                                  (("lora_A", (2, 5)), ("lora_B", (6, 2)), ("lora_A0", (2, 5)), ("lora_B0", (6, 2)))},
                 {"layers": {"x": {"method": "lora", "shape": [6, 5], "r": 2, "alpha": 4.0, "seed": 0,
                                   "init": "pissa"}}, "head": {}})
    out += [Fixture("ripkit-full", root / "full", "ripkit2", {}), Fixture("ripkit-pissa", root / "pissa", "ripkit2", {})]
    for run in ("lora-r8", "cps-lora-k2-r8"):
        if (RUNS / run / "ripkit_adapter.json").exists():
            _format1_subset(RUNS / run, root / f"v1-{run}")
            out.append(Fixture(f"format1-{run}", root / f"v1-{run}", "ripkit1", {}))
    return out


def _format1_subset(src: Path, dst: Path, n_layers: int = 3):
    """A committed format-1 run cut to its first layers (same bytes per tensor, still format 1: no hashes)."""
    from ripkit.formats._io import SafeTensors, safetensors_bytes

    meta = json.loads((src / "ripkit_adapter.json").read_text())
    meta["layers"] = dict(list(meta["layers"].items())[:n_layers])
    tensors = SafeTensors(src / "adapter_model.safetensors")
    keep = [k for k in tensors.keys() if k.startswith("head.") or k.rsplit(".", 1)[0] in meta["layers"]]
    raw = {k: (tensors.info(k).dtype, tensors.info(k).shape, tensors.raw(k).tobytes()) for k in keep}
    dst.mkdir()
    (dst / "adapter_model.safetensors").write_bytes(safetensors_bytes(raw, tensors.metadata))
    (dst / "ripkit_adapter.json").write_text(json.dumps(meta, indent=1))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    return _peft_fixtures(root) + _ripkit_fixtures(root)


# ---- evaluation ----------------------------------------------------------------------------------------
class Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int):
    def handler(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def digest(array) -> str | None:
    if array is None:
        return None
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()


def evaluate(folder: Path, kwargs: dict):
    """Everything a user gets from the checkpoint, as comparable values; 'error' for a CheckpointError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedCheckpointWarning)
        try:
            out = []
            for layer in load_adapter(folder, **kwargs):
                low = layer.low_rank()
                out.append((layer.name, layer.method, layer.shape, layer.scaling, sorted(layer.needs),
                            layer.trainable_parameters,
                            digest(layer.delta_w()) if layer.method != "peft-bias" else None,
                            digest(layer.delta_bias()), digest(low[0] @ low[1]) if low is not None else None))
            return out
        except CheckpointError as exc:
            assert "\n" not in str(exc), f"multi-line error: {exc!r}"
            return "error"


# ---- corruptions ----------------------------------------------------------------------------------
def st_parts(path: Path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def st_write(path: Path, header, body: bytes, length=None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + body)


def json_paths(obj, prefix=()):
    """Every (path, value) in a JSON object, values before containers' children."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,), v
            yield from json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,), v
            yield from json_paths(v, prefix + (i,))


def set_path(obj, path, value=None, delete=False):
    for p in path[:-1]:
        obj = obj[p]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


HOSTILE = ["x", [], {}, -1, -7.5, 1e308, True, 10**30, [0, 0, 0]]
PLAUSIBLE = [0, None]  # may be a valid alternative value of the field: undetectable without a hash


def corrupt(rng, folder: Path, family: str) -> tuple[str, bool]:
    """Apply one seeded corruption; returns (description, undetectable-in-principle for peft/format 1)."""
    st = folder / "adapter_model.safetensors"
    js = folder / ("ripkit_adapter.json" if family.startswith("ripkit") else "adapter_config.json")
    kind = rng.choice(["truncate", "flip-header", "flip-data", "flip-json", "st-dtype", "st-shape", "st-offsets",
                       "st-length", "st-extra", "st-drop", "st-metadata", "json-hostile", "json-plausible",
                       "json-extra", "json-deep", "json-huge", "nan", "inf", "relabel-int32", "special",
                       "pickle", "remove", "perm-duplicate"])
    header, body = st_parts(st)
    names = sorted(k for k in header if k != "__metadata__")
    floats = [k for k in names if header[k]["dtype"] in ("F32", "F64", "F16", "BF16") and header[k]["shape"]
              and np.prod(header[k]["shape"]) > 0]
    target = names[rng.integers(len(names))]
    if kind == "truncate":
        path = js if rng.random() < 0.3 else st
        data = path.read_bytes()
        path.write_bytes(data[:int(rng.integers(0, len(data)))])
        return f"truncate {path.name}", False
    if kind in ("flip-header", "flip-data", "flip-json"):
        path = js if kind == "flip-json" else st
        data = bytearray(path.read_bytes())
        n = struct.unpack("<Q", bytes(data[:8]))[0]
        lo, hi = {"flip-json": (0, len(data)), "flip-header": (0, 8 + n), "flip-data": (8 + n, len(data))}[kind]
        if hi <= lo:
            return "no data to flip", False
        pos = int(rng.integers(lo, hi))
        data[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
        return f"{kind} at byte {pos}", kind == "flip-data"
    if kind == "st-dtype":
        header[target]["dtype"] = str(rng.choice(["F16", "BF16", "I64", "U8", "F8_E4M3", "Q4", "f32"]))
    elif kind == "st-shape":
        shape = header[target]["shape"]
        header[target]["shape"] = [shape[::-1], shape + [1], [-1] + shape[1:], [2**40] + shape[1:], [], "x"][
            int(rng.integers(6))]
    elif kind == "st-offsets":
        b, e = header[target]["data_offsets"]
        header[target]["data_offsets"] = [[b + 4, e + 4], [b, e - 4], [e, b], [b, 2**62], [-1, e], [b]][int(rng.integers(6))]
    elif kind == "st-length":
        st_write(st, header, body, length=int(rng.choice([2**40, 2**63, 0, 7])))
        return "absurd header length", False
    elif kind == "st-extra":
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        header[target + ".extra"] = {"dtype": "F32", "shape": [1], "data_offsets": [end, end + 4]}
        body += bytes(4)
    elif kind == "st-drop":
        del header[target]
    elif kind == "st-metadata":
        header["__metadata__"] = {**header.get("__metadata__", {}), "format": "tf"}
        st_write(st, header, body)
        return "edited __metadata__", family != "ripkit2"
    if kind.startswith("st-"):
        st_write(st, header, body)
        return f"{kind} of {target}", False
    if kind.startswith("json-"):
        meta = json.loads(js.read_text())
        if kind == "json-deep":
            js.write_text("[" * 200000 + "]" * 200000)
            return "deeply nested JSON", False
        if kind == "json-huge":
            with open(js, "ab") as fh:
                fh.truncate(65 << 20)  # sparse: 65 MiB of zero bytes after the JSON
            return "huge JSON", False
        if kind == "json-extra":
            paths = [p for p, v in json_paths(meta) if isinstance(v, dict)] or [()]
            path = paths[int(rng.integers(len(paths)))]
            holder = meta
            for p in path:
                holder = holder[p]
            holder["unexpected_key"] = 1
            js.write_text(json.dumps(meta))
            return f"extra key in {path}", family != "ripkit2"
        paths = [p for p, _ in json_paths(meta)]
        path = paths[int(rng.integers(len(paths)))]
        if kind == "json-plausible" and rng.random() < 0.4:
            set_path(meta, path, delete=True)
            what = "deleted"
        else:
            value = (PLAUSIBLE if kind == "json-plausible" else HOSTILE)[int(rng.integers(len(PLAUSIBLE if kind == "json-plausible" else HOSTILE)))]
            set_path(meta, path, value)
            what = f"= {value!r}"[:40]
        text = json.dumps(meta)
        if rng.random() < 0.2:
            text = text.replace("1e+308", "NaN", 1).replace("-1", "-Infinity", 1)
        js.write_text(text)
        return f"{kind}: {'/'.join(map(str, path))} {what}", kind == "json-plausible" and family != "ripkit2"
    if kind in ("nan", "inf", "relabel-int32", "perm-duplicate"):
        if kind == "perm-duplicate":
            perms = [k for k in names if k.endswith("_perm")]
            if not perms:
                return "no permutation to damage", False
            target = perms[int(rng.integers(len(perms)))]
            b, _ = header[target]["data_offsets"]
            body = body[:b + 8] + body[b:b + 8] + body[b + 16:]  # index 1 := index 0
            st_write(st, header, body)
            return f"duplicate index in {target}", False
        if not floats:
            return "no float tensor", False
        target = floats[int(rng.integers(len(floats)))]
        info = header[target]
        if kind == "relabel-int32":
            if info["dtype"] != "F32":
                return "no float32 tensor to relabel", False
            info["dtype"] = "I32"
            st_write(st, header, body)
            return f"{target} relabelled int32", False
        size = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}[info["dtype"]]
        count = int(np.prod(info["shape"]))
        value = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}.get(info["dtype"])
        bad = np.array(np.nan if kind == "nan" else np.inf, dtype=value).tobytes() if value else (
            b"\xc0\x7f" if kind == "nan" else b"\x80\x7f")
        at = info["data_offsets"][0] + size * int(rng.integers(count))
        body = body[:at] + bad + body[at + size:]
        st_write(st, header, body)
        return f"{kind} in {target}", False
    if kind == "special":
        path = st if rng.random() < 0.5 else js
        path.unlink()
        how = int(rng.integers(4))
        if how == 0:
            path.mkdir()
        elif how == 1:
            os.mkfifo(path)
        elif how == 2:
            os.symlink("/dev/zero", path)
        else:
            os.symlink(path, path)
        return f"{path.name} replaced by {['a folder', 'a FIFO', '/dev/zero', 'a symlink loop'][how]}", False
    if kind == "pickle":
        import pickle

        st.write_bytes(pickle.dumps({"lora_A": [1.0, 2.0]}))
        if rng.random() < 0.5:
            st.rename(folder / "adapter_model.bin")
        return "pickle instead of safetensors", False
    (st if rng.random() < 0.5 else js).unlink()
    return "file removed", False


TARGETED_KEYS = ("lora_alpha", "alpha", "scaling", "r", "k", "a", "b", "compression_a", "gralora_k", "row_cuts",
                 "col_cuts", "shape", "seed", "init_r", "n_frequency", "random_loc_seed", "eps", "oft_block_size",
                 "boft_block_size", "feedforward_modules", "decompose_factor")


def targeted(folder: Path, family: str):
    """(path, JSON text of the value) for the scalars issue 12 names: negative or NaN scaling/alpha, bad cuts..."""
    js = "ripkit_adapter.json" if family.startswith("ripkit") else "adapter_config.json"
    meta = json.loads((folder / js).read_text())
    seen = set()
    for path, value in json_paths(meta):
        if path and path[-1] in TARGETED_KEYS and path[-1] not in seen:
            seen.add(path[-1])
            bad = ["-1", "NaN", '"8"'] if not isinstance(value, list) else ["[0, 5, 5, 10]"]
            for text in bad:
                yield js, path, text


def apply_targeted(case: Path, js: str, path, text: str):
    meta = json.loads((case / js).read_text())
    set_path(meta, path, "@@SENTINEL@@")
    (case / js).write_text(json.dumps(meta).replace('"@@SENTINEL@@"', text))


def same_content(clean: Path, fuzzed: Path) -> bool:
    """The fuzzed folder still says exactly what the clean one says (parsed JSON and tensors)."""
    try:
        for name in ("ripkit_adapter.json", "adapter_config.json"):
            if (clean / name).exists() and json.loads((clean / name).read_text()) != json.loads((fuzzed / name).read_text()):
                return False
        return st_parts(clean / "adapter_model.safetensors") == st_parts(fuzzed / "adapter_model.safetensors")
    except Exception:
        return False


def test_fuzz(fixtures, tmp_path):
    rng = np.random.default_rng(SEED)
    counts: dict[str, dict[str, int]] = {}
    failures = []
    for fx in fixtures:
        clean = evaluate(fx.folder, fx.kwargs)
        assert clean != "error", f"clean fixture {fx.name} does not load"
        tally = counts.setdefault(fx.name, {"cases": 0, "error": 0, "identical": 0, "undetectable": 0})
        plan = [("targeted", t) for t in targeted(fx.folder, fx.family)] + [("random", None)] * CASES_PER_FIXTURE
        for i, (mode, target) in enumerate(plan):
            case = tmp_path / f"{fx.name}-{i}"
            shutil.copytree(fx.folder, case, symlinks=True)
            if mode == "targeted":
                apply_targeted(case, *target)
                what, undetectable = f"{'/'.join(map(str, target[1]))} = {target[2]}", False
            else:
                what, undetectable = corrupt(rng, case, fx.family)
            try:
                with alarm(5):
                    got = evaluate(case, fx.kwargs)
            except Exception as exc:  # anything but a CheckpointError is a bug
                failures.append(f"{fx.name}: {what}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            tally["cases"] += 1
            if got == "error":
                tally["error"] += 1
            elif got == clean:
                tally["identical"] += 1
                if fx.family == "ripkit2" and not same_content(fx.folder, case):
                    failures.append(f"{fx.name}: {what}: corruption of a format-2 checkpoint not detected")
            elif undetectable:
                tally["undetectable"] += 1
            else:
                failures.append(f"{fx.name}: {what}: loads silently differently")
            shutil.rmtree(case, ignore_errors=True)
    total = {k: sum(t[k] for t in counts.values()) for k in ("cases", "error", "identical", "undetectable")}
    print("\nfuzz counts by fixture:", json.dumps(counts, indent=1), "\ntotal:", total)
    assert not failures, "\n".join(failures)
    assert total["cases"] >= 400
