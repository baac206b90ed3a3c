"""traffic_anomalies: in-database detection of anomalous users in network-traffic logs."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: dbt_project.yml, profiles.yml and luigi.cfg live there.
PROJECT_DIR = Path(__file__).resolve().parents[2]
