"""Progress and failure-detection metrics (DESIGN.md §7, notes/primo_reference.md §6).

Pure functions over plain arrays; progress is on the 0-100 scale unless a docstring says otherwise.
Empty inputs give ``nan`` rather than raising, so a report with an empty split still renders.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MRA_THRESHOLDS = tuple(float(np.float32(0.5 + 0.05 * i)) for i in range(10))
"""0.50, 0.55, ..., 0.95 as the baselines' harnesses make them: float32 steps of 0.05 (not rounded decimals)."""


def _pair(pred: Sequence[float], target: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"Expected pred and target of the same length, actually: {p.shape} vs {t.shape}")
    return p, t


def mae(pred: Sequence[float], target: Sequence[float]) -> float:
    """Mean absolute error.

    >>> mae([10, 50, 100], [0, 60, 100])
    6.666666666666667
    """
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t))) if len(p) else math.nan


def rmse(pred: Sequence[float], target: Sequence[float]) -> float:
    """Root mean squared error.

    >>> rmse([10, 50, 100], [0, 60, 100])
    8.16496580927726
    """
    p, t = _pair(pred, target)
    return float(np.sqrt(np.mean((p - t) ** 2))) if len(p) else math.nan


def acc_at(pred: Sequence[float], target: Sequence[float], k: float) -> float:
    """Share of predictions within ``k`` points of the target (inclusive).

    >>> acc_at([10, 50, 100], [0, 60, 96], 5)
    0.3333333333333333
    """
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t) <= k)) if len(p) else math.nan


def mra_threshold(pred: Sequence[float], target: Sequence[float]) -> float:
    """Threshold mean relative accuracy (the baselines' harnesses): the mean over thresholds 0.50, 0.55, ...,
    0.95 of ``|p - t| / (|t| + 1e-8) < 1 - thr``.

    Computed in float32 as the release's harness does, so every integer (p, t) pair gives its value; at
    ``t == 0`` a prediction scores 1 if it is 0, else 0.

    >>> mra_threshold([50, 100, 0, 5], [50, 80, 0, 0])  # exact: 1; 25 % off: 5 of 10; t=0: 1 if p=0 else 0
    0.625
    """
    p, t = _pair(pred, target)
    if not len(p):
        return math.nan
    p32, t32 = p.astype(np.float32), t.astype(np.float32)
    rel = np.abs(p32 - t32) / (np.abs(t32) + np.float32(1e-8))
    ths = np.asarray(MRA_THRESHOLDS, dtype=np.float32)
    return float(np.mean(rel[:, None] < (np.float32(1) - ths)[None, :]))


def linear_relative_accuracy(pred: Sequence[float], target: Sequence[float]) -> float:
    """Linear relative accuracy (the paper's PRIMO R1 numbers, the ``regression`` accuracy): the mean of
    ``1 - clip((|p - t| + 1e-9) / (|t| + 1e-9), 0, 1)``; at ``t == 0`` it is 0 (as in the release).

    >>> round(linear_relative_accuracy([50, 100, 0], [50, 80, 0]), 6)  # 1, 0.75, 0
    0.583333
    """
    p, t = _pair(pred, target)
    if not len(p):
        return math.nan
    rel = np.clip((np.abs(p - t) + 1e-9) / (np.abs(t) + 1e-9), 0.0, 1.0)
    return float(np.mean(1.0 - rel))


def absolute_range_accuracy(pred: Sequence[float], target: Sequence[float]) -> float:
    """Mean of ``max(0, 1 - |p - t| / 100)``, the PRIMO ``numerical`` accuracy reward.

    >>> round(absolute_range_accuracy([10, 50], [0, 70]), 6)
    0.85
    """
    p, t = _pair(pred, target)
    return float(np.mean(np.maximum(0.0, 1 - np.abs(p - t) / 100))) if len(p) else math.nan


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan if either side is constant.

    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 6)
    0.8
    """
    x, y = _pair(a, b)
    if len(x) < 2:
        return math.nan
    rx, ry = _rank(x), _rank(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # average the ranks of ties
    vals, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(vals) < len(x):
        sums = np.bincount(inv, weights=ranks)
        ranks = (sums / counts)[inv]
    return ranks


def voc(pred_over_time: Sequence[float]) -> float:
    """Value-order correlation (GVL): Spearman correlation of the predictions with their time order.

    >>> round(voc([0, 10, 5, 40, 90]), 6)
    0.9
    """
    p = np.asarray(pred_over_time, dtype=np.float64)
    return spearman(p, np.arange(len(p)))


def progress_metrics(pred: Sequence[float], target: Sequence[float]) -> dict[str, float]:
    """MAE, RMSE, the two relative accuracies (``mra_threshold``, ``linear_rel_acc``), Acc@5, Acc@10 and
    absolute-range accuracy (``abs_acc``) of 0-100 progress predictions.

    >>> progress_metrics([10, 50], [10, 60])["mae"]
    5.0
    """
    p, t = _pair(pred, target)
    return {"n": int(len(p)), "mae": mae(p, t), "rmse": rmse(p, t), "mra_threshold": mra_threshold(p, t),
            "linear_rel_acc": linear_relative_accuracy(p, t),
            "acc@5": acc_at(p, t, 5), "acc@10": acc_at(p, t, 10), "abs_acc": absolute_range_accuracy(p, t)}


def error_by_bin(pred: Sequence[float], target: Sequence[float], n_bins: int = 5) -> list[dict[str, float]]:
    """MAE per bin of the target progress (bins of equal width over 0-100; 100 falls in the last bin).

    >>> [b["mae"] for b in error_by_bin([0, 30, 90, 100], [10, 30, 100, 100], n_bins=2)]
    [5.0, 5.0]
    """
    p, t = _pair(pred, target)
    edges = np.linspace(0, 100, n_bins + 1)
    idx = np.clip(np.digitize(t, edges[1:-1], right=False), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                    "mae": mae(p[m], t[m]) if m.any() else math.nan,
                    "bias": float(np.mean(p[m] - t[m])) if m.any() else math.nan})
    return out


# ------------------------------------------------------------------------------------------ failures

def first_detection(failure_probs: Sequence[float | None], threshold: float = 0.5, patience: int = 1) -> int | None:
    """Index of the query at which a failure is declared: the ``patience``-th consecutive query with
    probability >= ``threshold`` (None-valued queries break nothing and count nothing). None if never.

    >>> first_detection([0.1, 0.7, 0.2, 0.8, 0.9], threshold=0.5, patience=2)
    4
    >>> first_detection([0.1, 0.2]) is None
    True
    """
    streak = 0
    for i, fp in enumerate(failure_probs):
        if fp is None:
            continue
        streak = streak + 1 if fp >= threshold else 0
        if streak >= patience:
            return i
    return None


@dataclass(frozen=True)
class EpisodeFailure:
    """One episode's failure truth and the critic's detection, in query indices.

    Attributes:
        failed: whether the episode failed (ground truth).
        event_query: index of the first query at or after the failure event (None if not failed, or if the
            failure happened after the last query).
        detected_query: index of the query at which the critic declared failure (None if never).
    """

    failed: bool
    event_query: int | None
    detected_query: int | None


def failure_detection(episodes: Sequence[EpisodeFailure]) -> dict[str, float]:
    """Episode-level failure detection: precision, recall, F1 and delay (queries after the failure event).

    A failed episode that the critic flags is a true positive (its delay may be negative when flagged before
    the event: counted in ``early``); a successful or incomplete one that it flags is a false positive.

    >>> eps = [EpisodeFailure(True, 3, 4), EpisodeFailure(True, 2, None), EpisodeFailure(False, None, 5),
    ...        EpisodeFailure(False, None, None), EpisodeFailure(True, 5, 5)]
    >>> r = failure_detection(eps)
    >>> r["precision"], r["recall"], round(r["f1"], 3), r["median_delay"]
    (0.6666666666666666, 0.6666666666666666, 0.667, 0.5)
    """
    tp = fp = fn = tn = early = 0
    delays = []
    for e in episodes:
        if e.failed and e.detected_query is not None:
            tp += 1
            if e.event_query is not None:
                d = e.detected_query - e.event_query
                delays.append(d)
                early += d < 0
        elif e.failed:
            fn += 1
        elif e.detected_query is not None:
            fp += 1
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = (2 * precision * recall / (precision + recall)
          if tp and not math.isnan(precision) and not math.isnan(recall) else (0.0 if tp + fp + fn else math.nan))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1,
            "median_delay": float(np.median(delays)) if delays else math.nan,
            "mean_delay": float(np.mean(delays)) if delays else math.nan,
            "max_delay": float(np.max(delays)) if delays else math.nan, "early": int(early),
            "n_delays": len(delays)}
