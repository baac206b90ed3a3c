"""Every table a build writes carries planner statistics before the next model reads it.

A table created a moment earlier has none until autovacuum gets to it, and the planner's
defaults (a few rows, a filter keeping 0.5 % of them) once planned int_cell_content_features
with nested loops over the whole window's flows: on the demo lake it ran for more than a
quarter of an hour instead of three seconds. The post-hook analyze_built_table analyzes each
table and incremental model as soon as it is written; `last_analyze` is set by an explicit
ANALYZE only (autovacuum's own goes to `last_autoanalyze`).
"""

from __future__ import annotations

import json

from conftest import query


def test_every_table_and_incremental_model_is_analyzed_by_its_build(sample_built) -> None:
    manifest = json.loads((sample_built.target_path / "manifest.json").read_text())
    tables = sorted(
        node["alias"] for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] in ("table", "incremental")
    )
    assert len(tables) > 20, tables  # the staging shards, the intermediates, the history and report tables
    analyzed = dict(query(
        "select relname, last_analyze is not null from pg_stat_user_tables where schemaname = %s",
        (sample_built.schema,),
    ))
    missing = [name for name in tables if name not in analyzed]
    assert not missing, f"built tables not found in {sample_built.schema}: {missing}"
    unanalyzed = [name for name in tables if not analyzed[name]]
    assert not unanalyzed, f"tables without statistics from their build: {unanalyzed}"
