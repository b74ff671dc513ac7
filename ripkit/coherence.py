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

Coherence of a *random* dictionary is a random variable: :func:`coherence_draws` gives
μ over many independent draws and :func:`coherence_probability` the probability that it
falls below a threshold (CoSA B.2 checks μ < 1/√s_max on unstated draws).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ripkit._checks import check_matrix, check_positive_int
from ripkit.kron import KroneckerDictionary

__all__ = ["Coherence", "mutual_coherence", "gram_coherence", "kron_coherence", "recovery_condition",
           "max_guaranteed_sparsity", "coherence_draws", "coherence_probability"]


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
    cos = gram * inv[:, None]  # |(g_ij·inv_i)·inv_j|, the same products, in one d×d array
    cos *= inv[None, :]
    np.abs(cos, out=cos)
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


def max_guaranteed_sparsity(mu: float) -> int:
    """The largest s with μ < 1/(2s − 1) (exact recovery of every s-sparse vector by BP and OMP).

    μ < 1/(2s−1) ⇔ s < (1 + 1/μ)/2 (Donoho & Elad 2003; Tropp 2004, "Greed is good"); 0 if even s = 1
    fails (μ ≥ 1).  μ = 0 (orthogonal columns) raises: every s would qualify.
    """
    if not np.isfinite(mu) or mu <= 0:
        raise ValueError(f"mu={mu} must be a finite number > 0")
    bound = (1.0 + 1.0 / mu) / 2.0
    s = int(np.ceil(bound)) - 1
    return max(s, 0)


def coherence_draws(m: int, n: int, a: int, b: int, *, draws: int, seed=0, kind: str = "gaussian") -> np.ndarray:
    """μ(Ψ) of ``draws`` independent dictionaries; draw t is ``SeedSequence(seed, spawn_key=(t, 0))``.

    These are exactly the dictionaries of ``ripkit.rip.trial_dictionary(m, n, a, b, seed, t)``
    (so the first trials match ``rip_trials``).  μ is invariant to the scale convention and to
    column normalisation (it is a max of normalised inner products), so one convention serves all.
    """
    for name, v in (("m", m), ("n", n), ("a", a), ("b", b), ("draws", draws)):
        check_positive_int(name, v)
    out = np.empty(draws)
    for t in range(draws):
        d = KroneckerDictionary.from_seed(m, n, a, b, np.random.SeedSequence(seed, spawn_key=(t, 0)), kind=kind)
        out[t] = kron_coherence(d).mu
    return out


def coherence_probability(mus, threshold: float, *, level: float = 0.95) -> dict:
    """P(μ < threshold) estimated from independent draws, with its exact Clopper–Pearson interval.

    An *estimate* (a binomial proportion over the draws), labelled as such: returns
    ``{'below', 'draws', 'p_below', 'ci_low', 'ci_high', 'threshold'}``.
    """
    mus = np.asarray(mus, dtype=np.float64).ravel()
    if mus.size == 0 or not np.all(np.isfinite(mus)):
        raise ValueError("mus must be a non-empty array of finite coherences")
    from scipy.stats import binomtest  # here, not at the top: scipy.stats costs ~1 s of every RIP CLI start

    below = int(np.count_nonzero(mus < threshold))
    ci = binomtest(below, mus.size).proportion_ci(confidence_level=level, method="exact")
    return {"threshold": float(threshold), "draws": int(mus.size), "below": below,
            "p_below": below / mus.size, "ci_low": float(ci.low), "ci_high": float(ci.high)}
