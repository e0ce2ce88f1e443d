"""The files in deploy/ are honest: no Docker daemon or cluster runs here, so what can be checked is.

- Dockerfile: non-root, slim base, installs with constraints.txt, a HEALTHCHECK on /readyz, and its
  CMD is a real `connhub` command line (run here with --help).
- compose.yaml: every service's command parses as a `connhub` command, every CONNHUB_* variable
  is a real setting, three replicas behind HAProxy, whose configuration `haproxy -c` accepts.
- k8s/: every manifest validates against the Kubernetes schemas (kubernetes-validate, offline,
  strict), with readiness on /readyz, liveness on /health, settings that exist, and secret
  references that the Secret provides.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from connhub.cli import _parser
from connhub.config import Settings, variable_names
from tests.support.haproxy import HAPROXY
from tests.support.reliability import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = {name for field in Settings.model_fields for name in variable_names(field)}


def _dockerfile() -> dict[str, list[str]]:
    """Instructions by keyword, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


def test_the_image_runs_as_a_non_root_user_from_a_slim_base_with_the_pins() -> None:
    image = _dockerfile()
    assert all(base.startswith("python:3.11-slim") for base in image["FROM"])
    assert image["USER"][-1].split(":")[0] not in ("root", "0")
    assert any("-c constraints.txt" in run for run in image["RUN"])
    assert any("constraints.txt" in copy for copy in image["COPY"])


def test_the_image_command_is_a_real_connhub_command_line() -> None:
    command = json.loads(_dockerfile()["CMD"][-1])
    assert command[0] == "connhub"
    _parser().parse_args(command[1:])  # exits (SystemExit) on an unknown option
    executable = Path(sys.executable).with_name(command[0])
    done = subprocess.run([str(executable), *command[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--workers" in done.stdout


def test_the_image_healthcheck_asks_readyz_and_its_code_compiles() -> None:
    (healthcheck,) = _dockerfile()["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")
    assert "/readyz" in command[2]


def test_the_image_environment_names_real_settings() -> None:
    names = set(re.findall(r"\b(CONNHUB_[A-Z_]+)=", " ".join(_dockerfile()["ENV"])))
    assert names and names <= SETTINGS, names - SETTINGS


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_three_replicas_postgresql_redis_and_haproxy() -> None:
    services = _compose()["services"]
    replicas = [name for name, service in services.items() if service.get("command") == ["connhub", "serve"]]
    assert len(replicas) == 3
    assert {"postgres", "redis", "haproxy", "migrate"} <= services.keys()
    haproxy_config = (DEPLOY / "haproxy.cfg").read_text()
    assert all(f"server {name} {name}:8080 check" in haproxy_config for name in replicas)
    assert "balance roundrobin" in haproxy_config and "GET /readyz" in haproxy_config


def test_compose_commands_and_settings_are_real() -> None:
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if command and command[0] == "connhub":
            _parser().parse_args(command[1:])
        names = {key for key in service.get("environment", {}) if key.startswith("CONNHUB_")}
        assert names <= SETTINGS, (name, names - SETTINGS)
    replica = _compose()["services"]["connhub-1"]["environment"]
    assert {"CONNHUB_REDIS_URL", "CONNHUB_ENCRYPTION_KEYS", "CONNHUB_IDEMPOTENCY_KEY"} <= replica.keys()
    assert replica["CONNHUB_DATABASE_URL"].startswith("postgresql://")


def test_haproxy_accepts_the_compose_configuration() -> None:
    require_binary(HAPROXY)
    # init-addr none: the check resolves no name (Docker's DNS does it at run time).
    done = subprocess.run([str(HAPROXY), "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def test_the_manifests_validate_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    kinds = set()
    for manifest in _manifests():
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
        kinds.add(manifest["kind"])
    assert kinds == {"Deployment", "Service", "Job", "Secret"}


def _kind(kind: str) -> dict[str, Any]:
    (found,) = [manifest for manifest in _manifests() if manifest["kind"] == kind]
    return found


def test_the_deployment_probes_readiness_and_liveness_and_names_real_settings() -> None:
    (container,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    _parser().parse_args(container["command"][1:])
    secret = _kind("Secret")
    assert {"CONNHUB_ENCRYPTION_KEYS", "CONNHUB_IDEMPOTENCY_KEY", "CONNHUB_REDIS_URL"} <= secret["stringData"].keys()
    assert secret["stringData"].keys() <= SETTINGS
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == [secret["metadata"]["name"]]
    assert {variable["name"] for variable in container["env"]} <= SETTINGS


def test_the_migrate_job_runs_connhub_migrate_with_the_secret_store_url() -> None:
    job = _kind("Job")["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["command"] == ["connhub", "migrate"]
    (variable,) = container["env"]
    assert variable["name"] == "CONNHUB_DATABASE_URL"
    reference = variable["valueFrom"]["secretKeyRef"]
    assert reference["name"] == _kind("Secret")["metadata"]["name"]
    assert reference["key"] in _kind("Secret")["stringData"]
