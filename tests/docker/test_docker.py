"""Docker scale-out: compose.yaml checked by real Compose tools; its commands run without Docker."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from repo import REPO

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
CLAIM_GPU = DOCKER / "claim_gpu.py"
# compose-spec/compose-spec, schema/compose-spec.json at a08f8d51631b7127ddac3d2c65537db429d0f1d0
SCHEMA = DOCKER / "compose-spec.json"

# In CI (HPSEARCH_REQUIRE_COMPOSE=1, tools from .ci/install-compose-check) a missing tool fails.
REQUIRE = os.environ.get("HPSEARCH_REQUIRE_COMPOSE", "") not in ("", "0")
CREDS = {"POSTGRES_USER": "hp_user", "POSTGRES_PASSWORD": "pw-0123abcd", "POSTGRES_DB": "hp_db"}
HPSEARCH_SERVICES = ("create", "worker", "dashboard")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")

Config = dict[str, Any]


def missing(what: str) -> NoReturn:
    """Fail when the tools are required (CI), skip otherwise."""
    if REQUIRE:
        pytest.fail(f"{what} (HPSEARCH_REQUIRE_COMPOSE=1; run .ci/install-compose-check)")
    pytest.skip(f"{what}; run .ci/install-compose-check")


@functools.cache
def compose_tool() -> tuple[str, ...] | None:
    """`docker compose` (v2 plugin) when it works, else `docker-compose`, else None."""
    candidates = [("docker", "compose"), ("docker-compose",)]
    for cmd in candidates:
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return cmd
    return None


def interpolated_names() -> set[str]:
    """Every variable compose.yaml interpolates."""
    return {m.group(1) for m in INTERPOLATION.finditer(COMPOSE.read_text())}


def run_config(
    tmp_path: Path, env: dict[str, str], env_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`config` on compose.yaml with exactly these variables (never a developer's docker/.env)."""
    tool = compose_tool()
    if tool is None:
        missing("no Compose tool (docker compose or docker-compose) on PATH")
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    clean = {k: v for k, v in os.environ.items() if k not in interpolated_names()}
    clean = {k: v for k, v in clean.items() if not k.startswith("COMPOSE_")}
    cmd = [*tool, "-f", str(COMPOSE), "--env-file", str(env_file), "config"]
    return subprocess.run(
        cmd, cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """compose.yaml as the Compose tool renders it, with the test credentials."""
    result = run_config(tmp_path_factory.mktemp("compose"), CREDS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def raw() -> Config:
    """compose.yaml as written (YAML merge keys resolved, no interpolation)."""
    config = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(config, dict)
    return config


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against env (unset means empty)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name, "")
        if op in (":-", "-") and not value:
            return arg or ""
        if op in (":?", "?") and not value:
            raise ValueError(f"{name}: {arg}")
        return value

    return INTERPOLATION.sub(one, text)


def ports(service: Config) -> list[tuple[str, str, str]]:
    """(host ip, published, target) for each port, from short (v1) or long (v2) syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append(
                (port.get("host_ip", ""), str(port.get("published", "")), str(port["target"]))
            )
            continue
        parts = str(port).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        published = parts[-2] if len(parts) >= 2 else ""
        out.append((host_ip, published, parts[-1]))
    return out


def mounts(service: Config) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) for each volume, short (v1) or long (v2) syntax."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume["target"])
            out[target] = (source, bool(volume.get("read_only", False)))
            continue
        source, target, *mode = str(volume).split(":")
        out[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return out


def storage_url(creds: dict[str, str]) -> str:
    """The storage URL every hpsearch service must get."""
    return (
        f"postgresql+psycopg://{creds['POSTGRES_USER']}:{creds['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{creds['POSTGRES_DB']}"
    )


# ------------------------------------------------------------------ validation by real tools


@pytest.mark.slow
def test_compose_renders_the_four_services(rendered: Config) -> None:
    assert set(rendered["services"]) == {"postgres", *HPSEARCH_SERVICES}


@pytest.mark.slow
def test_compose_matches_the_official_compose_spec_schema(raw: Config, rendered: Config) -> None:
    try:
        import jsonschema
    except ImportError:
        missing("the Python package jsonschema is not installed")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    for name, document in (("as written", raw), ("as rendered", rendered)):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, f"compose.yaml {name}: {errors}"


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB"])
@pytest.mark.slow
def test_a_missing_credential_makes_config_fail(tmp_path: Path, name: str) -> None:
    env = {k: v for k, v in CREDS.items() if k != name}
    result = run_config(tmp_path, env)
    assert result.returncode != 0, result.stdout
    assert name in result.stderr, result.stderr


@pytest.mark.slow
def test_env_example_names_every_variable_and_holds_no_password(tmp_path: Path) -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert interpolated_names() <= set(example), interpolated_names() - set(example)
    assert example["POSTGRES_PASSWORD"] == ""
    # As shipped (empty password) compose refuses to start; with a password it renders.
    assert run_config(tmp_path, {}, ENV_EXAMPLE).returncode != 0
    result = run_config(tmp_path, {"POSTGRES_PASSWORD": "from-shell"}, ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "from-shell" in result.stdout


# ------------------------------------------------------------------ properties after rendering


@pytest.mark.slow
def test_no_password_is_hard_coded(rendered: Config) -> None:
    code = [ln for ln in COMPOSE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    for line in code:
        if re.search(r"pass(word)?|secret", line, re.I):
            assert "${POSTGRES_PASSWORD:?" in line, f"a password not taken from the env: {line}"
    for line in (ln for ln in code if "://" in ln):
        userinfo = r"://\$\{POSTGRES_USER:\?[^}]*\}:\$\{POSTGRES_PASSWORD:\?[^}]*\}@"
        assert re.search(userinfo, line), f"a URL with credentials not taken from the env: {line}"
    # The password reaches postgres and the storage URLs, and nothing else.
    postgres = rendered["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == CREDS["POSTGRES_PASSWORD"]
    expected = 1 + len(HPSEARCH_SERVICES)
    assert yaml.safe_dump(rendered).count(CREDS["POSTGRES_PASSWORD"]) == expected


@pytest.mark.slow
def test_every_service_gets_the_same_storage_url(rendered: Config) -> None:
    postgres = rendered["services"]["postgres"]["environment"]
    assert {k: postgres[k] for k in CREDS} == CREDS
    for name in HPSEARCH_SERVICES:
        assert rendered["services"][name]["environment"]["HPSEARCH_STORAGE"] == storage_url(CREDS)


@pytest.mark.slow
def test_published_ports_are_loopback_only(rendered: Config) -> None:
    dashboard = ports(rendered["services"]["dashboard"])
    assert dashboard == [("127.0.0.1", "8080", "8080")]
    assert ports(rendered["services"]["postgres"]) == [("127.0.0.1", "5432", "5432")]
    for name in ("create", "worker"):
        assert ports(rendered["services"][name]) == []


@pytest.mark.slow
def test_dashboard_port_is_configurable_and_stays_on_loopback(tmp_path: Path) -> None:
    result = run_config(tmp_path, {**CREDS, "DASHBOARD_PORT": "9123"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert ports(config["services"]["dashboard"]) == [("127.0.0.1", "9123", "8080")]


@pytest.mark.slow
def test_worker_reserves_nvidia_gpus_and_claims_one(rendered: Config) -> None:
    worker = rendered["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    nvidia = [d for d in devices if d.get("driver") == "nvidia"]
    assert nvidia, devices
    assert "gpu" in nvidia[0]["capabilities"]
    count = nvidia[0].get("count", "all")
    assert count in ("all", -1) or int(count) >= 1, count
    # Compose gives every replica the same GPUs, so claim-gpu picks one per worker.
    assert worker["entrypoint"] == ["claim-gpu", "hpsearch"]
    assert worker["command"][worker["command"].index("--device") + 1] == "cuda"
    assert worker["restart"] == "on-failure"  # a crash restarts; a surplus worker exits 0
    assert mounts(worker)["/gpu-locks"] == ("gpu-locks", False)
    assert "gpu-locks" in rendered["volumes"]


@pytest.mark.slow
def test_postgres_has_a_healthcheck_and_a_named_volume(rendered: Config) -> None:
    postgres = rendered["services"]["postgres"]
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test if isinstance(test, list) else [test])
    source, read_only = mounts(postgres)["/var/lib/postgresql/data"]
    assert source == "pgdata" and not read_only
    assert "pgdata" in rendered["volumes"]


@pytest.mark.slow
def test_create_runs_once_before_the_workers_and_the_dashboard(rendered: Config) -> None:
    services = rendered["services"]
    assert services["create"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["create"]["restart"] == "no"
    assert services["create"]["command"][:2] == ["create", "--study"]
    for name in ("worker", "dashboard"):
        depends = services[name]["depends_on"]
        assert depends["create"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name


@pytest.mark.slow
def test_data_is_read_only_and_artifacts_are_shared(rendered: Config) -> None:
    worker, dashboard = rendered["services"]["worker"], rendered["services"]["dashboard"]
    data_dir = worker["environment"]["HPSEARCH_DATA_DIR"]
    assert mounts(worker)[data_dir][1] is True
    assert Path(mounts(worker)[data_dir][0]) == REPO / "data"
    artifacts = worker["environment"]["HPSEARCH_ARTIFACTS"]
    assert dashboard["environment"]["HPSEARCH_ARTIFACTS"] == artifacts
    assert mounts(worker)[artifacts] == mounts(dashboard)[artifacts] == ("artifacts", False)
    assert "artifacts" in rendered["volumes"]


# ------------------------------------------------------------------ the commands, without Docker


def service_argv(raw: Config, name: str) -> list[str]:
    """The service's command as the image's entrypoint gets it, with the default variables."""
    service = raw["services"][name]
    entrypoint = service.get("entrypoint", ["hpsearch"])
    assert entrypoint[-1] == "hpsearch", entrypoint
    return [interpolate(str(arg), CREDS) for arg in service["command"]]


@pytest.mark.parametrize("name", HPSEARCH_SERVICES)
@pytest.mark.slow
def test_service_command_is_a_real_hpsearch_command(raw: Config, name: str) -> None:
    argv = service_argv(raw, name)
    assert argv[0] == name
    env = {**os.environ, **{k: interpolate(str(v), CREDS) for k, v in _env(raw, name).items()}}
    result = subprocess.run(
        [sys.executable, "-m", "hpsearch", *argv, "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hpsearch {' '.join(argv)} --help:\n{result.stderr}"
    for option in argv[1:]:
        if option.startswith("--"):
            assert option in result.stdout, f"{option} is not an option of `hpsearch {name}`"


def _env(raw: Config, name: str) -> dict[str, Any]:
    """The environment mapping of a service as written."""
    environment = raw["services"][name].get("environment", {})
    assert isinstance(environment, dict)
    return environment


def hpsearch_variables() -> list[str]:
    """HPSEARCH_* variables that compose.yaml or the Dockerfile set."""
    text = COMPOSE.read_text() + DOCKERFILE.read_text()
    return sorted(set(re.findall(r"\bHPSEARCH_[A-Z0-9_]+", text)))


@pytest.mark.parametrize("name", hpsearch_variables())
def test_every_hpsearch_variable_is_read_by_the_cli(name: str) -> None:
    sources = "".join(p.read_text() for p in (REPO / "hpsearch").rglob("*.py"))
    assert f'"{name}"' in sources, f"{name} is set for the containers but hpsearch/ never reads it"


# ------------------------------------------------------------------ claim-gpu and the Dockerfile


@pytest.fixture
def claimers() -> Iterator[list[subprocess.Popen[str]]]:
    """Started claim-gpu processes, each holding its GPU until its stdin closes; all reaped."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def start_claim(
    tmp_path: Path, claimers: list[subprocess.Popen[str]], **env: str
) -> subprocess.Popen[str]:
    """claim-gpu running a command that prints its GPU and waits for stdin to close."""
    hold = "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()"
    base = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.Popen(
        [sys.executable, str(CLAIM_GPU), sys.executable, "-c", hold],
        env={**base, "GPU_LOCK_DIR": str(tmp_path / "locks"), **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    claimers.append(proc)
    return proc


def claimed_gpu(proc: subprocess.Popen[str]) -> str:
    """The GPU a claim-gpu process runs its command on."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.communicate(timeout=10)
    return line


@pytest.mark.slow
def test_claim_gpu_gives_each_worker_its_own_gpu(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    first = start_claim(tmp_path, claimers, GPU_COUNT="2")
    second = start_claim(tmp_path, claimers, GPU_COUNT="2")
    assert {claimed_gpu(first), claimed_gpu(second)} == {"0", "1"}
    third = start_claim(tmp_path, claimers, GPU_COUNT="2")
    _, err = third.communicate(timeout=30)
    assert third.returncode == 0  # a clean exit: `restart: on-failure` leaves it down
    assert "all 2 GPU(s) already have a worker, so this one stays down" in err
    assert "--scale worker=2" in err and len(err.strip().splitlines()) == 1
    # A worker that exits frees its GPU for the next one.
    _, _ = first.communicate(input="", timeout=30)
    assert first.returncode == 0
    fourth = start_claim(tmp_path, claimers, GPU_COUNT="2")
    assert claimed_gpu(fourth) in {"0", "1"}


@pytest.mark.slow
def test_claim_gpu_keeps_to_preset_devices_and_fails_without_gpus(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    assert claimed_gpu(start_claim(tmp_path, claimers, CUDA_VISIBLE_DEVICES="5,7")) == "5"
    assert claimed_gpu(start_claim(tmp_path, claimers, CUDA_VISIBLE_DEVICES="5,7")) == "7"
    none = start_claim(tmp_path, claimers, GPU_COUNT="0")
    _, err = none.communicate(timeout=30)
    assert none.returncode == 3 and "no GPU is visible" in err


def test_dockerfile_base_matches_the_tested_torch_and_runs_hpsearch_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    tag = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", base[1])
    assert tag is not None, base[1]
    assert tag[1] == version("torch").split("+")[0], "base image torch != the tested torch"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "'.[postgres,lightning]'" in text and "-c /tmp/torch-constraints.txt" in text
    assert re.search(r'^ENTRYPOINT \["hpsearch"\]$', text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_copies_only_files_that_exist_and_the_context_filter_allows() -> None:
    text = DOCKERFILE.read_text()
    allowed = {
        line[1:].rstrip("/")
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
    assert copies
    for copy in copies:
        for source in copy.split()[:-1]:
            assert (REPO / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"
