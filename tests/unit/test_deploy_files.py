"""The one-command deployment is well formed: deploy/compose.yaml against the Compose
specification's JSON schema (vendored and kept current by check-jsonschema), the Kubernetes
manifests against the Kubernetes API's schemas (kubernetes-validate, strict: unknown fields
are errors), and the wiring between them and the Dockerfile (Docker itself cannot run here;
tests/unit/test_deploy_runtime.py runs the image's command)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes release still supported upstream when this was written, and the
# newest kubernetes-validate knows: the manifests use no API removed or added in between.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes.latest_version())
REPLICAS = ("gatekeeper-1", "gatekeeper-2")


# -- the Dockerfile ----------------------------------------------------------------------------


@dataclass
class Dockerfile:
    """The final stage of the Dockerfile, as far as running it is concerned."""

    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)  # COPY sources from the build context

    @property
    def command(self) -> list[str]:
        return self.entrypoint + self.cmd


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def read_dockerfile(path: Path = ROOT / "Dockerfile") -> Dockerfile:
    stage = Dockerfile()
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "FROM":
            copied = stage.copied
            stage = Dockerfile(base=rest.split()[0], copied=copied)
        elif keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                stage.env[key] = value
        elif keyword == "USER":
            stage.user = rest
        elif keyword == "WORKDIR":
            stage.workdir = rest
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = json.loads(rest)
        elif keyword == "CMD":
            stage.cmd = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            stage.healthcheck = json.loads(rest.split(" CMD ", 1)[1])
        elif keyword == "COPY" and not rest.startswith("--from"):
            stage.copied += rest.split()[:-1]
    return stage


def test_image_is_slim_non_root_with_a_healthcheck() -> None:
    image = read_dockerfile()
    assert image.base.startswith("python:3.11-slim")
    user, _, group = image.user.partition(":")
    assert user.isdigit(), "a user by number"
    assert int(user) >= 1000, "a non-root user"
    assert group.isdigit()
    assert int(group) >= 1000
    assert image.command == ["gatekeeper", "serve"]
    assert "/healthz" in " ".join(image.healthcheck)
    assert image.env["GATEKEEPER_PROXY__HOST"] == image.env["GATEKEEPER_ADMIN__HOST"] == "0.0.0.0"
    # The Kubernetes pods run as the image's user.
    deployment = _manifests()["Deployment"]
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (user, group)


def test_image_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = read_dockerfile().copied
    assert {"pyproject.toml", "gatekeeper", "sql", "config"} <= set(copied)
    # pip builds the package with the in-tree backend: its folder and setup.py go in too
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    assert {*build_system["backend-path"], "setup.py"} <= set(copied)
    # and so does the sdist (setup.py goes in by itself)
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    for folder in build_system["backend-path"]:
        assert f"graft {folder}" in manifest, folder
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch(source, pattern) for pattern in ignored), source
    for heavy in (".venv", ".git", "tests", "var"):
        assert heavy in ignored


# -- deploy/compose.yaml -----------------------------------------------------------------------


COMPOSE_SCHEMA = ("--builtin-schema", "vendor.compose-spec")


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *COMPOSE_SCHEMA, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    result = _check_compose(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator does reject a malformed service (an unknown key, a port of the wrong type).
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  gatekeeper:\n    image: 1\n    replica: 2\n")
    rejected = _check_compose(broken)
    assert rejected.returncode == 1
    assert "replica" in rejected.stdout


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_two_replicas_after_the_migration_behind_the_balancer() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    image = services["migrate"]["image"]
    for name in REPLICAS:
        replica = services[name]
        assert replica["image"] == image
        assert "command" not in replica, "the image's own command: gatekeeper serve"
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "ports" not in replica, "bots and operators go through the balancer"
        environment = replica["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://")
        assert environment["REDIS_URL"].startswith("redis://")
    balancer = services["load-balancer"]
    assert balancer["ports"] == ["127.0.0.1:8080:8080", "127.0.0.1:8081:8081"]
    config = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    for name in REPLICAS:
        # Bot traffic only to a replica whose /readyz says it can decide orders.
        assert f"server {name} {name}:8080 check port 8081" in config
        assert f"server {name} {name}:8081 check" in config
    assert "http-check send meth GET uri /readyz" in config
    # A retry only when no connection could be opened: never a resent order.
    assert "retry-on" not in config
    # Every published port is on the loopback interface only.
    for service in services.values():
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", ()))


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a service: container path -> file or folder under deploy/."""
    mounts = {}
    for volume in service.get("volumes", ()):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = DEPLOY / source
    return mounts


def test_compose_prometheus_scrapes_both_replicas_with_the_alert_rules() -> None:
    prometheus = _compose()["services"]["prometheus"]
    mounts = _mounts(prometheus)
    folder = mounts["/etc/prometheus"]
    config_flag = "--config.file=/etc/prometheus/prometheus.yml"
    assert config_flag in prometheus["command"]
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert (folder / "alerts.yml").is_file()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gatekeeper"  # alerts.yml: up{job="gatekeeper"}
    assert 'job="gatekeeper"' in (folder / "alerts.yml").read_text()
    assert job["metrics_path"] == "/metrics"
    (targets,) = job["static_configs"]
    assert targets["targets"] == [f"{name}:8081" for name in REPLICAS]


def test_compose_grafana_provisions_the_data_source_and_both_dashboards() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "gatekeeper.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {
        target: source for target, source in mounts.items() if target.startswith(folder + "/")
    }
    assert {source.name for source in dashboards.values()} == {
        "gatekeeper.json",
        "gatekeeper-accounts.json",
    }
    uids = set()
    for source in dashboards.values():
        dashboard = json.loads(source.read_text())
        uids.add(dashboard["uid"])
        # Each follows the provisioned (default) Prometheus through its datasource variable.
        (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert variable["query"] == "prometheus"
    assert len(uids) == 2
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in dashboards


def test_compose_mounts_only_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target})"


# -- deploy/kubernetes/ ------------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [KUBERNETES / name for name in kustomization["resources"]]


def _manifests() -> dict[str, Any]:
    """kind -> manifest (the Services under "Service:<name>")."""
    found: dict[str, Any] = {}
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            key = document["kind"]
            if key == "Service":
                key = f"Service:{document['metadata']['name']}"
            found[key] = document
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_follow_the_api_schemas(version: str) -> None:
    listed = {path.name for path in _manifest_files()}
    on_disk = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every manifest is applied by kubectl apply -k"
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            kubernetes.validate(document, version, strict=True)
    # Strict: a misspelt field is an error, not silently dropped by the API server.
    deployment = _manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes.ValidationError):
        kubernetes.validate(deployment, version, strict=True)


def test_kubernetes_deployment_probes_secrets_and_budget() -> None:
    manifests = _manifests()
    pod = manifests["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"proxy": 8080, "admin": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["args"] == ["serve"]
    # Settings from the ConfigMap, secrets from the Secret (created by the operator).
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
    secrets = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert {"DATABASE_URL", "REDIS_URL"} <= set(secrets)
    readme = (KUBERNETES / "README.md").read_text()
    for reference in secrets.values():
        assert f"--from-literal={reference['key']}=" in readme
        assert f"kubectl create secret generic {reference['name']}" in readme
    # The migration Job: `gatekeeper migrate` as the owner role.
    job = manifests["Job"]["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    assert migrate["args"] == ["migrate"]
    (owner,) = [item for item in migrate["env"] if item["name"] == "DATABASE_URL"]
    assert owner["valueFrom"]["secretKeyRef"]["key"] == "database-owner-url"
    assert f"--from-literal={owner['valueFrom']['secretKeyRef']['key']}=" in readme
    # The budget and both Services select the Deployment's pods.
    labels = pod["metadata"]["labels"]
    budget = manifests["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert manifests["Deployment"]["spec"]["replicas"] > budget["maxUnavailable"]
    for name, port in (("gatekeeper", "proxy"), ("gatekeeper-admin", "admin")):
        service = manifests[f"Service:{name}"]["spec"]
        assert service["selector"].items() <= labels.items()
        assert [item["targetPort"] for item in service["ports"]] == [port]


# -- README ------------------------------------------------------------------------------------


def test_readme_monitoring_section_walks_from_clone_to_dashboards() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    assert "docker compose -f deploy/compose.yaml up -d --build" in section
    services = _compose()["services"]
    published = {
        port.split(":")[1] for service in services.values() for port in service.get("ports", ())
    }
    for port in published:
        assert f"http://127.0.0.1:{port}" in section, port
    for file in ("gatekeeper.json", "gatekeeper-accounts.json"):
        title = json.loads((DEPLOY / "grafana" / file).read_text())["title"]
        assert f"**{title}**" in section
    # The commands it gives run in a service that exists, with subcommands that exist.
    for service, command in re.findall(r"exec (\S+) gatekeeper (\w+)", section):
        assert service in services
        assert command in {"users", "protections", "stop"}
    assert "deploy/kubernetes/README.md" in section
