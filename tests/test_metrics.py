"""Metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from primo_loop import metrics as M


def test_progress_errors_by_hand():
    pred, target = [0, 20, 55, 100], [10, 20, 50, 70]
    # |e| = 10, 0, 5, 30
    assert M.mae(pred, target) == pytest.approx(45 / 4)
    assert M.rmse(pred, target) == pytest.approx(math.sqrt((100 + 0 + 25 + 900) / 4))
    assert M.acc_at(pred, target, 5) == pytest.approx(2 / 4)
    assert M.acc_at(pred, target, 10) == pytest.approx(3 / 4)
    assert M.absolute_range_accuracy(pred, target) == pytest.approx((0.9 + 1 + 0.95 + 0.7) / 4)


def test_relative_accuracies_by_hand():
    # rel errors: 1.0 (t=10), 0 (t=20), 0.1 (t=50), 30/70=0.4286 (t=70)
    # thresholds 0.50..0.95 need rel < 0.50, 0.45, ..., 0.05:
    # rel 1.0 passes 0; rel 0 passes 10; rel 0.4286 passes thr<0.5714 -> 2; rel 0.1 passes 9, not 8: in float32
    # (the release's arithmetic) 1 - 0.9 is 0.10000002 > 0.1, so the 0.90 threshold passes too
    pred, target = [0, 20, 55, 100], [10, 20, 50, 70]
    assert M.mra_threshold(pred, target) == pytest.approx((0 + 10 + 9 + 2) / 40)
    assert M.linear_relative_accuracy(pred, target) == pytest.approx((0 + 1 + 0.9 + (1 - 30 / 70)) / 4)
    # t = 0 as the release: threshold MRA 1 for p = 0 (else 0), linear accuracy 0 either way
    assert M.mra_threshold([0, 5], [0, 0]) == pytest.approx(0.5)
    assert M.linear_relative_accuracy([0, 5], [0, 0]) == pytest.approx(0.0)
    assert math.isnan(M.mra_threshold([], [])) and math.isnan(M.linear_relative_accuracy([], []))
    report = M.progress_metrics(pred, target)
    assert "mra" not in report and report["mra_threshold"] == M.mra_threshold(pred, target)
    assert report["linear_rel_acc"] == M.linear_relative_accuracy(pred, target)


def _release_mra(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The baselines' threshold MRA per pair, reimplemented from its formula with torch in float32: relative
    error |p - t| / (|t| + 1e-8), thresholds from torch.arange(0.5, 0.95 + 0.025, 0.05) in float32."""
    torch = pytest.importorskip("torch")
    pt, tt = torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    rel = torch.abs(pt - tt) / (torch.abs(tt) + 1e-8)
    ths = torch.arange(0.5, 0.95 + 0.05 / 2, 0.05, dtype=torch.float32)
    return (rel[:, None] < (1 - ths)[None, :]).float().mean(1).double().numpy()


def test_mra_threshold_equals_the_release_on_every_integer_pair():
    p, t = (g.ravel().astype(np.float64) for g in np.meshgrid(np.arange(101), np.arange(101)))
    want = _release_mra(p, t)
    got = np.array([M.mra_threshold([a], [b]) for a, b in zip(p, t)])
    assert len(got) == 10201
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)  # float32 means; a flipped threshold is 0.1
    assert M.mra_threshold(p, t) == pytest.approx(float(want.mean()), abs=1e-6)


def test_spearman_and_voc():
    assert M.voc([1, 2, 3, 4]) == pytest.approx(1.0)
    assert M.voc([4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: [0, 0, 1] -> ranks [0.5, 0.5, 2]; time ranks [0, 1, 2]
    r = np.array([0.5, 0.5, 2.0]); t = np.arange(3.0)
    want = np.mean((r - r.mean()) * (t - t.mean())) / (r.std() * t.std())
    assert M.voc([0, 0, 1]) == pytest.approx(want)
    assert math.isnan(M.voc([5, 5, 5]))


def test_error_by_bin():
    bins = M.error_by_bin([0, 25, 45, 100, 80], [0, 20, 50, 100, 100], n_bins=5)
    assert [b["n"] for b in bins] == [1, 1, 1, 0, 2]
    assert bins[1]["mae"] == 5 and bins[2]["bias"] == -5 and bins[4]["mae"] == 10
    assert math.isnan(bins[3]["mae"])


def test_failure_detection_by_hand():
    assert M.first_detection([0.2, 0.6, 0.4, 0.6, 0.7, 0.9], 0.5, patience=2) == 4
    assert M.first_detection([None, 0.9, None, 0.9], 0.5, patience=2) == 3
    eps = [
        M.EpisodeFailure(True, 5, 6),      # TP, delay 1
        M.EpisodeFailure(True, 5, 8),      # TP, delay 3
        M.EpisodeFailure(True, 4, 3),      # TP, early (-1)
        M.EpisodeFailure(True, 2, None),   # FN
        M.EpisodeFailure(False, None, 7),  # FP
        M.EpisodeFailure(False, None, None),  # TN
    ]
    r = M.failure_detection(eps)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (3, 1, 1, 1)
    assert r["precision"] == pytest.approx(0.75) and r["recall"] == pytest.approx(0.75)
    assert r["f1"] == pytest.approx(0.75)
    assert r["median_delay"] == 1 and r["mean_delay"] == pytest.approx(1.0) and r["early"] == 1
    empty = M.failure_detection([M.EpisodeFailure(False, None, None)])
    assert math.isnan(empty["f1"]) and empty["tn"] == 1


def test_empty_inputs_are_nan():
    assert math.isnan(M.mae([], [])) and M.progress_metrics([], [])["n"] == 0
    with pytest.raises(ValueError, match="same length"):
        M.mae([1, 2], [1])
