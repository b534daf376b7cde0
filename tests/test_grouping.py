"""ml/grouping.py: distinct keys numbered in order of first appearance, with their first row."""

import numpy as np

from ml.grouping import combined_key, distinct, first_rows


def test_distinct_numbers_keys_and_finds_their_first_rows():
    codes, first = distinct(np.array([7, 3, 7, 9, 3, 3]))
    assert codes.tolist() == [0, 1, 0, 2, 1, 1]
    assert first.tolist() == [0, 1, 3]


def test_no_rows():
    codes, first = distinct(np.array([], dtype=np.int64))
    assert len(codes) == 0 and len(first) == 0
    assert len(first_rows(np.array([], dtype=np.int64))) == 0


def test_combined_key_names_each_combination_once_even_past_the_int64_radix():
    rng = np.random.default_rng(0)
    base = 1 << 15  # five digits need 2**75: without renumbering int64 overflows
    digits = [rng.integers(0, 4, 200) * (base // 4) for _ in range(5)]
    codes, _ = distinct(combined_key([(d, base) for d in digits], 200))
    combinations, _ = distinct(np.array([str(t) for t in zip(*digits, strict=True)]))
    assert codes.tolist() == combinations.tolist()
    assert combined_key([(np.array([1, 0]), 2), (np.array([0, 1]), 3)], 2).tolist() == [1, 2]
