"""ripkit.rip.bracket as it was before issue 16, kept verbatim (but for its imports) as the reference for the identity tests.

Its adversarial search is the pre-issue-16 one (tests/_adversarial_reference.py); exact enumeration is
ripkit's current one, which reports the same values as before (tests/test_exhaustive.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ripkit.projections import as_generator
from _adversarial_reference import DenseGram, KronGram, adversarial_search
from ripkit.rip.estimators import support_rip
from ripkit.rip.exhaustive import enumeration_feasible, exact_rip

__all__ = ["RipBracket", "rip_bracket", "factor_extremes", "kron_gershgorin", "gram_gershgorin"]

#: Default cap on supports enumerated exactly (for Ψ itself and for each factor).
MAX_SUPPORTS = 2_000_000
#: Relative widening of both sides against floating-point rounding in eigenvalues.
FP_MARGIN = 1e-12


@dataclass(frozen=True)
class RipBracket:
    """lower ≤ δ_s(Ψ/√c) ≤ upper, with the bound and support behind each side."""

    s: int
    lower: float
    lower_by: str
    lower_support: tuple[int, ...]
    upper: float
    upper_by: str
    isometry_scale: float
    lower_candidates: dict = field(default_factory=dict)
    upper_candidates: dict = field(default_factory=dict)
    factor_exact: dict = field(default_factory=dict)
    seconds: float = 0.0
    budget_exhausted: bool = False

    @property
    def delta(self) -> float:
        """The certified lower bound (what ``rip_trials`` aggregates as 'delta')."""
        return self.lower

    def to_dict(self) -> dict:
        out = asdict(self)
        out["delta"] = self.lower
        return out


def gram_gershgorin(gram: np.ndarray, s: int) -> tuple[float, float]:
    """Row-wise Gershgorin bounds on every s×s principal sub-block: (λ_max ≤ hi, λ_min ≥ lo)."""
    off = np.abs(gram - np.diag(np.diag(gram)))
    t = min(s - 1, gram.shape[0] - 1)
    top = -np.partition(-off, t - 1, axis=1)[:, :t].sum(axis=1) if t > 0 else np.zeros(gram.shape[0])
    d = np.diag(gram)
    return float(np.max(d + top)), float(np.min(d - top))


def kron_gershgorin(g_left: np.ndarray, g_right: np.ndarray, s: int, chunk_entries: int = 2**22):
    """``gram_gershgorin`` for G_R ⊗ G_L without forming it.

    Row (k, l) holds the products |G_L[k,k']|·|G_R[l,l']|.  Its s−1 largest
    off-diagonal entries lie among the products of the s largest of
    |G_L[k,:]| and of |G_R[l,:]| (any other product is dominated by s
    products in that grid), so each row costs O(s²) after sorting the factor rows.
    """
    a, b = g_left.shape[0], g_right.shape[0]
    t = s - 1
    d_left, d_right = np.diag(g_left), np.diag(g_right)
    if t == 0 or a * b == 1:
        diag = np.kron(d_right, d_left)
        return float(diag.max()), float(diag.min())
    p, q = min(s, a), min(s, b)
    idx_l = np.argsort(-np.abs(g_left), axis=1)[:, :p]
    val_l = np.take_along_axis(np.abs(g_left), idx_l, axis=1)  # (a, p)
    idx_r = np.argsort(-np.abs(g_right), axis=1)[:, :q]
    val_r = np.take_along_axis(np.abs(g_right), idx_r, axis=1)  # (b, q)
    t = min(t, p * q - 1)
    hi, lo = -np.inf, np.inf
    step = max(1, chunk_entries // (b * p * q))
    for start in range(0, a, step):
        ks = np.arange(start, min(a, start + step))
        prod = val_l[ks][:, None, :, None] * val_r[None, :, None, :]  # (ck, b, p, q)
        own = (idx_l[ks][:, None, :, None] == ks[:, None, None, None]) & \
              (idx_r[None, :, None, :] == np.arange(b)[None, :, None, None])
        prod = np.where(own, 0.0, prod).reshape(len(ks), b, p * q)
        top = -np.partition(-prod, t - 1, axis=2)[:, :, :t].sum(axis=2)  # (ck, b)
        diag = d_left[ks][:, None] * d_right[None, :]
        hi, lo = max(hi, float((diag + top).max())), min(lo, float((diag - top).min()))
    return hi, lo


def factor_extremes(gram: np.ndarray, t: int, *, max_supports=MAX_SUPPORTS, seed=0, restarts=2,
                    budget_seconds=None, eigenvalues=None) -> dict:
    """Λ(t) and λ(t) of one factor Gram: exact by enumeration if feasible, else bracketed.

    Returns a dict with ``exact`` (bool), upper-bound-on-Λ ``lam_max_hi``,
    lower-bound-on-λ ``lam_min_lo`` (for the kron-product upper bound) and
    attained ``lam_max_lo`` / ``lam_min_hi`` with supports (for rectangles).
    """
    d = gram.shape[0]
    t = min(t, d)
    if enumeration_feasible(d, t, max_supports):
        ex = exact_rip(gram, t, max_supports=max_supports)
        return {"exact": True, "t": t, "lam_max_hi": ex.lam_max, "lam_max_lo": ex.lam_max,
                "support_max": ex.support_max, "lam_min_lo": ex.lam_min, "lam_min_hi": ex.lam_min,
                "support_min": ex.support_min, "supports_per_second": ex.supports_per_second}
    eig = np.linalg.eigvalsh(gram) if eigenvalues is None else eigenvalues
    g_hi, g_lo = gram_gershgorin(gram, t)
    dense = DenseGram(gram)
    up = adversarial_search(dense, t, "max", restarts=restarts, seed=seed, budget_seconds=budget_seconds)
    dn = adversarial_search(dense, t, "min", restarts=restarts, seed=seed, budget_seconds=budget_seconds)
    return {"exact": False, "t": t, "lam_max_hi": min(eig[-1], g_hi), "lam_max_lo": up.eigenvalue,
            "support_max": up.support, "lam_min_lo": max(eig[0], g_lo, 0.0),
            "lam_min_hi": dn.eigenvalue, "support_min": dn.support, "supports_per_second": None}


def _seed_sequence(seed) -> np.random.SeedSequence:
    """int or SeedSequence as given; a Generator seeds a child sequence from its own stream."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63)))
    as_generator(seed)  # type and sign check
    return np.random.SeedSequence(int(seed))


def _rectangles(fl: dict, fr_by_size: dict, a: int, s: int, c: float):
    """Best rectangle supports I×J, |I|·|J| ≤ s, per side, from the factors' worst supports."""
    best = {"max": (-np.inf, ()), "min": (np.inf, ())}
    for p, left in fl.items():
        right = fr_by_size[min(s // p, max(fr_by_size))]
        for side, key_val, key_sup in (("max", "lam_max_lo", "support_max"), ("min", "lam_min_hi", "support_min")):
            lam = left[key_val] * right[key_val]
            if (side == "max" and lam > best[side][0]) or (side == "min" and lam < best[side][0]):
                sup = tuple(sorted(int(k + a * l) for k in left[key_sup] for l in right[key_sup]))
                best[side] = (lam, sup)
    return {"rectangle(+)": (best["max"][0] / c - 1.0, best["max"][1]),
            "rectangle(-)": (1.0 - best["min"][0] / c, best["min"][1])}


def rip_bracket(dictionary, s: int, *, gram=None, random_lower=None, n_random: int = 1000, restarts: int = 2,
                budget_seconds: float | None = None, seed=0, max_supports: int = MAX_SUPPORTS) -> RipBracket:
    """Certified lower and upper bounds on δ_s of ``dictionary`` (scaled by 1/√c).

    Parameters
    ----------
    dictionary : KroneckerDictionary
    s : int
        Sparsity level, 1 ≤ s ≤ ab.
    gram : (G_L, G_R), optional
        Precomputed Gram factors.
    random_lower : SupportRip, optional
        A ``support_rip`` result to reuse as the 'random' lower bound; else
        ``n_random`` supports are sampled with ``seed``.
    restarts : int
        Starts per side of the adversarial search (plus the extra starts).
    budget_seconds : float, optional
        Wall-time cap for each adversarial search (two per factor size, two for Ψ).
        None: run every start to completion (deterministic).
    max_supports : int
        Enumerate exactly when C(·, ·) is at most this.

    Returns
    -------
    RipBracket
        ``lower``/``upper`` with ``lower_by``/``upper_by`` naming the bound, the
        support attaining ``lower``, and every candidate bound.
    """
    t0 = time.perf_counter()
    c = dictionary.isometry_scale
    a, b = dictionary.a, dictionary.b
    if not 1 <= s <= a * b:
        raise ValueError(f"s={s} must be in [1, ab={a * b}]")
    g_left, g_right = dictionary.gram_factors() if gram is None else gram
    rng_seeds = _seed_sequence(seed).spawn(4)
    lower, upper_plus, upper_minus = {}, {}, {}

    # -- lower: random supports
    if random_lower is None:
        random_lower = support_rip(dictionary, s, n_samples=n_random, seed=rng_seeds[0], gram=(g_left, g_right))
    lower["random"] = (random_lower.delta, random_lower.support)

    # -- factor extremes for the sizes the rectangles and the product bound need: only the
    # maximal pairs (p, q) = (p, min(s//p, b)) matter, since Λ, λ are monotone in the size.
    sa, sb = min(s, a), min(s, b)
    sizes_r = sorted({min(s // p, b) for p in range(1, sa + 1)} | {sb})
    sizes_l = sorted({min(s // q, a) for q in sizes_r} | {sa})
    ev_l, ev_r = np.linalg.eigvalsh(g_left), np.linalg.eigvalsh(g_right)
    # Exact enumeration pays for the product bound (sizes sa, sb); rectangles only need
    # good explicit supports, so their other sizes are enumerated only when cheap.
    def cap(t, top):
        return max_supports if t == top else min(max_supports, 200_000)

    fl = {p: factor_extremes(g_left, p, max_supports=cap(p, sa), seed=rng_seeds[1], restarts=restarts,
                             budget_seconds=budget_seconds, eigenvalues=ev_l) for p in sizes_l}
    fr = {q: factor_extremes(g_right, q, max_supports=cap(q, sb), seed=rng_seeds[2], restarts=restarts,
                             budget_seconds=budget_seconds, eigenvalues=ev_r) for q in sizes_r}
    lower.update(_rectangles(fl, fr, a, s, c))

    # -- lower: adversarial search on Ψ itself, seeded with the best random and rectangle supports
    kg = KronGram(g_left, g_right)
    cut = False
    for side, name, extra in (("max", "adversarial(+)", [lower["rectangle(+)"][1], random_lower.support]),
                              ("min", "adversarial(-)", [lower["rectangle(-)"][1], random_lower.support])):
        res = adversarial_search(kg, s, side, restarts=restarts, seed=rng_seeds[3], extra_starts=extra,
                                 budget_seconds=budget_seconds)
        cut = cut or res.budget_exhausted
        lower[name] = ((res.eigenvalue / c - 1.0) if side == "max" else (1.0 - res.eigenvalue / c), res.support)

    # -- upper: spectral (whole matrix)
    min_l = max(ev_l[0], 0.0) if a <= dictionary.m else 0.0
    min_r = max(ev_r[0], 0.0) if b <= dictionary.n else 0.0
    upper_plus["spectral"], upper_minus["spectral"] = ev_l[-1] * ev_r[-1] / c - 1.0, 1.0 - min_l * min_r / c
    # -- upper: row-wise Gershgorin on the Kronecker Gram
    g_hi, g_lo = kron_gershgorin(g_left, g_right, s)
    upper_plus["gershgorin"], upper_minus["gershgorin"] = g_hi / c - 1.0, 1.0 - g_lo / c
    # -- upper: Kronecker product of the factors' exact (or bounded) extremes
    left, right = fl[sa], fr[sb]
    upper_plus["kron-product"] = left["lam_max_hi"] * right["lam_max_hi"] / c - 1.0
    upper_minus["kron-product"] = 1.0 - left["lam_min_lo"] * right["lam_min_lo"] / c
    upper_minus["psd"] = 1.0

    # -- both sides at once when Ψ's own supports can be enumerated
    if enumeration_feasible(a * b, s, max_supports):
        sub_gram = np.kron(g_right, g_left)  # ab ≤ a few thousand here: bounded by max_supports
        ex = exact_rip(sub_gram, s, max_supports=max_supports, isometry_scale=c)
        lower["exhaustive(+)"] = (ex.delta_upper_side, ex.support_max)
        lower["exhaustive(-)"] = (ex.delta_lower_side, ex.support_min)
        upper_plus["exhaustive"], upper_minus["exhaustive"] = ex.delta_upper_side, ex.delta_lower_side

    lower_by = max(lower, key=lambda k: lower[k][0])
    plus_by = min(upper_plus, key=upper_plus.get)
    minus_by = min(upper_minus, key=upper_minus.get)
    upper = max(upper_plus[plus_by], upper_minus[minus_by])
    upper_by = f"{plus_by} (+)" if upper_plus[plus_by] >= upper_minus[minus_by] else f"{minus_by} (-)"
    low = lower[lower_by][0]
    if low > upper + 1e-9 * max(1.0, abs(upper)):
        raise RuntimeError(f"internal error: certified lower {low} exceeds certified upper {upper} for s={s}")
    # Eigensolvers have backward error ~1e-15·‖G‖; widen both sides by FP_MARGIN (relative)
    # so that rounding can never make the bracket exclude the true δ_s.
    low -= FP_MARGIN * max(1.0, abs(low))
    upper += FP_MARGIN * max(1.0, abs(upper))
    factor_exact = {"left": {"t": sa, "exact": left["exact"], "supports_per_second": left["supports_per_second"]},
                    "right": {"t": sb, "exact": right["exact"], "supports_per_second": right["supports_per_second"]}}
    return RipBracket(
        s=s, lower=float(low), lower_by=lower_by, lower_support=tuple(int(j) for j in lower[lower_by][1]),
        upper=float(upper), upper_by=upper_by, isometry_scale=c,
        lower_candidates={k: {"delta": float(v), "support": [int(j) for j in sup]} for k, (v, sup) in lower.items()},
        upper_candidates={"plus": {k: float(v) for k, v in upper_plus.items()},
                          "minus": {k: float(v) for k, v in upper_minus.items()}},
        factor_exact=factor_exact, seconds=time.perf_counter() - t0, budget_exhausted=cut,
    )
