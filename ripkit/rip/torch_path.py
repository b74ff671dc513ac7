"""Torch paths (CUDA when present) for the bracket's two hot loops: exact enumeration and candidate scoring.

Both give the *same results* as the numba paths, on any torch device:

Exact enumeration (:func:`enumerate_extremes_torch`)
    Supports are taken in lexicographic rank order, a chunk of ranks at a time;
    each chunk is unranked on the device (one ``searchsorted`` per position), its
    s×s Gram blocks gathered, and the two Cholesky certificates of
    ``ripkit.rip._enumerate`` (θI − G_S and G_S − θ'I, same thresholds and margin)
    computed by batched ``torch.linalg.cholesky_ex``.  The backward-error bound
    behind the margin holds for any Cholesky algorithm (Higham, Thm 10.3: it does
    not depend on the order of the inner products).  The few supports not certified
    are solved on the host with the very routine of the numba path
    (:func:`ripkit.rip._enumerate.block_extremes`), so the values and the
    lexicographically first attaining supports are identical.  The records are
    opened from the best of the first chunk by ``torch.linalg.eigvalsh`` (solved
    again on the host before use).
Candidate scoring (:class:`TorchKronGram`)
    The couplings VᵀG[S, :] of every drop position and the 2×2 proxy scores are
    dense tensor products on the device; the ``tries`` best non-members per
    position come back to the host.  Exact eigensolves stay on the host (LAPACK,
    as in ``ripkit.rip.adversarial``), so the search visits the same supports
    whenever the scores rank the candidates the same way (ties: smaller index).
"""
from __future__ import annotations

import math

import numpy as np

from ripkit.rip.adversarial import KronGram

__all__ = ["resolve_device", "enumerate_extremes_torch", "TorchKronGram", "CHUNK_BYTES"]

CHUNK_BYTES = 4 << 30  # device memory for one chunk's blocks, shifted copies and factors (about 6 per support)


def resolve_device(device) -> str | None:
    """None for the numba paths, else ``'cuda'``, ``'cuda:N'`` or ``'torch-cpu'`` (idempotent).

    ``None`` and ``'cpu'`` mean numba (the CPU default); ``'auto'`` means CUDA when
    present, else numba; ``'cuda'``, ``'cuda:N'`` (or a ``torch.device``) mean torch there;
    ``'torch-cpu'`` means torch on the CPU (what the tests use to check the torch code).
    """
    if device is None or device == "cpu":
        return None
    if device == "torch-cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else None
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"device={device!r} is not supported (cpu, auto, cuda, cuda:N or torch-cpu)")
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device on this machine")
    return str(dev)


def _torch_device(device: str) -> str:
    """The torch device of a resolved device ('torch-cpu' runs torch on the CPU)."""
    return "cpu" if device == "torch-cpu" else device


def _prefix_counts(d: int, s: int):
    """P[k][x] = Σ_{y<x} C(d−y−1, k) for k < s, x ≤ d: combinations whose next element is below x."""
    table = np.zeros((s, d + 1), dtype=np.int64)
    for k in range(s):
        counts = [math.comb(d - y - 1, k) for y in range(d)]
        table[k, 1:] = np.cumsum(counts)
    return table


def _unrank(ranks, d: int, s: int, prefix):
    """Lexicographic combinations of ``ranks`` (B,) on their device: (B, s) int64."""
    import torch

    out = torch.empty((ranks.shape[0], s), dtype=torch.int64, device=ranks.device)
    r = ranks.clone()
    start = torch.zeros_like(ranks)  # the smallest value allowed at this position
    for i in range(s):
        p = prefix[s - i - 1]
        base = p[start]
        x = torch.searchsorted(p, r + base, right=True) - 1
        r -= p[x] - base
        out[:, i] = x
        start = x + 1
    return out


def _certified(blocks, sign: float, theta: float):
    """True where the Cholesky factorisation of sign·(G_S − θI) succeeds (all pivots > 0)."""
    import torch

    eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype, device=blocks.device)
    return torch.linalg.cholesky_ex(sign * (blocks - theta * eye))[1] == 0


def enumerate_extremes_torch(g: np.ndarray, s: int, device: str, *, chunk: int | None = None):
    """Exact (λ_max, λ_min, support_max, support_min, n_solved) over all supports of size s ≥ 2.

    Same results as the numba enumeration (see the module docstring); G must be
    symmetric with finite entries.  ``chunk``: supports per device batch (default:
    what fits in ``CHUNK_BYTES``).
    """
    import torch

    from ripkit.rip._enumerate import block_extremes, margin_factor  # numba, like the path it matches

    device = _torch_device(device)
    if chunk is None:
        chunk = max(1024, CHUNK_BYTES // (6 * 8 * s * s))
    d = g.shape[0]
    total = math.comb(d, s)
    gt = torch.as_tensor(np.ascontiguousarray(g), dtype=torch.float64, device=device)
    prefix = torch.as_tensor(_prefix_counts(d, s), device=device)
    sigma, mfac = float(np.max(np.abs(g))), margin_factor(s)
    scratch = np.empty((s, s))
    rec = {"hi": (-np.inf, None), "lo": (np.inf, None)}
    n_solved = 0

    def offer(support):
        """Solve one support on the host (the numba path's routine) and update the records."""
        lam_lo, lam_hi = block_extremes(g, np.asarray(support, dtype=np.int64), s, scratch)
        hv, hs = rec["hi"]
        if lam_hi > hv or (lam_hi == hv and support < hs):
            rec["hi"] = (lam_hi, support)
        lv, ls = rec["lo"]
        if lam_lo < lv or (lam_lo == lv and support < ls):
            rec["lo"] = (lam_lo, support)

    for start in range(0, total, chunk):
        ranks = torch.arange(start, min(total, start + chunk), dtype=torch.int64, device=device)
        sup = _unrank(ranks, d, s, prefix)
        blocks = gt[sup[:, :, None], sup[:, None, :]]
        if rec["hi"][1] is None:  # open the records with this chunk's best, by eigvalsh
            w = torch.linalg.eigvalsh(blocks)
            for k in (int(torch.argmax(w[:, -1])), int(torch.argmin(w[:, 0]))):
                offer(tuple(int(i) for i in sup[k].tolist()))
        hv, lv = rec["hi"][0], rec["lo"][0]
        ok = _certified(blocks, -1.0, hv - mfac * (sigma + abs(hv))) & \
            _certified(blocks, 1.0, lv + mfac * (sigma + abs(lv)))
        todo = torch.nonzero(~ok).flatten()
        for k in todo.tolist():  # lexicographic order: ties keep the first
            offer(tuple(int(i) for i in sup[k].tolist()))
        n_solved += int(todo.numel())
    return rec["hi"][0], rec["lo"][0], rec["hi"][1], rec["lo"][1], n_solved


class TorchKronGram(KronGram):
    """``KronGram`` whose candidate scoring (couplings, proxies, best few per position) runs in torch."""

    def __init__(self, g_left: np.ndarray, g_right: np.ndarray, device: str):
        super().__init__(g_left, g_right)
        import torch

        self.device = device = _torch_device(device)
        # copies: the dictionary's cached Grams are read-only, which torch cannot wrap
        self._gl = torch.as_tensor(np.array(g_left, dtype=np.float64), device=device)
        self._gr = torch.as_tensor(np.array(g_right, dtype=np.float64), device=device)
        self._diag = torch.as_tensor(np.array(self.diag()), dtype=torch.float64, device=device)

    def top_candidates(self, support, lams, vecs, side: str, tries: int) -> np.ndarray:
        import torch

        support = np.asarray(support, dtype=np.int64)
        k = torch.as_tensor(support % self.a, device=self.device)
        l = torch.as_tensor(support // self.a, device=self.device)
        v = torch.as_tensor(np.asarray(vecs, dtype=np.float64), device=self.device)       # (s, P)
        lam = torch.as_tensor(np.asarray(lams, dtype=np.float64), device=self.device)[:, None]
        w = v.T[:, :, None] * self._gr[l][None, :, :]                                     # (P, s, b)
        c = torch.matmul(w.transpose(1, 2), self._gl[k]).reshape(v.shape[1], self.size)  # (P, ab)
        h, mid = 0.5 * (lam - self._diag), 0.5 * (lam + self._diag)
        rad = torch.sqrt(h * h + c * c)
        score = mid + rad if side == "max" else rad - mid
        score[:, torch.as_tensor(support, device=self.device)] = -torch.inf
        n = min(tries, self.size - len(set(support.tolist())))
        # best score first, smaller index on ties: a stable sort of the scores, descending
        order = torch.sort(score, dim=1, descending=True, stable=True)[1][:, :n]
        top = np.full((v.shape[1], tries), -1, dtype=np.int64)
        top[:, :n] = order.cpu().numpy()
        return top
