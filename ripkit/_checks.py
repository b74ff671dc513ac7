"""Input checks shared by every module: each message names the argument, the value and the limit."""
from __future__ import annotations

import numbers
import os

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


def available_memory_bytes() -> int | None:
    """Physical memory the OS reports as available (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: int, what: str) -> None:
    """Refuse up front (MemoryError naming the size) if ``what`` needs more than the available memory."""
    avail = available_memory_bytes()
    if avail is not None and nbytes > avail:
        raise MemoryError(f"{what} needs {nbytes / 2**30:.2f} GiB but only {avail / 2**30:.2f} GiB "
                          f"of memory is available")
