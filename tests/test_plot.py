"""ripkit.plot: plotted data equal independent NumPy values; no import side effects."""
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ripkit import plot
from ripkit.partition import random_partition


def _factors(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((30, 4)), rng.standard_normal((4, 20))


def test_import_has_no_side_effects():
    # dict.__getitem__ reads rcParams without resolving the lazy backend (which would import pyplot).
    code = ("import matplotlib, sys\n"
            "snap = lambda: {k: dict.__getitem__(matplotlib.rcParams, k) for k in matplotlib.rcParams.keys()}\n"
            "before = snap()\nimport ripkit.plot\n"
            "assert 'matplotlib.pyplot' not in sys.modules\nassert snap() == before\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_plot_spectra_data_and_eber_legend(tmp_path):
    a, b = _factors()
    flat = np.ones(8)
    fig = plot.plot_spectra({"lora": (a, b), "flat": flat}, n_values=6)
    ax = fig.axes[0]
    s = np.linalg.svd(a @ b, compute_uv=False)
    p = s / s.sum()
    p = p[p > 1e-14]
    ref_eber = np.exp(-np.sum(p * np.log(p)))
    line = ax.get_lines()[0]
    assert_allclose(line.get_ydata(), (s / s.sum())[:4], rtol=1e-10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"lora (EBER {ref_eber:.1f})", "flat (EBER 8.0)"]
    assert_allclose(ax.get_lines()[1].get_ydata(), np.full(6, 1 / 8))
    path = plot.save_figure(fig, tmp_path / "spectra.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_reordering_images_match_numpy():
    a, b = _factors(1)
    w = a @ b
    part = random_partition(w, 2, seed=3)
    fig = plot.plot_reordering((a, b), part)
    before = fig.axes[0].images[0].get_array()
    after = fig.axes[1].images[0].get_array()
    assert_allclose(before, np.log10(np.abs(w) + 1e-12), rtol=1e-12)
    assert_allclose(after, np.log10(np.abs(w[part.row_perm][:, part.col_perm]) + 1e-12), rtol=1e-12)
    # one horizontal and one vertical cut line on the reordered panel
    assert len(fig.axes[1].get_lines()) == 2


def test_plot_errors():
    with pytest.raises(TypeError, match="spectra must be a non-empty mapping"):
        plot.plot_spectra([np.ones(3)])
    a, b = _factors()
    with pytest.raises(ValueError, match="partition shape"):
        plot.plot_reordering((a, b), random_partition(np.ones((5, 5)), 2))
    big = (np.ones((3000, 1)), np.ones((1, 3000)))
    with pytest.raises(ValueError, match="above 4000000 entries"):
        plot.plot_reordering(big, random_partition(np.ones((3000, 3000)), 2))
