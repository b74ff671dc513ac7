"""Brute-force references shared by the bound tests."""
import itertools

import numpy as np


def exact_profile(gram, s):
    """Λ(t) and λ(t) for t = 1..min(s, d) by itertools and LAPACK on every support (index 0 unused)."""
    d = gram.shape[0]
    hi, lo = [np.nan], [np.nan]
    for t in range(1, min(s, d) + 1):
        ev = [np.linalg.eigvalsh(gram[np.ix_(c, c)]) for c in itertools.combinations(range(d), t)]
        hi.append(max(e[-1] for e in ev))
        lo.append(min(e[0] for e in ev))
    return np.array(hi), np.maximum(np.array(lo), 0.0)


def small_kron(seed, m, n, a, b):
    """(dictionary, G_L, G_R, ΨᵀΨ = G_R ⊗ G_L) of a Gaussian Kronecker dictionary small enough to enumerate."""
    from ripkit.kron import KroneckerDictionary

    rng = np.random.default_rng(seed)
    d = KroneckerDictionary(rng.standard_normal((m, a)), rng.standard_normal((b, n)))
    g_left, g_right = d.gram_factors()
    return d, g_left, g_right, np.kron(g_right, g_left)
