"""Input checks shared by every module: each message names the argument, the value and the limit."""
from __future__ import annotations

import numbers

import numpy as np


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def check_choice(name: str, value, choices) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")
    return value


def check_fraction(name: str, value, *, low: float = 0.0, high: float = 1.0, closed_low=False) -> float:
    """Raise unless ``low < value <= high`` (``low <= value`` when ``closed_low``)."""
    if not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    ok = (value >= low if closed_low else value > low) and value <= high
    if not ok:
        bracket = "[" if closed_low else "("
        raise ValueError(f"{name}={value} must be in {bracket}{low}, {high}]")
    return float(value)


def check_matrix(name: str, value, *, finite: bool = True) -> np.ndarray:
    """Return ``value`` as a 2-D float64 array, or raise naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
