"""The operator's files in deploy/ and docker-compose.yml: valid, and naming only metrics
and settings that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import watcher.shared.metrics  # noqa: F401 - registers the metrics
from tests.conftest import ROOT
from watcher.runtime.config import SETTINGS

METRIC = re.compile(r"\bwatcher_[a-z_]+")


def exported_names() -> set[str]:
    names: set[str] = set()
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "info": ["_info"],
    }
    for family in REGISTRY.collect():
        names.add(family.name)
        # Labelled metrics have no samples until a label is used: add what they will export.
        names.update(family.name + suffix for suffix in suffixes.get(family.type, []))
        names.update(sample.name for sample in family.samples)
    return names


def test_alerts_and_dashboard_use_only_metrics_the_watcher_exports() -> None:
    exported = exported_names()
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "watcher-dashboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used, "no watcher metric referenced"
    assert used <= exported, sorted(used - exported)
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "PaymentsNotFulfilled",
        "ChainLagGrowing",
        "ReorgDeeperThanConfirmations",
        "ProvisioningQueueStuck",
    } <= alerts


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {spec.env for spec in SETTINGS.values()}
    for service in compose["services"].values():
        for name in service.get("environment", {}) or {}:
            if name.startswith("WATCHER_"):
                assert name in known, name
    assert {"chain", "postgres", "mosquitto", "moto", "watcher", "prometheus", "grafana"} <= set(
        compose["services"]
    )


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        # Debian's docker-compose v1 validates the file; no Docker engine is needed for that.
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"],
            check=True,
            capture_output=True,
            timeout=600,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
    for extra in (
        {},
        {
            "WATCHER_AWS_ENDPOINT_URL": "",
            "AWS_ACCESS_KEY_ID": "real",
            "AWS_SECRET_ACCESS_KEY": "real",
        },
    ):
        result = subprocess.run(
            ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), **extra},
        )
        assert result.returncode == 0, result.stderr
        resolved = yaml.safe_load(result.stdout)
        endpoint = resolved["services"]["watcher"]["environment"]["WATCHER_AWS_ENDPOINT_URL"]
        assert endpoint == ("" if extra else "http://moto:5000")
