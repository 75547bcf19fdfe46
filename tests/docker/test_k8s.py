"""Kubernetes manifests (docker/k8s): valid for a named Kubernetes release, commands the CLI takes.

No cluster runs here. What is checked: every manifest against the Kubernetes schemas of
KUBERNETES_VERSION in strict mode (kubernetes-validate, offline); the kustomization rendered by
kubectl's own kustomize; every hpsearch command line in it parsed by the real CLI after
Kubernetes' $(VAR) expansion; the properties the design depends on; and the database-wait
script and the init containers' `hpsearch create` run for real.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import kubernetes_validate  # a test dependency: missing, this module fails (never a skip)
import optuna
import pytest
import yaml

from hpsearch.cli import main
from processes import hpsearch, postgres_url, sleepy_study, wait_until
from repo import REPO

# Every field used is GA in 1.31 (podFailurePolicy was the last); kubernetes-validate bundles
# the schemas of each release, so this needs no network.
KUBERNETES_VERSION = "1.31"

K8S = REPO / "docker" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
DATA_LOADER = K8S / "data-loader.yaml"  # applied once by hand, outside the kustomization
WAIT_SCRIPT = K8S / "wait_for_database.py"
DOCKERFILE = REPO / "docker" / "Dockerfile"
GUIDE = REPO / "docs" / "kubernetes.md"
DOCS = [GUIDE, REPO / "README.md"]
SECRET = "hpsearch-storage"
SECRET_KEYS = {"url", "postgres-password"}
IMAGE = "hpsearch"  # the name kustomization.yaml's images: entry rewrites
# Kinds that run pods -> the keys leading to their pod template.
POD_KINDS: dict[str, tuple[str, ...]] = {
    "Job": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "Pod": (),
}
VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# Where a pod of an Indexed Job finds its completion index (Kubernetes' downward API).
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

Doc = dict[str, Any]


# ------------------------------------------------------------------ reading the manifests


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest in docker/k8s (the kustomization itself is not one)."""
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


@functools.cache
def documents(path: Path) -> tuple[Doc, ...]:
    """The YAML documents of one file."""
    docs = tuple(d for d in yaml.safe_load_all(path.read_text()) if d)
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def resources() -> list[tuple[Path, Doc]]:
    """(file, resource) for every resource in docker/k8s."""
    return [(path, doc) for path in manifest_files() for doc in documents(path)]


def resource(kind: str, name: str) -> Doc:
    """The one resource of this kind and name."""
    found = [d for _, d in resources() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kustomization() -> Doc:
    """kustomization.yaml as written."""
    doc = yaml.safe_load(KUSTOMIZATION.read_text())
    assert isinstance(doc, dict)
    return doc


def generated_literals(name: str) -> dict[str, str]:
    """The key=value literals of one configMapGenerator entry."""
    entries = [g for g in kustomization()["configMapGenerator"] if g["name"] == name]
    assert len(entries) == 1, name
    return dict(str(item).split("=", 1) for item in entries[0].get("literals", []))


def template(doc: Doc) -> Doc:
    """The pod (metadata and spec) a workload resource runs."""
    for key in POD_KINDS[doc["kind"]]:
        doc = doc[key]
    return doc


def pods() -> list[tuple[str, Doc]]:
    """(kind/name, pod template) of every resource that runs pods."""
    return [
        (f"{d['kind']}/{d['metadata']['name']}", template(d))
        for _, d in resources()
        if d["kind"] in POD_KINDS
    ]


def all_containers(pod: Doc) -> list[Doc]:
    """Init containers, then containers."""
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(pod: Doc, name: str) -> Doc:
    """One container of a pod, init containers included."""
    found = [c for c in all_containers(pod) if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def env_value(item: Doc) -> str:
    """A container's env entry as the test sees it; secrets never reach a command line."""
    if "value" in item:
        return str(item["value"])
    source = item["valueFrom"]
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return generated_literals(ref["name"])[ref["key"]]
    if "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == INDEX_ANNOTATION, source
        return "0"
    assert "secretKeyRef" in source, source
    return "<secret>"


def environment(c: Doc) -> dict[str, str]:
    """name -> value of a container's env (envFrom is not used, so nothing hides there)."""
    assert "envFrom" not in c, c["name"]
    return {item["name"]: env_value(item) for item in c.get("env", [])}


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command and args; an unknown name would stay literal."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in env, f"$({name}) is not an env variable of the container"
        assert env[name] != "<secret>", f"$({name}) puts a secret on the command line"
        return env[name]

    return VAR.sub(one, text)


def uses_image(c: Doc) -> bool:
    """True for a container of the hpsearch image (its entrypoint is `hpsearch`)."""
    return str(c["image"]).split(":")[0] == IMAGE


def runs_hpsearch(c: Doc) -> bool:
    """True for a container whose program is hpsearch (the image's entrypoint, or named)."""
    command = c.get("command", ["hpsearch"])
    return uses_image(c) and Path(str(command[0])).name == "hpsearch"


def hpsearch_argv(c: Doc) -> list[str]:
    """The arguments hpsearch gets in a container, after Kubernetes' $(VAR) expansion."""
    assert runs_hpsearch(c), c["name"]
    env = environment(c)
    return [expand(str(a), env) for a in [*c.get("command", ["hpsearch"])[1:], *c.get("args", [])]]


def hpsearch_containers() -> list[tuple[str, str]]:
    """(pod, container) of every container that runs hpsearch."""
    return [
        (pod_name, c["name"])
        for pod_name, pod in pods()
        for c in all_containers(pod)
        if runs_hpsearch(c)
    ]


def parse(argv: list[str]) -> click.Context:
    """Parse a command line with the real CLI down to the subcommand's options; run nothing."""
    ctx = main.make_context("hpsearch", list(argv))
    name, command, rest = main.resolve_command(ctx, list(argv))
    assert name is not None and command is not None, argv
    return command.make_context(name, rest, parent=ctx)


def option(argv: list[str], name: str) -> str:
    """The value given to one option."""
    assert argv.count(name) == 1, f"{name} in {argv}"
    return argv[argv.index(name) + 1]


UNITS = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: object) -> float:
    """A Kubernetes quantity (4, "250m", "16Gi") as a number."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in UNITS, value
    return float(match.group(1)) * UNITS[match.group(2)]


def volume(pod: Doc, name: str) -> Doc:
    """One volume of a pod."""
    found = [v for v in pod["spec"].get("volumes", []) if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def mounts(c: Doc) -> dict[str, Doc]:
    """mountPath -> volumeMount of a container."""
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


WORKERS = "Job/hpsearch-workers"
RENDERED = [  # what `kubectl apply -k docker/k8s` creates
    "ConfigMap/hpsearch-scripts",
    "ConfigMap/hpsearch-study",
    "Deployment/hpsearch-dashboard",
    "Job/hpsearch-workers",
    "PersistentVolumeClaim/hpsearch-artifacts",
    "Service/hpsearch-dashboard",
    "Service/postgres",
    "StatefulSet/postgres",
]
DASHBOARD = "Deployment/hpsearch-dashboard"


def pod_of(name: str) -> Doc:
    """The pod template of one workload, by kind/name."""
    return dict(pods())[name]


# ------------------------------------------------------------------ validation by the real tool


@pytest.mark.parametrize(
    "doc",
    [d for _, d in resources()],
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in resources()],
)
def test_every_manifest_is_valid_for_the_named_kubernetes_release(doc: Doc) -> None:
    """Strict: an unknown or misplaced field fails, as does a missing schema."""
    checked = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert checked == KUBERNETES_VERSION


def test_the_validator_rejects_broken_manifests() -> None:
    job = resource("Job", "hpsearch-workers")
    typo = copy.deepcopy(job)
    typo["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # not "resources"
    kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=False)  # lax mode lets it by
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["parallelism"] = "four"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSION, strict=True)
    unknown_kind = {**copy.deepcopy(job), "kind": "Jobb"}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(unknown_kind, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_data_loader() -> None:
    kust = kustomization()
    listed = {K8S / r for r in kust["resources"]}
    assert listed == set(manifest_files()) - {DATA_LOADER}
    for generator in kust["configMapGenerator"]:
        for file in generator.get("files", []):
            assert (K8S / file).is_file(), file
    # Fixed ConfigMap names: the pods refer to them by these names.
    assert kust["generatorOptions"]["disableNameSuffixHash"] is True
    assert set(generated_literals("hpsearch-study")) == {"study", "trials"}


def test_every_image_is_pinned_and_the_hpsearch_image_is_set_in_one_place() -> None:
    images = {c["image"] for _, pod in pods() for c in all_containers(pod)}
    assert all(":" in image and not image.endswith(":latest") for image in images), images
    assert f"{IMAGE}:local" in images  # what docker/Dockerfile's build command tags
    assert [i["name"] for i in kustomization()["images"]] == [IMAGE]
    # Its entrypoint is hpsearch, so a container with args only runs hpsearch.
    assert re.search(r'^ENTRYPOINT \["hpsearch"\]$', DOCKERFILE.read_text(), re.M)


@pytest.mark.slow
def test_kustomize_renders_what_the_docs_apply_and_the_image_can_be_set(tmp_path: Path) -> None:
    """`kubectl kustomize` (kubectl's own kustomize, offline) renders valid resources."""
    rendered = kustomize(K8S)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    assert kinds == sorted(RENDERED)
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    scripts = next(d for d in rendered if d["metadata"]["name"] == "hpsearch-scripts")
    assert scripts["data"] == {WAIT_SCRIPT.name: WAIT_SCRIPT.read_text()}
    # The image, set as docs/kubernetes.md says, reaches every hpsearch container.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(K8S, overlay)}]\n"
        "images: [{name: hpsearch, newName: registry.example.com/hpsearch, newTag: v1}]\n"
    )
    images = {
        c["image"]
        for d in kustomize(overlay)
        if d["kind"] in POD_KINDS
        for c in all_containers(template(d))
    }
    assert images == {"registry.example.com/hpsearch:v1", "postgres:17"}


def kustomize(folder: Path) -> list[Doc]:
    """`kubectl kustomize FOLDER` where kubectl is installed (this project's machines have it).

    kubernetes-validate, which CI requires, checks each file; this also checks the rendered set.
    HPSEARCH_REQUIRE_KUBECTL=1 makes a missing kubectl a failure.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("HPSEARCH_REQUIRE_KUBECTL") == "1":
            pytest.fail("HPSEARCH_REQUIRE_KUBECTL=1 but kubectl is not on PATH")
        pytest.skip("kubectl is not on PATH")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


# ------------------------------------------------------------------ the hpsearch command lines

COMMANDS = hpsearch_containers()


@pytest.mark.parametrize(("pod_name", "name"), COMMANDS, ids=[f"{p}:{n}" for p, n in COMMANDS])
def test_every_hpsearch_command_is_one_the_cli_accepts(pod_name: str, name: str) -> None:
    argv = hpsearch_argv(container(pod_of(pod_name), name))
    try:
        parse(argv)
    except click.UsageError as exc:
        pytest.fail(f"{pod_name} {name}: hpsearch {shlex.join(argv)}\n  {exc.format_message()}")


def test_the_command_check_finds_every_command_and_rejects_a_bad_one() -> None:
    found = {(p, n): hpsearch_argv(container(pod_of(p), n))[0] for p, n in COMMANDS}
    assert found == {
        (WORKERS, "create"): "create",
        (WORKERS, "worker"): "worker",
        (DASHBOARD, "dashboard"): "dashboard",
    }
    assert not runs_hpsearch(container(pod_of(WORKERS), "wait-for-database"))
    for bad in (
        ["worker", "--study", "mnist-narrow", "--gpu", "1"],
        ["create", "--study", "mnist-narrow"],  # --trials is required
        ["create", "--study", "mnist-narrow", "--trials", "many"],
    ):
        with pytest.raises(click.UsageError):
            parse(bad)
    with pytest.raises(AssertionError, match=r"\$\(INDEX\) is not an env variable"):
        expand("w$(INDEX)", {"JOB_COMPLETION_INDEX": "0"})


def hpsearch_variables() -> list[str]:
    """HPSEARCH_* variables that the manifests set."""
    text = "".join(p.read_text() for p in manifest_files())
    return sorted(set(re.findall(r"\bHPSEARCH_[A-Z0-9_]+", text)))


@pytest.mark.parametrize("name", hpsearch_variables())
def test_every_hpsearch_variable_is_read_by_the_cli(name: str) -> None:
    sources = "".join(p.read_text() for p in (REPO / "hpsearch").rglob("*.py"))
    assert f'"{name}"' in sources, f"{name} is set in docker/k8s but hpsearch/ never reads it"


def test_the_variables_check_finds_the_storage_and_data_settings() -> None:
    assert {"HPSEARCH_STORAGE", "HPSEARCH_DATA_DIR", "HPSEARCH_ARTIFACTS"} <= set(
        hpsearch_variables()
    )


# ------------------------------------------------------------------ the password


def test_no_password_is_in_any_manifest() -> None:
    assert all(d["kind"] != "Secret" for _, d in resources()), "a Secret is created by hand"
    assert "secretGenerator" not in kustomization()
    for path in [*manifest_files(), KUSTOMIZATION]:
        text = path.read_text()
        assert not re.search(r"://[^\s/@:]+:[^\s/@]+@", text), f"{path.name}: a URL with a password"
    for pod_name, pod in pods():
        for c in all_containers(pod):
            for item in c.get("env", []):
                if re.search(r"PASSWORD|STORAGE", item["name"]):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    assert ref, f"{pod_name} {c['name']}: {item['name']} not from a Secret"
                    assert ref["name"] == SECRET and ref["key"] in SECRET_KEYS, ref


def test_every_hpsearch_container_takes_the_storage_url_from_the_secret() -> None:
    for pod_name, pod in pods():
        for c in all_containers(pod):
            if uses_image(c):
                assert environment(c).get("HPSEARCH_STORAGE") == "<secret>", (pod_name, c["name"])
    postgres = container(template(resource("StatefulSet", "postgres")), "postgres")
    assert environment(postgres)["POSTGRES_PASSWORD"] == "<secret>"


def documented_secret_commands() -> list[tuple[Path, str]]:
    """(page, command) of each `kubectl ... create secret generic hpsearch-storage` in the docs."""
    found = []
    for page in DOCS:
        for line in page.read_text().splitlines():
            if f"create secret generic {SECRET}" in line:
                found.append((page, line.split(";")[-1].strip()))
    return found


def test_the_documented_secret_matches_the_manifests() -> None:
    """The url the docs put in the Secret reaches the bundled PostgreSQL as its user and db."""
    commands = documented_secret_commands()
    postgres = environment(container(template(resource("StatefulSet", "postgres")), "postgres"))
    service = resource("Service", "postgres")
    bundled = set()
    for page, line in commands:
        literals = dict(
            word.removeprefix("--from-literal=").split("=", 1)
            for word in shlex.split(line)
            if word.startswith("--from-literal=")
        )
        assert "url" in literals and set(literals) <= SECRET_KEYS, line
        if "postgres-password" not in literals:  # an existing database: its URL alone
            continue
        bundled.add(page)
        expected = (
            f"postgresql+psycopg://{postgres['POSTGRES_USER']}:{literals['postgres-password']}"
            f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
            f"/{postgres['POSTGRES_DB']}"
        )
        assert literals["url"] == expected, f"{page.name}: {literals['url']}"
    assert bundled == set(DOCS)


def documented_hpsearch_commands() -> list[str]:
    """`hpsearch ...` run in a pod (`kubectl ... -- hpsearch ...`) in docs/kubernetes.md."""
    text = GUIDE.read_text()
    return [
        line.split(" -- ", 1)[1] for line in re.findall(r"^kubectl .* -- hpsearch .*$", text, re.M)
    ]


def test_the_commands_the_docs_run_in_a_pod_parse() -> None:
    commands = documented_hpsearch_commands()
    assert len(commands) >= 2
    for line in commands:
        try:
            parse(shlex.split(line)[1:])
        except click.UsageError as exc:
            pytest.fail(f"{line}\n  {exc.format_message()}")


# ------------------------------------------------------------------ the workers Job


def test_the_workers_are_one_indexed_job_with_one_gpu_each() -> None:
    job = resource("Job", "hpsearch-workers")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 1
    assert spec["backoffLimit"] >= 1
    # Never: a failed pod is replaced (and podFailurePolicy requires it).
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    [rule] = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "Ignore"
    assert rule["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    worker = container(template(job), "worker")
    resources_ = worker["resources"]
    assert resources_["limits"]["nvidia.com/gpu"] == resources_["requests"]["nvidia.com/gpu"] == 1
    for c in all_containers(template(job)):
        if c is not worker:
            assert "nvidia.com/gpu" not in c["resources"].get("limits", {}), c["name"]


def test_each_worker_is_tagged_with_its_completion_index_and_uses_its_cpus() -> None:
    worker = container(pod_of(WORKERS), "worker")
    raw = [str(a) for a in worker["args"]]
    assert option(raw, "--tag") == "w$(JOB_COMPLETION_INDEX)"
    [index] = [e for e in worker["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_ANNOTATION
    argv = hpsearch_argv(worker)
    assert argv[0] == "worker"
    assert option(argv, "--tag") == "w0"
    assert option(argv, "--device") == "cuda"  # the one GPU the device plugin gives the pod
    assert "--trials" not in argv  # the total is create's, recorded on the study
    limits, requests = worker["resources"]["limits"], worker["resources"]["requests"]
    assert int(option(argv, "--threads")) == quantity(limits["cpu"]) == quantity(requests["cpu"])


def test_each_pod_waits_for_the_database_then_creates_the_study_it_works_on() -> None:
    pod = pod_of(WORKERS)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["wait-for-database", "create"]
    create = hpsearch_argv(container(pod, "create"))
    worker = hpsearch_argv(container(pod, "worker"))
    assert create[0] == "create" and option(create, "--study") == option(worker, "--study")
    study = generated_literals("hpsearch-study")
    assert option(create, "--study") == study["study"]
    assert option(create, "--trials") == study["trials"]
    for name in (WORKERS, DASHBOARD):
        check_waits_for_the_database(pod_of(name))


def check_waits_for_the_database(pod: Doc) -> None:
    """The pod's first init container runs wait_for_database.py from the generated ConfigMap."""
    wait = pod["spec"]["initContainers"][0]
    assert wait["name"] == "wait-for-database" and uses_image(wait)
    python, script = wait["command"]
    assert python == "python3" and Path(script).name == WAIT_SCRIPT.name
    mount = mounts(wait)[str(Path(script).parent)]
    assert mount["readOnly"] is True
    source = volume(pod, mount["name"])["configMap"]["name"]
    generators = {g["name"]: g for g in kustomization()["configMapGenerator"]}
    assert generators[source]["files"] == [WAIT_SCRIPT.name]


def test_the_data_is_read_only_and_the_artifacts_are_shared() -> None:
    workers, dashboard = pod_of(WORKERS), pod_of(DASHBOARD)
    worker = container(workers, "worker")
    env = environment(worker)
    data = mounts(worker)[env["HPSEARCH_DATA_DIR"]]
    assert data["readOnly"] is True
    claim = volume(workers, data["name"])["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    assert (
        claim["claimName"] == resource("PersistentVolumeClaim", "hpsearch-data")["metadata"]["name"]
    )
    assert env["HPSEARCH_OFFLINE"] == "1"  # no download attempt into a read-only folder
    artifacts = resource("PersistentVolumeClaim", "hpsearch-artifacts")
    assert artifacts["spec"]["accessModes"] == ["ReadWriteMany"]
    for pod, name in ((workers, "worker"), (dashboard, "dashboard")):
        c = container(pod, name)
        path = environment(c)["HPSEARCH_ARTIFACTS"]
        mount = mounts(c)[path]
        assert not mount.get("readOnly", False)
        source = volume(pod, mount["name"])["persistentVolumeClaim"]["claimName"]
        assert source == "hpsearch-artifacts", name
    data_claim = resource("PersistentVolumeClaim", "hpsearch-data")
    assert set(data_claim["spec"]["accessModes"]) & {"ReadWriteMany", "ReadOnlyMany"}


def test_a_stopped_worker_is_interrupted_like_ctrl_c() -> None:
    worker = container(pod_of(WORKERS), "worker")
    hook = worker["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["python3", "-c"]
    assert "os.kill(1, signal.SIGINT)" in hook[2]
    compile(hook[2], "preStop", "exec")


# ------------------------------------------------------------------ security and resources


@pytest.mark.parametrize(("pod_name", "pod"), pods(), ids=[name for name, _ in pods()])
def test_every_pod_runs_as_non_root_with_requests_and_limits(pod_name: str, pod: Doc) -> None:
    context = pod["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] > 0 and context["runAsGroup"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    if any(uses_image(c) for c in all_containers(pod)):
        assert context["runAsUser"] == context["fsGroup"] == image_uid()
    for c in all_containers(pod):
        security = c["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, c["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert not security.get("privileged", False) and "runAsUser" not in security
        requests, limits = c["resources"]["requests"], c["resources"]["limits"]
        for kind in ("cpu", "memory"):
            assert quantity(requests[kind]) <= quantity(limits[kind]), (c["name"], kind)


def image_uid() -> int:
    """The uid of the hpsearch image's user (docker/Dockerfile's useradd)."""
    match = re.search(r"useradd --system --uid (\d+)", DOCKERFILE.read_text())
    assert match is not None
    return int(match.group(1))


def test_the_dashboard_is_a_cluster_ip_service_on_the_port_it_serves() -> None:
    service = resource("Service", "hpsearch-dashboard")
    assert service["spec"]["type"] == "ClusterIP"
    dashboard = container(pod_of(DASHBOARD), "dashboard")
    argv = hpsearch_argv(dashboard)
    [port] = service["spec"]["ports"]
    [served] = [p for p in dashboard["ports"] if p["name"] == port["targetPort"]]
    assert served["containerPort"] == port["port"] == int(option(argv, "--port"))
    assert option(argv, "--host") == "0.0.0.0"  # the Service and the probe reach the pod's IP
    assert dashboard["readinessProbe"]["tcpSocket"]["port"] == port["targetPort"]


@pytest.mark.parametrize(
    ("service", "workload"),
    [("hpsearch-dashboard", "Deployment"), ("postgres", "StatefulSet")],
)
def test_each_service_selects_its_pods(service: str, workload: str) -> None:
    svc = resource("Service", service)
    owner = resource(workload, service)
    labels = template(owner)["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert owner["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_postgres_keeps_its_data_on_a_claim_and_reports_readiness() -> None:
    postgres = resource("StatefulSet", "postgres")
    assert postgres["spec"]["serviceName"] == "postgres"
    [claim] = postgres["spec"]["volumeClaimTemplates"]
    c = container(template(postgres), "postgres")
    mount = [m for m in c["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert mount and not mount[0].get("readOnly", False)
    # PGDATA is a folder inside the volume, which a non-root postgres can create.
    assert Path(environment(c)["PGDATA"]).parent == Path(mount[0]["mountPath"])
    probe = c["readinessProbe"]["exec"]["command"]
    assert probe[0] == "pg_isready" and option(probe, "-h") == "127.0.0.1"
    assert option(probe, "-U") == environment(c)["POSTGRES_USER"]
    assert option(probe, "-d") == environment(c)["POSTGRES_DB"]


# ------------------------------------------------------------------ run for real


@functools.cache
def wait_module() -> ModuleType:
    """docker/k8s/wait_for_database.py, imported (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("wait_for_database", WAIT_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wait_script_reads_host_and_port_and_never_the_password() -> None:
    address = wait_module().address
    assert address("postgresql+psycopg://u:s3cret@postgres:5432/db") == ("postgres", 5432)
    assert address("postgresql+psycopg://u:s3cret@db.example.com/db") == ("db.example.com", 5432)
    assert address("mysql+pymysql://u:s3cret@db:3307/x") == ("db", 3307)
    with pytest.raises(ValueError, match="names no database host") as info:
        address("sqlite:///hpsearch.db")
    assert "s3cret" not in str(info.value)


def test_the_wait_script_gives_up_on_a_silent_database_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("HPSEARCH_STORAGE", f"postgresql+psycopg://u:s3cret@127.0.0.1:{port}/db")
    monkeypatch.setenv("WAIT_SECONDS", "0.3")
    assert wait_module().main() == 1
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err
    assert err.count("\n") == 1 and f"127.0.0.1:{port} did not answer within 0.3 s" in err


def test_the_wait_script_returns_once_the_real_database_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_url()
    if not url:
        pytest.skip("HPSEARCH_TEST_POSTGRES is not set")
    monkeypatch.setenv("HPSEARCH_STORAGE", url)
    monkeypatch.setenv("WAIT_SECONDS", "10")
    assert wait_module().main() == 0
    out, err = capsys.readouterr()
    assert "answers" in out and err == ""
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in out


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["postgres"], indirect=True)
def test_the_init_containers_create_the_study_together_on_a_new_database(storage: str) -> None:
    """Every worker pod runs `create` at about the same moment: all must succeed, one study."""
    pod = pod_of(WORKERS)
    argv = hpsearch_argv(container(pod, "create"))
    workers = resource("Job", "hpsearch-workers")["spec"]["parallelism"]
    procs = [hpsearch(*argv, url=storage) for _ in range(workers)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    study = generated_literals("hpsearch-study")
    summaries = optuna.get_all_study_summaries(storage)
    assert [s.study_name for s in summaries] == [study["study"]]
    assert all(f"total {study['trials']} trials" in out for out in outputs), outputs


def child_of(pid: int) -> int:
    """The pid of a process's one child (from /proc, where other processes come and go)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    assert len(children) == 1, children
    return children[0]


def trial_states(url: str) -> list[tuple[str, object]]:
    """(state, worker tag) of each trial of the sleepy study."""
    trials = optuna.load_study(study_name="sleepy", storage=url).trials
    return [(t.state.name, t.user_attrs.get("worker")) for t in trials]


@pytest.mark.parametrize("stop", ["sigterm", "pre-stop-hook"])
@pytest.mark.slow
def test_a_worker_running_as_pid_1_stops_like_ctrl_c(tmp_path: Path, stop: str) -> None:
    """In a pod hpsearch is PID 1: Kubernetes' SIGTERM, or the hook's SIGINT, stops it cleanly.

    While trials can run, a worker handles SIGTERM as Ctrl-C; the hook covers the moments it
    does not (PID 1 ignores a signal it has no handler for, e.g. during start-up).
    """
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("needs root with unshare and nsenter for a PID namespace")
    sleepy_study(tmp_path, epoch=3.0)
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    created = hpsearch("create", "--study", str(tmp_path / "sleepy.toml"), "--trials", "9", url=url)
    assert created.wait(timeout=60) == 0
    # The manifest's worker command, on this study and the CPU.
    worker = container(pod_of(WORKERS), "worker")
    argv = hpsearch_argv(worker)
    argv[argv.index("--study") + 1] = str(tmp_path / "sleepy.toml")
    argv[argv.index("--device") + 1] = "cpu"
    env = dict(os.environ, HPSEARCH_STORAGE=url)
    cmd = ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m", "hpsearch", *argv]
    outer = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ("RUNNING", "w0") in trial_states(url), timeout=60)
        pid = child_of(outer.pid)
        if stop == "sigterm":
            os.kill(pid, signal.SIGTERM)  # what Kubernetes sends, from outside the pod
        else:
            hook = worker["lifecycle"]["preStop"]["exec"]["command"]
            inside = ["nsenter", "--target", str(pid), "--pid", "--", sys.executable, *hook[1:]]
            assert hook[0] == "python3" and subprocess.run(inside, check=False).returncode == 0
        out, _ = outer.communicate(timeout=60)
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.communicate()
    assert outer.returncode == 130, out  # hpsearch's exit status after Ctrl-C
    assert b"interrupted" in out
    assert trial_states(url) == [("FAIL", "w0")]  # marked failed, never left RUNNING
