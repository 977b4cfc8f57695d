"""Action recognition metrics (readpvla.metrics.recognition); every expected number is derived
by hand in the comment next to it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from readpvla.metrics import (
    accuracy,
    base_novel_accuracy,
    harmonic_mean,
    label_ranks,
    mean_class_accuracy,
    per_class_accuracy,
)

# 5 videos, 6 classes
SCORES = np.array([[0.9, 0.1, 0.0, 0.0, 0.0, 0.0],   # label 0: rank 0
                   [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],   # label 2: rank 2
                   [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],   # label 5: rank 5
                   [0.2, 0.2, 0.1, 0.0, 0.0, 0.0],   # label 1: tied with class 0 -> rank 1
                   [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # label 0: rank 0
LABELS = np.array([0, 2, 5, 1, 0])


def test_label_ranks_ties_to_lower_index():
    np.testing.assert_array_equal(label_ranks(SCORES, LABELS), [0, 2, 5, 1, 0])
    # a tie with a higher class index does not push the label down
    np.testing.assert_array_equal(label_ranks([[0.2, 0.2]], [0]), [0])


def test_top1_top5():
    # ranks [0, 2, 5, 1, 0]: top-1 2/5 = 40 %, top-5 4/5 = 80 %
    assert accuracy(SCORES, LABELS) == {"top1": 40.0, "top5": 80.0}
    assert accuracy(SCORES, LABELS, k=1) == 40.0
    assert accuracy(SCORES, LABELS, k=(2, 3, 6)) == {"top2": 60.0, "top3": 80.0, "top6": 100.0}
    # same as argmax for top-1
    assert accuracy(SCORES, LABELS, k=1) == 100 * np.mean(SCORES.argmax(1) == LABELS)


def test_torch_inputs():
    got = accuracy(torch.tensor(SCORES, dtype=torch.float32), torch.tensor(LABELS))
    assert got == {"top1": 40.0, "top5": 80.0}
    logits = torch.tensor(SCORES).log_softmax(-1)  # a monotone transform keeps the accuracy
    assert accuracy(logits, torch.tensor(LABELS)) == {"top1": 40.0, "top5": 80.0}


def test_per_class_and_mean_class():
    acc = per_class_accuracy(SCORES, LABELS)
    # class 0: 2/2 right; 1, 2, 5: wrong; 3, 4: no test video (NaN)
    np.testing.assert_array_equal(acc, [100.0, 0.0, 0.0, np.nan, np.nan, 0.0])
    assert mean_class_accuracy(SCORES, LABELS) == 25.0  # (100 + 0 + 0 + 0) / 4, overall 40
    # top-3: class 0 100, class 1 (rank 1) 100, class 2 (rank 2) 100, class 5 (rank 5) 0 -> 75
    assert mean_class_accuracy(SCORES, LABELS, k=3) == 75.0


def test_harmonic_mean():
    assert harmonic_mean(80, 60) == pytest.approx(2 * 80 * 60 / 140)  # 68.571...
    assert harmonic_mean(50.0, 50.0) == 50.0
    assert harmonic_mean(100.0, 0.0) == 0.0
    assert harmonic_mean(0, 0) == 0.0
    assert harmonic_mean(np.float64(30), np.float32(60)) == pytest.approx(40.0)


def test_base_novel_restriction_changes_argmax():
    scores = np.array([[0.2, 0.1, 0.9, 0.0],   # label 0 (base): overall argmax 2, among {0, 1}: 0
                       [0.5, 0.3, 0.0, 0.0],   # label 1 (base): among {0, 1}: 0 -> wrong
                       [0.0, 0.0, 0.1, 0.4],   # label 3 (novel): 3 -> right
                       [0.9, 0.0, 0.2, 0.1]])  # label 2 (novel): overall 0, among {2, 3}: 2
    labels = np.array([0, 1, 3, 2])
    assert accuracy(scores, labels, k=1) == 25.0  # only video 2 right among all classes
    res = base_novel_accuracy(scores, labels, base_classes=[0, 1], novel_classes=[2, 3])
    # base 1/2 = 50, novel 2/2 = 100, HM = 2 * 50 * 100 / 150 = 66.67
    assert res == {"base": 50.0, "novel": 100.0, "HM": pytest.approx(200 / 3)}
    assert base_novel_accuracy(torch.tensor(scores), torch.tensor(labels), [1, 0],
                               np.array([3, 2])) == res  # order of the class lists irrelevant


@pytest.mark.parametrize("scores, labels, k, match", [
    (np.ones(3), [0], 1, "2-D"),
    (np.ones((0, 3)), [], 1, "empty"),
    (np.array([[np.nan, 0.0]]), [0], 1, "NaN or infinite"),
    (np.ones((2, 3)), [0], 1, "has 1 entries, expected 2"),
    (np.ones((2, 3)), [0, 3], 1, r"labels\[1\] = 3 is out of range \[0, 3\)"),
    (np.ones((2, 3)), [-1, 0], 1, "out of range"),
    (np.ones((2, 3)), [0.5, 1], 1, "integers"),
    (np.ones((2, 3)), [[0, 1]], 1, "1-D"),
    (np.ones((2, 3)), [0, 1], 4, r"k must be an integer in \[1, C\] = \[1, 3\]"),
    (np.ones((2, 3)), [0, 1], (1, 5), "k must be an integer"),
    (np.ones((2, 3)), [0, 1], 0, "k must be"),
    (np.ones((2, 3)), [0, 1], True, "k must be"),
    (np.ones((2, 3)), [0, 1], (), "non-empty sequence"),
])
def test_accuracy_errors(scores, labels, k, match):
    with pytest.raises(ValueError, match=match):
        accuracy(scores, labels, k=k)


def test_per_class_errors():
    with pytest.raises(ValueError, match="k must be"):
        per_class_accuracy(np.ones((2, 3)), [0, 1], k=4)
    with pytest.raises(ValueError, match="out of range"):
        mean_class_accuracy(np.ones((2, 3)), [0, 5])


@pytest.mark.parametrize("base, novel, labels, match", [
    ([0, 1], [1, 2], [0, 2], r"share 1 class\(es\) \(first: \[1\]\)"),
    ([], [2, 3], [2, 3], "base_classes must be a non-empty"),
    ([0, 1], [2, 4], [0, 2], r"novel_classes\[1\] = 4 is out of range"),
    ([0, 0], [2, 3], [0, 2], "duplicate"),
    ([0], [2, 3], [0, 1], r"labels\[1\] = 1 is in neither"),
    ([0, 1], [2, 3], [0, 1], "no test video has a label in novel_classes"),
    ([0, 1], [2, 3], [2, 3], "no test video has a label in base_classes"),
])
def test_base_novel_errors(base, novel, labels, match):
    with pytest.raises(ValueError, match=match):
        base_novel_accuracy(np.ones((2, 4)), labels, base, novel)


@pytest.mark.parametrize("b, n", [(-1, 50), (50, math.nan), (math.inf, 1), ("50", 1)])
def test_harmonic_mean_errors(b, n):
    with pytest.raises(ValueError, match="accuracy must be a finite number >= 0"):
        harmonic_mean(b, n)
