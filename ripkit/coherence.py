"""Mutual coherence of a dictionary, exactly, without forming Ψ = Rᵀ⊗L.

Coherence (CoSA appendix B.1): μ(Φ) = max_{i≠j} |⟨φ_i, φ_j⟩| / (‖φ_i‖‖φ_j‖).

Kronecker identity (used and proved here)
-----------------------------------------
For A (p×q) and B (r×t) with q, t ≥ 2, μ(A⊗B) = max(μ(A), μ(B)).

*Proof.* The column of A⊗B indexed (i, k) is a_i ⊗ b_k, so by the mixed-product
rule its normalized inner product with column (j, l) factorizes:
cos((i,k), (j,l)) = cos(a_i, a_j)·cos(b_k, b_l).  For (i,k) ≠ (j,l) there are
three cases: i = j, k ≠ l gives |cos(b_k, b_l)| ≤ μ(B) with equality for the
pair attaining μ(B) (cos(a_i, a_i) = 1); k = l, i ≠ j gives μ(A) likewise; and
i ≠ j, k ≠ l gives a product of two numbers ≤ 1 in modulus, at most
min(μ(A), μ(B)).  Hence the maximum is max(μ(A), μ(B)).  If one factor has a
single column its pairs do not exist and μ(A⊗B) is the other factor's μ. ∎

For Ψ = Rᵀ⊗L this gives μ(Ψ) = max(μ(L), μ(Rᵀ)) from the a×a and b×b Gram
factors: O(m·a² + n·b²) time, O(a² + b²) memory.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ripkit._checks import check_matrix, check_positive_int

__all__ = ["Coherence", "mutual_coherence", "gram_coherence", "kron_coherence", "recovery_condition"]


@dataclass(frozen=True)
class Coherence:
    """Mutual coherence μ and a column pair (i, j) that attains it (−1, −1 if no pair exists)."""

    mu: float
    pair: tuple[int, int]

    def to_dict(self) -> dict:
        return asdict(self)


def gram_coherence(gram: np.ndarray) -> Coherence:
    """Coherence from a Gram matrix G = ΦᵀΦ (d×d): max_{i≠j} |G_ij| / sqrt(G_ii G_jj)."""
    gram = check_matrix("gram", gram)
    d = gram.shape[0]
    if gram.shape != (d, d):
        raise ValueError(f"gram must be square, got shape {gram.shape}")
    diag = np.diag(gram)
    if np.any(diag <= 0):
        raise ValueError("gram has a zero (or negative) diagonal entry: a zero column has no direction")
    if d == 1:
        return Coherence(0.0, (-1, -1))
    inv = 1.0 / np.sqrt(diag)
    cos = np.abs(gram * inv[:, None] * inv[None, :])
    np.fill_diagonal(cos, -np.inf)
    flat = int(np.argmax(cos))
    i, j = divmod(flat, d)
    return Coherence(float(cos[i, j]), (min(i, j), max(i, j)))


def mutual_coherence(matrix: np.ndarray) -> Coherence:
    """Coherence of the columns of a dense matrix Φ (rows × d)."""
    matrix = check_matrix("matrix", matrix)
    return gram_coherence(matrix.T @ matrix)


def kron_coherence(dictionary) -> Coherence:
    """Exact μ(Ψ) for a ``KroneckerDictionary`` via μ(Rᵀ⊗L) = max(μ(L), μ(Rᵀ)).

    The returned pair indexes columns of Ψ in the column-major convention
    j = k + a·l: a pair from L, (k, k'), is reported at l = 0 as (k, k');
    a pair from Rᵀ, (l, l'), at k = 0 as (a·l, a·l').
    """
    g_left, g_right = dictionary.gram_factors()
    c_left, c_right = gram_coherence(g_left), gram_coherence(g_right)
    a = dictionary.a
    if c_left.mu >= c_right.mu:
        return c_left
    return Coherence(c_right.mu, (a * c_right.pair[0], a * c_right.pair[1]))


def recovery_condition(mu: float, s: int) -> dict:
    """The coherence recovery conditions for sparsity s.

    Returns
    -------
    dict with
        ``threshold_sqrt``: 1/√s, the condition the CoSA paper checks (B.2, Fig. 4d);
        ``holds_sqrt``: μ < 1/√s;
        ``threshold_exact``: 1/(2s−1), Donoho–Elad/Tropp's sufficient condition for
        exact recovery of every s-sparse vector by BP/OMP (stricter);
        ``holds_exact``: μ < 1/(2s−1).
    """
    check_positive_int("s", s)
    if not np.isfinite(mu) or mu < 0:
        raise ValueError(f"mu={mu} must be a finite number >= 0")
    t_sqrt, t_exact = 1.0 / np.sqrt(s), 1.0 / (2 * s - 1)
    return {"s": s, "mu": float(mu), "threshold_sqrt": t_sqrt, "holds_sqrt": bool(mu < t_sqrt),
            "threshold_exact": t_exact, "holds_exact": bool(mu < t_exact)}
