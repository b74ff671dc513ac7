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


def test_plot_heatmap_plots_the_grid_entries_only():
    a, b = _factors(2)
    fig = plot.plot_heatmap((a, b), max_side=7)
    rows, cols = np.linspace(0, 29, 7).round().astype(int), np.linspace(0, 19, 7).round().astype(int)
    want = np.log10(np.abs((a @ b)[np.ix_(rows, cols)]) + 1e-12)
    assert_allclose(fig.axes[0].images[0].get_array(), want, rtol=1e-12)
    dense = plot.plot_heatmap(a @ b, max_side=100)  # below max_side: every entry
    assert_allclose(dense.axes[0].images[0].get_array(), np.log10(np.abs(a @ b) + 1e-12), rtol=1e-12)
    with pytest.raises(ValueError, match="max_side=1 must be an int >= 2"):
        plot.plot_heatmap((a, b), max_side=1)


def test_plot_layer_spectra_panels_lines_and_mean_eber():
    s1, s2 = np.array([3.0, 1.0]), np.array([1.0, 1.0, 1.0])
    fig = plot.plot_layer_spectra({"q_proj": [s1, s2], "v_proj": [s2]})
    q, v = fig.axes
    assert_allclose(q.get_lines()[0].get_ydata(), s1 / s1.sum())
    assert_allclose(q.get_lines()[2].get_ydata(), [(0.75 + 1 / 3) / 2, (0.25 + 1 / 3) / 2, 1 / 6])  # the mean
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert q.get_title() == f"q_proj (2; EBER {(np.exp(h) + 3) / 2:.2f})" and v.get_title() == "v_proj (1; EBER 3.00)"
    with pytest.raises(TypeError, match="non-empty mapping"):
        plot.plot_layer_spectra({"q": []})
