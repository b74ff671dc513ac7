"""Load an adapter, analyse its layers (in parallel if asked) and summarise them per module type.

``run_analysis`` returns plain Python rows (the command line never imports pandas); ``analyze``
wraps them in a DataFrame.  Results are identical for every job count and backend: each layer is
a pure function of its tensors, BLAS runs single-threaded under the spectral part (so its
reductions cannot change order with the thread count), and the entry statistics are exact
integer counts and a float64 maximum, whatever the threads.
"""
from __future__ import annotations

import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field

from ripkit._entries import single_threaded_blas
from ripkit._parallel import available_cores, check_backend, parallel_map, resolve_jobs
from ripkit.analyze.layer import (BOOL_COLUMNS, COLUMNS, INT_COLUMNS, TEXT_COLUMNS, Settings, analyze_layer, entry_part,
                                  spectral_part)

__all__ = ["Analysis", "run_analysis", "analyze", "summarize_modules", "to_dataframe", "MODULE_COLUMNS"]

#: Columns of the per-module-type summary.  Means over the module type's analysed layers, except
#: ``condition_number`` (median: one near-singular layer would dominate a mean).
MODULE_COLUMNS = ("module", "layers", "analysed", "trainable_parameters", "frobenius_norm", "sigma_max",
                  "stable_rank", "energy_rank", "eber", "numerical_rank", "condition_number", "frac_below_abs",
                  "frac_below_rel", "core_energy_rank", "core_eber", "core_frac_below_abs")


@dataclass(frozen=True)
class Analysis:
    """What one analysis produced: per-layer ``rows`` (keys :data:`~ripkit.analyze.layer.COLUMNS`), the
    per-module-type summary, one-line ``hints`` for what was missing, and where the time went."""

    source: dict
    rows: list = field(repr=False)
    modules: list = field(repr=False)
    hints: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    spectra: dict = field(default_factory=dict, repr=False)   # name -> singular values of ΔW (for plots)


# ---- per module type ------------------------------------------------------------------------------
def _finite(values):
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def summarize_modules(rows) -> list[dict]:
    """One dict per module type (first-seen order), keys :data:`MODULE_COLUMNS`."""
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row["module"], []).append(row)
    out = []
    for module, group in groups.items():
        entry = {"module": module, "layers": len(group),
                 "analysed": sum(_finite([r["frobenius_norm"]]) != [] for r in group),
                 "trainable_parameters": sum(int(r["trainable_parameters"]) for r in group)}
        for key in MODULE_COLUMNS[4:]:
            values = _finite(r[key] for r in group)
            if key == "condition_number":
                values = [v for v in values if math.isfinite(v)]
                entry[key] = _median(values) if values else None
            else:
                entry[key] = sum(values) / len(values) if values else None
        out.append(entry)
    return out


# ---- hints for what was not given -----------------------------------------------------------------
_HINTS = {
    "base": "need the base model's weights for ΔW (their rows say so): pass --base FOLDER_OR_FILE (Python: base=), "
            "a Hugging Face model folder or a .safetensors file",
    "hash_seed": "(CoSA reference) need the training run's PYTHONHASHSEED to regenerate L and R: pass --hash-seed N "
                 "(Python: hash_seed=), with --hash-algorithm siphash13 if it ran on Python >= 3.11; their core Y "
                 "statistics are reported",
    "memory": "were not analysed: their dense ΔW does not fit in the available memory (the note column gives the size)",
}


def _hints(rows) -> list[str]:
    """One sentence per kind of missing input: how many layers, and how to pass it."""
    count: dict[str, int] = {}
    for row in rows:
        for need in (row["missing"] or "").split(","):
            if need:
                count[need] = count.get(need, 0) + 1
    return [f"{n} layer(s) {_HINTS.get(need, f'need {need} (their rows say so)')}" for need, n in sorted(count.items())]


# ---- running ----------------------------------------------------------------------------------------
def _analyze_layers(layers, settings):
    return [analyze_layer(layer, settings) for layer in layers]


def _analyze_chunk(spec: dict, names: list, settings: Settings):
    """A worker process's share: load only ``names`` (cheap: headers) and analyse them."""
    from ripkit.formats import load_adapter

    pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
    order = {n: i for i, n in enumerate(names)}
    layers = [layer for layer in load_adapter(**spec, layers=pattern) if layer.name in order]
    with single_threaded_blas():  # as in run_analysis
        return _analyze_layers(sorted(layers, key=lambda layer: order[layer.name]), settings)


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr, only on a terminal, shown once the run has taken 2 s."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="layer", file=sys.stderr, delay=2.0, leave=False)


def _pipeline(loaded, settings, tick):
    """One layer at a time, in two overlapping stages: this thread computes every layer's spectra while
    one worker computes the entry statistics of the layers already done (its kernel on all cores).  The
    spectra, and numba's start-up in the worker's first task, then hide behind the entry statistics."""
    from concurrent.futures import ThreadPoolExecutor

    out = []
    with ThreadPoolExecutor(1, thread_name_prefix="ripkit-entries") as worker:
        for layer in loaded:
            row, seconds, sv, pending = spectral_part(layer, settings)
            done = worker.submit(entry_part, layer, row, settings, seconds) if pending else None
            out.append((row, seconds, sv, done))
        results = []
        for row, seconds, sv, done in out:  # in layer order, whatever finished first
            if done is not None:
                done.result()
            results.append((row, seconds, sv))
            if tick:
                tick(1)
    return results


def _run_layers(loaded, spec, settings, jobs, backend, bar):
    tick = (lambda res: bar.update(len(res) if isinstance(res, list) else 1)) if bar else None
    if jobs == 1 and backend in ("loky", "threading"):
        return _pipeline(loaded, settings, tick)
    size = max(1, -(-len(loaded) // (4 * jobs)))  # ~4 chunks per worker balance uneven layers
    chunks = [loaded[i:i + size] for i in range(0, len(loaded), size)]
    if backend == "threading":  # the loaded records are shared, nothing is re-read
        tasks, fn = [(chunk, settings) for chunk in chunks], _analyze_layers
    else:  # processes or a cluster: each worker re-opens the file and reads only its layers
        tasks, fn = [(spec, [layer.name for layer in chunk], settings) for chunk in chunks], _analyze_chunk
    parts = parallel_map(fn, tasks, n_jobs=jobs, backend=backend, on_result=tick)
    return [item for part in parts for item in part]


def run_analysis(path, *, base=None, adapter_name=None, hash_seed=None, hash_algorithm="siphash24",
                 layers=None, verify=True, settings: Settings = Settings(), n_jobs=1, backend="loky",
                 progress=False) -> Analysis:
    """Load ``path`` with ``ripkit.formats.load_adapter`` and analyse every layer (see :func:`analyze`)."""
    from ripkit.formats import load_adapter

    jobs = resolve_jobs(n_jobs)
    check_backend(backend)
    t0 = time.perf_counter()
    spec = dict(path_or_hub_id=path, base=base, adapter_name=adapter_name, hash_seed=hash_seed,
                hash_algorithm=hash_algorithm, verify=verify)
    loaded = load_adapter(**spec, layers=layers)
    t_load = time.perf_counter() - t0
    # the entry kernel's threads share the cores with the jobs; results do not depend on either
    settings = Settings(**{**settings.__dict__, "threads": max(1, available_cores() // jobs)})
    bar = _progress(len(loaded), progress)
    try:
        # BLAS on one thread under every layer: its reductions cannot change order with the job count, so the
        # numbers are bit-identical for every --jobs and backend (the entry kernel has threads of its own)
        with single_threaded_blas():
            results = _run_layers(loaded, spec, settings, jobs, backend, bar)
    finally:
        if bar is not None:
            bar.close()
    rows = [row for row, _, _ in results]
    seconds = {key: sum(s[key] for _, s, _ in results) for key in ("spectra", "entries")}
    total = time.perf_counter() - t0
    work = seconds["spectra"] + seconds["entries"]
    timings = {"load_seconds": t_load, "spectra_seconds": seconds["spectra"], "entries_seconds": seconds["entries"],
               "total_seconds": total, "entries_share": seconds["entries"] / work if work > 0 else None}
    source = {"path": str(path), "adapter_name": adapter_name, "layers": layers, "n_layers": len(rows),
              "hash_seed": hash_seed, "hash_algorithm": hash_algorithm,
              "base": None if base is None else (str(base) if not hasattr(base, "state_dict") else type(base).__name__),
              "energy": settings.energy, "threshold": settings.threshold, "rel_threshold": settings.rel_threshold,
              "entries": settings.entries}
    spectra = {row["name"]: sv for row, _, sv in results if sv is not None}
    return Analysis(source, rows, summarize_modules(rows), _hints(rows), timings, spectra)


def analyze(path, *, base=None, adapter_name: str | None = None, hash_seed: int | None = None,
            hash_algorithm: str = "siphash24", layers: str | None = None, verify: bool = True,
            energy: float = 0.95, threshold: float = 1e-4, rel_threshold: float = 1e-3, entries: bool = True,
            n_jobs: int = 1, backend: str = "loky", progress: bool = False):
    """The per-layer table of an adapter as a pandas DataFrame (one row per layer, columns
    :data:`~ripkit.analyze.layer.COLUMNS`).

    Parameters
    ----------
    path : str or path
        A ripkit or peft checkpoint folder (or a file in it), or a hub id ``org/name``.
    base, adapter_name, hash_seed, hash_algorithm, layers, verify
        As ``ripkit.formats.load_adapter``: base weights W₀ (folder, .safetensors file or nn.Module),
        which adapter of a folder, the CoSA reference run's PYTHONHASHSEED and string hash, a regular
        expression selecting layers, whether to check ripkit checkpoints' tensor hashes.
    energy : float, default 0.95
        Energy of the energy rank (CoSA appendix B.3 uses 95 %).
    threshold, rel_threshold : float, default 1e-4, 1e-3
        Entry statistics count |ΔW_ij| < threshold and |ΔW_ij| < rel_threshold·RMS(ΔW).
    entries : bool, default True
        False skips the O(m·n) entry statistics (their columns are null).
    n_jobs : int, default 1
        Layers in parallel (-1: all cores); ``backend`` one of ``ripkit._parallel.BACKENDS``.
        Same numbers for any value.

    Returns
    -------
    pandas.DataFrame
        ``df.attrs`` holds ``source`` (what was analysed), ``modules`` (the per-module-type summary,
        also :func:`summarize_modules`), ``hints`` (what was missing and how to pass it; also issued as
        a warning) and ``timings`` (seconds: load, spectra and entries summed over layers, total wall;
        ``entries_share`` = entries / (spectra + entries)).

    Layers whose ΔW needs what was not given keep their row: ``missing`` names it, ``note`` says
    it in words, and what does not need it (CoSA's core Y, bias updates) is still reported.
    """
    settings = _settings(energy, threshold, rel_threshold, entries)
    result = run_analysis(path, base=base, adapter_name=adapter_name, hash_seed=hash_seed,
                          hash_algorithm=hash_algorithm, layers=layers, verify=verify, settings=settings,
                          n_jobs=n_jobs, backend=backend, progress=progress)
    for hint in result.hints:
        warnings.warn(hint, UserWarning, stacklevel=2)
    df = to_dataframe(result.rows)
    df.attrs.update(source=result.source, modules=result.modules, hints=result.hints, timings=result.timings)
    return df


def to_dataframe(rows):
    """Rows as a DataFrame with one dtype per column: nullable ``Int64`` / ``boolean`` for counts and
    flags, float64 (NaN for null) for numbers, object for text."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in COLUMNS:
        if column in INT_COLUMNS:
            df[column] = df[column].astype("Int64")
        elif column in BOOL_COLUMNS:
            df[column] = df[column].astype("boolean")
        elif column not in TEXT_COLUMNS:
            df[column] = df[column].astype("float64")
    return df


def _settings(energy, threshold, rel_threshold, entries) -> Settings:
    from ripkit._checks import check_fraction

    energy = check_fraction("energy", energy)
    for name, value in (("threshold", threshold), ("rel_threshold", rel_threshold)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a finite number > 0")
    if not isinstance(entries, bool):
        raise TypeError(f"entries must be True or False, got {entries!r}")
    return Settings(energy=energy, threshold=float(threshold), rel_threshold=float(rel_threshold), entries=entries)
