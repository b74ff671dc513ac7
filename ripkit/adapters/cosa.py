"""CoSA adapter: ΔW = L·Y·R with frozen random L, R and a trainable core Y.

CoSA paper, section 4.1: Eq. (6) ΔW = LYR, Eq. (9) Z = W₀X + L(Y(RX)), Y
initialised to zero, L and R Gaussian and frozen and regenerated from a seed
(end of 4.1).  The authors' code adds ``L(Y(R(x))) * scaling``.

Order of the products.  For T tokens, a training step (forward and backward, Y
trainable, the input's gradient needed by earlier layers) costs, in multiply-adds,

* ``eq9``  L(Y(Rx)):  T·(2nb + 3ab + 2am);
* ``yr``   L((YR)x):  T·(3an + 2am) + 2abn   (YR formed once, its gradient folded back once);
* ``ly``   (LY)(Rx):  T·(2nb + 3mb) + 2mab;

(forward only: T·(nb + ab + am), T·(na + am) + abn, T·(nb + mb) + mab).  For a = b the
three are within a per-step term of each other and eq. 9 is never worse; for a ≠ b
the cheaper side first saves up to ~2× (a = 32, b = 128 on 384×384: 135k → 65k per
token).  ``order='auto'`` picks the cheapest each call; the default stays eq. 9,
whose floating-point results every committed run was trained with.
"""
from __future__ import annotations

import torch
from torch import nn

from ripkit._checks import check_choice, check_positive_int
from ripkit.adapters.lora import check_linear
from ripkit.projections import KINDS, SCALES, fingerprint, projection_pair

__all__ = ["CoSALinear", "ORDERS", "step_costs"]

ORDERS = ("eq9", "yr", "ly", "auto")


def step_costs(m: int, n: int, a: int, b: int, tokens: int, train: bool = True) -> dict:
    """Multiply-adds of one call (and its backward when ``train``) for each product order (module docstring)."""
    costs = {"eq9": tokens * (n * b + a * b + a * m), "yr": a * b * n + tokens * (n * a + a * m),
             "ly": m * a * b + tokens * (n * b + b * m)}
    if train:
        costs["eq9"] += tokens * (a * m + 2 * a * b + b * n)
        costs["yr"] += tokens * (a * m + 2 * a * n) + a * n * b
        costs["ly"] += tokens * (2 * b * m + b * n) + m * a * b
    return costs


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
    order : {'eq9', 'yr', 'ly', 'auto'}, default='eq9'
        Order of the three products (module docstring): eq. 9's L(Y(Rx)), L((YR)x),
        (LY)(Rx), or the cheapest for the call's shape.  The same ΔW·x up to rounding.
    """

    method = "cosa"

    def __init__(self, base: nn.Linear, a: int, b: int, *, seed: int, scaling: float = 1.0,
                 scale: str = "cosa", kind: str = "gaussian", order: str = "eq9"):
        super().__init__()
        check_linear(base)
        check_positive_int("a", a)
        check_positive_int("b", b)
        check_choice("scale", scale, SCALES)
        check_choice("kind", kind, KINDS)
        check_choice("order", order, ORDERS)
        self.order = order
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
        order = self.order
        if order == "auto":
            m, n = self.shape
            train = torch.is_grad_enabled() and self.core.requires_grad
            costs = step_costs(m, n, self.a, self.b, x.numel() // max(n, 1), train)
            order = min(costs, key=costs.get)  # ties keep eq. 9 (first in the dict)
        if order == "eq9":  # (..., n) -> (..., b) -> (..., a) -> (..., m): the three stages of section 4.1
            delta = ((x @ self.right.T) @ self.core.T) @ self.left.T
        elif order == "yr":
            delta = (x @ (self.core @ self.right).T) @ self.left.T
        else:
            delta = (x @ self.right.T) @ (self.left @ self.core).T
        # scaling 1 (the default) multiplies exactly, so skipping it changes no bit, forward or backward
        return self.base(x) + (delta if self.scaling == 1.0 else self.scaling * delta)

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


