"""ripkit: rerunnable checks of the theory behind CoSA and CPS-LoRA adapters.

Importing ripkit has no side effects; submodules are imported on demand.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
