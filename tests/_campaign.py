"""A tiny stand-in for the MiniLM campaign: seconds of training on a 2-layer random BERT.

Folders are named as ``studies/campaign.py`` names them, so the studies read them with
``--runs DIR`` exactly as they read the real campaign (the summaries are recomputed, with few
null draws, into a temporary cache).
"""
from pathlib import Path

from ripkit.train import build_parser, run
from _models import synthetic_data, tiny_bert

RUNS = {
    "lora-r8": ("lora", "--r", "8"),
    "full": ("full",),
    "block-lora-k2-r8": ("block-lora", "--k", "2", "--r", "8"),
    "cps-lora-k2-r8": ("cps-lora", "--k", "2", "--r", "8", "--repartition-every", "2"),
    "cps-lora-k4-r8": ("cps-lora", "--k", "4", "--r", "8", "--repartition-every", "2"),
    "cps-lora-k8-r8": ("cps-lora", "--k", "8", "--r", "8", "--repartition-every", "2"),
    "cosa-a128-b128": ("cosa", "--a", "8", "--b", "8"),   # tiny cores under the campaign's names
    "cosa-a32-b64": ("cosa", "--a", "4", "--b", "8"),
    "cosa-a64-b32": ("cosa", "--a", "8", "--b", "4"),
}


def tiny_campaign(root: Path, groups=tuple(RUNS), seeds=(0, 1), summary_draws: int = 3) -> Path:
    """Train the tiny runs and write each one's summary beside it (``summary_draws`` null draws)."""
    from ripkit.runsummary import summarize_run, write_summary

    for group in groups:
        method, *extra = RUNS[group]
        for seed in seeds:
            args = build_parser().parse_args(["--method", method, "--out", str(root / f"{group}-s{seed}"),
                                              "--steps", "4", "--batch-size", "8", "--eval-every", "4",
                                              "--lr", "1e-2", "--quiet", "--threads", "1", "--seed", str(seed),
                                              *extra])
            run(args, model_factory=tiny_bert, data=synthetic_data())
            folder = root / f"{group}-s{seed}"
            write_summary(summarize_run(folder, null_draws=summary_draws), folder)
    return root


def use_tmp_cache(monkeypatch, tmp_path, draws: int = 3) -> None:
    """Recomputed summaries go to ``tmp_path`` with ``draws`` null draws (fast), never to runs-tmp/."""
    import importlib
    import sys

    # the studies import it as ``studies._trained`` (package) or ``_trained`` (run as files): patch both
    for name in ("studies._trained", "_trained"):
        try:
            trained = sys.modules.get(name) or importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        monkeypatch.setattr(trained, "CACHE", tmp_path / "summaries")
        monkeypatch.setattr(trained, "SUMMARY_DRAWS", draws)
