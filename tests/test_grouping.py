"""ml/grouping.py: distinct keys numbered in order of first appearance, with their first row."""

import numpy as np

from ml.grouping import distinct, first_rows


def test_distinct_numbers_keys_and_finds_their_first_rows():
    codes, first = distinct(np.array([7, 3, 7, 9, 3, 3]))
    assert codes.tolist() == [0, 1, 0, 2, 1, 1]
    assert first.tolist() == [0, 1, 3]


def test_no_rows():
    codes, first = distinct(np.array([], dtype=np.int64))
    assert len(codes) == 0 and len(first) == 0
    assert len(first_rows(np.array([], dtype=np.int64))) == 0
