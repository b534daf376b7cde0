"""Work once per distinct value: number the distinct values and find one row of each."""

from __future__ import annotations

import numpy as np
import pandas as pd


def first_rows(codes: np.ndarray) -> np.ndarray:
    """For codes 0..k-1 (every one present), the first row holding each."""
    first = np.empty(int(codes.max()) + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    return first


# combined keys are renumbered densely before their radix passes this (int64 stays exact)
_MAX_RADIX = 1 << 40


def combined_key(codes: list[tuple[np.ndarray, int]], n: int) -> np.ndarray:
    """One integer per row naming its combination of codes: (code, base) pairs, each code in
    0..base-1, as the digits of a mixed-radix number."""
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for code, base in codes:
        if radix * base >= _MAX_RADIX:
            key, uniques = pd.factorize(key)
            radix = max(len(uniques), 1)
        key = key + code * radix
        radix *= base
    return key


def distinct(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's number among the distinct keys, each distinct key's first row)."""
    codes, _ = pd.factorize(key)
    return codes, first_rows(codes)
