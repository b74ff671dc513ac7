"""Swap matching ``nn.Linear`` modules of a model for adapters; freeze everything else."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ripkit._checks import check_choice
from ripkit.adapters.block_lora import BlockLoRALinear
from ripkit.adapters.cosa import CoSALinear
from ripkit.adapters.lora import LoRALinear
from ripkit.projections import layer_seed

__all__ = ["METHODS", "DEFAULT_TARGETS", "DEFAULT_HEAD", "TARGETS_BY_ARCH", "HEADS", "inject",
           "adapter_modules", "match_targets", "default_targets", "find_head", "ParameterReport",
           "parameter_report"]

METHODS = ("cosa", "lora", "pissa", "block-lora", "cps-lora", "full")
# all attention and FFN linear layers of a BERT encoder layer
DEFAULT_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value",
                   "attention.output.dense", "intermediate.dense", "output.dense")
# the seven projections of a Llama-style decoder layer (Llama, Mistral, Qwen2/3, SmolLM2, ...), the
# target_modules of the CoSA reference README's Llama example (CPS-LoRA's figures show Q, K, V, O)
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: default targets per ``config.model_type``; other models: the first set all of whose names occur
TARGETS_BY_ARCH = {"bert": DEFAULT_TARGETS, "llama": LLAMA_TARGETS, "mistral": LLAMA_TARGETS,
                   "qwen2": LLAMA_TARGETS, "qwen3": LLAMA_TARGETS, "gemma": LLAMA_TARGETS}
DEFAULT_HEAD = ("classifier",)
#: classification heads by name: ``classifier`` (BERT-style), ``score`` (``*ForSequenceClassification`` decoders)
HEADS = ("classifier", "score")
ADAPTER_TYPES = (CoSALinear, LoRALinear, BlockLoRALinear)


def _matches(name: str, patterns) -> bool:
    return any(name == p or name.endswith("." + p) for p in patterns)


def match_targets(model: nn.Module, targets=DEFAULT_TARGETS) -> list[str]:
    """Names of the ``nn.Linear`` modules whose name equals or ends with ``.`` + a target."""
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    return [name for name, mod in model.named_modules()
            if isinstance(mod, nn.Linear) and _matches(name, targets)]


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """Architecture-aware targets: by ``model.config.model_type``, else the first known set
    (BERT, Llama-style) every name of which matches an ``nn.Linear`` of the model."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in TARGETS_BY_ARCH:
        return TARGETS_BY_ARCH[model_type]
    linear = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    for targets in (DEFAULT_TARGETS, LLAMA_TARGETS):
        if all(any(_matches(name, (t,)) for name in linear) for t in targets):
            return targets
    raise ValueError(f"no default targets for model_type={model_type!r}: name them (e.g. --targets q_proj,v_proj)")


def find_head(model: nn.Module, names=HEADS) -> tuple[str, ...]:
    """Top-level modules of ``model`` named like a classification head (``classifier``, ``score``)."""
    return tuple(name for name, _ in model.named_children() if name in names)


def _make(method: str, base: nn.Linear, seed: int, config: dict) -> nn.Module:
    if method == "cosa":
        return CoSALinear(base, config.get("a", 128), config.get("b", 128), seed=seed,
                          scaling=config.get("scaling", 1.0), scale=config.get("scale", "cosa"),
                          kind=config.get("kind", "gaussian"))
    if method in ("lora", "pissa"):
        return LoRALinear(base, config.get("r", 8), alpha=config.get("alpha"), seed=seed,
                          init="pissa" if method == "pissa" else "default")
    partition = "clustered" if method == "cps-lora" else config.get("partition", "contiguous")
    return BlockLoRALinear(base, config.get("r", 8), config.get("k", 2), partition=partition,
                           alpha=config.get("alpha"), seed=seed,
                           partitioner=config.get("partitioner") if method == "cps-lora" else None)


def inject(model: nn.Module, targets=DEFAULT_TARGETS, method: str = "cosa", *, base_seed: int = 0,
           head=DEFAULT_HEAD, **config) -> list[str]:
    """Replace each targeted ``nn.Linear`` by an adapter and leave only adapter (and head) parameters trainable.

    Parameters
    ----------
    model : nn.Module
        Modified in place.
    targets : str or sequence of str
        Module-name suffixes (default: BERT attention and FFN linear layers).
    method : {'cosa', 'lora', 'pissa', 'block-lora', 'cps-lora', 'full'}
        'full' adds no adapter and leaves every parameter trainable; 'pissa' is LoRA
        initialised from the top-r SVD of each W₀ (``LoRALinear(init='pissa')``).
    base_seed : int
        Layer seeds are ``layer_seed(base_seed, name)`` (SHA-256, stable across processes).
    head : sequence of str
        Module-name suffixes whose parameters stay trainable (the task head).
    **config
        cosa: a, b, scaling, scale, kind; lora, pissa: r, alpha; block-lora: r, k, alpha,
        partition ('contiguous' or 'random'); cps-lora: r, k, alpha, partitioner
        ('cosine', 'spectral', 'balance' or 'random').

    Returns
    -------
    names : list of str, the targeted module names.
    """
    check_choice("method", method, METHODS)
    names = match_targets(model, targets)
    if not names:
        raise ValueError(f"targets={targets!r} match no nn.Linear module of the model")
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return names
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, child)
        setattr(parent, child, _make(method, base, layer_seed(base_seed, name), config))
    for name, mod in model.named_modules():
        if isinstance(mod, ADAPTER_TYPES):
            for pname, p in mod.named_parameters(recurse=False):
                p.requires_grad_(True)
        elif head and _matches(name, head):
            for p in mod.parameters():
                p.requires_grad_(True)
    return names


def adapter_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: adapter}`` for every ripkit adapter in ``model``."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, ADAPTER_TYPES)}


@dataclass(frozen=True)
class ParameterReport:
    total: int
    trainable: int
    adapter: int
    head: int
    n_layers: int
    head_modules: tuple[str, ...] = ()  # modules outside the adapters with trainable parameters

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "head_modules": list(self.head_modules), "fraction": self.fraction}

    def __str__(self) -> str:
        heads = f" trainable: {', '.join(self.head_modules)}" if self.head_modules else ""
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
                f"trainable%: {100 * self.fraction:.4f} (adapter {self.adapter:,} in "
                f"{self.n_layers} layers, head {self.head:,}{heads})")


def parameter_report(model: nn.Module) -> ParameterReport:
    """Count total, trainable, adapter and other trainable (head) parameters."""
    adapters = adapter_modules(model)
    adapter_ids = {id(p) for mod in adapters.values() for p in mod.parameters(recurse=False)}
    total = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_adapter = sum(p.numel() for p in trainable if id(p) in adapter_ids)
    n_train = sum(p.numel() for p in trainable)
    heads = [] if not adapters or n_train == n_adapter else [
        name for name, mod in model.named_modules()
        if name and any(p.requires_grad and id(p) not in adapter_ids for p in mod.parameters(recurse=False))]
    return ParameterReport(total, n_train, n_adapter, n_train - n_adapter, len(adapters), tuple(heads))
