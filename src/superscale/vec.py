"""Arithmetic that works on Python scalars and on numpy arrays alike.

The cost models run on one plan (scalars) or on a batch of plans (arrays of plan fields,
for search) through the same code. Structural switches that differ between plans in a
batch become masks: `gate(mask)` is True/False for a scalar mask (include the op or not)
and None for an array mask (include it scaled by the mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Num = Any  # float | int | np.ndarray


def is_array(*values: Any) -> bool:
    return any(isinstance(v, np.ndarray) for v in values)


def maximum(a: Num, b: Num) -> Num:
    return np.maximum(a, b) if is_array(a, b) else max(a, b)


def minimum(a: Num, b: Num) -> Num:
    return np.minimum(a, b) if is_array(a, b) else min(a, b)


def where(condition: Any, a: Num, b: Num) -> Num:
    if is_array(condition, a, b):
        return np.where(condition, a, b)
    return a if condition else b


def dim(x: Num) -> Num:
    """A GEMM dimension: rounded, at least 1."""
    return np.maximum(1, np.rint(x)) if is_array(x) else max(1, round(x))


def gate(mask: Any) -> bool | None:
    """True/False: keep or drop (scalar mask); None: scale by the (array) mask."""
    if isinstance(mask, np.ndarray):
        return None
    return bool(mask)


def as_float(x: Num) -> Num:
    return x * 1.0 if is_array(x) else float(x)


def any_nonzero(x: Num) -> bool:
    return bool(np.any(x != 0)) if is_array(x) else bool(x)


def lookup(table: dict[Any, float], key: Any) -> Num:
    """table[key] for one key, or for each key of an array."""
    if not isinstance(key, np.ndarray):
        return table[key]
    # a few table entries against many keys: compare per entry rather than sort the keys
    out = np.empty(key.shape)
    found = np.zeros(key.shape, dtype=bool)
    for name, value in table.items():
        hit = key == name
        out[hit] = value
        found |= hit
    if not found.all():
        raise KeyError(key[~found].ravel()[0].item())
    return out


def equals(value: Any, target: Any) -> Any:
    """value == target, elementwise for arrays (strings included)."""
    return value == target if is_array(value) else bool(value == target)
