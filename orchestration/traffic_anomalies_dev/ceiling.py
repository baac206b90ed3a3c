"""The noise ceiling: what a detector that knew the generator's true expected count of every
cell and its noise law would find. No real detector knows that much, so none can be expected
to do better; it tells a weak detector from an impossible target.

It scores every cell of the window by its surprise, −log P(X ≥ x), X negative binomial with the
cell's true mean and the user's gamma shape (both from the generator's public
:func:`~traffic_anomalies_dev.lake.lake_truth`, the same lake the detectors read). Its threshold
is frozen before any evaluation lake is scored: it is set on clean calibration lakes (seeds the
evaluation refuses) to the issue's target false-alarm rate, ``FALSE_PAIRS_TARGET`` false (user,
hour) pairs per clean lake, and the ceiling is then scored like any cell detector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from traffic_anomalies_dev.lake import LakeTruth
from traffic_anomalies_dev.scoring import Detections

FALSE_PAIRS_TARGET = 0.5


def nb_log_tail(x, mu, shape) -> np.ndarray:
    """log P(X >= x) for X negative binomial with mean ``mu`` and gamma shape ``shape`` (arrays)."""
    x = np.asarray(x, dtype=float)
    mu = np.asarray(mu, dtype=float)
    shape = np.asarray(shape, dtype=float)
    q = mu / (shape + mu)
    lgamma = np.vectorize(math.lgamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = (lgamma(x + shape) - lgamma(shape) - lgamma(x + 1)
                   + shape * np.log(shape / (shape + mu)) + x * np.log(np.where(q > 0, q, 1.0)))
        total, term = np.ones_like(x), np.ones_like(x)
        for j in range(4000):  # P(X >= x) = pmf(x) * sum_j prod_{i<j} ratio(x + i)
            term = term * (x + j + shape) / (x + j + 1) * q
            total += term
            if term.max(initial=0.0) < 1e-12 * total.min(initial=1.0):
                break
        tail = np.minimum(log_pmf + np.log(total), 0.0)
    tail = np.where(mu <= 0, np.where(x > 0, -np.inf, 0.0), tail)
    return np.where(x <= 0, 0.0, tail)


def surprise(truth: LakeTruth, window_days: int) -> np.ndarray:
    """−log P(X ≥ x) of every cell of the window (the lake's last ``window_days`` days):
    shape (users, window days, 24); +inf where flows appear with a true mean of 0."""
    first = max(0, len(truth.days) - window_days)
    counts = truth.counts[:, first:, :]
    shape = np.broadcast_to(truth.noise_shape[:, None, None], counts.shape)
    return -nb_log_tail(counts, truth.expected[:, first:, :], shape)


def calibrate(clean_lakes: Sequence[LakeTruth], window_days: int) -> float:
    """The threshold that flags at most ``FALSE_PAIRS_TARGET`` (user, hour) pairs per clean lake."""
    maxima = np.sort(np.concatenate([surprise(t, window_days).max(axis=1).ravel() for t in clean_lakes]))[::-1]
    allowed = int(math.floor(FALSE_PAIRS_TARGET * len(clean_lakes)))
    return float(maxima[allowed]) if allowed < len(maxima) else 0.0


def detections(truth: LakeTruth, window_days: int, threshold: float) -> Detections:
    """The cells whose surprise exceeds ``threshold``, and per hour the most surprising one."""
    scores = surprise(truth, window_days)
    first = len(truth.days) - scores.shape[1]
    flagged = {(truth.users[u], truth.days[first + d], int(h)) for u, d, h in zip(*np.nonzero(scores > threshold))}
    top = set()
    for h in range(24):
        u, d = np.unravel_index(int(np.argmax(scores[:, :, h])), scores[:, :, h].shape)
        if scores[u, d, h] > threshold:
            top.add((truth.users[u], truth.days[first + d], h))
    return Detections("cell", frozenset(flagged), frozenset(top))


def frozen_threshold(make_truth: Callable[[int], LakeTruth], calibration_seeds: Sequence[int],
                     window_days: int) -> float:
    """Calibrate on the clean lakes of ``calibration_seeds`` (``make_truth(seed)``)."""
    return calibrate([make_truth(seed) for seed in calibration_seeds], window_days)
