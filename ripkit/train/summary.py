"""A compact per-layer summary of what a run learned: ‖ΔW‖_F, top singular values, energy rank.

Computed from each adapter's factors (ΔW is never formed for CoSA, LoRA, PiSSA or
block-LoRA; ``ripkit.spectra`` takes the QR route of CPS-LoRA appendix E), and from the
saved dense ΔW for a full fine-tune.  ΔW is what the adapter adds to the original W₀.
Written by the trainer as ``OUT/layers.csv``.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import torch

from ripkit import spectra
from ripkit.adapters.cosa import CoSALinear
from ripkit.adapters.inject import adapter_modules

__all__ = ["TOP", "FIELDS", "layer_summary", "summary_csv"]

TOP = 4  # singular values listed per layer
FIELDS = ("layer", "method", "m", "n", "frobenius", *(f"sv{i + 1}" for i in range(TOP)),
          "energy_rank_95", "stable_rank", "eber")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


@torch.no_grad()
def _factors(mod):
    if isinstance(mod, CoSALinear):  # scaling · L · Y · R
        return (_np(mod.scaling * mod.left.double()), _np(mod.core), _np(mod.right))
    b, a = mod.delta_factors()  # LoRA, PiSSA, block-LoRA: ΔW = B'·A'
    return (_np(b), _np(a))


def _row(name: str, method: str, x, shape) -> dict:
    s = spectra.singular_values(x)
    row = {"layer": name, "method": method, "m": shape[0], "n": shape[1],
           "frobenius": float(np.sqrt(np.sum(s ** 2))), "energy_rank_95": spectra.energy_rank(s),
           "stable_rank": spectra.stable_rank(s), "eber": spectra.eber(s)}
    row.update({f"sv{i + 1}": float(s[i]) if i < len(s) else 0.0 for i in range(TOP)})
    return row


def layer_summary(model, full_deltas=None) -> list[dict]:
    """One row per adapted layer (or per saved ΔW of a full fine-tune), in model order."""
    rows = [_row(name, "pissa" if getattr(mod, "init", None) == "pissa" else mod.method, _factors(mod), mod.shape)
            for name, mod in adapter_modules(model).items()]
    for name, delta in (full_deltas or {}).items():
        rows.append(_row(name, "full", _np(delta), tuple(delta.shape)))
    return rows


def summary_csv(rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()
