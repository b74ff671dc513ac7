"""``python -m ripkit.train``: its flags, and every check that can be made before any work.

A bad flag or value exits with status 2 and one line on stderr naming the flag, before a
model is loaded or a file written (``ripkit._cli``): argparse types check each value,
``check_args`` the combinations, the model and data files, and ``--resume`` / ``--out``
against what is already in the output folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ripkit._cli import (Parser, UsageError, check_device, finite_float, fraction, int_at_least, nonnegative_float,
                         nonnegative_int, positive_float, positive_int, run_main, seed_int, writable_dir)
from ripkit.adapters.block_lora import REPARTITIONERS
from ripkit.adapters.inject import METHODS
from ripkit.data import DATASETS, dataset_source, model_source
from ripkit.projections import KINDS
from ripkit.train import state as st
from ripkit.train.tasks import TASKS

__all__ = ["build_parser", "check_args", "main"]

DESCRIPTION = "Fine-tune a model offline with ripkit adapters (CoSA, LoRA, PiSSA, block-LoRA, CPS-LoRA) or fully."


def build_parser() -> Parser:
    p = Parser(prog="python -m ripkit.train", description=DESCRIPTION)
    add = p.add_argument
    add("--model", default="minilm", help="'minilm', 'smollm2' (SmolLM2-135M-Instruct, GGUF), a local "
        "Hugging Face folder or a .gguf file")
    add("--task", default="classify", choices=tuple(TASKS), help="classify: a classification head; lm: "
        "causal-LM fine-tuning on prompt → answer, loss on the answer tokens only")
    add("--data", default="rotten-tomatoes", choices=DATASETS)
    add("--method", default="cosa", choices=METHODS)
    add("--a", type=positive_int, default=128, help="CoSA core rows (L is m×a)")
    add("--b", type=positive_int, default=128, help="CoSA core columns (R is b×n)")
    add("--scaling", type=finite_float, default=1.0, help="CoSA output scaling")
    add("--scale", default="cosa", choices=["cosa", "unit"], help="CoSA projection variances")
    add("--kind", default="gaussian", choices=KINDS, help="CoSA projection distribution")
    add("--r", type=positive_int, default=8, help="LoRA / PiSSA / block-LoRA rank")
    add("--k", type=positive_int, default=2, help="block-LoRA grid size k (k×k blocks of rank r/k)")
    add("--alpha", type=positive_float, default=None, help="LoRA alpha (default r, scaling 1)")
    add("--partition", default="contiguous", choices=["contiguous", "random"],
        help="block-lora partition: contiguous (GraLoRA) or random (cps-lora is always clustered)")
    add("--partitioner", default="cosine", choices=REPARTITIONERS,
        help="cps-lora repartitioning rule (ripkit.partition); random: the paper's control")
    add("--repartition-every", type=nonnegative_int, default=0,
        help="cps-lora: steps between repartitions (0: one epoch)")
    add("--targets", default=None, help="comma-separated module-name suffixes (default: by architecture, "
        "BERT attention+FFN or the seven Llama-style projections)")
    add("--head", default=None, help="classify: comma-separated trainable head modules (default: "
        "'classifier' or 'score', whichever the model has)")
    add("--delta-layers", default="", help="full: comma-separated layers whose ΔW is saved "
        "(default: query/value of the first and last layer and the last FFN-in)")
    add("--steps", type=nonnegative_int, default=0, help="optimizer steps (0: use --epochs)")
    add("--epochs", type=positive_float, default=1.0)
    add("--batch-size", type=positive_int, default=16, help="examples per optimizer step")
    add("--grad-accum", type=positive_int, default=1, help="micro-batches per step (divides --batch-size)")
    add("--max-length", type=int_at_least(2), default=64, help="tokens per example")
    add("--lr", type=positive_float, default=5e-3)
    add("--weight-decay", type=nonnegative_float, default=0.01)
    add("--warmup", type=fraction, default=0.06, help="warm-up fraction of the steps")
    add("--eval-size", type=positive_int, default=500, help="fixed test subset used for accuracy")
    add("--eval-every", type=positive_int, default=100)
    add("--ckpt-every", type=positive_int, default=100, help="steps between resumable states")
    add("--seed", type=seed_int, default=0)
    add("--device", type=check_device, default="auto", help="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:N'")
    add("--dtype", default="float32", choices=["float32", "bfloat16"],
        help="bfloat16: forward and backward under torch.autocast (CPU or CUDA); weights, optimizer and "
        "checkpoints stay float32")
    add("--threads", type=nonnegative_int, default=0, help="CPU threads for torch (0: torch's default)")
    add("--out", type=writable_dir, required=True, help="output folder")
    add("--resume", action="store_true", help="continue the run in OUT from its newest complete state")
    add("--stop-after", type=nonnegative_int, default=0, help="stop (as if interrupted) after this step")
    add("--keep-state", action="store_true", help="keep the last state after a finished run")
    add("--quiet", action="store_true", help="no progress bar")
    return p


def _differences(recorded: dict, current: dict) -> str:
    flags = st.settings_diff(recorded, current)
    parts = [f"{f} {json.dumps(recorded.get(f[2:].replace('-', '_')))} → "
             f"{json.dumps(current.get(f[2:].replace('-', '_')))}" for f in flags]
    hint = (" (the learning-rate schedule depends on the length, so a longer run is not a continuation of "
            "this one)") if {"--steps", "--epochs"} & set(flags) else ""
    return "; ".join(parts) + hint


def check_args(args, *, check_model: bool = True) -> Path | None:
    """Checks that need more than one flag or a look at the disk; returns the state to resume from.

    Raises ``UsageError`` naming the flag.  Loads nothing.
    """
    if args.method in ("block-lora", "cps-lora") and args.r % args.k:
        raise UsageError(f"--r {args.r} must be divisible by --k {args.k} (per-block rank r/k)")
    if args.batch_size % args.grad_accum:
        raise UsageError(f"--batch-size {args.batch_size} must be divisible by --grad-accum {args.grad_accum}")
    if args.task == "lm" and args.head:
        raise UsageError("--head is for --task classify (lm trains no head)")
    if check_model:
        try:
            source = model_source(args.model)
        except ValueError as exc:
            raise UsageError(f"--model: {exc}") from None
        from ripkit.train.models import check_task

        try:
            check_task(source, args.task)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            dataset_source(args.data)
        except ValueError as exc:
            raise UsageError(f"--data {args.data}: {exc}") from None
    out = Path(args.out)
    found = st.find_state(out)
    if not args.resume:
        if found is not None:
            raise UsageError(f"--out: {out} holds an unfinished run (state at step {st.state_step(found)}); "
                             "add --resume to continue it, or choose another --out")
        return None
    if found is None:
        finished = " (the run there is finished; --keep-state keeps the last state)" if (
            out / "ripkit_adapter.json").is_file() else ""
        raise UsageError(f"--resume: no complete saved state in {out}{finished}")
    recorded = json.loads((found / st.STATE_JSON).read_text()).get("settings")
    if recorded is None:
        print(f"ripkit.train: {found} records no settings (older trainer); --resume cannot check them",
              file=sys.stderr)
    elif recorded != st.settings(args):
        raise UsageError(f"--resume: this command differs from the run in {out}: "
                         f"{_differences(recorded, st.settings(args))}")
    return found


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        from ripkit.train.loop import run

        run(args)

    return run_main(parser.prog, body)
