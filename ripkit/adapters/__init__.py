"""Torch adapters: CoSA (L·Y·R), LoRA and block LoRA (GraLoRA / random / CPS-LoRA), and injection."""
from ripkit.adapters.block_lora import BlockLoRALinear
from ripkit.adapters.cosa import CoSALinear
from ripkit.adapters.inject import (DEFAULT_TARGETS, METHODS, ParameterReport, adapter_modules,
                                    inject, match_targets, parameter_report)
from ripkit.adapters.lora import LoRALinear

__all__ = ["CoSALinear", "LoRALinear", "BlockLoRALinear", "inject", "adapter_modules",
           "match_targets", "parameter_report", "ParameterReport", "METHODS", "DEFAULT_TARGETS"]
