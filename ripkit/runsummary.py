"""Compact per-run, per-layer numbers of a trained checkpoint: what the trained-model studies read.

A full checkpoint is megabytes; the studies need a few numbers per layer.  ``summarize_run``
reads a run folder (``ripkit.checkpoints.load_adapter``) once and keeps, per adapted layer:

* the singular values of ΔW (everything the adapter added to W₀), its Frobenius norm;
* CoSA (appendix B.3): the singular values of the trained core Y, ‖Y‖_F and the fraction of
  |Y| below 1e-4;
* block adapters (GraLoRA, CPS-LoRA): the singular values of the current blocks alone (CPS-LoRA
  merges earlier phases into W, Algorithm 1), and the partition the adapter trained on;
* block statistics of the Q/K/V/O layers (CPS-LoRA's targets) at k = 2, 4, 8 for the contiguous
  (GraLoRA), cosine-sorted (CPS-LoRA's default) and — at its own k — the adapter's own partition:
  the paper's block angle (``ripkit.subspaces.pairwise_block_angles``) for subspace dimensions
  1, 2, 4 and pair statistics max / mean / min, checkerboard and block-diagonal energy
  (``ripkit.partition_scores``) and the block rank-(8/k) approximation error (section 3.4);
  and the same statistics under ``null_draws`` random balanced partitions (the null of
  Figure 5 and Table 5; block adapters at their own k only), kept as the mean over layers per
  draw plus per-layer mean and std;
* for full fine-tuning and LoRA: the balance-1 and bicluster partitions at k = 2 (Table 5) and,
  for Figure 1's layers, bicluster block energies of ΔW and of ``null_draws`` same-spectrum
  random matrices (``ripkit.nulls.same_spectrum_matrix``) at k = 2, 4.

Written as ``summary.json`` (scalars, names, index of the arrays) + ``summary.safetensors``
(float32 arrays; the trained weights are float32 anyway).  Every draw is seeded from
(``seed``, run name, layer name) with hashlib, so a summary is bit-identical when recomputed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ripkit import nulls, spectra
from ripkit import partition as part
from ripkit.subspaces import PAIR_STATISTICS, block_ranks, block_svd, pairwise_block_angles

__all__ = ["SUMMARY_VERSION", "KS", "ANGLE_DIMS", "BLOCK_STATS", "QKVO", "FIGURE1_LAYERS", "RunSummary",
           "block_statistics", "summarize_run", "write_summary", "read_summary"]

SUMMARY_VERSION = 1
KS = (2, 4, 8)
ANGLE_DIMS = (1, 2, 4)
RANK_BUDGET = 8  # LoRA r = 8: every block adapter of the campaign has rank 8/k per block
ANGLE_STATS = tuple(f"angle_d{d}_{s}" for d in ANGLE_DIMS for s in PAIR_STATISTICS)
BLOCK_STATS = ANGLE_STATS + ("checkerboard", "block_diagonal", "block_error")
QKVO = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
FIGURE1_LAYERS = ("layer.0.attention.self.query", "layer.0.attention.self.value",
                  "layer.5.attention.self.query", "layer.5.attention.self.value")
THRESHOLD = 1e-4  # B.3's "entries below 1e-4"


@dataclass(frozen=True)
class RunSummary:
    """``meta``: the run's metadata and per-layer scalars; ``arrays``: name → float32 array."""

    meta: dict
    arrays: dict = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta["run"]

    @property
    def layers(self) -> list[dict]:
        return self.meta["layers"]

    def array(self, key: str) -> np.ndarray:
        return np.asarray(self.arrays[key], dtype=np.float64)

    def block_table(self):
        """The observed block statistics as a DataFrame: layer, k, partition, variant, BLOCK_STATS."""
        import pandas as pd

        idx = self.meta["blocks"]["index"]
        vals = self.array("blocks/values") if idx else np.zeros((0, len(BLOCK_STATS)))
        return pd.concat([pd.DataFrame(idx, columns=["layer", "k", "partition", "variant"]),
                          pd.DataFrame(vals, columns=list(BLOCK_STATS))], axis=1)


def _rng(seed: int, *names) -> np.random.Generator:
    digest = hashlib.sha256("/".join([str(seed), *map(str, names)]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def low_rank_factors(w: np.ndarray):
    """(U·S, Vᵀ) of ``w`` truncated at its numerical rank (σ > max(m, n)·eps·σ₁), or ``w`` itself.

    Block statistics of a rank-r ΔW then cost r³ per block (``subspaces.block_svd``);
    dropping singular values below that tolerance moves no statistic beyond rounding.
    """
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    q = int(np.sum(s > max(w.shape) * np.finfo(np.float64).eps * s[0])) if s.size and s[0] > 0 else 0
    return (u[:, :q] * s[:q], vt[:q]) if 0 < q < min(w.shape) // max(KS) else w


def block_statistics(x, p: part.Partition, *, rank: int, angles: bool = True) -> np.ndarray:
    """BLOCK_STATS of ΔW ``x`` (dense or factors) under balanced partition ``p``, one float64 vector.

    For balanced partitions one SVD of every block (``subspaces.block_svd``) serves the angles (top-d singular
    vectors are nested, so d = 1, 2, 4 are slices) and the rank-``rank`` error
    (Eckart–Young, as ``partition_scores.block_approximation_error``).  An angle reading
    whose d exceeds some block's numerical rank is NaN (its basis would be arbitrary);
    ``angles=False`` leaves all angles NaN, and so do partitions with unequal blocks.
    """
    out = np.full(len(BLOCK_STATS), np.nan)
    out[len(ANGLE_STATS)] = part.checkerboard_energy(x, p)
    out[len(ANGLE_STATS) + 1] = part.block_diagonal_energy(x, p)
    if len(set(np.diff(p.row_cuts))) > 1 or len(set(np.diff(p.col_cuts))) > 1:
        # unequal blocks (spectral biclustering): the paper's angle is undefined, no angles
        out[len(ANGLE_STATS) + 2] = part.block_approximation_error(x, p, rank)
        return out
    left, s, right = block_svd(x, p)
    if angles:
        ranks = block_ranks(s, (left.shape[1], right.shape[1]))
        for di, d in enumerate(ANGLE_DIMS):
            if ranks.min() >= d:
                per_pair = pairwise_block_angles(left[:, :, :d], right[:, :, :d])
                for si, stat in enumerate(PAIR_STATISTICS):
                    out[di * len(PAIR_STATISTICS) + si] = per_pair[stat].mean()
    total = float(np.sum(s ** 2))
    out[len(ANGLE_STATS) + 2] = np.sqrt(np.sum(s[:, rank:] ** 2) / total) if total > 0 else 0.0
    return out


def _own_partition(layer) -> part.Partition:
    f, meta = layer.factors, layer.meta
    return part.Partition(np.asarray(f["row_perm"], dtype=np.int64), np.asarray(f["col_perm"], dtype=np.int64),
                          tuple(meta["row_cuts"]), tuple(meta["col_cuts"]))


def _layer_matrices(layer) -> dict[str, np.ndarray]:
    """'delta' (ΔW since W₀) and, for block adapters, 'current' (the blocks being trained)."""
    w = layer.delta_w()
    out = {"delta": w}
    if layer.method == "block-lora":
        out["current"] = w - layer.factors["merged_A"] @ layer.factors["merged_B"]
    return out


def summarize_run(folder, *, seed: int = 0, null_draws: int = 50, blocks: bool = True) -> RunSummary:
    """Read the run in ``folder`` and compute its summary (see the module docstring).

    ``blocks=False`` skips the block statistics (CoSA runs never need them).
    """
    from ripkit.checkpoints import load_adapter

    folder = Path(folder)
    meta_file = folder / "ripkit_adapter.json"
    run_meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    name = folder.name
    layers = load_adapter(folder)
    method = layers[0].method if layers else run_meta.get("method")
    arrays, layer_rows = {}, []
    for layer in layers:
        mats = _layer_matrices(layer)
        row = {"name": layer.name, "method": layer.method, "shape": list(layer.shape),
               "frobenius": float(np.linalg.norm(mats["delta"]))}
        arrays[f"sv/{layer.name}"] = spectra.singular_values(mats["delta"])
        if "current" in mats:
            arrays[f"sv_current/{layer.name}"] = spectra.singular_values(mats["current"])
            row["n_repartitions"] = int(layer.meta.get("n_repartitions", 0))
            row["k"] = int(layer.meta["k"])
        if layer.method == "cosa":
            y = layer.core()
            arrays[f"core_sv/{layer.name}"] = spectra.singular_values(y)
            row |= {"core_shape": list(y.shape), "core_frobenius": float(np.linalg.norm(y)),
                    "core_fraction_below": float(np.mean(np.abs(y) < THRESHOLD))}
        layer_rows.append(row)
    weights = folder / "adapter_model.safetensors"
    source = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None
    meta = {"ripkit_summary_version": SUMMARY_VERSION, "run": name, "method": method, "source_sha256": source,
            "config": run_meta.get("config"), "training": run_meta.get("training"),
            "metrics": run_meta.get("metrics"), "seed": seed, "null_draws": null_draws,
            "threshold": THRESHOLD, "layers": layer_rows,
            "blocks": {"stats": list(BLOCK_STATS), "ks": list(KS), "rank_budget": RANK_BUDGET, "index": []}}
    if blocks and method != "cosa":
        _block_part(layers, name, seed, null_draws, meta, arrays)
    return RunSummary(meta, {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})


def _block_part(layers, name, seed, null_draws, meta, arrays) -> None:
    """Observed block statistics, the random-partition null and Figure 1's same-spectrum null."""
    attn = [l for l in layers if l.name.endswith(QKVO) and l.shape[0] % max(KS) == 0 and l.shape[1] % max(KS) == 0]
    index, values = [], []
    null = {k: np.zeros((null_draws, len(attn), len(BLOCK_STATS))) for k in KS}
    for li, layer in enumerate(attn):
        dense = _layer_matrices(layer)
        w = dense["delta"]                                   # partitioners see ΔW itself
        mats = {v: low_rank_factors(x) for v, x in dense.items()}  # statistics use its exact factors
        own = _own_partition(layer) if "current" in mats else None
        dense_only = layer.method in ("lora", "full")        # Table 5 and Figure 1 analyse these
        figure1 = dense_only and layer.name.endswith(FIGURE1_LAYERS)
        for k in KS:
            parts = {"contiguous": part.contiguous(w, k), "cosine": part.cosine_sort(w, k)}
            if own is not None and len(own.row_cuts) - 1 == k:
                parts["own"] = own
            if dense_only and k == 2:
                parts["balance"] = part.balance_sort(w, k, seed=seed)
            if (dense_only and k == 2) or (figure1 and k == 4):
                parts["bicluster"] = part.spectral_bicluster(w, k, seed=seed)
            for pname, p in parts.items():
                for variant, x in mats.items():
                    if variant == "current" and pname != "own":
                        continue
                    index.append([layer.name, k, pname, variant])
                    values.append(block_statistics(x, p, rank=RANK_BUDGET // k))
            if own is not None and "own" not in parts:
                null[k][:, li] = np.nan  # block adapters are compared with random partitions at their own k only
                continue
            rng = _rng(seed, name, layer.name, "random", k)
            for d, p in enumerate(nulls.random_partitions(w.shape, k, null_draws, seed=rng)):
                null[k][d, li] = block_statistics(mats["delta"], p, rank=RANK_BUDGET // k)
        if figure1:
            s = spectra.singular_values(w)
            for k in (2, 4):
                rng = _rng(seed, name, layer.name, "same-spectrum", k)
                energies = []
                for _ in range(null_draws):
                    x = nulls.same_spectrum_matrix(s, w.shape, seed=rng)
                    p = part.spectral_bicluster(x, k, seed=seed)
                    energies.append([part.checkerboard_energy(x, p), part.block_diagonal_energy(x, p)])
                arrays[f"fig1_null/{layer.name}/k{k}"] = np.array(energies)  # (draws, 2)
    meta["blocks"]["index"] = index
    meta["blocks"]["layers"] = [l.name for l in attn]
    if values:
        arrays["blocks/values"] = np.array(values)
    for k in KS:
        if attn and not np.isnan(null[k]).all():
            arrays[f"blocks/random_layer_mean/k{k}"] = null[k].mean(axis=1)   # (draws, stats)
            arrays[f"blocks/random_mean/k{k}"] = null[k].mean(axis=0)         # (layers, stats)
            arrays[f"blocks/random_std/k{k}"] = null[k].std(axis=0, ddof=1) if null_draws > 1 else null[k][0] * 0


def write_summary(summary: RunSummary, folder) -> Path:
    """Write ``summary.json`` and ``summary.safetensors`` into ``folder`` (atomically)."""
    from safetensors.numpy import save

    from ripkit._atomic import atomic_write_bytes, atomic_write_text
    from ripkit._cli import dumps_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "summary.safetensors",
                       save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in summary.arrays.items()}))
    atomic_write_text(folder / "summary.json", dumps_json(summary.meta, indent=1) + "\n")
    return folder / "summary.json"


def read_summary(folder) -> RunSummary:
    """Read what :func:`write_summary` wrote; refuses another summary version."""
    from safetensors.numpy import load

    folder = Path(folder)
    meta = json.loads((folder / "summary.json").read_text())
    if meta.get("ripkit_summary_version") != SUMMARY_VERSION:
        raise ValueError(f"{folder}/summary.json has summary version {meta.get('ripkit_summary_version')}, "
                         f"this ripkit reads {SUMMARY_VERSION}: recompute it with ripkit.runsummary")
    return RunSummary(meta, load((folder / "summary.safetensors").read_bytes()))
