"""RIP estimators and certified brackets for Kronecker dictionaries; CLI ``python -m ripkit.rip``."""
from ripkit.rip.estimators import (
    RipEstimate,
    SparseSamples,
    SupportRip,
    estimate_rip,
    isometry_ratios,
    sample_sparse_vectors,
    support_rip,
)
from ripkit.rip.presets import PAPER_TABLE4, PRESETS
from ripkit.rip.trials import RipTrials, rip_trials, trial_dictionary

__all__ = [
    "RipEstimate", "SparseSamples", "SupportRip", "estimate_rip", "isometry_ratios",
    "sample_sparse_vectors", "support_rip", "PAPER_TABLE4", "PRESETS", "RipTrials", "rip_trials",
    "trial_dictionary",
]
