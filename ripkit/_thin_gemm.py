"""C = A·U for a small inner dimension k, tiled in registers: the last product of Ψα.

Why not ``numpy.matmul``.  ``KroneckerDictionary.matvec`` writes each X_t = L·Y_t·R in
the vec (column-major) layout, i.e. as the row-major product Rᵀ·(L·Y_t)ᵀ of shape
(n, m) whose rows are m·8 bytes apart: 4 KiB at the paper's m = 512.  OpenBLAS's
dgemm kernel (4×8 tiles on Haswell/Zen) then stores into eight output rows whose
addresses share their L1 cache set, and with a small inner dimension it runs at about
half speed (``figures/bench_operator.md``, 'vec-layout GEMMs': 1.6–1.7× the same
product written with rows 2 KiB apart at m = 512, b = 8; ``studies/bench_operator.py``).
Here each tile is 4 rows × 8 columns, so only four rows are live at once; each (k, m)
operand is packed once into 8-column panels read sequentially, and the eight 4-wide
accumulators stay in registers for the whole inner loop.

Arithmetic.  Every entry is one fused multiply-add chain in ascending κ,
C[i, j] = fma(A[i, k−1], U[k−1, j], … fma(A[i, 0], U[0, j], 0)), the order OpenBLAS's
own Haswell/Zen kernels use for an inner dimension below their blocking (256), so on
such machines the results equal ``numpy.matmul``'s bit for bit; elsewhere they differ
only by rounding.  It runs on one thread (see :func:`faster_than_blas`).

Numba cannot express the vector tile (its SLP vectoriser is off by default and the
loop vectoriser unrolls an 8-wide loop before it vectorises), so :func:`_tile`
emits it as LLVM IR through ``numba.extending.intrinsic``; everything around it is
plain numba.  Callers import this module lazily (it imports numba, see
``ripkit._numba``).
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ripkit._numba import lazy_kernel

__all__ = ["thin_matmul", "faster_than_blas", "MR", "NR"]

MR, NR = 4, 8  # a tile: MR output rows × NR output columns (NR/4 vectors of four float64)
#: from this many flops on, a multi-threaded BLAS beats the one-thread kernel (measured, 2 cores)
THREADED_MIN_FLOPS = 2**23


@intrinsic
def _tile(typingctx, af, p, out, a0, p0, o0, k, ldo):
    """out[o0 + r·ldo + j] = Σ_κ af[a0 + r·k + κ]·p[p0 + NR·κ + j] for r < MR, j < NR (FMA chains, κ ascending)."""
    sig = types.void(af, p, out, types.intp, types.intp, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        af_arr, p_arr, out_arr, a0, p0, o0, k, ldo = args
        f64 = ir.DoubleType()
        vec = ir.VectorType(f64, 4)
        index = a0.type

        def data(i):
            return context.make_array(signature.args[i])(context, builder, args[i]).data

        a_ptr, p_ptr, o_ptr = data(0), data(1), data(2)

        def vec_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vec.as_pointer())

        def const(v):
            return ir.Constant(index, v)

        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v4f64")
        splat = ir.Constant(ir.VectorType(ir.IntType(32), 4), [0] * 4)
        undef = ir.Constant(vec, ir.Undefined)
        # accumulators as stack slots: LLVM promotes them to registers (mem2reg)
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * 4)) for _ in range(NR // 4)]
               for _ in range(MR)]
        with cgutils.for_range(builder, k) as loop:
            kappa = loop.index
            row = builder.add(p0, builder.mul(kappa, const(NR)))
            u = [builder.load(vec_at(p_ptr, builder.add(row, const(4 * q))), align=8) for q in range(NR // 4)]
            for r in range(MR):
                a = builder.load(builder.gep(a_ptr, [builder.add(builder.add(a0, builder.mul(k, const(r))), kappa)]))
                lane0 = builder.insert_element(undef, a, ir.Constant(ir.IntType(32), 0))
                a4 = builder.shuffle_vector(lane0, undef, splat)  # a in all four lanes
                for q in range(NR // 4):
                    builder.store(builder.call(fma, [a4, u[q], builder.load(acc[r][q])]), acc[r][q])
        for r in range(MR):
            row = builder.add(o0, builder.mul(ldo, const(r)))
            for q in range(NR // 4):
                builder.store(builder.load(acc[r][q]), vec_at(o_ptr, builder.add(row, const(4 * q))), align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _fma(typingctx, x, y, z):
    """x·y + z rounded once (``llvm.fma.f64``): the tail entries use the tiles' arithmetic."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@numba.njit(inline="always")
def _chain(af, u, t, i, j):
    """C[t, i, j] as one ascending FMA chain, the tiles' arithmetic: for the entries no tile covers."""
    k = u.shape[1]
    c = 0.0
    for kappa in range(k):
        c = _fma(af[i * k + kappa], u[t, kappa, j], c)
    return c


def _packed_rows(a):
    """``a`` (N, k) row-major and flat, whatever its strides: the tiles read a row's k entries in a run."""
    n_rows, k = a.shape
    af = np.empty(n_rows * k)
    for i in range(n_rows):
        for kappa in range(k):
            af[i * k + kappa] = a[i, kappa]
    return af


def _rows(af, u, out):
    """out[t] = a @ u[t] for every t: whole MR×NR tiles, the edges in scalar FMA chains.

    u[t] is packed into NR-column panels p[panel, κ, :] just before its tiles (one item's
    panels at a time: the extra memory is k·m, not the whole batch).
    """
    n_items, k, m = u.shape
    n_rows = out.shape[1]
    panels = m // NR
    flat = out.reshape(n_items * n_rows * m)
    tiled_end = n_rows // MR * MR
    p = np.empty(panels * k * NR)
    for t in range(n_items):
        for jp in range(panels):
            for kappa in range(k):
                for jj in range(NR):
                    p[(jp * k + kappa) * NR + jj] = u[t, kappa, jp * NR + jj]
        base = t * n_rows * m
        for i in range(0, tiled_end, MR):
            for jp in range(panels):
                _tile(af, p, flat, i * k, jp * k * NR, base + i * m + jp * NR, k, m)
            for j in range(panels * NR, m):  # columns past the last full panel
                for r in range(MR):
                    flat[base + (i + r) * m + j] = _chain(af, u, t, i + r, j)
        for i in range(tiled_end, n_rows):  # rows past the last full tile
            for j in range(m):
                flat[base + i * m + j] = _chain(af, u, t, i, j)


_packed_rows_kernel = lazy_kernel(_packed_rows, nogil=True, boundscheck=False)
_rows_kernel = lazy_kernel(_rows, nogil=True, boundscheck=False)


def faster_than_blas(flops: float) -> bool:
    """Whether :func:`thin_matmul` beats ``numpy.matmul`` on a product of ``flops`` (inner dimension ≤ 128).

    On one thread it always did (0.31–0.93× of OpenBLAS writing the same layout, over the
    m = 512 shapes of ``studies/bench_operator.py`` and (1024–4096)² shapes with b = 16–128).
    It runs on one thread only, so where numba may use several (the machine is not pinned,
    so BLAS runs on several too) it is kept to products below ``THREADED_MIN_FLOPS``: above
    that, two BLAS threads were 1.5–1.8× faster on this 2-core machine ((4096, 4096, 256, 64)
    and (2048, 2048, 512, 128)).
    """
    return flops < THREADED_MIN_FLOPS or numba.get_num_threads() == 1


def thin_matmul(a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``a @ u`` for float64 ``a`` (N, k) and ``u`` (k, m) or (K, k, m): a new C-contiguous array, one thread.

    Meant for a small k (the inner dimension of Ψα's last product; ``KroneckerDictionary``
    uses it for k ≤ 128 where :func:`faster_than_blas`): see the module docstring for why,
    and for the arithmetic.
    """
    if a.ndim != 2 or u.ndim not in (2, 3) or u.shape[-2] != a.shape[1]:
        raise ValueError(f"thin_matmul needs a (N, k) and u (k, m) or (K, k, m), got {a.shape} and {u.shape}")
    if a.dtype != np.float64 or u.dtype != np.float64:
        raise TypeError(f"thin_matmul needs float64 operands, got {a.dtype} and {u.dtype}")
    u3 = u if u.ndim == 3 else u[None]
    out = np.empty((u3.shape[0], a.shape[0], u3.shape[2]))
    _rows_kernel(_packed_rows_kernel(a), u3, out)
    return out if u.ndim == 3 else out[0]
