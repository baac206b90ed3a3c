"""The models' dbt unit tests (fixed inputs, expected rows). The nightly's steps leave them out
(selectors.yml): they test the SQL, not the night's data, so they run here, in make test."""

from __future__ import annotations

import re
from pathlib import Path


def test_every_unit_test_passes(sample_built, sample_lake) -> None:
    lake_root = str(Path(sample_lake.out_dir).resolve())
    listed = sample_built.run("ls", "--resource-type", "unit_test", "--output", "name", "--quiet",
                              vars={"lake_root": lake_root})
    names = {line for line in listed.stdout.splitlines() if re.fullmatch(r"\w+", line)}  # not dbt's warnings
    assert len(names) >= 10, listed.stdout  # the models' yml files declare them
    ran = sample_built.run("test", "--select", "test_type:unit", vars={"lake_root": lake_root}, check=False)
    results = {r["unique_id"].split(".")[-1]: r["status"] for r in sample_built.run_results()["results"]
               if r["unique_id"].startswith("unit_test.")}
    assert results == {name: "pass" for name in names}, ran.stdout[-4000:]
    assert ran.returncode == 0, ran.stdout[-4000:]
