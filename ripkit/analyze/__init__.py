"""``python -m ripkit.analyze PATH_OR_HUB_ID``: the per-layer table of any adapter, at LLM scale in seconds.

For every adapted layer of a ripkit, peft or CoSA-reference checkpoint (``ripkit.formats``): shape,
trainable parameters, ‖ΔW‖_F, σ_max, stable rank, energy rank at 95 % (CoSA appendix B.3), EBER
(CPS-LoRA appendix I), numerical rank, condition number, the fractions of |ΔW_ij| below 1e-4 and
below 1e-3·RMS (exact counts over all m·n entries), and for CoSA the same for the core Y plus
κ(L)·κ(R) and whether Y ↦ L·Y·R is injective; then a summary per module type.

>>> from ripkit.analyze import analyze, summarize_modules
>>> df = analyze("studies/runs/lora-r8")                      # doctest: +SKIP
>>> df[["name", "eber", "energy_rank", "frac_below_abs"]]      # doctest: +SKIP

Modules: ``layer`` (one row), ``run`` (loading, parallel layers, module summary), ``report``
(table / CSV / JSON, ``--out`` files and plots), ``cli``.  Importing this package imports neither
pandas nor torch (the command line never needs them for ripkit or peft LoRA checkpoints).
"""
from ripkit.analyze.layer import COLUMNS, Settings, analyze_layer, module_type
from ripkit.analyze.run import MODULE_COLUMNS, Analysis, analyze, run_analysis, summarize_modules

__all__ = ["analyze", "summarize_modules", "run_analysis", "analyze_layer", "Analysis", "Settings", "COLUMNS",
           "MODULE_COLUMNS", "module_type"]
