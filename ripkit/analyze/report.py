"""The analysis as a readable table, CSV or strict JSON, and the files ``--out DIR`` writes.

``--out DIR`` writes ``layers.csv`` (every column), ``modules.csv`` (the per-module-type summary),
``analysis.json`` (as ``--format json``), ``spectra.csv`` (every analysed layer's singular values),
``spectra.png`` (normalized spectra per module type) and ``heatmaps.png`` (log|ΔW| of the first
analysed layer of each module type, up to 8, on a grid of at most 256×256 rows and columns, formed
from the factors only at those entries).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import ripkit
from ripkit._cli import dumps_json
from ripkit.analyze.layer import COLUMNS, module_type
from ripkit.analyze.run import MODULE_COLUMNS, Analysis

__all__ = ["to_json", "format_json", "format_csv", "format_table", "write_outputs"]

HEATMAP_SIDE = 256
MAX_HEATMAPS = 8


def to_json(analysis: Analysis) -> dict:
    """The ``--format json`` document (schema in the README); ``layers`` are the DataFrame's rows."""
    return {"ripkit_version": ripkit.__version__, "source": analysis.source, "layers": analysis.rows,
            "modules": analysis.modules, "hints": analysis.hints, "timings": analysis.timings}


def format_json(analysis: Analysis) -> str:
    return dumps_json(to_json(analysis))


def _csv(rows, columns) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if _blank(row[c]) else (repr(row[c]) if isinstance(row[c], float) else row[c])
                         for c in columns])
    return buf.getvalue()


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_csv(analysis: Analysis) -> str:
    """One line per layer, every column of :data:`~ripkit.analyze.layer.COLUMNS`; floats in full precision."""
    return _csv(analysis.rows, list(COLUMNS))


# ---- the readable table ---------------------------------------------------------------------------
def _num(value, kind: str = "g") -> str:
    if _blank(value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if kind == "%":
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


_LAYER_VIEW = [  # (header, column, format)
    ("layer", "name", "s"), ("method", "method", "s"), ("shape", None, "s"), ("params", "trainable_parameters", "g"),
    ("‖ΔW‖F", "frobenius_norm", "g"), ("σmax", "sigma_max", "g"), ("stable", "stable_rank", "g"),
    ("E95", "energy_rank", "g"), ("EBER", "eber", "g"), ("rank", "numerical_rank", "g"),
    ("κ", "condition_number", "g"), ("<1e-4", "frac_below_abs", "%"), ("<1e-3·rms", "frac_below_rel", "%"),
]
_COSA_VIEW = [("Y E95", "core_energy_rank", "g"), ("Y EBER", "core_eber", "g"), ("Y <1e-4", "core_frac_below_abs", "%"),
              ("Y <1e-3·rms", "core_frac_below_rel", "%"), ("κ(L)κ(R)", "projection_condition", "g"),
              ("inj.", "injective", "g")]
_BIAS_VIEW = [("‖Δb‖", "bias_norm", "g")]
_MODULE_VIEW = [("module", "module", "s"), ("layers", "layers", "g"), ("analysed", "analysed", "g"),
                ("params", "trainable_parameters", "g"), ("‖ΔW‖F", "frobenius_norm", "g"), ("σmax", "sigma_max", "g"),
                ("stable", "stable_rank", "g"), ("E95", "energy_rank", "g"), ("EBER", "eber", "g"),
                ("rank", "numerical_rank", "g"), ("κ (median)", "condition_number", "g"),
                ("<1e-4", "frac_below_abs", "%"), ("<1e-3·rms", "frac_below_rel", "%"),
                ("Y E95", "core_energy_rank", "g"), ("Y EBER", "core_eber", "g"), ("Y <1e-4", "core_frac_below_abs", "%")]


def _cell(row, column, kind):
    if column is None:  # shape
        m, n = row["out_features"], row["in_features"]
        return "?" if m is None else f"{m}×{n}"
    value = row[column]
    return (value if value is not None else "-") if kind == "s" else _num(value, kind)


def _render(rows, view) -> str:
    from tabulate import tabulate

    used = [v for v in view if v[2] == "s" or v[1] is None or any(not _blank(r[v[1]]) for r in rows)]
    return tabulate([[_cell(r, c, k) for _, c, k in used] for r in rows], headers=[h for h, _, _ in used],
                    disable_numparse=True, colalign=["left" if k == "s" else "right" for _, _, k in used])


def _headers(view, src: dict):
    """The view with headers naming this run's energy and thresholds."""
    names = {"E95": f"E{100 * src['energy']:g}", "<1e-4": f"<{src['threshold']:g}",
             "<1e-3·rms": f"<{src['rel_threshold']:g}·rms"}
    out = []
    for header, column, kind in view:
        for old, new in names.items():
            header = header.replace(old, new)
        out.append((header, column, kind))
    return out


def format_table(analysis: Analysis) -> str:
    """Per-layer table (CoSA and bias columns only when some layer has them), notes, module summary."""
    rows, src, t = analysis.rows, analysis.source, analysis.timings
    view = _headers(_LAYER_VIEW + _COSA_VIEW + _BIAS_VIEW, src)
    lines = [f"ripkit.analyze  {src['path']}  {src['n_layers']} layers  "
             f"(load {t['load_seconds']:.2f} s, spectra {t['spectra_seconds']:.2f} s, entries "
             f"{t['entries_seconds']:.2f} s, total {t['total_seconds']:.2f} s)", "", _render(rows, view)]
    notes = [f"  {r['name']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        lines += ["", "notes:", *notes]
    lines += ["", f"per module type (means over analysed layers; κ: median; E{100 * src['energy']:g} = energy rank "
                  f"at {100 * src['energy']:g} %; <t: fraction of |ΔW_ij| below t)",
              _render(analysis.modules, _headers(_MODULE_VIEW, src))]
    return "\n".join(lines)


# ---- --out DIR ----------------------------------------------------------------------------------------
def _spectra_csv(spectra: dict) -> str:
    buf = io.StringIO()
    buf.write("name,index,singular_value\n")
    for name, s in spectra.items():
        for i, value in enumerate(s, start=1):
            buf.write(f"{name},{i},{float(value)!r}\n")
    return buf.getvalue()


def _first_per_module(rows, limit):
    seen = {}
    for row in rows:
        if row["frobenius_norm"] is not None and row["module"] not in seen:
            seen[row["module"]] = row["name"]
    return list(seen.values())[:limit]


def write_outputs(folder, analysis: Analysis, load_spec: dict) -> list[Path]:
    """Write the files listed in the module docstring into ``folder``; returns their paths.

    ``load_spec``: the ``load_adapter`` keyword arguments of the analysis, to re-read the few layers
    drawn as heatmaps.
    """
    import re
    import warnings

    from ripkit._atomic import atomic_write_text
    from ripkit.formats import load_adapter
    from ripkit.plot import new_figure, plot_heatmap, plot_layer_spectra, save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("layers.csv", format_csv(analysis)), ("modules.csv", _csv(analysis.modules, MODULE_COLUMNS)),
                       ("analysis.json", format_json(analysis) + "\n"), ("spectra.csv", _spectra_csv(analysis.spectra))):
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    if analysis.spectra:
        groups = {}
        for row in analysis.rows:
            if row["name"] in analysis.spectra:
                groups.setdefault(row["module"], []).append(analysis.spectra[row["name"]])
        written.append(save_figure(plot_layer_spectra(groups, n_values=64), folder / "spectra.png"))
    names = _first_per_module(analysis.rows, MAX_HEATMAPS)
    if names:
        pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
        with warnings.catch_warnings():  # the analysis already reported the checkpoint's warnings
            warnings.simplefilter("ignore")
            layers = {layer.name: layer for layer in load_adapter(**load_spec, layers=pattern)}
        fig, axes = new_figure(len(names), width=3.4, height=3.0)
        for ax, name in zip(axes, names):
            layer = layers[name]
            x = layer.low_rank() or layer.delta_w()
            plot_heatmap(x, max_side=HEATMAP_SIDE, ax=ax, title=module_type(name))
        written.append(save_figure(fig, folder / "heatmaps.png"))
    return written
