"""Block LoRA on a k×k partition of ΔW, per-block rank r/k (GraLoRA, CPS-LoRA).

For a partition with row permutation π_r, column permutation π_c and cuts
I₁..I_k, J₁..J_k of the reordered matrix ΔW' = ΔW[π_r][:, π_c], block (i, j)
of ΔW' is B_ij·A_ij with A_ij (r/k × |J_j|), B_ij (|I_i| × r/k); total
trainable parameters (m + n)·r, the same as LoRA of rank r (CPS-LoRA
Prop. 2, section 3.4).  The factors are stored peft-LoRA-like:
``lora_A`` (r, n) with A_ij = lora_A[i·r/k:(i+1)·r/k, J_j] and ``lora_B``
(m, r) with B_ij = lora_B[I_i, j·r/k:(j+1)·r/k]; for the contiguous partition
this is the GraLoRA layout (peft ``GraloraLayer``) with gralora_A[j] =
lora_A[:, J_j]ᵀ and gralora_B[i] = lora_B[I_i, :]ᵀ.

The permutation is applied to the input and the output of the adapter path
only, never to a copy of W (CPS-LoRA appendix K.2):
y = W x + (ΔW' x[π_c])[π_r⁻¹].  ``repartition`` follows CPS-LoRA
Algorithm 1 lines 4–8: merge ΔW into the frozen weight, derive new
permutations from the factorised ΔW (appendix E) and re-initialise the factors.
The ``random`` repartitioner is the paper's control (CPS-LoRA Table 5, "Random
Partitioning + Epoch-wise Merging", and the "Epoch-wise merging" paragraph after it):
the same merge and re-initialisation, with the partition step replaced by a random
balanced partition drawn from ``SeedSequence([layer seed, repartition number])``, so
every layer and every repartition gets its own, reproducible permutations.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ripkit._checks import check_choice, check_positive_int
from ripkit.adapters.lora import check_linear, kaiming_uniform_

__all__ = ["BlockLoRALinear", "PARTITIONS", "REPARTITIONERS"]

PARTITIONS = ("contiguous", "random", "clustered")
REPARTITIONERS = ("spectral", "cosine", "balance", "random")


def _sizes(cuts) -> list[int]:
    return [int(b - a) for a, b in zip(cuts[:-1], cuts[1:])]


def _initial_partition(m: int, n: int, k: int, kind: str, seed: int):
    """Contiguous (GraLoRA) or random balanced (CPS-LoRA Algorithm 1, line 1) partition."""
    from ripkit import partition as P

    factors = (np.ones((m, 1)), np.ones((1, n)))  # only the shape matters here
    if kind == "contiguous":
        return P.contiguous(factors, k)
    return P.random_partition(factors, k, seed=int(seed) % (2**32))


class BlockLoRALinear(nn.Module):
    """``base(x) + scaling · (ΔW' x[π_c])[π_r⁻¹]`` with block-low-rank ΔW'.

    Parameters
    ----------
    base : nn.Linear
        Frozen layer, weight (m, n).
    r : int
        Total rank budget; each of the k×k blocks has rank r/k (r divisible by k).
    k : int
        Grid size.
    partition : {'contiguous', 'random', 'clustered'}
        'contiguous' is GraLoRA, 'random' a fixed random balanced partition,
        'clustered' (CPS-LoRA) starts random and supports ``repartition()``.
    alpha : float, default=None
        scaling = alpha / r; ``None`` means scaling 1.
    seed : int
        Seed of the random partition and of the Kaiming init of A.
    partitioner : {'spectral', 'cosine', 'balance', 'random'}, default=None
        The rule ``repartition()`` uses when called without one (clustered layers only);
        recorded in the checkpoint.
    """

    method = "block-lora"

    def __init__(self, base: nn.Linear, r: int, k: int, *, partition: str = "contiguous",
                 alpha: float | None = None, seed: int = 0, partitioner: str | None = None):
        super().__init__()
        check_linear(base)
        check_positive_int("r", r)
        check_positive_int("k", k)
        check_choice("partition", partition, PARTITIONS)
        if partitioner is not None:
            check_choice("partitioner", partitioner, REPARTITIONERS)
        m, n = base.out_features, base.in_features
        if r % k:
            raise ValueError(f"r={r} must be divisible by k={k} (per-block rank r/k)")
        if k > min(m, n):
            raise ValueError(f"k={k} must be <= min(out, in)={min(m, n)}")
        self.base, self.r, self.k, self.kind, self.seed = base, r, k, partition, int(seed)
        self.partitioner = partitioner
        self.alpha = float(r if alpha is None else alpha)
        self.scaling = self.alpha / r
        self.n_repartitions = 0
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, n, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(m, r, device=w.device, dtype=w.dtype))
        # ΔW already merged into base.weight by repartition(): scaled factors, original coordinates
        self.register_buffer("merged_A", torch.zeros(m, 0, device=w.device, dtype=w.dtype))
        self.register_buffer("merged_B", torch.zeros(0, n, device=w.device, dtype=w.dtype))
        self.set_partition(_initial_partition(m, n, k, partition, self.seed))
        self.reset_factors()

    # ---- partition state ------------------------------------------------------------------
    def set_partition(self, part) -> None:
        """Install a ``ripkit.partition.Partition`` (k row blocks and k column blocks)."""
        m, n = self.shape
        row_cuts, col_cuts = tuple(int(c) for c in part.row_cuts), tuple(int(c) for c in part.col_cuts)
        if len(row_cuts) != self.k + 1 or len(col_cuts) != self.k + 1:
            raise ValueError(f"partition must have k={self.k} row and column blocks, got "
                             f"{len(row_cuts) - 1} and {len(col_cuts) - 1}")
        if row_cuts[-1] != m or col_cuts[-1] != n:
            raise ValueError(f"partition covers {row_cuts[-1]}×{col_cuts[-1]}, layer is {m}×{n}")
        dev = self.base.weight.device
        self.register_buffer("row_perm", torch.tensor(np.array(part.row_perm, dtype=np.int64), device=dev))
        self.register_buffer("col_perm", torch.tensor(np.array(part.col_perm, dtype=np.int64), device=dev))
        self.register_buffer("inverse_row_perm", torch.argsort(self.row_perm))
        self.row_cuts, self.col_cuts = row_cuts, col_cuts

    def reset_factors(self) -> None:
        """A_ij ← Kaiming-uniform (fan-in |J_j|), B ← 0 (CPS-LoRA Algorithm 1, lines 1 and 8)."""
        seed = (self.seed + 1_000_003 * self.n_repartitions) % (2**63)
        with torch.no_grad():
            for j, (c0, c1) in enumerate(zip(self.col_cuts[:-1], self.col_cuts[1:])):
                kaiming_uniform_(self.lora_A[:, c0:c1], c1 - c0, seed + j)
            self.lora_B.zero_()

    @property
    def shape(self) -> tuple[int, int]:
        return (self.base.out_features, self.base.in_features)

    # ---- maths --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, rb = self.k, self.r // self.k
        xs = torch.split(x[..., self.col_perm], _sizes(self.col_cuts), dim=-1)  # k × (..., n_j)
        a_cols = torch.split(self.lora_A, _sizes(self.col_cuts), dim=1)  # k × (r, n_j)
        u = torch.stack([xj @ aj.T for xj, aj in zip(xs, a_cols)], dim=-2)  # (..., k_j, r)
        u = u.unflatten(-1, (k, rb)).transpose(-3, -2).flatten(-2)  # (..., k_i, k_j·rb)
        b_rows = torch.split(self.lora_B, _sizes(self.row_cuts), dim=0)  # k × (m_i, r)
        y = torch.cat([u[..., i, :] @ b_rows[i].T for i in range(k)], dim=-1)  # (..., m) reordered
        return self.base(x) + self.scaling * y[..., self.inverse_row_perm]

    def block_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ΔW of the current blocks as scaled factors (A, B) with ΔW = A @ B, original coordinates.

        A is (m, k²·r/k), B is (k²·r/k, n): block (i, j) owns the slot s = i·k + j
        (CPS-LoRA appendix E: clustering runs on this factorised form).
        """
        k, rb = self.k, self.r // self.k
        m, n = self.shape
        big_b = self.lora_B.new_zeros(m, k * k * rb)
        big_a = self.lora_A.new_zeros(k * k * rb, n)
        for i, (r0, r1) in enumerate(zip(self.row_cuts[:-1], self.row_cuts[1:])):
            for j, (c0, c1) in enumerate(zip(self.col_cuts[:-1], self.col_cuts[1:])):
                s = slice((i * k + j) * rb, (i * k + j + 1) * rb)
                big_b[r0:r1, s] = self.lora_B[r0:r1, j * rb:(j + 1) * rb]
                big_a[s, c0:c1] = self.lora_A[i * rb:(i + 1) * rb, c0:c1]
        inv_col = torch.argsort(self.col_perm)
        return self.scaling * big_b[self.inverse_row_perm], big_a[:, inv_col]

    def delta_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B'·A' = ``delta_weight()``: merged updates then the current blocks, rank
        ``merged rank + k·r``, scaling folded in (an exact plain-LoRA factorisation)."""
        fa, fb = self.block_factors()
        return torch.cat([self.merged_A, fa], dim=1), torch.cat([self.merged_B, fb], dim=0)

    def block_delta_weight(self) -> torch.Tensor:
        """scaling · ΔW of the current blocks in original coordinates, (m, n)."""
        fa, fb = self.block_factors()
        return fa @ fb

    def delta_weight(self) -> torch.Tensor:
        """Everything the adapter has added to W₀: merged updates plus the current blocks."""
        return self.merged_A @ self.merged_B + self.block_delta_weight()

    @torch.no_grad()
    def repartition(self, partitioner: str | None = None, *, seed: int | None = None):
        """CPS-LoRA Algorithm 1, lines 4–8, without permuting W (appendix K.2).

        1. merge the current ΔW into the frozen base weight (recorded in ``merged_A``/``merged_B``);
        2. derive (π_r, π_c) and cuts from the factorised ΔW with ``ripkit.partition``
           ('random': a random balanced partition from SeedSequence([layer seed, repartition
           number]), the paper's control; ``seed`` is used by 'spectral' only);
        3. re-initialise A (Kaiming) and B (zero), so the layer's function is unchanged.
        Returns the new ``Partition``.  Reset the optimizer state of A and B afterwards.
        """
        from ripkit import partition as P

        partitioner = partitioner or self.partitioner or "cosine"
        check_choice("partitioner", partitioner, REPARTITIONERS)
        if self.kind != "clustered":
            raise ValueError(f"repartition() needs partition='clustered', this layer is {self.kind!r}")
        fa, fb = self.block_factors()
        # 1. merge
        self.merge_factors(fa, fb)
        # 2. new permutations from the factorised ΔW
        self.partitioner = partitioner
        factors = (fa.detach().double().cpu().numpy(), fb.detach().double().cpu().numpy())
        if partitioner == "random":
            part = P.random_partition(factors, self.k,
                                      seed=np.random.SeedSequence([self.seed, self.n_repartitions + 1]))
        elif partitioner == "spectral":
            part = P.spectral_bicluster(factors, self.k, seed=int(self.seed if seed is None else seed) % (2**32))
        else:
            part = {"cosine": P.cosine_sort, "balance": P.balance_sort}[partitioner](factors, self.k)
        self.set_partition(part)
        # 3. re-initialise
        self.n_repartitions += 1
        self.reset_factors()
        return part

    @torch.no_grad()
    def merge_factors(self, fa: torch.Tensor, fb: torch.Tensor) -> None:
        """W ← W + fa @ fb and record the factors (also used to replay merges on reload)."""
        self.base.weight.add_(fa @ fb)
        self.merged_A = torch.cat([self.merged_A, fa], dim=1)
        self.merged_B = torch.cat([self.merged_B, fb], dim=0)

    # ---- checkpoint support -----------------------------------------------------------------
    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        return {"lora_A": self.lora_A, "lora_B": self.lora_B, "row_perm": self.row_perm,
                "col_perm": self.col_perm, "merged_A": self.merged_A, "merged_B": self.merged_B}

    def adapter_meta(self) -> dict:
        return {"method": self.method, "shape": list(self.shape), "r": self.r, "k": self.k,
                "partition": self.kind, "alpha": self.alpha, "scaling": self.scaling,
                "seed": self.seed, "row_cuts": list(self.row_cuts), "col_cuts": list(self.col_cuts),
                "n_repartitions": self.n_repartitions, "merge_rank": self.k * self.r,
                **({"partitioner": self.partitioner} if self.kind == "clustered" and self.partitioner else {})}

    def extra_repr(self) -> str:
        return f"r={self.r}, k={self.k}, partition={self.kind!r}, alpha={self.alpha}"
