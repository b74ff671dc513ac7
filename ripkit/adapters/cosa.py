"""CoSA adapter: ΔW = L·Y·R with frozen random L, R and a trainable core Y.

CoSA paper, section 4.1: Eq. (6) ΔW = LYR, Eq. (9) Z = W₀X + L(Y(RX)), Y
initialised to zero, L and R Gaussian and frozen and regenerated from a seed
(end of 4.1).  The authors' code adds ``L(Y(R(x))) * scaling``.
"""
from __future__ import annotations

import torch
from torch import nn

from ripkit._checks import check_choice, check_positive_int
from ripkit.adapters.lora import check_linear
from ripkit.projections import KINDS, SCALES, fingerprint, projection_pair

__all__ = ["CoSALinear"]


class CoSALinear(nn.Module):
    """``base(x) + scaling · ((x @ Rᵀ) @ Yᵀ) @ Lᵀ`` (CoSA Eq. 9) around a frozen ``nn.Linear``.

    Parameters
    ----------
    base : nn.Linear
        Frozen layer with weight W₀ of shape (m, n) = (out, in).
    a, b : int
        Core shape: L is (m, a), Y is (a, b), R is (b, n).
    seed : int
        Seed of L and R (``ripkit.projections.projection_pair``); derive it with
        ``layer_seed(base_seed, layer_name)``.
    scaling : float, default=1.0
        Factor on the adapter output.
    scale : {'cosa', 'unit'}, default='cosa'
        Entry variance convention of L, R (the authors' code uses 'cosa').
    kind : {'gaussian', 'rademacher'}
    """

    method = "cosa"

    def __init__(self, base: nn.Linear, a: int, b: int, *, seed: int, scaling: float = 1.0,
                 scale: str = "cosa", kind: str = "gaussian"):
        super().__init__()
        check_linear(base)
        check_positive_int("a", a)
        check_positive_int("b", b)
        check_choice("scale", scale, SCALES)
        check_choice("kind", kind, KINDS)
        m, n = base.out_features, base.in_features
        left, right = projection_pair(m, n, a, b, int(seed), scale=scale, kind=kind)
        self.base = base
        self.a, self.b, self.seed = a, b, int(seed)
        self.scaling, self.scale, self.kind = float(scaling), scale, kind
        self.fingerprints = {"left": fingerprint(left), "right": fingerprint(right)}
        w = base.weight
        # regenerated from the seed, so not part of the state dict
        self.register_buffer("left", torch.from_numpy(left).to(w.device, w.dtype), persistent=False)
        self.register_buffer("right", torch.from_numpy(right).to(w.device, w.dtype), persistent=False)
        self.core = nn.Parameter(torch.zeros(a, b, device=w.device, dtype=w.dtype))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.base.out_features, self.base.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (..., n) -> (..., b) -> (..., a) -> (..., m): the three stages of section 4.1
        u = x @ self.right.T
        return self.base(x) + self.scaling * ((u @ self.core.T) @ self.left.T)

    def delta_weight(self) -> torch.Tensor:
        """scaling · L·Y·R, shape (m, n): exactly what the adapter adds to W₀."""
        return self.scaling * (self.left @ self.core @ self.right)

    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        return {"core": self.core}

    def adapter_meta(self) -> dict:
        return {"method": self.method, "shape": list(self.shape), "a": self.a, "b": self.b,
                "seed": self.seed, "scaling": self.scaling, "scale": self.scale,
                "kind": self.kind, "fingerprints": dict(self.fingerprints)}

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, scaling={self.scaling}, scale={self.scale!r}"


