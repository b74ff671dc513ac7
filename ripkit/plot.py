"""The small matplotlib style every ripkit study uses, and the two CPS-LoRA figure types.

* :func:`plot_spectra` — normalized singular spectra with EBER in the legend
  (CPS-LoRA Figures 4 and 7, appendix I);
* :func:`plot_reordering` — log|ΔW| heatmaps before and after reordering by a
  :class:`~ripkit.partition.Partition`, with the cuts drawn (CPS-LoRA Figure 1);
* :func:`plot_layer_spectra` — the normalized spectra of many layers, one panel per module type
  (``python -m ripkit.analyze --out``);
* :func:`plot_heatmap` — log|ΔW| of one layer at any size, on an evenly spaced grid of rows and
  columns (from factors only the plotted entries are formed).

Importing this module has no side effects: it never imports ``matplotlib.pyplot``
nor switches the global backend; figures are ``matplotlib.figure.Figure`` objects
drawn on an Agg canvas, so studies work headless and in parallel.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ripkit.spectra import as_operand, eber, normalized_spectrum

__all__ = ["STYLE", "style", "new_figure", "save_figure", "plot_spectra", "plot_reordering", "plot_layer_spectra",
           "plot_heatmap"]

#: rcParams shared by every ripkit figure (applied only inside :func:`style`).
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
    "svg.hashsalt": "ripkit",  # deterministic SVG ids
}

#: Largest matrix (entries) :func:`plot_reordering` will form from factors.
MAX_HEATMAP_ENTRIES = 4_000_000


@contextmanager
def style():
    """Context manager applying :data:`STYLE` locally (``matplotlib.rc_context``)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(ncols: int = 1, *, width: float = 3.4, height: float = 2.6):
    """A ``Figure`` on an Agg canvas with ``ncols`` axes side by side, in ripkit style.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : list of matplotlib.axes.Axes
    """
    with style():
        fig = Figure(figsize=(width * ncols, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) with ripkit's dpi; return the path.

    PNG metadata carries no date, so reruns with equal inputs give equal files.  The file
    is written atomically (``ripkit._atomic``): a crash leaves the old figure, never half a new one.
    """
    from ripkit._atomic import atomic_path

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with style(), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    return path


def plot_spectra(spectra, *, n_values: int | None = None, ax=None, title: str | None = None):
    """Normalized singular spectra σᵢ/Σσ with EBER in the legend (CPS-LoRA Figures 4, 7).

    Parameters
    ----------
    spectra : mapping of label -> matrix (m, n), factors ``(A, B)`` or 1-D singular values
    n_values : int, optional
        Plot only the first ``n_values`` indices (e.g. 20 for rank-16 adapters).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(spectra, "items") or len(spectra) == 0:
        raise TypeError("spectra must be a non-empty mapping of label -> matrix, factors or singular values")
    if ax is None:
        fig, (ax,) = new_figure()
    with style():
        for label, x in spectra.items():
            p = normalized_spectrum(x)
            p = p[:n_values] if n_values is not None else p
            ax.plot(np.arange(1, p.size + 1), p, marker="o", markersize=2.5, linewidth=1.0,
                    label=f"{label} (EBER {eber(x):.1f})")
        ax.set_xlabel("index i")
        ax.set_ylabel(r"$\sigma_i / \sum_j \sigma_j$")
        ax.legend(frameon=False)
        if title:
            ax.set_title(title)
    return ax.figure


def _dense_for_plot(x) -> np.ndarray:
    op = as_operand(x)
    if op[0] == "dense":
        return op[1]
    m, n = op[1].shape[0], op[2].shape[1]
    if m * n > MAX_HEATMAP_ENTRIES:
        raise ValueError(f"x would form a {m}x{n} matrix for the heatmap, above {MAX_HEATMAP_ENTRIES} entries")
    return op[1] @ op[2]


def plot_reordering(x, partition, *, floor: float = 1e-12, titles=("original", "reordered")):
    """log₁₀|ΔW| before and after ``partition.apply`` with block cuts (CPS-LoRA Figure 1).

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)`` (formed only up to
        :data:`MAX_HEATMAP_ENTRIES` entries)
    partition : ripkit.partition.Partition
    floor : float, default 1e-12
        Added inside the log so exact zeros stay finite.

    Returns
    -------
    matplotlib.figure.Figure
        Two image axes; ``fig.axes[k].images[0].get_array()`` holds the plotted values.
    """
    w = _dense_for_plot(x)
    if w.shape != partition.shape:
        raise ValueError(f"partition shape {partition.shape} does not match x shape {w.shape}")
    if not floor > 0:
        raise ValueError(f"floor={floor} must be > 0")
    fig, axes = new_figure(2, width=3.0, height=2.8)
    logs = [np.log10(np.abs(w) + floor), np.log10(np.abs(partition.apply(w)) + floor)]
    vmin, vmax = min(v.min() for v in logs), max(v.max() for v in logs)
    with style():
        for ax, vals, title in zip(axes, logs, titles):
            im = ax.imshow(vals, aspect="auto", interpolation="nearest", vmin=vmin, vmax=vmax)
            ax.set_title(title)
            ax.grid(False)
            ax.set_xlabel("column")
            ax.set_ylabel("row")
        for c in partition.row_cuts[1:-1]:
            axes[1].axhline(c - 0.5, color="white", linewidth=0.8)
        for c in partition.col_cuts[1:-1]:
            axes[1].axvline(c - 0.5, color="white", linewidth=0.8)
        fig.colorbar(im, ax=axes, label=r"$\log_{10}|\Delta W|$", shrink=0.9)
    return fig


def plot_layer_spectra(groups, *, n_values: int | None = None, ncols: int = 4):
    """Normalized spectra σᵢ/Σσ of many layers, one panel per group (CPS-LoRA Figures 4, 7 per module type).

    Parameters
    ----------
    groups : mapping of title -> sequence of 1-D singular values (one per layer)
        E.g. ``{"self_attn.q_proj": [s_layer0, s_layer1, ...], ...}``; each layer is a thin line, the
        group's mean spectrum a thick one, and the panel title gives the group's mean EBER.
    n_values : int, optional
        Plot only the first ``n_values`` indices.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(groups, "items") or not groups or not all(len(v) for v in groups.values()):
        raise TypeError("groups must be a non-empty mapping of title -> non-empty sequence of singular values")
    ncols = max(1, min(ncols, len(groups)))
    nrows = -(-len(groups) // ncols)
    with style():
        fig = Figure(figsize=(3.0 * ncols, 2.4 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        for k, (title, spectra) in enumerate(groups.items()):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            curves = [normalized_spectrum(np.asarray(s, dtype=np.float64))[:n_values] for s in spectra]
            width = max(c.size for c in curves)
            for c in curves:
                ax.plot(np.arange(1, c.size + 1), c, color="C0", alpha=0.25, linewidth=0.6)
            mean = np.mean([np.pad(c, (0, width - c.size)) for c in curves], axis=0)
            ax.plot(np.arange(1, width + 1), mean, color="C1", linewidth=1.4, label="mean")
            ebers = [eber(np.asarray(s, dtype=np.float64)) for s in spectra]
            ax.set_title(f"{title} ({len(spectra)}; EBER {np.mean(ebers):.2f})")
            ax.set_xlabel("index i")
            ax.set_ylabel(r"$\sigma_i / \sum_j \sigma_j$")
    return fig


def _grid(size: int, max_side: int) -> np.ndarray:
    return np.unique(np.linspace(0, size - 1, min(size, max_side)).round().astype(int))


def plot_heatmap(x, *, max_side: int = 512, floor: float = 1e-12, ax=None, title: str | None = None):
    """log₁₀|ΔW| of one matrix; above ``max_side`` rows or columns, on an evenly spaced grid of them.

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)`` / ``(L, Y, R)``
        From factors only the plotted entries A[rows] @ B[:, cols] are formed: memory
        O(max_side²) at any m, n.
    max_side : int, default 512
        Most rows (and columns) drawn; the axes are labelled with the original indices.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0].images[0].get_array()`` holds the plotted values.
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 2:
        raise ValueError(f"max_side={max_side!r} must be an int >= 2")
    if not floor > 0:
        raise ValueError(f"floor={floor} must be > 0")
    op = as_operand(x)
    m, n = (op[1].shape if op[0] == "dense" else (op[1].shape[0], op[2].shape[1]))
    rows, cols = _grid(m, max_side), _grid(n, max_side)
    w = op[1][np.ix_(rows, cols)] if op[0] == "dense" else op[1][rows] @ op[2][:, cols]
    if ax is None:
        fig, (ax,) = new_figure(width=3.6, height=3.0)
    with style():
        im = ax.imshow(np.log10(np.abs(w) + floor), aspect="auto", interpolation="nearest",
                       extent=(-0.5, n - 0.5, m - 0.5, -0.5))
        ax.grid(False)
        ax.set_xlabel("column (in)")
        ax.set_ylabel("row (out)")
        if title:
            ax.set_title(title)
        ax.figure.colorbar(im, ax=ax, label=r"$\log_{10}|\Delta W|$", shrink=0.9)
    return ax.figure
