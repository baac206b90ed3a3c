"""The SPE and its Jackson–Mudholkar limit, recomputed independently with numpy.

After a real build on a generated lake, every hour's matrix is rebuilt from int_pca_input,
decomposed with numpy (full SVD: every eigenvalue, no Gram traces), and the limit and each
day's SPE are recomputed from the textbook formulas with Python's own normal quantile; they
must agree with int_pca_spe_limits and fct_day_anomalies to 1e-8 (relative).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from conftest import query

REL = 1e-8
CONFIDENCE = 0.999  # var spe_confidence, default
H0_FLOOR = 0.001  # macro spe_h0_floor


@pytest.fixture(scope="module")
def built(sample_built):
    """conftest's shared build of the whole project on the sample lake (read only)."""
    return sample_built


def hour_matrix(project, hour: int) -> np.ndarray:
    n = query(f"select count(*) from {project.relation('dim_days')}")[0][0]
    p = query(f"select count(*) from {project.relation('dim_users')}")[0][0]
    matrix = np.zeros((n, p))
    for row_id, col_id, value in query(
        f"select row_id, col_id, value from {project.relation('int_pca_input')} where hour_of_day = %s", (hour,)
    ):
        matrix[row_id - 1, col_id - 1] = value
    return matrix


def jackson_mudholkar(outside: np.ndarray, confidence: float) -> float:
    theta1, theta2, theta3 = (float(np.sum(outside**m)) for m in (1, 2, 3))
    h0 = max(1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2), H0_FLOOR)
    c = NormalDist().inv_cdf(confidence)
    bracket = c * math.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0 + theta2 * h0 * (h0 - 1.0) / theta1**2
    return theta1 * bracket ** (1.0 / h0)


def test_limit_and_spe_match_numpy(built):
    project = built
    limits = {
        row[0]: row[1:]
        for row in query(
            f"select hour_of_day, normal_components, theta_1, theta_2, theta_3, spe_threshold "
            f"from {project.relation('int_pca_spe_limits')}"
        )
    }
    assert sorted(limits) == list(range(24))
    spe_rows = query(f"select hour_of_day, day_index, spe, spe_threshold from {project.relation('fct_day_anomalies')}")
    spe_by_hour: dict[int, dict[int, tuple[float, float | None]]] = {}
    for hour, day, spe, threshold in spe_rows:
        spe_by_hour.setdefault(hour, {})[day] = (spe, threshold)
    checked = 0
    for hour in range(24):
        matrix = hour_matrix(project, hour)
        n = matrix.shape[0]
        centred = matrix - matrix.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        eigenvalues = singular**2 / (n - 1)
        k, theta1, theta2, theta3, threshold = limits[hour]
        outside = eigenvalues[k:]
        scale = float(eigenvalues.sum())
        assert theta1 == pytest.approx(float(outside.sum()), rel=REL, abs=1e-9 * scale)
        assert theta2 == pytest.approx(float(np.sum(outside**2)), rel=REL, abs=1e-9 * scale**2)
        assert theta3 == pytest.approx(float(np.sum(outside**3)), rel=REL, abs=1e-9 * scale**3)
        if outside.sum() <= 1e-12 * scale:
            assert threshold is None
            continue
        assert threshold == pytest.approx(jackson_mudholkar(outside, CONFIDENCE), rel=REL)
        # SPE: squared distance of each centred day to the span of the k leading components
        basis = vt[:k].T
        residual = centred - centred @ basis @ basis.T
        expected_spe = np.sum(residual**2, axis=1)
        days = spe_by_hour[hour]
        assert sorted(days) == list(range(1, n + 1))
        for day in range(1, n + 1):
            spe, day_threshold = days[day]
            assert spe == pytest.approx(float(expected_spe[day - 1]), rel=REL, abs=1e-9 * scale)
            assert day_threshold == pytest.approx(threshold, rel=1e-12)
        checked += 1
    assert checked >= 20, "most hours should have a limit"


def test_anomalous_days_are_those_above_the_limit(built):
    project = built
    wrong = query(
        f"select count(*) from {project.relation('fct_day_anomalies')} "
        f"where is_anomalous is distinct from coalesce(spe > spe_threshold, false)"
    )[0][0]
    assert wrong == 0
