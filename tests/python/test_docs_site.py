"""The docs site of a really built project: every node described, and the page renders the
PCA and outlier models with their lineage in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import query
from headless_browser import ARTIFACTS, colour_stats, dump_dom, screenshot, visible_text
from traffic_anomalies import docs, report

PACKAGE = "traffic_anomalies"


@pytest.fixture(scope="module")
def site(sample_built, sample_lake):
    """The project built from the sample lake in a schema of its own (conftest's sample_built,
    shared with the report's tests), and its docs generated."""
    project = sample_built
    lake_root = str(Path(sample_lake.out_dir).resolve())
    target = docs.generate_docs(project.target_path, dbt_vars={"lake_root": lake_root}, env=project.env())
    return project, target


def own_nodes(manifest: dict) -> list[dict]:
    nodes = [*manifest["nodes"].values(), *manifest["sources"].values()]
    return [
        node for node in nodes
        if node["package_name"] == PACKAGE and node["resource_type"] in ("model", "seed", "snapshot", "source")
    ]


def test_every_node_and_column_is_described(site):
    _, target = site
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    missing = []
    for node in own_nodes(manifest):
        uid = node["unique_id"]
        if not node["description"].strip():
            missing.append(uid)
        documented = {name.lower(): column for name, column in node["columns"].items()}
        for name, column in documented.items():
            if not column["description"].strip():
                missing.append(f"{uid}.{name}")
        # columns that exist in the database but are not in any yml
        # every model's and source's columns as the database has them: a docs selection that
        # leaves a node out of the catalog leaves its columns out of the site (the seeds are
        # not loaded in this schema: sample_built is `dbt run`)
        in_catalog = (catalog["sources"] if node["resource_type"] == "source" else catalog["nodes"]).get(uid)
        if in_catalog is None and node["resource_type"] != "seed":
            missing.append(f"{uid} (not in the docs catalog)")
        for name in (in_catalog or {}).get("columns", {}):
            if name.lower() not in documented:
                missing.append(f"{uid}.{name} (undocumented column)")
    for uid, macro in manifest["macros"].items():
        if macro["package_name"] == PACKAGE and not macro["description"].strip():
            missing.append(uid)
    assert not missing, f"{len(missing)} nodes without a description:\n" + "\n".join(missing)


def test_method_doc_blocks_and_overview_are_used(site):
    _, target = site
    manifest = json.loads((target / "manifest.json").read_text())
    doc_names = {doc["name"] for doc in manifest["docs"].values() if doc["package_name"] == PACKAGE}
    expected = {
        "__overview__", "method_lake_and_quarantine", "method_hourly_matrices", "method_pca_per_hour",
        "method_loadings_and_outlier_score", "method_spe_and_q_threshold", "method_madlib_vs_compat",
    }
    assert expected <= doc_names
    used = {name for node in manifest["nodes"].values() for name in node.get("doc_blocks", [])}
    described = " ".join(node["description"] for node in [*manifest["nodes"].values(), *manifest["sources"].values()])
    for name in expected - {"__overview__"}:
        text = manifest["docs"][f"doc.{PACKAGE}.{name}"]["block_contents"].strip()
        assert f"doc.{PACKAGE}.{name}" in used or text[:60] in described, f"doc block {name} is not used by any node"
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    # no exposure for something that does not exist (no dashboard is started or tested)
    assert set(exposures) == {"anomaly_report"}
    for exposure in exposures.values():
        assert exposure["description"].strip() and exposure["depends_on"]["nodes"]
    # the report reads what its exposure says it reads: the report models and their marts
    depends = {uid.rsplit(".", 1)[1] for uid in exposures["anomaly_report"]["depends_on"]["nodes"]}
    assert {"rpt_spikes", "rpt_nights", "rpt_data_quality", "fct_user_spikes"} <= depends
    assert set(report.REQUIRED) <= depends


def test_per_hour_nodes_are_tagged_so_the_lineage_can_hide_them(site):
    _, target = site
    manifest = json.loads((target / "manifest.json").read_text())
    tagged = {node["name"] for node in manifest["nodes"].values() if "pca_hour" in node.get("tags", [])}
    assert tagged == {f"int_pca_hour_{hour:02d}" for hour in range(24)}


def test_report_exposure_link_opens_from_the_served_site(site):
    project, target = site
    run_date = query(f"select max(activity_date)::text from {project.relation('dim_days')}")[0][0]
    report.build_report(run_date, schema=project.schema, output_root=target)
    manifest = json.loads((target / "manifest.json").read_text())
    url = next(e["url"] for e in manifest["exposures"].values() if e["name"] == "anomaly_report")
    assert "://" not in url, "the link must be relative to the docs site"
    server, base = docs.serve_in_thread(target)
    try:
        import urllib.request

        index = urllib.request.urlopen(base + url).read().decode()
        assert f'href="{run_date}/index.html"' in index
        page = urllib.request.urlopen(base + f"report/{run_date}/index.html").read().decode()
        assert "<svg" in page and f"night of {run_date}" in page
        # the exposure's page of the docs shows the link
        text = dump_dom(f"{base}#!/exposure/exposure.{PACKAGE}.anomaly_report")
        assert f'href="{url}"' in text
    finally:
        server.shutdown()
        server.server_close()


def lineage_section(text: str, model: str) -> tuple[str, str]:
    """The 'Referenced By' and 'Depends On' text of a model page."""
    start = text.rfind("Depends On Models")
    assert start >= 0, f"no lineage section on the page of {model}"
    referenced_start = text.rfind("Referenced By", 0, start)
    referenced = text[referenced_start:start] if referenced_start >= 0 else ""
    depends = text[start:].split(" Code ")[0]
    return referenced, depends


@pytest.mark.parametrize(
    "model, upstream, downstream",
    [
        ("int_pca_hour_07", {"int_pca_input", "int_pca_days", "int_pca_users"},
         {"int_pca_hourly_components", "int_pca_hourly_train_summaries"}),
        ("fct_user_outliers_history", {"int_pca_components", "int_pca_users"}, {"dim_runs", "fct_user_outliers"}),
        ("fct_user_outliers", {"fct_user_outliers_history", "dim_runs"}, set()),
    ],
)
def test_site_renders_models_and_lineage_in_chromium(site, model, upstream, downstream):
    _, target = site
    server, url = docs.serve_in_thread(target)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = f"{url}#!/model/model.{PACKAGE}.{model}"
        text = visible_text(dump_dom(page))
        assert model in text
        for name in ("int_pca_input", "int_pca_hour_00", "int_pca_hour_23", "fct_pca_components", "fct_user_outliers"):
            assert name in text, f"{name} missing from the project tree"
        referenced, depends = lineage_section(text, model)
        for name in upstream:
            assert name in depends.split(), f"{model} should depend on {name}: {depends[:300]}"
        for name in downstream:
            assert name in referenced.split(), f"{model} should be referenced by {name}: {referenced[:300]}"
        if model == "fct_user_outliers":
            graph = screenshot(f"{page}?g_v=1", ARTIFACTS / "docs-lineage-fct_user_outliers.png")
            colours, inked = colour_stats(graph)
            assert colours > 20 and inked > 0.2, (colours, inked)
            shot = screenshot(page, ARTIFACTS / "docs-fct_user_outliers.png")
            colours, inked = colour_stats(shot)
            assert colours > 50 and inked > 0.02, (colours, inked)
    finally:
        server.shutdown()
        server.server_close()


def test_server_is_loopback_only_and_lists_no_directories(tmp_path):
    (tmp_path / "index.html").write_text("<html>ok</html>")
    (tmp_path / "sub").mkdir()
    server, url = docs.serve_in_thread(tmp_path)
    try:
        import urllib.error
        import urllib.request

        assert server.server_address[0] == "127.0.0.1"
        assert urllib.request.urlopen(url + "index.html").read() == b"<html>ok</html>"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url + "sub/")
        assert info.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_cli_registers_docs_command():
    import argparse

    parser = argparse.ArgumentParser()
    docs.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["docs", "--port", "8099", "--no-serve"])
    assert args.port == 8099 and args.no_serve and callable(args.func)
    assert parser.parse_args(["docs"]).port == 8080
