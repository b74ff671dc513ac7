"""One row of the table: every number ``python -m ripkit.analyze`` reports about one adapted layer.

All spectral quantities come from one SVD per layer: from the factors when the record has them
(ΔW = U·V, k ≪ min(m, n): QR of U and Vᵀ, SVD of the k×k core, CPS-LoRA appendix E), else from a
dense SVD after a memory check.  Entry statistics (fractions of |ΔW_ij| below 1e-4 and below
1e-3·RMS, max |ΔW_ij|) visit all m·n entries exactly (``ripkit._entries``).  For CoSA layers the
trained core Y gets the same statistics (CoSA appendix B.3 analyses Y), and the projections
L (m, a), R (b, n) their conditioning: vec(L·Y·R) = (Rᵀ⊗L)·vec(Y), the singular values of Rᵀ⊗L
are the products of those of L and R, so κ(Rᵀ⊗L) = κ(L)·κ(R) and Y ↦ L·Y·R is injective iff
rank L = a and rank R = b.

A layer whose ΔW needs what was not given (base weights, the CoSA reference run's hash seed) is
not dropped: its row names what is ``missing`` and keeps what can be computed without it.
"""
from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ripkit import spectra
from ripkit._checks import check_memory
from ripkit.formats import BaseWeightsRequired

__all__ = ["Settings", "COLUMNS", "TEXT_COLUMNS", "INT_COLUMNS", "BOOL_COLUMNS", "analyze_layer", "spectral_part",
           "entry_part", "module_type", "missing_inputs"]

EPS = np.finfo(np.float64).eps
GRAM_KAPPA_LIMIT = 1e2   # above, κ from the Gram matrix (relative error ~eps·κ²) is not trusted: QR + SVD instead


@dataclass(frozen=True)
class Settings:
    """What every layer is measured with (``analyze``'s keyword arguments)."""

    energy: float = 0.95            # energy rank: smallest k with Σ_{i≤k} σᵢ² ≥ energy·Σσᵢ² (CoSA B.3)
    threshold: float = 1e-4         # |ΔW_ij| < threshold (CoSA B.3's sparsity)
    rel_threshold: float = 1e-3     # |ΔW_ij| < rel_threshold·RMS(ΔW): the same, free of ΔW's scale
    entries: bool = True            # False skips the O(m·n) entry statistics
    threads: int = 1                # threads of the entry-statistics kernel (results do not depend on it)


_SPECTRAL = ("frobenius_norm", "sigma_max", "stable_rank", "energy_rank", "eber", "numerical_rank",
             "condition_number")
_ENTRIES = ("rms", "max_abs", "frac_below_abs", "frac_below_rel")

#: Every column of a row, in order, with its meaning (the README's JSON schema is written from this).
COLUMNS = {
    "name": "module name in the base model",
    "module": "module type: the name after its last numeric part (self_attn.q_proj, mlp.down_proj, ...)",
    "method": "the record's method (ripkit.formats.registry.METHODS)",
    "out_features": "m: rows of ΔW (null when the file does not record it and no --base was given)",
    "in_features": "n: columns of ΔW (same)",
    "trainable_parameters": "stored trainable entries of the layer",
    "factor_rank": "inner dimension k of the factorization ΔW = U·V the spectrum came from (null: dense SVD)",
    "missing": "what ΔW needs that was not given: 'base', 'hash_seed', 'memory' (comma-separated) or null",
    "note": "why some numbers are null, in words (null when none are)",
    "frobenius_norm": "‖ΔW‖_F = √Σσᵢ²",
    "sigma_max": "σ₁ = ‖ΔW‖₂",
    "stable_rank": "‖ΔW‖_F² / ‖ΔW‖₂²",
    "energy_rank": "smallest k with Σ_{i≤k} σᵢ² ≥ 95 % of Σσᵢ² (CoSA B.3)",
    "eber": "entropy-based effective rank exp(−Σ pᵢ log pᵢ), p = σ/Σσ (CPS-LoRA appendix I)",
    "numerical_rank": "σᵢ > max(m, n)·eps·σ₁ (NumPy's matrix_rank tolerance)",
    "condition_number": "σ₁ / smallest σᵢ above that tolerance (ΔW on its range)",
    "rms": "‖ΔW‖_F / √(m·n)",
    "max_abs": "max |ΔW_ij| (exact: float64 value of the largest entry)",
    "frac_below_abs": "fraction of entries with |ΔW_ij| < 1e-4 (--threshold), exact count",
    "frac_below_rel": "fraction with |ΔW_ij| < 1e-3·rms (--rel-threshold): scale-free; null for ΔW = 0",
    **{f"core_{k}": f"the same for the CoSA core Y ({k})" for k in _SPECTRAL + _ENTRIES},
    "core_rows": "a: rows of the CoSA core Y", "core_cols": "b: columns of Y",
    "projection_condition": "κ(L)·κ(R) = κ(Rᵀ⊗L), the conditioning of Y ↦ L·Y·R (CoSA)",
    "injective": "whether Y ↦ L·Y·R is injective: rank L = a and rank R = b (CoSA)",
    "bias_norm": "‖Δbias‖₂ (null: the bias is unchanged)",
    "bias_max_abs": "max |Δbias_i|",
}


TEXT_COLUMNS = ("name", "module", "method", "missing", "note")
INT_COLUMNS = ("out_features", "in_features", "trainable_parameters", "factor_rank", "energy_rank", "numerical_rank",
               "core_energy_rank", "core_numerical_rank", "core_rows", "core_cols")
BOOL_COLUMNS = ("injective",)   # every other column is a float (null: NaN in the DataFrame)


#: What a ``missing`` entry means, in the words of a row's note (other needs a reader may add are named as is).
NEEDS = {"base": "the base model's weights (--base)", "hash_seed": "the run's hash seed (--hash-seed)",
         "memory": "more memory than is available"}


def module_type(name: str) -> str:
    """``model.layers.3.self_attn.q_proj`` → ``self_attn.q_proj``: what follows the last numeric part."""
    parts = name.split(".")
    last = max((i for i, p in enumerate(parts) if p.isdigit()), default=-1)
    return ".".join(parts[last + 1:]) or name


def missing_inputs(layer) -> list[str]:
    """What the record's ``needs`` that its loader was not given."""
    given = {"base": layer.context.base is not None, "hash_seed": layer.context.hash_seed is not None}
    return sorted(need for need in layer.needs if not given.get(need, False))


# ---- spectra and entries of one matrix ----------------------------------------------------------
def _fraction(count: int, total: int) -> float:
    return count / total if total else float("nan")


def _matrix_stats(s, shape, settings, entries=None) -> dict:
    """Spectral scalars from singular values ``s``, plus entry statistics from ``entries(thresholds)``
    unless that is None; ``_sv`` carries ``s`` itself (for plots), not a column."""
    out = spectra.spectrum_scalars(s, shape, energy=settings.energy) | {"_sv": s}
    m, n = shape
    out["rms"] = out["frobenius_norm"] / np.sqrt(m * n)
    if settings.entries and entries is not None:
        out.update(_entry_columns(out["rms"], settings, entries))
    return out


def _entry_columns(rms, settings, entries) -> dict:
    rel = settings.rel_threshold * rms
    stats = entries((settings.threshold, rel))
    return {"max_abs": stats.max_abs, "frac_below_abs": _fraction(stats.below[0], stats.n_entries),
            "frac_below_rel": _fraction(stats.below[1], stats.n_entries) if rel > 0 else float("nan")}


def _factored(u, v, settings, seconds) -> dict:
    """Spectral columns of ΔW = U·V; its entry statistics are left to :func:`entry_part`."""
    with _timed(seconds, "spectra"):
        s = spectra.singular_values((u, v))
    return _matrix_stats(s, (u.shape[0], v.shape[1]), settings) | {"factor_rank": u.shape[1]}


def _dense(w, settings, seconds) -> dict:
    from ripkit._entries import dense_entry_stats

    with _timed(seconds, "spectra"):
        s = np.linalg.svd(w, compute_uv=False)

    def entries(thresholds):
        with _timed(seconds, "entries"):
            return dense_entry_stats(w, thresholds)

    return _matrix_stats(s, w.shape, settings, entries)


def _singular_values_tall(x: np.ndarray) -> np.ndarray:
    """Singular values of a matrix with more rows than columns (or its transpose): from the Gram
    matrix when it is well conditioned (error ~eps·κ²), else from QR + SVD of the small R."""
    x = x if x.shape[0] >= x.shape[1] else x.T
    lam = np.linalg.eigvalsh(x.T @ x)[::-1]
    if lam[-1] > 0 and lam[0] / lam[-1] < GRAM_KAPPA_LIMIT ** 2:
        return np.sqrt(lam)
    return np.linalg.svd(np.linalg.qr(x, mode="r"), compute_uv=False)


_PROJECTIONS: dict = {}   # content hash of (L, R) -> stats: CoSA reference layers of one shape share L, R


def _projection_stats(left: np.ndarray, right: np.ndarray) -> dict:
    key = (left.shape, right.shape, hashlib.blake2b(left.tobytes() + right.tobytes(), digest_size=16).digest())
    if key not in _PROJECTIONS:
        if len(_PROJECTIONS) > 64:
            _PROJECTIONS.clear()
        _PROJECTIONS[key] = _conditioning(left, right)
    return dict(_PROJECTIONS[key])


def _conditioning(left: np.ndarray, right: np.ndarray) -> dict:
    sl, sr = _singular_values_tall(left), _singular_values_tall(right)

    def rank(s, shape):
        return int(np.sum(s > max(shape) * EPS * s[0])) if s[0] > 0 else 0

    full = rank(sl, left.shape) == left.shape[1] and rank(sr, right.shape) == right.shape[0]
    kappa = float(sl[0] / sl[-1] * sr[0] / sr[-1]) if full else float("inf")
    return {"projection_condition": kappa, "injective": bool(full)}


# ---- one layer -----------------------------------------------------------------------------------
@contextmanager
def _timed(seconds: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] += time.perf_counter() - t0


def _row_head(layer) -> dict:
    shape = layer.shape or (None, None)
    return {"name": layer.name, "module": module_type(layer.name), "method": layer.method,
            "out_features": shape[0], "in_features": shape[1],
            "trainable_parameters": int(layer.trainable_parameters), "factor_rank": None,
            "missing": None, "note": None}


def _bias(layer, missing: set) -> dict:
    try:
        db = layer.delta_bias()
    except BaseWeightsRequired:
        missing.add("base")
        return {}
    if db is None:
        return {}
    return {"bias_norm": float(np.linalg.norm(db)), "bias_max_abs": float(np.abs(db).max(initial=0.0))}


def analyze_layer(layer, settings: Settings = Settings()) -> tuple[dict, dict, np.ndarray | None]:
    """(row, seconds, singular values of ΔW) for one ``AdapterLayer``: the row has every key of
    :data:`COLUMNS` (None where a number does not apply or cannot be computed), seconds
    ``{'spectra', 'entries'}``; the singular values (descending, structural zeros left out) are
    None when ΔW was not analysed.  :func:`spectral_part` then :func:`entry_part`."""
    row, seconds, sv, pending = spectral_part(layer, settings)
    if pending:
        entry_part(layer, row, settings, seconds)
    return row, seconds, sv


def entry_part(layer, row: dict, settings: Settings, seconds: dict) -> None:
    """Fill the entry columns of a factored layer's ``row`` (its factors are read again: nothing of the
    size of ΔW's factors is kept between the two parts)."""
    from ripkit._entries import entry_stats

    with _timed(seconds, "entries"):
        u, v = layer.low_rank()
        row.update(_entry_columns(row["rms"], settings,
                                  lambda thresholds: entry_stats(u, v, thresholds, threads=settings.threads)))


def spectral_part(layer, settings: Settings = Settings()) -> tuple[dict, dict, np.ndarray | None, bool]:
    """Everything but the entry statistics of a factored ΔW: (row, seconds, singular values, pending),
    ``pending`` telling whether :func:`entry_part` still has to fill them."""
    seconds = {"spectra": 0.0, "entries": 0.0}
    row = dict.fromkeys(COLUMNS) | _row_head(layer)
    missing, notes, pending = set(missing_inputs(layer)), [], False
    cosa = layer.method in ("cosa", "cosa-reference")
    if cosa:  # Y needs nothing beyond the file (CoSA B.3's object)
        with _timed(seconds, "spectra"):
            y = layer.core()
        stats = _dense(y, settings, seconds)
        stats.pop("_sv")
        row.update({f"core_{k}": v for k, v in stats.items()})
        row["core_rows"], row["core_cols"] = y.shape
    if layer.shape is None and layer.method == "peft-bias":
        notes.append("only the bias is trained: ΔW = 0, see bias_norm")
    elif not missing:
        try:
            with _timed(seconds, "spectra"):
                factors = layer.low_rank()
            if factors is not None:
                row.update(_factored(*factors, settings, seconds))
                pending = settings.entries
            else:
                m, n = layer.shape
                # ΔW, the SVD's copy and its workspace: refused up front, never swapped
                check_memory(3 * 8 * m * n, f"layer {layer.name}: the dense SVD of its {m}×{n} ΔW")
                with _timed(seconds, "spectra"):
                    w = layer.delta_w()
                row.update(_dense(w, settings, seconds))
            if cosa:
                with _timed(seconds, "spectra"):
                    row.update(_projection_stats(*layer.dictionary()))
        except BaseWeightsRequired:
            missing.add("base")
        except MemoryError as exc:
            missing.add("memory")
            notes.append(str(exc))
    row.update(_bias(layer, missing))
    if missing:
        notes.insert(0, "ΔW needs " + " and ".join(NEEDS.get(m, m) for m in sorted(missing))
                     + ("; the core Y statistics are given" if row["core_eber"] is not None else ""))
    row["missing"] = ",".join(sorted(missing)) or None
    row["note"] = "; ".join(notes) or None
    return row, seconds, row.pop("_sv", None), pending
