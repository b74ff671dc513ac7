"""LoRA adapter: ΔW = (α/r)·B·A with B = 0 at init (Hu et al. 2021; CPS-LoRA Eq. 1).

Orientation follows peft and torch: ``lora_A`` is (r, n) = (r, in), ``lora_B``
is (m, r) = (out, r), so ΔW = scaling · lora_B @ lora_A has the shape of
``nn.Linear.weight``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ripkit._checks import check_positive_int

__all__ = ["LoRALinear", "kaiming_uniform_"]



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


class LoRALinear(nn.Module):
    """``base(x) + scaling · (x @ Aᵀ) @ Bᵀ`` with scaling = alpha / r.

    Parameters
    ----------
    base : nn.Linear
        Frozen layer, weight (m, n).
    r : int
        Rank.
    alpha : float, default=None
        LoRA alpha; ``None`` means alpha = r (scaling 1).
    seed : int
        Seed of the Kaiming-uniform init of A (B starts at zero).
    """

    method = "lora"

    def __init__(self, base: nn.Linear, r: int, *, alpha: float | None = None, seed: int = 0):
        super().__init__()
        check_linear(base)
        check_positive_int("r", r)
        m, n = base.out_features, base.in_features
        if r > min(m, n):
            raise ValueError(f"r={r} must be <= min(out, in)={min(m, n)}")
        self.base, self.r, self.seed = base, r, int(seed)
        self.alpha = float(r if alpha is None else alpha)
        self.scaling = self.alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, n, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(m, r, device=w.device, dtype=w.dtype))
        kaiming_uniform_(self.lora_A, n, self.seed)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.base.out_features, self.base.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)

    def delta_weight(self) -> torch.Tensor:
        """scaling · B·A, shape (m, n)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        return {"lora_A": self.lora_A, "lora_B": self.lora_B}

    def adapter_meta(self) -> dict:
        return {"method": self.method, "shape": list(self.shape), "r": self.r,
                "alpha": self.alpha, "scaling": self.scaling, "seed": self.seed}

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"
