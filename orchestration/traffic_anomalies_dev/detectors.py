"""What each detector flagged in one built schema, as cells or pairs (see scoring).

* ``residual_spike``    fct_user_spikes: cells whose exact tail surprise exceeds the night's
                        threshold for var spike_false_alarms false cells (cell grain);
* ``whole_day``         int_user_day_scores: every hour with flows of the (user, day) pairs whose
                        whole-day count is anomalous against the user's other days (cell grain;
                        the day is the finding, its hours are what the truth labels);
* ``content``           int_cell_content_scores: the cells whose content features (big flows to
                        new hosts, ports of one host, new hosts on one port) exceed the night's
                        threshold for var content_false_alarms (cell grain);
* ``incidents``         fct_incidents: every hour of every incident, i.e. the cells any of the
                        detectors above flagged (cell grain);
* ``published``         fct_user_outliers, method published: positive loadings > 0.1 on a kept
                        component, as first published (pair grain: one PCA per hour, no day);
* ``absolute_loading``  fct_user_outliers, method absolute_loading (pair grain);
* ``spe_top_user``      fct_day_anomalies: the top contributor of every anomalous (hour, day)
                        (cell grain);
* ``zscore_gt_5``, ``zscore_gt_10``  a reference, not a detector of the project: the cells whose
                        count is more than 5 (10) of the user's own standard deviations (over the
                        other days of the window in that hour, floored at 1 flow) above the mean
                        of those days. It shows how often normal traffic alone holds such
                        deviations. Computed here with numpy from the pipeline's own hourly
                        counts (int_pca_input), not in the project's SQL: it is a yardstick of
                        the evaluation, not something the nightly run should publish.
"""

from __future__ import annotations

import numpy as np

from traffic_anomalies_dev.scoring import Detections, Window

GRAINS: dict[str, str] = {
    "residual_spike": "cell",
    "whole_day": "cell",
    "content": "cell",
    "incidents": "cell",
    "published": "pair",
    "absolute_loading": "pair",
    "spe_top_user": "cell",
    "zscore_gt_5": "cell",
    "zscore_gt_10": "cell",
}
ZSCORE_LIMITS = {"zscore_gt_5": 5.0, "zscore_gt_10": 10.0}


def _connect():
    import psycopg2

    conn = psycopg2.connect("")  # libpq reads the PG* variables
    conn.autocommit = True
    return conn


def rows(sql: str) -> list[tuple]:
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def zscores(counts: np.ndarray) -> np.ndarray:
    """(users, days, 24) counts -> each cell's z against the same user and hour on the other days."""
    n = counts.shape[1]
    s1 = counts.sum(axis=1, keepdims=True)
    s2 = (counts * counts).sum(axis=1, keepdims=True)
    mean = (s1 - counts) / (n - 1)
    var = np.maximum((s2 - counts * counts) / (n - 1) - mean * mean, 0.0)
    return (counts - mean) / np.maximum(np.sqrt(var), 1.0)


def _cells_and_first(scored: list[tuple[str, str, int, float]]) -> tuple[frozenset, frozenset]:
    best: dict[int, tuple[float, tuple[str, str, int]]] = {}
    for user, day, hour, value in scored:
        if hour not in best or value > best[hour][0]:
            best[hour] = (value, (user, day, hour))
    return frozenset((u, d, h) for u, d, h, _ in scored), frozenset(cell for _, cell in best.values())


def read(schema: str) -> tuple[dict[str, Detections], Window]:
    """Every detector's detections in ``schema``, and the window they were looked for in."""
    days = {i: str(d) for i, d in rows(f'select day_index, activity_date from "{schema}".dim_days')}
    users = {i: u for i, u in rows(f'select user_index, user_name from "{schema}".dim_users')}
    window = Window(users=len(users), days=len(days))
    found: dict[str, Detections] = {}
    for method in ("published", "absolute_loading"):
        flagged = rows(f"select user_name, hour_of_day, rank_in_hour from \"{schema}\".fct_user_outliers "
                       f"where method = '{method}'")
        found[method] = Detections("pair", frozenset((u, h) for u, h, _ in flagged),
                                   frozenset((u, h) for u, h, r in flagged if r == 1))
    spikes = rows(f'select user_name, activity_date, hour_of_day, spike_score from "{schema}".fct_user_spikes')
    found["residual_spike"] = Detections("cell", *_cells_and_first([(u, str(d), h, s) for u, d, h, s in spikes]))
    woken = rows(f'select users.user_name, days.activity_date, cells.hour_of_day, scores.day_surprise '
                 f'from "{schema}".int_user_day_scores as scores '
                 f'join "{schema}".int_pca_users as users on users.user_index = scores.user_index '
                 f'join "{schema}".int_pca_days as days on days.day_index = scores.day_index '
                 f'join "{schema}".int_pca_input as cells '
                 f'on cells.col_id = scores.user_index and cells.row_id = scores.day_index and cells.value > 0 '
                 f'where scores.is_anomalous')
    found["whole_day"] = Detections("cell", *_cells_and_first([(u, str(d), h, s) for u, d, h, s in woken]))
    content = rows(f'select users.user_name, days.activity_date, scores.hour_of_day, max(scores.surprise) '
                   f'from "{schema}".int_cell_content_scores as scores '
                   f'join "{schema}".int_pca_users as users on users.user_index = scores.user_index '
                   f'join "{schema}".int_pca_days as days on days.day_index = scores.day_index '
                   f'where scores.is_flagged group by 1, 2, 3')
    found["content"] = Detections("cell", *_cells_and_first([(u, str(d), h, s) for u, d, h, s in content]))
    incidents = rows(f'select user_name, activity_date, unnest(hours), score from "{schema}".fct_incidents')
    found["incidents"] = Detections("cell", *_cells_and_first([(u, str(d), h, s) for u, d, h, s in incidents]))
    tops = rows(f'select top_user_name, activity_date, hour_of_day, spe_ratio from "{schema}".fct_day_anomalies '
                f"where is_anomalous and top_user_name is not null")
    found["spe_top_user"] = Detections("cell", *_cells_and_first([(u, str(d), h, r) for u, d, h, r in tops]))
    user_pos = {i: k for k, i in enumerate(sorted(users))}
    day_pos = {i: k for k, i in enumerate(sorted(days))}
    counts = np.zeros((len(users), len(days), 24))
    for hour, day, user, value in rows(f'select hour_of_day, row_id, col_id, value from "{schema}".int_pca_input'):
        counts[user_pos[user], day_pos[day], hour] = value
    z = zscores(counts) if len(days) > 1 else np.zeros_like(counts)
    user_names, day_names = [users[i] for i in sorted(users)], [days[i] for i in sorted(days)]
    for name, limit in ZSCORE_LIMITS.items():
        scored = [(user_names[u], day_names[d], int(h), float(z[u, d, h])) for u, d, h in zip(*np.nonzero(z > limit))]
        found[name] = Detections("cell", *_cells_and_first(scored))
    return found, window
