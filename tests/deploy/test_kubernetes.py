"""deploy/kubernetes: every manifest validates (strictly: unknown fields are errors) against the
OpenAPI schemas of a pinned Kubernetes version, shipped offline by kubernetes-validate; the
pieces agree with each other, with the image and with the code (probes, the graceful-stop time
budget, the commands the CLI accepts)."""

from __future__ import annotations

import copy
import inspect
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer

from driftline.cli import app
from driftline.store import StoreWriter
from tests.deploy.deploytools import (
    KUBERNETES,
    cron_shell_commands,
    driftline_argv,
    final_env,
    kustomization,
    manifests,
    one,
    parse_command,
    pod_spec,
    stages,
    uvicorn_graceful_seconds,
)

#: The Kubernetes version the manifests are written for and validated against.
KUBERNETES_VERSION = "1.33.0"


def validate(doc: dict[str, Any]) -> str:
    return str(kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True))


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization()["resources"]) == files
    assert kustomization()["kind"] == "Kustomization"
    (image,) = kustomization()["images"]
    used = {
        c["image"]
        for d in manifests()
        if d["kind"] in {"Deployment", "Job", "CronJob"}
        for c in pod_spec(d)["containers"]
    }
    assert used == {image["name"]}


def test_every_manifest_validates_against_the_pinned_kubernetes() -> None:
    kinds = set()
    for doc in manifests():
        assert validate(doc) == KUBERNETES_VERSION.rsplit(".", 1)[0], doc["metadata"]["name"]
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "CronJob",
        "Job",
    } <= kinds


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = one("Deployment")
    misspelt = copy.deepcopy(deployment)
    container = pod_spec(misspelt)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(misspelt)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type)


def test_probes_ports_selectors_and_the_image_agree() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    args = container["args"]
    assert ports["http"] == int(args[args.index("--port") + 1])
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
    service = one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # drains can proceed
    # every pod: the image's non-root user, DRIFTLINE_HOME mounted writable, settings + tokens
    uid = int(stages()[-1].values("USER")[0].split(":")[0])
    home = final_env()["DRIFTLINE_HOME"]
    config = one("ConfigMap")["data"]
    assert config["DRIFTLINE_HOME"] == home
    secret = one("Secret")["stringData"]
    assert {"DRIFTLINE_ADMIN_TOKEN", "DRIFTLINE_LABELS_TOKEN", "DRIFTLINE_READ_TOKEN"} <= set(
        secret
    )
    assert len(secret["DRIFTLINE_ADMIN_TOKEN"]) >= 16
    for doc in manifests():
        if doc["kind"] not in {"Deployment", "Job", "CronJob"}:
            continue
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"]
        for c in pod["containers"]:
            assert home in {m["mountPath"] for m in c["volumeMounts"]}, doc["metadata"]["name"]
            refs = {next(iter(e.values()))["name"] for e in c["envFrom"]}
            assert refs == {one("ConfigMap")["metadata"]["name"], one("Secret")["metadata"]["name"]}


def test_the_graceful_stop_fits_the_termination_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = pod_spec(one("Deployment"))
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = inspect.signature(StoreWriter.stop).parameters["timeout"].default
    needed = float(pre_stop[1]) + uvicorn_graceful_seconds(tmp_path, monkeypatch) + drain
    assert spec["terminationGracePeriodSeconds"] >= needed
    # the readiness probe takes a stopping pod out within the preStop sleep
    ready = container["readinessProbe"]
    assert ready["periodSeconds"] * ready["failureThreshold"] <= float(pre_stop[1])


def test_every_command_parses_with_the_cli() -> None:
    group = typer.main.get_command(app)
    for doc in manifests():
        if doc["kind"] in {"Deployment", "Job"}:
            parse_command(group, pod_spec(doc)["containers"][0]["args"], name="driftline")
    for name, shell in cron_shell_commands().items():
        assert pod_spec(one("CronJob", name))["containers"][0]["command"] == ["sh", "-c"]
        parse_command(group, driftline_argv(shell), name="driftline")
    assert {tuple(driftline_argv(s)[:2]) for s in cron_shell_commands().values()} == {
        ("check", "--window"),
        ("rollout", "step"),
        ("retrain", "--if-triggered"),
    }
    # the CronJobs stand in for the in-process scheduler, which the API pods turn off
    assert one("ConfigMap")["data"]["DRIFTLINE_SCHEDULER"] == "false"
    assert one("Job")["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


@pytest.mark.parametrize(
    ("cronjob", "exit_codes"),
    [
        # check: 0 ok, 1 error, 2 warning, 3 critical -> only an error fails the Job
        ("driftline-check", {0: 0, 1: 1, 2: 0, 3: 0}),
        # retrain: 0 passed, 1 error, 2 not triggered, 3 rejected by the gate
        ("driftline-retrain", {0: 0, 1: 1, 2: 0, 3: 0}),
        ("driftline-rollout-step", {0: 0, 1: 1}),
    ],
)
def test_cronjob_shell_maps_findings_to_success(
    cronjob: str, exit_codes: dict[int, int], tmp_path: Path
) -> None:
    """The `sh -c` snippets run with a stand-in `driftline` that exits with each code."""
    stub = tmp_path / "driftline"
    stub.write_text('#!/bin/sh\nexit "$STUB_EXIT"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    shell = cron_shell_commands()[cronjob]
    for code, expected in exit_codes.items():
        env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
        env["STUB_EXIT"] = str(code)
        result = subprocess.run(["sh", "-c", shell], env=env, timeout=30, check=False)
        assert result.returncode == expected, (cronjob, code)
