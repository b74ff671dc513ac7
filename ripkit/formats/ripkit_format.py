"""ripkit's own checkpoints: ``ripkit_adapter.json`` + ``adapter_model.safetensors``.

Methods (``ripkit.adapters``; one field defines each quantity, and ``apply_adapter`` reads the same):

- ``cosa``: ΔW = scaling·L·Y·R (CoSA Eq. 6), L, R regenerated from ``seed`` with
  ``ripkit.projections.projection_pair`` and checked against the stored fingerprints; tensor ``core`` (a, b).
- ``lora``: ΔW = (alpha/r)·B·A (CPS-LoRA Eq. 1); with ``"init": "pissa"`` the layer also stores the
  initial ``lora_A0`` (r, n), ``lora_B0`` (m, r) and ΔW relative to the original W₀ is
  (alpha/r)·(B·A − B₀·A₀).  A stored ``scaling`` must equal alpha/r.
- ``block-lora`` (GraLoRA / CPS-LoRA, ``ripkit/adapters/block_lora.py``): the merged updates
  ``merged_A @ merged_B`` plus (alpha/r)·(current blocks), block (i, j) = B_ij·A_ij on the rows
  ``row_perm[row_cuts[i]:row_cuts[i+1]]`` and columns ``col_perm[col_cuts[j]:col_cuts[j+1]]``;
  every permutation must be a permutation and every cut list strictly increasing from 0 to the size.
- ``full``: tensor ``delta`` (m, n) is ΔW.

Format 2 (``write_ripkit``) stores a SHA-256 of every tensor (dtype, shape, bytes) and of the
metadata, and binds the two files: the JSON holds the tensor hashes, the safetensors header's
``__metadata__`` holds the metadata hash.  Format 1 (no hashes) still loads, with a warning.
"""
from __future__ import annotations

import hashlib
import math
import re
import warnings
from pathlib import Path

import numpy as np

from ripkit.formats._io import FLOAT_DTYPES, CheckpointError, SafeTensors, canonical_json, read_json, short_repr
from ripkit.formats.peft_common import MAX_SCALAR
from ripkit.formats.record import AdapterLayer, LayerContext, LayerOps, LazyFactors

__all__ = ["FORMAT", "META_FILE", "ADAPTER_FILE", "VERSIONS", "UnverifiedCheckpointWarning", "read",
           "read_checked", "OPS", "metadata_digest", "layout", "check_tensors"]

FORMAT = "ripkit-adapter"
META_FILE = "ripkit_adapter.json"
ADAPTER_FILE = "adapter_model.safetensors"
VERSIONS = (1, 2)
HEADER_KEY = "ripkit_metadata_sha256"  # in the safetensors header's __metadata__
PARTITIONS = ("contiguous", "random", "clustered")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class UnverifiedCheckpointWarning(UserWarning):
    """A format-1 ripkit checkpoint: no hashes, so its tensors cannot be verified."""


def metadata_digest(meta: dict) -> str:
    """SHA-256 of the metadata without ``integrity.metadata_sha256`` (canonical JSON)."""
    meta = dict(meta)
    if isinstance(meta.get("integrity"), dict):
        meta["integrity"] = {k: v for k, v in meta["integrity"].items() if k != "metadata_sha256"}
    return hashlib.sha256(canonical_json(meta)).hexdigest()


# ---- validation of one layer's metadata ----------------------------------------------------------
class _Checker:
    """Field checks for one layer's metadata; every message names the file, the layer and the key."""

    def __init__(self, path: Path, name: str, lm: dict):
        self.path, self.name, self.lm = path, name, lm

    def fail(self, key, expected) -> CheckpointError:
        return CheckpointError(f"{self.path}: layer {short_repr(self.name)}: {key}={short_repr(self.lm.get(key))}, "
                               f"expected {expected}")

    def int(self, key, minimum=1) -> int:
        v = self.lm.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(key, f"an integer >= {minimum}")
        return v

    def number(self, key) -> float:
        v = self.lm.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= MAX_SCALAR:
            raise self.fail(key, f"a positive number at most {MAX_SCALAR:g}")
        return float(v)

    def choice(self, key, choices, default=None):
        v = self.lm.get(key, default)
        if v not in choices:
            raise self.fail(key, f"one of {', '.join(map(repr, choices))}")
        return v

    def cuts(self, key, k, size) -> list[int]:
        v = self.lm.get(key)
        if (not isinstance(v, list) or len(v) != k + 1 or not all(isinstance(c, int) and not isinstance(c, bool)
                                                                   for c in v)
                or v[0] != 0 or v[-1] != size or any(b <= a for a, b in zip(v, v[1:]))):
            raise self.fail(key, f"{k + 1} integers strictly increasing from 0 to {size}")
        return v

    def alpha_scaling(self, r) -> float:
        """scaling = alpha / r; a stored ``scaling`` must agree (one field defines it)."""
        alpha = self.number("alpha")
        scaling = alpha / r
        if "scaling" in self.lm:
            stored = self.lm["scaling"]
            if isinstance(stored, bool) or not isinstance(stored, (int, float)) or not math.isclose(
                    stored, scaling, rel_tol=1e-12, abs_tol=0.0):
                raise self.fail("scaling", f"alpha / r = {alpha} / {r} = {scaling!r} (alpha defines the scaling)")
        return scaling


def _layer_spec(path: Path, name: str, lm) -> tuple[dict, float, int, dict]:
    """({factor: shape}, scaling, trainable parameters, {factor: 'float'|'int'}) of one layer."""
    if not isinstance(lm, dict):
        raise CheckpointError(f"{path}: layer {name} must be a JSON object, got {type(lm).__name__}")
    c = _Checker(path, name, lm)
    shape = lm.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise c.fail("shape", "[out, in] with positive integers")
    m, n = shape
    method = c.choice("method", ("cosa", "lora", "block-lora", "full"))
    if method == "cosa":
        from ripkit.projections import KINDS, SCALES

        a, b = c.int("a"), c.int("b")
        c.int("seed", 0)
        c.choice("scale", SCALES)
        c.choice("kind", KINDS, "gaussian")
        fp = lm.get("fingerprints")
        if not isinstance(fp, dict) or not all(isinstance(fp.get(k), str) for k in ("left", "right")):
            raise c.fail("fingerprints", "{'left': str, 'right': str}")
        return {"core": (a, b)}, c.number("scaling"), a * b, {}
    if method == "lora":
        r = c.int("r")
        c.int("seed", 0)
        shapes = {"lora_A": (r, n), "lora_B": (m, r)}
        if c.choice("init", (None, "pissa")) == "pissa":
            shapes.update(lora_A0=(r, n), lora_B0=(m, r))
        return shapes, c.alpha_scaling(r), r * (m + n), {}
    if method == "block-lora":
        r, k = c.int("r"), c.int("k")
        if r % k or k > min(m, n):
            raise c.fail("k", f"a divisor of r={r} that is at most min(out, in)={min(m, n)}")
        c.int("seed", 0)
        c.choice("partition", PARTITIONS)
        c.cuts("row_cuts", k, m)
        c.cuts("col_cuts", k, n)
        reps = c.int("n_repartitions", 0)
        if c.int("merge_rank") != k * r:
            raise c.fail("merge_rank", f"k·r = {k * r}")
        rank = k * r * reps
        shapes = {"lora_A": (r, n), "lora_B": (m, r), "row_perm": (m,), "col_perm": (n,),
                  "merged_A": (m, rank), "merged_B": (rank, n)}
        return shapes, c.alpha_scaling(r), r * (m + n), {"row_perm": "int", "col_perm": "int"}
    return {"delta": (m, n)}, 1.0, m * n, {}


# ---- reading ---------------------------------------------------------------------------------------
def layout(where, meta: dict) -> tuple[dict, dict]:
    """({tensor key: (shape, 'float'|'int')}, {layer: spec}) that ``meta`` promises; checks every field."""
    layers, head = meta.get("layers"), meta.get("head", {})
    if not isinstance(layers, dict) or not layers or not isinstance(head, dict):
        raise CheckpointError(f"{where}: 'layers' must be a non-empty object and 'head' an object")
    specs = {name: _layer_spec(where, name, lm) for name, lm in layers.items()}
    expected = {}
    for pname, shp in head.items():
        if not isinstance(shp, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shp):
            raise CheckpointError(f"{where}: head[{short_repr(pname)}]={short_repr(shp)}, expected a shape (list of integers)")
        expected[f"head.{pname}"] = (tuple(shp), "float")
    for name, (shapes, _, _, kinds) in specs.items():
        expected.update({f"{name}.{k}": (tuple(s), kinds.get(k, "float")) for k, s in shapes.items()})
    return expected, specs


def check_tensors(where, expected: dict, found: dict) -> None:
    """``found`` ({key: (dtype code, shape)}) holds exactly the promised tensors, shapes and dtype kinds."""
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{where} does not match {META_FILE}: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, (shape, kind) in expected.items():
        dtype, got = found[key]
        if tuple(got) != shape:
            raise CheckpointError(f"{where}: {key} has shape {tuple(got)}, {META_FILE} says {shape}")
        if (kind == "float") != (dtype in FLOAT_DTYPES):
            raise CheckpointError(f"{where}: {key} has dtype {dtype}, expected "
                                  f"{'a floating-point' if kind == 'float' else 'an integer'} dtype")


def _open(folder: Path, verify: bool, select=lambda name: True):
    """(meta, tensors, specs, integrity status): everything checked that does not need tensor data,
    plus the hashes of the selected layers' tensors when ``verify``."""
    meta_path = folder / META_FILE
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not a ripkit adapter description (format={short_repr(meta.get('format'))}, "
                              f"expected {FORMAT!r})")
    version = meta.get("format_version")
    if version not in VERSIONS or isinstance(version, bool):
        raise CheckpointError(f"{meta_path}: format_version={short_repr(version)}; this ripkit reads {VERSIONS}")
    expected, specs = layout(meta_path, meta)
    tensors = SafeTensors(folder / ADAPTER_FILE)
    check_tensors(tensors.path, expected, {k: (tensors.info(k).dtype, tensors.info(k).shape) for k in tensors.keys()})
    status = _integrity(meta_path, meta, tensors, version, verify,
                        [k for k in expected if not k.startswith("head.") and select(k.rsplit(".", 1)[0])]
                        + [k for k in expected if k.startswith("head.")])
    return meta, tensors, specs, status


def _integrity(meta_path, meta, tensors, version, verify, keys) -> str:
    if version == 1:
        warnings.warn(f"{meta_path.parent}: format-1 ripkit checkpoint without hashes; its tensors are unverified "
                      f"(rewrite it with ripkit.formats.upgrade_ripkit)", UnverifiedCheckpointWarning, stacklevel=5)
        return "unverified (format 1: no hashes)"
    block = meta.get("integrity")
    if (not isinstance(block, dict) or block.get("algorithm") != "sha256"
            or not isinstance(block.get("tensors"), dict) or not isinstance(block.get("metadata_sha256"), str)):
        raise CheckpointError(f"{meta_path}: 'integrity' must be {{algorithm: 'sha256', tensors: {{...}}, "
                              f"metadata_sha256: ...}} in format 2")
    digest = metadata_digest(meta)
    if block["metadata_sha256"] != digest:
        raise CheckpointError(f"{meta_path}: its content does not match its recorded SHA-256 (edited after writing)")
    if tensors.metadata.get(HEADER_KEY) != digest:
        raise CheckpointError(f"{tensors.path} was not written with this {META_FILE} (its header records metadata "
                              f"SHA-256 {tensors.metadata.get(HEADER_KEY)!r}); one of the two files was replaced or edited")
    if tensors.metadata != {"format": "pt", HEADER_KEY: digest}:
        raise CheckpointError(f"{tensors.path}: header __metadata__ {tensors.metadata!r} was edited after writing "
                              f"(expected exactly format and {HEADER_KEY})")
    recorded = block["tensors"]
    if set(recorded) != set(tensors.keys()) or not all(isinstance(v, str) and _HEX64.fullmatch(v)
                                                       for v in recorded.values()):
        raise CheckpointError(f"{meta_path}: integrity.tensors must hold one SHA-256 per tensor of {ADAPTER_FILE}")
    if not verify:
        return "metadata verified (sha256); tensor hashes not checked (verify=False)"
    for key in keys:
        if tensors.digest(key) != recorded[key]:
            raise CheckpointError(f"{tensors.path}: tensor {key!r} does not match its SHA-256 in {META_FILE} "
                                  f"(modified or corrupted)")
    return "verified (sha256)"


def _check_base_hash(meta, base, folder):
    want = meta.get("base_model_hash")
    if base is None or not want:
        return
    got = base.files_hash()
    if got is None:
        warnings.warn(f"{folder}: base_model_hash not checked (base given as an nn.Module, not as files)",
                      UserWarning, stacklevel=4)
    elif got != want:
        raise CheckpointError(f"{folder / META_FILE}: base_model_hash={want!r}, the given base {base.description} "
                              f"hashes to {got!r}; it is not the model this adapter was trained on")


def read(folder: Path, context: LayerContext, select=lambda name: True, verify: bool = True) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a ripkit checkpoint folder (selected layers only)."""
    meta, tensors, specs, status = _open(folder, verify, select)
    _check_base_hash(meta, context.base, folder)
    out = []
    for name, lm in meta["layers"].items():
        if not select(name):
            continue
        shapes, scaling, trainable, _ = specs[name]
        factors = LazyFactors(tensors, {k: f"{name}.{k}" for k in shapes}, name)
        out.append(AdapterLayer(name, lm["method"], tuple(lm["shape"]), factors, scaling,
                                {**lm, "integrity": status, "format_version": meta["format_version"]},
                                frozenset(), trainable, context))
    return out


def read_checked(folder, verify: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, every tensor in its stored dtype — bf16 as float32 — as numpy), all checks done.

    For putting a checkpoint back onto a model (``ripkit.checkpoints.apply_adapter``); permutations
    and finiteness are checked here too.
    """
    folder = Path(folder)
    meta, tensors, specs, _ = _open(folder, verify)
    arrays = {}
    for key in tensors.keys():
        info = tensors.info(key)
        arr = tensors.array(key)  # float64 checked finite, or int64
        arrays[key] = arr.astype(np.float32) if info.dtype in ("F32", "F16", "BF16") else arr
    for name, lm in meta["layers"].items():
        if lm["method"] == "block-lora":
            for key, size in (("row_perm", lm["shape"][0]), ("col_perm", lm["shape"][1])):
                _check_permutation(name, key, arrays[f"{name}.{key}"], size)
    return meta, arrays


# ---- maths -------------------------------------------------------------------------------------
def _check_permutation(name, key, perm, size) -> np.ndarray:
    if perm.shape != (size,) or not np.array_equal(np.sort(perm), np.arange(size)):
        raise CheckpointError(f"layer {name}: {key} is not a permutation of 0..{size - 1} (a duplicate or "
                              f"out-of-range index would leave rows of ΔW unset)")
    return perm


def _cosa_dictionary(layer):
    from ripkit.projections import fingerprint, projection_pair

    m, n = layer.shape
    meta = layer.meta
    left, right = projection_pair(m, n, meta["a"], meta["b"], int(meta["seed"]), scale=meta["scale"],
                                  kind=meta.get("kind", "gaussian"))
    want = meta.get("fingerprints", {})
    got = {"left": fingerprint(left), "right": fingerprint(right)}
    for key in ("left", "right"):
        if want.get(key) != got[key]:
            raise CheckpointError(f"layer {layer.name}: regenerated {key} projection has fingerprint "
                                  f"{got[key]}, the checkpoint recorded {want.get(key)}")
    return left, right


def _cosa_low_rank(layer):
    left, right = _cosa_dictionary(layer)
    return layer.scaling * (left @ layer.factors["core"]), right


def _lora_low_rank(layer):
    f, s = layer.factors, layer.scaling
    if layer.meta.get("init") == "pissa":
        return np.hstack([s * f["lora_B"], -s * f["lora_B0"]]), np.vstack([f["lora_A"], f["lora_A0"]])
    return s * f["lora_B"], f["lora_A"]


def _block_low_rank(layer):
    """[merged_A | s·blocks_B], [merged_B ; blocks_A]: block (i, j) owns slot t = i·k + j (block_factors)."""
    f, meta, s = layer.factors, layer.meta, layer.scaling
    (m, n), k = layer.shape, meta["k"]
    rb, rc, cc = meta["r"] // k, meta["row_cuts"], meta["col_cuts"]
    row_perm = _check_permutation(layer.name, "row_perm", f["row_perm"], m)
    col_perm = _check_permutation(layer.name, "col_perm", f["col_perm"], n)
    lora_a, lora_b = f["lora_A"], f["lora_B"]
    big_b, big_a = np.zeros((m, k * k * rb)), np.zeros((k * k * rb, n))
    for i in range(k):
        for j in range(k):
            t = slice((i * k + j) * rb, (i * k + j + 1) * rb)
            big_b[rc[i]:rc[i + 1], t] = lora_b[rc[i]:rc[i + 1], j * rb:(j + 1) * rb]
            big_a[t, cc[j]:cc[j + 1]] = lora_a[i * rb:(i + 1) * rb, cc[j]:cc[j + 1]]
    u, v = np.empty_like(big_b), np.empty_like(big_a)
    u[row_perm], v[:, col_perm] = big_b, big_a  # back to original coordinates
    return np.hstack([f["merged_A"], s * u]), np.vstack([f["merged_B"], v])


def _from_low_rank(layer):
    u, v = layer.low_rank()
    return u @ v


OPS = {
    "cosa": LayerOps(delta_w=_from_low_rank, low_rank=_cosa_low_rank, core=lambda l: l.factors["core"],
                     dictionary=_cosa_dictionary),
    "lora": LayerOps(delta_w=_from_low_rank, low_rank=_lora_low_rank),
    "block-lora": LayerOps(delta_w=_from_low_rank, low_rank=_block_low_rank),
    "full": LayerOps(delta_w=lambda layer: layer.factors["delta"]),
}
