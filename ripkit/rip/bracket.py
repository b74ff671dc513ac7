"""Certified brackets lower ≤ δ_s ≤ upper for one Kronecker dictionary Ψ = Rᵀ⊗L.

δ_s is measured for Ψ/√c (c = ``dictionary.isometry_scale``, 1 for 'unit').
With λ⁺ = max_{|S|=s} λ_max(G_S) and λ⁻ = min_{|S|=s} λ_min(G_S) (G = ΨᵀΨ),
δ_s = max(λ⁺/c − 1, 1 − λ⁻/c) (CoSA eq. 18).  Each side is bracketed
separately and the two sides are combined at the end.

Lower bounds (explicit supports; each is attained, so each is valid)
    random      best of the sampled random supports (``support_rip``);
    adversarial greedy growth + swap search (``ripkit.rip.adversarial``), started also from
                the best s cells of small over-full rectangles of the factors' worst
                supports (``ripkit.rip.grids``);
    rectangle   I×J with |I|·|J| ≤ s: G_S = G_L[I,I] ⊗ G_R[J,J] (up to a
                permutation), whose eigenvalues are the products of the
                factors', so the factors' own worst supports give the best
                rectangles.  |S| < s is allowed: by eigenvalue interlacing a
                superset has λ_max no smaller and λ_min no larger;
    exhaustive  when C(ab, s) is small enough, δ_s itself.
Upper bounds (proofs)
    spectral    every G_S is a principal sub-block of ΨᵀΨ, whose eigenvalues are
                λ_i(G_L)·λ_j(G_R) (σ_i(L)²σ_j(R)²), so λ⁺ ≤ σ_1(L)²σ_1(R)² and
                λ⁻ ≥ σ_min(L)²σ_min(R)² (0 if a > m or b > n); valid for all s;
    gershgorin  an eigenvalue of G_S lies within Σ_{j∈S, j≠i}|G_ij| of some G_ii;
                ripkit uses the row-wise sum of the s−1 largest |G_ij| (tighter
                than the (s−1)·μ form, and valid for raw, non-unit columns);
    kron-product  Duarte & Baraniuk (2012), one side at a time: with
                Λ_X(t) = max_{|I|=t} λ_max(G_X[I,I]) and λ_X(t) the min of λ_min,
                λ⁺ ≤ Λ_L(s_a)·Λ_R(s_b) and λ⁻ ≥ λ_L(s_a)·λ_R(s_b), s_a = min(s, a),
                s_b = min(s, b).  Proof: a support S projects to row sets I
                (|I| ≤ s_a) and J (|J| ≤ s_b); G_S is a principal sub-block of
                G_L[I,I]⊗G_R[J,J] (interlacing), whose extreme eigenvalues are
                the products, and Λ, λ are monotone in t.  With c = 1 this is
                δ_s ≤ (1+δ_s(L))(1+δ_s(Rᵀ)) − 1 on the upper side and
                δ_s ≤ 1 − (1−δ_s(L))(1−δ_s(Rᵀ)) on the lower side.  The factors'
                Λ, λ are exact by enumeration where C(a, s_a), C(b, s_b) allow,
                else bounded by the factor's own spectral/Gershgorin bounds;
    group       (``ripkit.rip.upper.group_bound``, proof there) a support whose
                largest R-group (elements sharing an R-index) has g_R elements and
                which spans |J| R-indices has λ_max ≤ Λ_L(g_R)·Λ_R(|J|), with
                g_R + |J| − 1 ≤ s, and symmetrically; never looser than kron-product;
    coupling    (``ripkit.rip.coupling.coupling_bound``, proof there) per split of a support
                by one factor's index set J and group sizes g, λ_max(G_S) ≤ λ_max(M) with
                M = D^½|G_X[J,J]|D^½, D = diag(Λ(g_l)) (and a λ_min twin), maximised over every
                (J, g); tried when the (J, g) pairs are few enough, with the factors' profiles
                then enumerated further (``COUPLING_SUPPORTS``, default cap only), whose exact
                supports also give the rectangles, and Λ(t) of the sizes still out of reach
                computed exactly by branch and bound (``ripkit.rip.branch_bound``,
                ``BRANCH_BOUND_SUPPORTS``);
    psd         λ⁻ ≥ 0, so the lower side never exceeds 1.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ripkit.projections import as_generator
from ripkit.rip.adversarial import DenseGram, KronGram, adversarial_search
from ripkit.rip.coupling import coupling_bound, coupling_evaluations
from ripkit.rip.estimators import support_rip
from ripkit.rip.exhaustive import enumeration_feasible, exact_rip
from ripkit.rip.grids import grid_starts
from ripkit.rip.torch_path import TorchKronGram, resolve_device
from ripkit.rip.upper import factor_profile, gram_gershgorin, group_bound, kron_gershgorin

__all__ = ["RipBracket", "rip_bracket", "factor_extremes", "kron_gershgorin", "gram_gershgorin", "group_bound"]

#: Default cap on supports enumerated exactly (for Ψ itself and for each factor), numba path.
MAX_SUPPORTS = 2_000_000
#: The same cap on a CUDA device (``device='cuda'``): about a minute per side on an H100-class GPU.
MAX_SUPPORTS_CUDA = 1_000_000_000
#: Ψ itself is enumerated only if its ab×ab Gram fits in this many bytes.
MAX_PSI_GRAM_BYTES = 1 << 30
#: The coupling bound is tried on a split only if it has at most this many (J, g) pairs.
MAX_COUPLING_EVALUATIONS = 4_000_000
#: With the default cap, supports each factor may additionally enumerate (cheapest sizes first) for
#: the coupling bound: about 3 s on two cores at s = 5 (C(128, 5) = 2.6·10⁸).
COUPLING_SUPPORTS = 300_000_000
#: … and Λ(t) of each larger size by branch and bound when it leaves at most this many supports to enumerate.
BRANCH_BOUND_SUPPORTS = 1_000_000_000
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


def _no_memo(key, compute):
    return compute()


def factor_extremes(gram: np.ndarray, t: int, *, max_supports=MAX_SUPPORTS, seed=0, restarts=2,
                    budget_seconds=None, eigenvalues=None, device=None, memo=_no_memo) -> dict:
    """Λ(t) and λ(t) of one factor Gram: exact by enumeration if feasible, else bracketed.

    Returns a dict with ``exact`` (bool), upper-bound-on-Λ ``lam_max_hi``,
    lower-bound-on-λ ``lam_min_lo`` (for the kron-product upper bound) and
    attained ``lam_max_lo`` / ``lam_min_hi`` with supports (for rectangles).
    ``memo(key, compute)`` may store the seed-independent parts (enumeration, Gershgorin,
    the search's paths).
    """
    d = gram.shape[0]
    t = min(t, d)
    if enumeration_feasible(d, t, max_supports):
        ex = memo(("exact_rip", t), lambda: exact_rip(gram, t, max_supports=max_supports, device=device))
        return {"exact": True, "t": t, "lam_max_hi": ex.lam_max, "lam_max_lo": ex.lam_max,
                "support_max": ex.support_max, "lam_min_lo": ex.lam_min, "lam_min_hi": ex.lam_min,
                "support_min": ex.support_min, "supports_per_second": ex.supports_per_second}
    eig = np.linalg.eigvalsh(gram) if eigenvalues is None else eigenvalues
    g_hi, g_lo = memo(("gershgorin", t), lambda: gram_gershgorin(gram, t))
    # One DenseGram and one dict of search paths per factor (memo): the searches at every size and
    # sparsity level share them, and starts that repeat across levels are not searched again.
    dense, paths = memo(("search",), lambda: (DenseGram(gram), {}))
    up = adversarial_search(dense, t, "max", restarts=restarts, seed=seed, budget_seconds=budget_seconds,
                            paths=paths)
    dn = adversarial_search(dense, t, "min", restarts=restarts, seed=seed, budget_seconds=budget_seconds,
                            paths=paths)
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
        fits = [q for q in fr_by_size if q <= s // p]
        if not fits:
            continue
        right = fr_by_size[max(fits)]  # Λ, λ are monotone in the size: the largest size that fits
        for side, key_val, key_sup in (("max", "lam_max_lo", "support_max"), ("min", "lam_min_hi", "support_min")):
            lam = left[key_val] * right[key_val]
            if (side == "max" and lam > best[side][0]) or (side == "min" and lam < best[side][0]):
                sup = tuple(sorted(int(k + a * l) for k in left[key_sup] for l in right[key_sup]))
                best[side] = (lam, sup)
    return {"rectangle(+)": (best["max"][0] / c - 1.0, best["max"][1]),
            "rectangle(-)": (1.0 - best["min"][0] / c, best["min"][1])}


def _with_exact(found: dict, exact: dict, exact_max: dict) -> dict:
    """``factor_extremes`` results by size, with every exactly enumerated size's extremes and supports,
    and the Λ(t) side of sizes found by branch and bound."""
    out = dict(found)
    for t, ex in exact.items():
        out[t] = {"lam_max_lo": ex.lam_max, "support_max": ex.support_max,
                  "lam_min_hi": ex.lam_min, "support_min": ex.support_min}
    for t, bb in exact_max.items():
        if t in out and t not in exact:
            out[t] = dict(out[t], lam_max_lo=bb.lam_max, support_max=bb.support_max)
    return out


def _tighter(profile, other):
    """Elementwise the tighter of two (upper on Λ, lower on λ) profiles (both valid bounds)."""
    return np.fmin(profile[0], other[0]), np.fmax(profile[1], other[1])


def rip_bracket(dictionary, s: int, *, gram=None, random_lower=None, n_random: int = 1000, restarts: int = 2,
                budget_seconds: float | None = None, seed=0, max_supports: int | None = None,
                device=None) -> RipBracket:
    """Certified lower and upper bounds on δ_s of ``dictionary`` (scaled by 1/√c).

    Parameters
    ----------
    dictionary : KroneckerDictionary
    s : int
        Sparsity level, 1 ≤ s ≤ ab.
    gram : (G_L, G_R), optional
        Gram factors to use instead of the dictionary's own (which it computes once
        and caches, with their eigenvalues).
    random_lower : SupportRip, optional
        A ``support_rip`` result to reuse as the 'random' lower bound; else
        ``n_random`` supports are sampled with ``seed``.
    restarts : int
        Starts per side of the adversarial search (plus the extra starts).
    budget_seconds : float, optional
        Wall-time cap for each adversarial search (two per factor size, two for Ψ).
        None: run every start to completion (deterministic).
    max_supports : int, optional
        Enumerate exactly when C(·, ·) is at most this (default ``MAX_SUPPORTS``,
        ``MAX_SUPPORTS_CUDA`` on a CUDA device).  With the default, a factor whose
        profile feeds the coupling bound is enumerated further (``COUPLING_SUPPORTS``);
        an explicit value is the cap everywhere.
    device : None, 'cpu', 'auto', 'cuda', 'cuda:N' or 'torch-cpu'
        Where exact enumeration and the candidate scoring of the search run
        (``ripkit.rip.torch_path.resolve_device``); the same results on every device
        for the same ``max_supports``.

    Returns
    -------
    RipBracket
        ``lower``/``upper`` with ``lower_by``/``upper_by`` naming the bound, the
        support attaining ``lower``, and every candidate bound.
    """
    t0 = time.perf_counter()
    device = resolve_device(device)
    default_cap = max_supports is None
    if max_supports is None:
        max_supports = MAX_SUPPORTS_CUDA if device is not None and device.startswith("cuda") else MAX_SUPPORTS
    c = dictionary.isometry_scale
    a, b = dictionary.a, dictionary.b
    if not 1 <= s <= a * b:
        raise ValueError(f"s={s} must be in [1, ab={a * b}]")
    if gram is None:  # the dictionary's own, cached with their eigenvalues and seed-free derived results
        (g_left, g_right), (ev_l, ev_r) = dictionary.gram_factors(), dictionary.gram_eigenvalues()
        memo = dictionary.memo
    else:
        g_left, g_right = gram
        ev_l, ev_r = np.linalg.eigvalsh(g_left), np.linalg.eigvalsh(g_right)
        store = {}  # this call's own memo: the factor profiles reuse the enumerations of factor_extremes

        def memo(key, compute):
            if key not in store:
                store[key] = compute()
            return store[key]

    exact = {"left": {}, "right": {}}  # t -> ExactRip of each factor enumerated so far (for rectangles)
    exact_max = {"left": {}, "right": {}}  # t -> BranchBoundMax: Λ(t) exact, the λ side not

    def side_memo(side):
        def side_memo_call(key, compute):
            out = memo((side,) + key, compute)
            if key[0] == "exact_rip":
                exact[side][key[1]] = out
            elif key[0] == "branch_bound_max" and out is not None:  # Λ(t) only, exact, with its support
                exact_max[side][key[1]] = out
            return out
        return side_memo_call

    memo_l, memo_r = side_memo("left"), side_memo("right")

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
    # Exact enumeration pays for the product bound (sizes sa, sb); rectangles only need
    # good explicit supports, so their other sizes are enumerated only when cheap.
    def cap(t, top):
        return max_supports if t == top else min(max_supports, 200_000)

    fl = {p: factor_extremes(g_left, p, max_supports=cap(p, sa), seed=rng_seeds[1], restarts=restarts,
                             budget_seconds=budget_seconds, eigenvalues=ev_l, device=device, memo=memo_l)
          for p in sizes_l}
    fr = {q: factor_extremes(g_right, q, max_supports=cap(q, sb), seed=rng_seeds[2], restarts=restarts,
                             budget_seconds=budget_seconds, eigenvalues=ev_r, device=device, memo=memo_r)
          for q in sizes_r}
    lower.update(_rectangles(fl, fr, a, s, c))

    # -- upper: spectral (whole matrix)
    min_l = max(ev_l[0], 0.0) if a <= dictionary.m else 0.0
    min_r = max(ev_r[0], 0.0) if b <= dictionary.n else 0.0
    upper_plus["spectral"], upper_minus["spectral"] = ev_l[-1] * ev_r[-1] / c - 1.0, 1.0 - min_l * min_r / c
    # -- upper: row-wise Gershgorin on the Kronecker Gram
    g_hi, g_lo = memo(("kron_gershgorin", s), lambda: kron_gershgorin(g_left, g_right, s))
    upper_plus["gershgorin"], upper_minus["gershgorin"] = g_hi / c - 1.0, 1.0 - g_lo / c
    # -- upper: Kronecker product of the factors' exact (or bounded) extremes
    left, right = fl[sa], fr[sb]
    upper_plus["kron-product"] = left["lam_max_hi"] * right["lam_max_hi"] / c - 1.0
    upper_minus["kron-product"] = 1.0 - left["lam_min_lo"] * right["lam_min_lo"] / c
    upper_minus["psd"] = 1.0
    # -- upper: the group bound (ripkit.rip.upper), from the factors' extremes at every size ≤ s
    prof_l = factor_profile(g_left, s, fl, ev_l, max_supports=max_supports, device=device, memo=memo_l)
    prof_r = factor_profile(g_right, s, fr, ev_r, max_supports=max_supports, device=device, memo=memo_r)
    up, dn = group_bound(*prof_l, *prof_r, s)
    upper_plus["group"], upper_minus["group"] = up / c - 1.0, 1.0 - dn / c
    # -- upper: the coupling bound (ripkit.rip.coupling) on each split it can afford; for it the
    # factors are enumerated further (default cap only), which also gives exact rectangles
    splits = [(g_split, split, other) for g_split, d_split, d_other, split, other in
              ((g_right, b, a, "right", "left"), (g_left, a, b, "left", "right"))
              if coupling_evaluations(d_split, d_other, s, stop_above=MAX_COUPLING_EVALUATIONS)
              <= MAX_COUPLING_EVALUATIONS]
    if splits:
        budget = {"extra_supports": COUPLING_SUPPORTS if default_cap else 0,
                  "pruned_supports": BRANCH_BOUND_SUPPORTS if default_cap else 0}
        prof = {"left": _tighter(prof_l, factor_profile(g_left, s, {}, ev_l, max_supports=max_supports, device=device,
                                                        memo=memo_l, **budget)),
                "right": _tighter(prof_r, factor_profile(g_right, s, {}, ev_r, max_supports=max_supports,
                                                         device=device, memo=memo_r, **budget))}
        # the group bound from these (tighter or equal) profiles too, so its candidate reports the best it gives
        up, dn = group_bound(*prof["left"], *prof["right"], s)
        upper_plus["group"] = min(upper_plus["group"], up / c - 1.0)
        upper_minus["group"] = min(upper_minus["group"], 1.0 - dn / c)
        bounds = [coupling_bound(g_split, *prof[split], *prof[other], s, max_evaluations=MAX_COUPLING_EVALUATIONS)
                  for g_split, split, other in splits]
        upper_plus["coupling"] = min(u for u, _ in bounds) / c - 1.0
        upper_minus["coupling"] = 1.0 - max(d for _, d in bounds) / c

    # the factors' worst supports at every size found so far, exact where enumerated
    found_l = _with_exact(fl, exact["left"], exact_max["left"])
    found_r = _with_exact(fr, exact["right"], exact_max["right"])
    if splits:  # the coupling bound's further enumerations give exact rectangles
        for name, value in _rectangles(found_l, found_r, a, s, c).items():
            if value[0] > lower[name][0]:
                lower[name] = value

    # -- lower: adversarial search on Ψ itself, seeded with the best random and rectangle supports and
    # the best s cells of over-full rectangles of the factors' worst supports where those beat the rectangle
    rectangle = {"max": (1.0 + lower["rectangle(+)"][0]) * c, "min": (1.0 - lower["rectangle(-)"][0]) * c}
    grids = grid_starts(g_left, g_right, found_l, found_r, s, beat=rectangle)
    kg = KronGram(g_left, g_right) if device is None else TorchKronGram(g_left, g_right, device)
    cut = False
    for side, name, extra in (("max", "adversarial(+)", [lower["rectangle(+)"][1], random_lower.support]),
                              ("min", "adversarial(-)", [lower["rectangle(-)"][1], random_lower.support])):
        res = adversarial_search(kg, s, side, restarts=restarts, seed=rng_seeds[3], extra_starts=extra + grids[side],
                                 budget_seconds=budget_seconds)
        cut = cut or res.budget_exhausted
        lower[name] = ((res.eigenvalue / c - 1.0) if side == "max" else (1.0 - res.eigenvalue / c), res.support)

    # -- both sides at once when Ψ's own supports can be enumerated
    if enumeration_feasible(a * b, s, max_supports) and 8 * (a * b) ** 2 <= MAX_PSI_GRAM_BYTES:
        sub_gram = np.kron(g_right, g_left)  # (ab)² bounded just above
        ex = exact_rip(sub_gram, s, max_supports=max_supports, isometry_scale=c, device=device)
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
