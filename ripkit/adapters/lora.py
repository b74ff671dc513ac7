"""LoRA adapter: ΔW = (α/r)·B·A with B = 0 at init (Hu et al. 2021; CPS-LoRA Eq. 1), or PiSSA-initialised.

Orientation follows peft and torch: ``lora_A`` is (r, n) = (r, in), ``lora_B``
is (m, r) = (out, r), so ΔW = scaling · lora_B @ lora_A has the shape of
``nn.Linear.weight``.

PiSSA (Meng et al. 2024; a baseline of the CoSA paper, its Tables 1–3 and "Baselines,
Models and Benchmarks") starts from the top-r singular triplets of the frozen weight,
W₀ = U S Vᵀ: A₀ = diag(√(S_r/s))·V_rᵀ, B₀ = U_r·diag(√(S_r/s)) (s = scaling), and moves
them out of the frozen weight, W_res = W₀ − s·B₀A₀, so the layer's function is unchanged
at init (peft ``LoraLayer.pissa_init``, same arithmetic).  What the adapter adds to
the *original* W₀ is then s·(B·A − B₀·A₀).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ripkit._checks import check_choice, check_positive_int

__all__ = ["LoRALinear", "kaiming_uniform_", "check_linear", "pissa_factors", "pissa_residual", "INITS"]

INITS = ("default", "pissa")


def check_linear(base) -> None:
    """Every adapter wraps an ``nn.Linear``; say what was given otherwise."""
    if not isinstance(base, nn.Linear):
        raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")


def kaiming_uniform_(tensor: torch.Tensor, fan_in: int, seed: int) -> torch.Tensor:
    """peft's ``kaiming_uniform_(a=√5)``: U(−1/√fan_in, 1/√fan_in), drawn from a seeded generator."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))
    bound = 1.0 / math.sqrt(fan_in)
    values = torch.empty(tensor.shape, dtype=torch.float32).uniform_(-bound, bound, generator=gen)
    with torch.no_grad():
        tensor.copy_(values.to(tensor.device, tensor.dtype))
    return tensor


def pissa_factors(weight: torch.Tensor, r: int, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A₀ (r, n), B₀ (m, r)) from the top-r SVD of ``weight`` in float32, as peft's ``pissa_init``."""
    u, s, vh = torch.linalg.svd(weight.detach().to(torch.float32), full_matrices=False)
    s_r = s[:r] / scaling
    return torch.diag(torch.sqrt(s_r)) @ vh[:r], u[:, :r] @ torch.diag(torch.sqrt(s_r))


def pissa_residual(weight: torch.Tensor, a0: torch.Tensor, b0: torch.Tensor, scaling: float) -> torch.Tensor:
    """W_res = W₀ − scaling·B₀A₀ in float32, cast back to W₀'s dtype (used at init *and* on reload, so
    a reloaded checkpoint rebuilds the very same frozen weight)."""
    w = weight.detach().to(torch.float32)
    return (w - scaling * b0.to(torch.float32) @ a0.to(torch.float32)).to(weight.dtype)


class LoRALinear(nn.Module):
    """``base(x) + scaling · (x @ Aᵀ) @ Bᵀ`` with scaling = alpha / r.

    Parameters
    ----------
    base : nn.Linear
        Frozen layer, weight (m, n).  With ``init='pissa'`` its weight is replaced by W_res.
    r : int
        Rank.
    alpha : float, default=None
        LoRA alpha; ``None`` means alpha = r (scaling 1).
    seed : int
        Seed of the Kaiming-uniform init of A (B starts at zero); unused by PiSSA.
    init : {'default', 'pissa'}
        'default': A Kaiming-uniform, B = 0.  'pissa': A₀, B₀ from the top-r SVD of W₀
        (module docstring); both are kept as buffers ``lora_A0``, ``lora_B0``.
    """

    method = "lora"

    def __init__(self, base: nn.Linear, r: int, *, alpha: float | None = None, seed: int = 0,
                 init: str = "default"):
        super().__init__()
        check_linear(base)
        check_positive_int("r", r)
        check_choice("init", init, INITS)
        m, n = base.out_features, base.in_features
        if r > min(m, n):
            raise ValueError(f"r={r} must be <= min(out, in)={min(m, n)}")
        self.base, self.r, self.seed, self.init = base, r, int(seed), init
        self.alpha = float(r if alpha is None else alpha)
        self.scaling = self.alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, n, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(m, r, device=w.device, dtype=w.dtype))
        if init == "pissa":
            a0, b0 = pissa_factors(w, r, self.scaling)
            self.set_pissa_init(a0, b0)
            with torch.no_grad():
                self.lora_A.copy_(a0)
                self.lora_B.copy_(b0)
        else:
            kaiming_uniform_(self.lora_A, n, self.seed)

    @torch.no_grad()
    def set_pissa_init(self, a0: torch.Tensor, b0: torch.Tensor) -> None:
        """Make this a PiSSA layer: record A₀, B₀ and move s·B₀A₀ out of the frozen weight
        (W ← W₀ − s·B₀A₀).  Also how a checkpoint is put back onto the original W₀."""
        self.init = "pissa"
        w = self.base.weight
        self.register_buffer("lora_A0", a0.to(w.device, w.dtype).clone())
        self.register_buffer("lora_B0", b0.to(w.device, w.dtype).clone())
        w.copy_(pissa_residual(w, self.lora_A0, self.lora_B0, self.scaling))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.base.out_features, self.base.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)

    def delta_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B'·A' = ``delta_weight()``: (s·B, A), or (s·[B, −B₀], [A; A₀]) for PiSSA."""
        if self.init == "pissa":
            return (self.scaling * torch.cat([self.lora_B, -self.lora_B0], dim=1),
                    torch.cat([self.lora_A, self.lora_A0], dim=0))
        return self.scaling * self.lora_B, self.lora_A

    def delta_weight(self) -> torch.Tensor:
        """What the adapter adds to the original W₀, shape (m, n): s·B·A (PiSSA: s·(B·A − B₀·A₀))."""
        if self.init == "pissa":
            return self.scaling * (self.lora_B @ self.lora_A - self.lora_B0 @ self.lora_A0)
        return self.scaling * (self.lora_B @ self.lora_A)

    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        out = {"lora_A": self.lora_A, "lora_B": self.lora_B}
        if self.init == "pissa":
            out.update(lora_A0=self.lora_A0, lora_B0=self.lora_B0)
        return out

    def adapter_meta(self) -> dict:
        meta = {"method": self.method, "shape": list(self.shape), "r": self.r,
                "alpha": self.alpha, "scaling": self.scaling, "seed": self.seed}
        if self.init == "pissa":
            meta["init"] = "pissa"  # tensors lora_A0 (r, n), lora_B0 (m, r); ΔW = s·(B·A − B₀·A₀)
        return meta

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}" + (", init='pissa'" if self.init == "pissa" else "")
