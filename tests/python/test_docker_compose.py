"""docker/compose.yaml (Docker does not run here): the services, ports on 127.0.0.1 only, the
lake mounted read-only at the same path in the database and the runners, and every file the
compose file and the Dockerfile refer to exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from traffic_anomalies import PROJECT_DIR

DOCKER = PROJECT_DIR / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def expand(value: str) -> str:
    """${VAR:-default} → default (the values compose uses when nothing is set)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def volumes(service: dict) -> list[dict]:
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            out.append({"source": parts[0], "target": parts[1], "read_only": parts[2:] == ["ro"]})
        else:
            out.append(volume)
    return out


def test_services(compose):
    services = compose["services"]
    assert {"db", "scheduler", "docs", "nightly"} <= set(services)
    assert services["db"]["image"].startswith("postgres:15")
    # luigid through the CLI, which turns its task history on in the project's database
    command = services["scheduler"]["command"]
    assert command[:3] == ["traffic-anomalies", "scheduler", "serve"]
    assert command[command.index("--address") + 1] == "0.0.0.0"
    assert command[command.index("--dir") + 1] in {v["target"] for v in volumes(services["scheduler"])}
    assert services["docs"]["command"][:2] == ["traffic-anomalies", "docs"]
    assert services["nightly"]["entrypoint"][:2] == ["traffic-anomalies", "nightly"]
    assert services["nightly"].get("restart") == "no", "the nightly container is one-shot"
    for name in ("scheduler", "docs", "nightly"):
        env = services[name]["environment"]
        assert env["PGHOST"] == "db" and env["TA_SCHEMA"]
        assert "db" in services[name]["depends_on"]


def test_every_published_port_is_loopback_only(compose):
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert expand(str(port)).startswith("127.0.0.1:"), (name, port)
    assert published >= 3


def test_lake_is_read_only_at_the_same_path_in_db_and_runners(compose):
    services = compose["services"]
    lake_mounts = {}
    for name in ("db", "nightly", "docs"):
        mounts = [v for v in volumes(services[name]) if "lake" in str(v.get("source", "")).lower()]
        assert len(mounts) == 1, (name, mounts)
        mount = mounts[0]
        assert mount.get("read_only") is True, f"{name} must mount the lake read-only"
        lake_mounts[name] = (expand(str(mount["source"])), mount["target"])
    assert len(set(lake_mounts.values())) == 1, lake_mounts
    lake_path = lake_mounts["nightly"][1]
    entry = services["nightly"]["entrypoint"]
    assert entry[entry.index("--lake") + 1] == lake_path
    assert services["nightly"]["environment"]["TA_LAKE_ROOT"] == lake_path


def test_named_volumes_are_declared_and_referenced_files_exist(compose):
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in volumes(service):
            source = expand(str(volume.get("source", "")))
            if volume.get("type") == "bind" or source.startswith((".", "/")):
                if "lake" not in source:  # the lake is the user's; everything else ships here
                    assert (DOCKER / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == PROJECT_DIR.resolve()
            assert (context / build["dockerfile"]).is_file()


def test_dockerfile_installs_the_locked_project_and_copies_existing_paths():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.M)
    assert re.search(r"pip install -c requirements\.lock (-e )?\.", text)
    assert re.search(r"^USER ", text, flags=re.M), "the image should not run as root"
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        for source in line.split()[:-1]:
            if source.startswith("--"):
                continue
            if "*" in source:
                continue
            assert (PROJECT_DIR / source).exists(), f"COPY source missing: {source}"


def test_greenplum_transform_config_names_the_transforms_the_macros_use():
    from traffic_anomalies.gpfdist import transform_config

    reader = Path("/opt/traffic anomalies/lake_reader.sh")  # a path to quote
    config = yaml.safe_load(transform_config(Path("/srv/lake"), reader))
    assert config["VERSION"] == "1.0.0.1"
    transforms = config["TRANSFORMATIONS"]
    assert set(transforms) == {"ta_lines", "ta_listing", "ta_line_counts"}
    macros = (PROJECT_DIR / "macros" / "lake" / "greenplum_external_sources.sql").read_text()
    for name, spec in transforms.items():
        assert spec["TYPE"] == "input" and spec["CONTENT"] == "data"
        assert spec["COMMAND"].startswith("/bin/sh '/opt/traffic anomalies/lake_reader.sh' ")
        assert spec["COMMAND"].endswith(" %filename%")
        assert f"'{name}'" in macros


def test_gpfdist_reader_prints_the_script_the_transforms_run_and_config_needs_its_path(tmp_path):
    """`gpfdist reader` installs the reader on a host without the project; `config` says where it is."""
    ta = Path(sys.executable).parent / "traffic-anomalies"
    printed = subprocess.run([str(ta), "gpfdist", "reader"], capture_output=True, text=True, check=True).stdout
    assert printed.startswith("#!/bin/sh\n") and "lake_reader_script" in printed
    # it runs: a file outside flows/dt=YYYY-MM-DD/ gives no row, an unknown mode is refused
    script = tmp_path / "lake_reader.sh"
    script.write_text(printed)
    day = tmp_path / "flows" / "dt=2017-03-01"
    day.mkdir(parents=True)
    (day / "part-0.csv").write_text("header\na,b\n")
    lines = subprocess.run(["sh", str(script), "lines", str(day / "part-0.csv")], capture_output=True, text=True)
    assert lines.returncode == 0
    # dt, file, line number, line, read error, then the reader's line check and ten typed columns:
    # the header is left to staging's SQL (no check), a two-field line is plainly the wrong shape
    nulls = "\t\\N" * 10
    assert lines.stdout == (f"2017-03-01\tpart-0.csv\t1\theader\t\\N\t\\N{nulls}\n"
                            f"2017-03-01\tpart-0.csv\t2\ta,b\t\\N\twrong_column_count{nulls}\n")
    other = subprocess.run(["sh", str(script), "lines", str(tmp_path / "part-0.csv")], capture_output=True, text=True)
    assert (other.returncode, other.stdout) == (0, "")
    bad = subprocess.run(["sh", str(script), "rows", str(day / "part-0.csv")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "lake_reader.sh: unknown mode rows\n"
    config = subprocess.run([str(ta), "gpfdist", "config", "--lake", "/srv/lake"], capture_output=True, text=True)
    assert config.returncode == 2
    assert config.stderr.startswith("error: gpfdist config needs --reader PATH") and config.stderr.count("\n") == 1
