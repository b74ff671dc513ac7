"""The base model for a task, loaded offline: MiniLM, SmolLM2 (GGUF), a local folder or a ``.gguf`` file.

What the trainer needs to know about a model beyond its weights lives here too: the
pad token (set when the tokenizer has none, and in the model config, which decoder
classifiers use to find each row's last token), the classification head's name, and
which ΔW a full fine-tune saves.  Which linear layers adapters go on is
``ripkit.adapters.inject.default_targets``.
"""
from __future__ import annotations

import contextlib
import json
import os

import torch
from torch import nn

from ripkit.adapters.inject import HEADS, find_head, match_targets
from ripkit.data import ModelSource, gguf_quantization

__all__ = ["ENCODER_TYPES", "check_task", "load_pretrained", "default_head", "full_delta_names"]

#: model types with no causal-LM head (``--task lm`` refuses them)
ENCODER_TYPES = ("bert", "roberta", "distilbert", "xlm-roberta", "electra", "deberta", "deberta-v2",
                 "mpnet", "albert")
#: layers whose ΔW a full fine-tune saves by default: query/value of the first and last block and
#: the last FFN input projection (CPS-LoRA Figure 1), by naming scheme
_FULL_DELTA = {"bert": ("layer.0.attention.self.query", "layer.0.attention.self.value",
                        "layer.{last}.attention.self.query", "layer.{last}.attention.self.value",
                        "layer.{last}.intermediate.dense"),
               "llama": ("layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj",
                         "layers.{last}.self_attn.q_proj", "layers.{last}.self_attn.v_proj",
                         "layers.{last}.mlp.up_proj")}


def check_task(source: ModelSource, task: str) -> None:
    """Refuse, before loading anything, a task the model cannot do or a GGUF file without ``gguf``."""
    import importlib.util

    if source.gguf_file and importlib.util.find_spec("gguf") is None:
        raise ValueError(f"--model {source.name}: reading a .gguf file needs `pip install gguf`")
    if task != "lm":
        return
    model_type = "bert" if source.name == "minilm" else None
    if source.gguf_file is None and model_type is None:
        with contextlib.suppress(OSError, ValueError):
            model_type = json.loads((source.folder / "config.json").read_text()).get("model_type")
    if model_type in ENCODER_TYPES:
        raise ValueError(f"--task lm needs a decoder with a causal-LM head; --model {source.name} is a "
                         f"{model_type} encoder (use --task classify)")


@contextlib.contextmanager
def _quiet_transformers():
    """Silence the expected notices (newly initialised head, load report, GGUF progress bars)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(source: ModelSource, task: str = "classify", *, num_labels: int = 2):
    """(model, tokenizer, info) for ``task`` ('classify' or 'lm'), float32 weights, offline.

    A GGUF file is dequantised by transformers (``from_pretrained(folder, gguf_file=...)``);
    ``info`` records that and the quantisation the file's name states.  A new classification head is
    initialised from torch's global RNG, so seed it first.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    from ripkit.train.tasks import TASKS

    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    auto = getattr(transformers, TASKS[task].auto_class)
    if task == "classify":
        kwargs["num_labels"] = num_labels
    # float32 master weights whatever the checkpoint stores (the keyword is `torch_dtype` before 4.56)
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kwargs["dtype" if (major, minor) >= (4, 56) else "torch_dtype"] = torch.float32
    with _quiet_transformers():
        model = auto.from_pretrained(str(source.folder), **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(source.folder), **({"gguf_file": source.gguf_file} if source.gguf_file else {}))
    if tokenizer.pad_token is None:  # batches of more than one row need a pad token
        fill = tokenizer.eos_token or tokenizer.unk_token
        if fill is None:
            raise ValueError(f"--model {source.name}: the tokenizer has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fill
    tokenizer.padding_side = "right"  # the tasks pad on the right and trim all-padding columns there
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # decoder classifiers find the last token by it
    info = {"class": type(model).__name__, "model_type": model.config.model_type,
            "weights_dtype": "float32", "pad_token": tokenizer.pad_token}
    if source.gguf_file:
        quant = gguf_quantization(source.path)
        info["gguf"] = {"file": source.gguf_file, "quantization": quant,
                        "dequantized": f"weights dequantised to float32 by transformers from the GGUF file's "
                                       f"{quant} tensors" + (" (4-bit)" if quant.startswith(("Q4", "IQ4")) else "")}
    return model, tokenizer, info


def default_head(model: nn.Module, task: str) -> tuple[str, ...]:
    """Trainable head of ``task``: the classifier (``classifier`` or ``score``) for classify, none for lm."""
    if task != "classify":
        return ()
    head = find_head(model)
    if not head:
        raise ValueError(f"--head: the model has no classification head named {' or '.join(HEADS)}; name it")
    return head


def full_delta_names(model: nn.Module, targets, spec: str) -> list[str]:
    """Layers whose ΔW ``--method full`` saves: ``--delta-layers`` or the default of the naming scheme."""
    names = match_targets(model, targets)
    if spec:
        wanted = [s for s in spec.split(",") if s]
        return [n for n in names if any(n == w or n.endswith("." + w) for w in wanted)]
    last = model.config.num_hidden_layers - 1
    for keep in _FULL_DELTA.values():
        keep = [k.format(last=last) for k in keep]
        chosen = [n for n in names if any(n.endswith(k) for k in keep)]
        if chosen:
            return chosen
    raise ValueError("--delta-layers: no default layers for this model; name the layers whose ΔW to save")
