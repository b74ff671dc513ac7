"""A Llama-3.1-8B-shaped peft LoRA (32 layers × q,k,v,o,gate,up,down, r = 16) written without torch.

``python -m tests.formats._llm_lora FOLDER [--layers 32] [--time]`` writes it (random seeded
factors, float32 by default) and, with ``--time``, times ``ripkit.formats.load_adapter`` on it in
fresh processes.  The tests use a few layers; the full size is measured by hand (issue 11's target:
``load_adapter`` < 0.3 s for 224 layers).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HIDDEN, INTERMEDIATE, KV = 4096, 14336, 1024  # Llama-3.1-8B: 32 heads of 128, 8 KV heads
MODULES = {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (KV, HIDDEN), "self_attn.v_proj": (KV, HIDDEN),
           "self_attn.o_proj": (HIDDEN, HIDDEN), "mlp.gate_proj": (INTERMEDIATE, HIDDEN),
           "mlp.up_proj": (INTERMEDIATE, HIDDEN), "mlp.down_proj": (HIDDEN, INTERMEDIATE)}


def write_llm_lora(folder, n_layers: int = 32, r: int = 16, seed: int = 0, dtype: str = "F32") -> Path:
    from ripkit._atomic import atomic_write_bytes, atomic_write_text
    from ripkit.formats._io import safetensors_bytes

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    np_dtype = {"F32": np.float32, "F16": np.float16}[dtype]
    tensors = {}
    for layer in range(n_layers):
        for module, (out, inp) in MODULES.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            a = (rng.standard_normal((r, inp), dtype=np.float32) / np.sqrt(inp)).astype(np_dtype)
            b = (rng.standard_normal((out, r), dtype=np.float32) * 1e-2).astype(np_dtype)
            tensors[f"{key}.lora_A.weight"] = (dtype, a.shape, a.tobytes())
            tensors[f"{key}.lora_B.weight"] = (dtype, b.shape, b.tobytes())
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": sorted(m.split(".")[1] for m in MODULES),
              "base_model_name_or_path": "meta-llama/Llama-3.1-8B", "bias": "none", "init_lora_weights": True,
              "task_type": "CAUSAL_LM", "peft_version": "0.21.2"}
    atomic_write_bytes(folder / "adapter_model.safetensors", safetensors_bytes(tensors, {"format": "pt"}))
    atomic_write_text(folder / "adapter_config.json", json.dumps(config, indent=2))
    return folder


TIMER = """
import time, sys
t0 = time.perf_counter()
from ripkit.formats import load_adapter
t1 = time.perf_counter()
layers = load_adapter(sys.argv[1])
t2 = time.perf_counter()
assert len(layers) == int(sys.argv[2])
print(f"{t1 - t0:.4f} {t2 - t1:.4f}")
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--time", action="store_true", help="time load_adapter in 5 fresh processes")
    args = p.parse_args(argv)
    write_llm_lora(args.folder, args.layers)
    if args.time:
        runs = [subprocess.run([sys.executable, "-c", TIMER, str(args.folder), str(7 * args.layers)], check=True,
                               capture_output=True, text=True).stdout.split() for _ in range(5)]
        imports, loads = zip(*[(float(a), float(b)) for a, b in runs])
        print(f"{7 * args.layers} layers: import ripkit.formats {min(imports):.3f} s (min of 5), "
              f"load_adapter {min(loads):.3f} s (min of 5; all: {', '.join(f'{x:.3f}' for x in loads)})")


if __name__ == "__main__":
    main()
