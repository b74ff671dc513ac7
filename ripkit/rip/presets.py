"""Named (m, n, a, b) configurations and the CoSA paper's published numbers.

Paper presets: CoSA appendix B.1 (proxy layer m=512, n=256).  LLM presets:
real layer shapes, ΔW as (out, in), with the paper's NLG default (a, b) =
(1024, 256) (CoSA appendix C).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Preset", "PRESETS", "PAPER_PRESETS", "PAPER_TABLE4", "PAPER_COHERENCE"]


@dataclass(frozen=True)
class Preset:
    m: int
    n: int
    a: int
    b: int
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "extreme": Preset(512, 256, 32, 8, "paper B.1 proxy layer, 512x compression"),
    "aggressive": Preset(512, 256, 64, 16, "paper B.1 proxy layer, 128x compression"),
    "moderate": Preset(512, 256, 128, 32, "paper B.1 proxy layer, 32x compression"),
    "conservative": Preset(512, 256, 256, 64, "paper B.1 proxy layer, 8x compression"),
    "llm": Preset(4096, 4096, 1024, 256, "Llama-3.1-8B q_proj/o_proj (4096x4096), paper NLG (a,b)"),
    "llm-mlp": Preset(4096, 14336, 1024, 256, "Llama-3.1-8B down_proj (out 4096 x in 14336), paper NLG (a,b)"),
}
PAPER_PRESETS = ("extreme", "aggressive", "moderate", "conservative")

#: CoSA Table 4: δ_s mean ± std over random initializations (95th percentile, N=1000).
PAPER_TABLE4 = {
    "extreme": {5: (0.158, 0.051), 10: (0.133, 0.041), 20: (0.098, 0.030)},
    "aggressive": {5: (0.124, 0.037), 10: (0.100, 0.033), 20: (0.090, 0.028)},
    "moderate": {5: (0.166, 0.052), 10: (0.149, 0.045), 20: (0.119, 0.036)},
    "conservative": {5: (0.136, 0.040), 10: (0.111, 0.035), 20: (0.082, 0.025)},
}

#: Coherence values stated in the text of B.2 (only these two are given).
PAPER_COHERENCE = {"extreme": 0.163, "moderate": 0.219}
