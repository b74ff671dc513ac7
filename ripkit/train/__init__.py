"""``python -m ripkit.train``: fine-tune a model offline with ripkit adapters, resumably, on CPU or CUDA.

    python -m ripkit.train --model smollm2 --task lm --method lora --r 8 --steps 60 --out runs-tmp/lora

Read it top to bottom: ``cli`` (flags and the checks made before any work), ``models``
(MiniLM, SmolLM2 from its GGUF file, local folders), ``tasks`` (classify and causal-LM
data, loss and score), ``loop`` (the training loop), ``state`` (crash-safe resumable
state) and ``summary`` (per-layer ΔW summary of a finished run).
"""
from ripkit.train.cli import build_parser, check_args, main
from ripkit.train.loop import LOG_FIELDS, batch_indices, get_lr, peak_memory_mb, run
from ripkit.train.tasks import evaluate

__all__ = ["build_parser", "check_args", "main", "run", "get_lr", "batch_indices", "evaluate",
           "peak_memory_mb", "LOG_FIELDS"]
