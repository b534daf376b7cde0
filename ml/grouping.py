"""Work once per distinct value: number the distinct values and find one row of each."""

from __future__ import annotations

import numpy as np
import pandas as pd


def first_rows(codes: np.ndarray) -> np.ndarray:
    """For codes 0..k-1 (every one present), the first row holding each."""
    first = np.empty(int(codes.max()) + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    return first


def distinct(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's number among the distinct keys, each distinct key's first row)."""
    codes, _ = pd.factorize(key)
    return codes, first_rows(codes)
