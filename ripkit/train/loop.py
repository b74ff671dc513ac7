"""The training loop, top to bottom: set-up → model and data → adapters → optimizer → steps → outputs.

AdamW with linear warm-up (6 %) and linear decay (CoSA paper C.1), gradient clipping at
1.0, a fixed data order per (seed, epoch), periodic evaluation, a CSV log, periodic
resumable state (``ripkit.train.state``) and a final adapter checkpoint
(``ripkit.adapters.io``), its peft LoRA form (``OUT/peft/``, LoRA family) and a per-layer
summary (``OUT/layers.csv``).  ``--method cps-lora`` repartitions every
``--repartition-every`` steps (CPS-LoRA Algorithm 1; default once per epoch);
``--method full`` trains every weight and saves ΔW of a few layers (CPS-LoRA Figure 1).

Determinism: on the CPU a seed gives the same bits in every process for the same
``--threads`` (and torch build); on CUDA ``torch.use_deterministic_algorithms`` is
switched on (warn-only: an op without a deterministic kernel warns), cuBLAS gets a fixed
workspace and cuDNN autotuning is off, which makes repeated runs on the same GPU model,
driver and torch agree; CPU and GPU results, and float32 and bfloat16 ones, differ by
rounding.
"""
from __future__ import annotations

import csv
import io
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ripkit
from ripkit._atomic import atomic_write_text
from ripkit._cli import UsageError
from ripkit.adapters import adapter_modules, inject, parameter_report
from ripkit.adapters.inject import default_targets, match_targets
from ripkit.adapters.io import apply_adapter, save_adapter
from ripkit.adapters.to_peft import export_peft
from ripkit.data import LABEL_NAMES, model_source, weights_hash
from ripkit.train import state as st
from ripkit.train.cli import check_args
from ripkit.train.models import default_head, full_delta_names, load_pretrained
from ripkit.train.summary import layer_summary, summary_csv
from ripkit.train.tasks import TASKS, Encoded, autocast_context, load_task_data, trim

__all__ = ["LOG_FIELDS", "get_lr", "batch_indices", "peak_memory_mb", "run"]

LOG_FIELDS = ("step", "epoch", "loss", "lr", "step_time_s", "peak_mem_mb", "eval_accuracy",
              "tokens_per_s", "eval_choice_accuracy")
PEFT_METHODS = ("lora", "pissa", "block-lora", "cps-lora")


def get_lr(step: int, total: int, lr: float, warmup: float) -> float:
    """Learning rate at 0-based ``step``: 1) linear warm-up over ⌈warmup·total⌉ steps, 2) linear decay to 0."""
    n_warm = max(1, math.ceil(warmup * total))
    if step < n_warm:
        return lr * (step + 1) / n_warm
    return lr * max(0.0, (total - step) / max(1, total - n_warm))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Rows of batch ``step``: epoch e = step // (n // batch_size) uses permutation PCG64(seed, e).

    A pure function of the step, so a resumed run sees exactly the batches it would have seen.
    """
    per_epoch = n // batch_size
    epoch, i = divmod(step, per_epoch)
    perm = np.random.Generator(np.random.PCG64([seed, epoch])).permutation(n)
    return perm[i * batch_size:(i + 1) * batch_size]


def peak_memory_mb(device: torch.device) -> float:
    """``torch.cuda.max_memory_allocated`` on CUDA; the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _deterministic(device: torch.device) -> None:
    if device.type == "cuda":  # CPU kernels are deterministic already for a fixed thread count
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _adapter_config(args) -> dict:
    if args.method == "cosa":
        return {"a": args.a, "b": args.b, "scaling": args.scaling, "scale": args.scale, "kind": args.kind}
    if args.method in ("lora", "pissa"):
        return {"r": args.r, "alpha": args.alpha}
    if args.method == "block-lora":
        return {"r": args.r, "k": args.k, "alpha": args.alpha, "partition": args.partition}
    if args.method == "cps-lora":
        return {"r": args.r, "k": args.k, "alpha": args.alpha, "partition": args.partition,
                "partitioner": args.partitioner}
    return {}


def _check_layers(model, targets, args) -> None:
    """``--targets`` match linear layers, and ``--r`` (LoRA, PiSSA) / ``--k`` (block-LoRA) fit the smallest."""
    names = match_targets(model, targets)
    if not names:
        raise UsageError(f"--targets {','.join(targets)} match no nn.Linear module of the model")
    flag = {"lora": "r", "pissa": "r", "block-lora": "k", "cps-lora": "k"}.get(args.method)
    if flag:
        small = min(names, key=lambda n: min(model.get_submodule(n).weight.shape))
        dim = min(model.get_submodule(small).weight.shape)
        if getattr(args, flag) > dim:
            raise UsageError(f"--{flag} {getattr(args, flag)} exceeds min(out, in) = {dim} of {small}")


def _write_log(path: Path, rows: list[dict]) -> None:
    """The whole log, rewritten atomically (a crash leaves the previous complete log)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, lineterminator="\r\n")  # csv's default line ending, as before
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def run(args, *, model_factory=None, data=None) -> dict:
    """Train as described by ``args`` (from ``build_parser``); returns the final metadata.

    ``model_factory() -> model`` and ``data = ((ids, mask, labels) train, (ids, mask, labels) eval, info)``
    replace the named model and data set for ``--task classify`` (tests use a tiny random BERT).
    """
    # ---- 1. set-up: every check first, then the machine --------------------------------------
    resume_from = check_args(args, check_model=model_factory is None)
    task = TASKS[args.task]
    out = Path(args.out)
    device = _device(args.device)
    _deterministic(device)
    autocast = (device.type, torch.bfloat16) if args.dtype == "bfloat16" else None
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # a new classification head is initialised from the global RNG

    # ---- 2. model and data --------------------------------------------------------------------
    answers = None
    if model_factory is None:
        source = model_source(args.model)
        model, tokenizer, model_info = load_pretrained(source, args.task, num_labels=len(LABEL_NAMES[args.data]))
        train, evalset, data_info, answers = load_task_data(args.task, args.data, tokenizer, args.max_length,
                                                            args.eval_size)
        base_hash, model_name = weights_hash(args.model), args.model
    else:
        model, base_hash, model_name = model_factory(), None, "custom"
        model_info = {"class": type(model).__name__}
        (tr_ids, tr_mask, tr_y), (ev_ids, ev_mask, ev_y), data_info = data
        train, evalset = Encoded(tr_ids, tr_mask, tr_y, tr_y), Encoded(ev_ids, ev_mask, ev_y, ev_y)
    per_epoch = len(train) // args.batch_size
    if per_epoch == 0:
        raise UsageError(f"--batch-size {args.batch_size} exceeds the {len(train)} training examples")

    # ---- 3. adapters (or a resumed run's adapters) --------------------------------------------
    targets = tuple(t for t in args.targets.split(",") if t) if args.targets else default_targets(model)
    _check_layers(model, targets, args)
    head = tuple(h for h in args.head.split(",") if h) if args.head else default_head(model, args.task)
    missing = [h for h in head if not any(n == h or n.endswith("." + h) for n, _ in model.named_modules())]
    if missing:
        raise UsageError(f"--head {','.join(missing)} names no module of the model")
    if resume_from is not None and args.method != "full":
        apply_adapter(model, resume_from / "adapter")
    else:
        inject(model, targets, args.method, base_seed=args.seed, head=head, **_adapter_config(args))
    full_names = full_delta_names(model, targets, args.delta_layers) if args.method == "full" else []
    w0 = {n: model.get_submodule(n).weight.detach().clone() for n in full_names}
    model.to(device).train()

    # ---- 4. optimizer and schedule ------------------------------------------------------------
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    total = args.steps or max(1, int(round(args.epochs * per_epoch)))
    every_rep = args.repartition_every or per_epoch
    report = parameter_report(model)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    if resume_from is not None:
        info = st.load_state(resume_from, model, optimizer, args.method)
        start, baseline, train_time = info["step"], info["baseline_accuracy"], info["train_time_s"]
        baseline_choice = info.get("baseline_choice_accuracy")
        with open(log_path, newline="") as fh:  # drop rows written after the saved state
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= start]
    else:
        start, train_time = 0, 0.0
        scores = task.evaluate(model, evalset, device, autocast, answers)
        baseline, baseline_choice = scores["accuracy"], scores.get("choice_accuracy")
        rows = [{"step": 0, "epoch": 0, "eval_accuracy": baseline,
                 **({"eval_choice_accuracy": scores["choice_accuracy"]} if "choice_accuracy" in scores else {})}]
    _write_log(log_path, rows)
    print(f"{args.method}: {report}; steps {start}→{total} on {device}; untrained accuracy {baseline:.4f}",
          file=sys.stderr)

    # ---- 5. the steps -------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(range(start, total), initial=start, total=total, disable=args.quiet, file=sys.stderr)
    accuracy = choice = None
    for step in bar:
        t0 = time.perf_counter()
        if args.method == "cps-lora" and step > 0 and step % every_rep == 0:
            for mod in adapter_modules(model).values():  # CPS-LoRA Algorithm 1, lines 4-8
                mod.repartition(args.partitioner, seed=args.seed)
                for p in mod.parameters(recurse=False):
                    optimizer.state.pop(p, None)
        idx = torch.from_numpy(batch_indices(step, len(train), args.batch_size, args.seed))
        for g in optimizer.param_groups:
            g["lr"] = get_lr(step, total, args.lr, args.warmup)
        batch = train.rows(idx)
        denominator = task.denominator(batch.labels)  # the whole batch's, shared by its micro-batches
        optimizer.zero_grad(set_to_none=True)
        loss_value, tokens = 0.0, 0
        for micro in torch.chunk(torch.arange(len(idx)), args.grad_accum):
            ids, mask, labels = trim(batch.input_ids[micro], batch.attention_mask[micro], batch.labels[micro])
            with autocast_context(autocast):
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, C) or (B, T, V)
            loss = task.loss(logits, labels.to(device), denominator)
            loss.backward()
            loss_value += loss.item()
            tokens += int(mask.sum())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        train_time += dt
        done = step + 1
        row = {"step": done, "epoch": round(done / per_epoch, 4), "loss": round(loss_value, 6),
               "lr": g["lr"], "step_time_s": round(dt, 4), "peak_mem_mb": round(peak_memory_mb(device), 1),
               "tokens_per_s": round(tokens / dt, 1)}
        if done % args.eval_every == 0 or done == total:
            scores = task.evaluate(model, evalset, device, autocast, answers)
            accuracy = row["eval_accuracy"] = scores["accuracy"]
            if "choice_accuracy" in scores:
                choice = row["eval_choice_accuracy"] = scores["choice_accuracy"]
        rows.append(row)
        _write_log(log_path, rows)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=accuracy)
        if done % args.ckpt_every == 0 or done == total or done == args.stop_after:
            st.save_state(out, done, model, optimizer, args.method,
                          {"step": done, "baseline_accuracy": baseline, "train_time_s": train_time,
                           "baseline_choice_accuracy": baseline_choice, "settings": st.settings(args)})
        if done == args.stop_after and done < total:
            bar.close()
            return {"stopped_at": done}
    bar.close()

    # ---- 6. outputs ---------------------------------------------------------------------------
    if accuracy is None:
        scores = task.evaluate(model, evalset, device, autocast, answers)
        accuracy, choice = scores["accuracy"], scores.get("choice_accuracy")
    times = [float(r["step_time_s"]) for r in rows if r.get("step_time_s") not in (None, "")]
    speeds = [float(r["tokens_per_s"]) for r in rows if r.get("tokens_per_s") not in (None, "")]
    meta = {
        "method": args.method, "config": _adapter_config(args), "base_seed": args.seed,
        "scale": args.scale if args.method == "cosa" else None, "targets": list(targets),
        "base_model": model_name, "base_model_hash": base_hash, "dataset": data_info,
        "task": args.task, "model": model_info, "head_modules": list(head),
        "training": {**{k: getattr(args, k) for k in ("steps", "epochs", "batch_size", "lr", "weight_decay",
                                                      "warmup", "seed", "repartition_every", "partitioner")},
                     "grad_accum": args.grad_accum, "dtype": args.dtype, "max_length": args.max_length,
                     "threads": args.threads or torch.get_num_threads()},
        "metrics": {"baseline_accuracy": baseline, "final_accuracy": accuracy, "steps": total,
                    "majority_fraction": _majority(evalset.classes),
                    "train_time_s": round(train_time, 2), "mean_step_time_s": round(float(np.mean(times)), 4),
                    "peak_mem_mb": round(peak_memory_mb(device), 1),
                    "peak_mem": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "CPU peak RSS",
                    "mean_tokens_per_s": round(float(np.mean(speeds)), 1) if speeds else None,
                    "score": task.score,
                    **({"baseline_choice_accuracy": baseline_choice, "final_choice_accuracy": choice}
                       if args.task == "lm" else {})},
        "parameters": report.to_dict(), "device": str(device), "torch_version": torch.__version__,
        "ripkit_version": ripkit.__version__,
    }
    deltas = ({n: model.get_submodule(n).weight.detach() - w0[n].to(device) for n in full_names}
              if args.method == "full" else None)  # w0 was copied before the model moved to the device
    save_adapter(model, out, metadata=meta, full_deltas=deltas)
    atomic_write_text(out / "layers.csv", summary_csv(layer_summary(model, deltas)))
    if args.method in PEFT_METHODS:
        local = model_factory is None and source.gguf_file is None and model_name not in ("minilm",)
        export_peft(model, out / "peft", base_model=str(source.folder) if local else None)  # a loadable path only
    if not args.keep_state:
        st.remove_states(out)
    print(f"{args.method}: accuracy {baseline:.4f} → {accuracy:.4f} in {train_time:.0f} s; wrote {out}",
          file=sys.stderr)
    return meta


def _majority(classes: torch.Tensor) -> float:
    """Share of the most common class in the evaluation set (the accuracy of always guessing it)."""
    if int(classes.max()) <= 1:  # two classes: the pre-package formula, kept for identical bits
        return float(max(classes.double().mean(), 1 - classes.double().mean()))
    return float(torch.bincount(classes).max() / len(classes))
