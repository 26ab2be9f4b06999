"""docker-compose.yaml agrees with the project: services, image, mounts, environment, secrets.

There is no Docker engine here, so the file is read as YAML and its ``${VAR}`` references are
resolved with the values documented in .env.example, the way Compose resolves them.
``test_docker_compose_resolves_the_file_as_we_do`` checks that reading against Debian's
docker-compose when it is installed (CI installs it; ``make compose-check`` runs it too).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml
from packaging.specifiers import SpecifierSet

from postsales.dag_defaults import WAREHOUSE_POOL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

INFRA_SERVICES = {"postgres", "redis"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"airflow-init", "airflow-cli"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|FERNET_KEY|TOKEN|API_KEY|PRIVATE_KEY)$", re.I)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal $.
REFERENCE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = values.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if not missing:
            return value
        if op in (":?", "?"):
            raise AssertionError(f"docker-compose.yaml needs {name}: {arg}")
        return arg if op in (":-", "-") else ""

    return REFERENCE.sub(replace, text)


def env_example() -> dict[str, str]:
    """The variables .env.example sets (commented-out lines are optional and not set)."""
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f".env.example line {number}: {line!r}"
        values[name] = substitute(value, values)
    return values


def documented_variables() -> set[str]:
    """Every NAME= in .env.example, set or commented out."""
    return set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


def resolve(node, values: dict[str, str]):
    if isinstance(node, str):
        return substitute(node, values)
    if isinstance(node, dict):
        return {key: resolve(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    return node


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict) -> dict:
    return resolve(raw, env_example())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[.*\])?==([^\s;#]+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def dockerfile() -> str:
    # Continuation lines joined, so each instruction is one line.
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def dockerfile_env() -> dict[str, str]:
    env = {}
    for line in dockerfile().splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line))
    return env


def bind_mounts(service: dict) -> dict[str, str]:
    """host path (./...) -> container path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            found[source] = target
    return found


def named_mounts(service: dict) -> dict[str, str]:
    return {
        volume.split(":")[0]: volume.split(":")[1]
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }


def strings(node, path=()):
    """(dotted path, value) of every string in the parsed compose file (comments are not in it)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield ".".join(path), node


def test_the_deployment_has_every_service(services):
    assert set(services) >= INFRA_SERVICES | AIRFLOW_SERVICES, sorted(INFRA_SERVICES | AIRFLOW_SERVICES - set(services))
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }


def test_the_image_is_the_official_airflow_image_of_our_pins():
    match = re.search(
        r"^FROM apache/airflow:(?:slim-)?(?P<airflow>[\d.]+)-python(?P<python>\d+\.\d+)\s*$", dockerfile(), re.M
    )
    assert match, "Dockerfile must start FROM apache/airflow:[slim-]<version>-python<X.Y>"
    assert match["airflow"] == pins(ROOT / "requirements.txt")["apache-airflow"]
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires_python).contains(match["python"] + ".0"), (match["python"], requires_python)


def test_the_image_installs_the_pinned_set_and_the_project():
    text = dockerfile()
    assert re.search(r"^COPY .*\brequirements\.txt constraints\.txt /opt/postsales/$", text, re.M)
    assert re.search(
        r"^RUN pip install .*-r /opt/postsales/requirements\.txt -c /opt/postsales/constraints\.txt", text, re.M
    )
    for source in re.findall(r"^COPY --chown=\S+ (\S+) /opt/postsales/", text, re.M):
        if source != "requirements.txt":
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    kept = (ROOT / ".dockerignore").read_text().split()
    for source in ("requirements.txt", "constraints.txt", "dags/", "plugins/", "include/", "deploy/airflow-init.sh"):
        assert f"!{source}" in kept, f".dockerignore must let {source} into the build context"


def test_every_airflow_service_runs_the_project_image(raw, services):
    common = raw["x-airflow-common"]
    assert common["build"] == "."
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"] == "." and services[name]["image"] == services["airflow-init"]["image"], name


def test_bind_mounted_paths_exist_and_named_volumes_are_declared(compose, services):
    for name, service in services.items():
        for source in bind_mounts(service):
            assert source.startswith("./"), f"{name}: mount {source} must be relative to the project"
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
        for volume in named_mounts(service):
            assert volume in compose["volumes"], f"{name} mounts undeclared volume {volume}"


def test_mount_targets_are_where_the_environment_points(services):
    image_env = dockerfile_env()
    for name in AIRFLOW_SERVICES:
        service = services[name]
        env = service["environment"]
        mounts = bind_mounts(service)
        volumes = named_mounts(service)
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == mounts["./dags"], name
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == mounts["./plugins"], name
        assert mounts["./plugins"] in env["PYTHONPATH"].split(":"), f"{name}: the DAGs import postsales from plugins/"
        assert f"{env['POSTSALES_HOME']}/include" == mounts["./include"], name
        assert env["POSTSALES_DATA_DIR"] == volumes["postsales-data"], name
        # The image alone (a worker on another host, no bind mounts) uses the same paths.
        for key in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "PYTHONPATH", "POSTSALES_HOME"):
            assert image_env[key] == env[key], f"Dockerfile ENV {key}={image_env[key]} vs compose {env[key]}"
        assert image_env["POSTSALES_DATA_DIR"] == env["POSTSALES_DATA_DIR"]


def test_only_the_one_off_cli_container_has_the_developer_tools(services):
    """devtools/ (the demo generator) is not in the image; airflow-cli mounts it for `make demo`'s
    command, no long-running service sees it."""
    for name, service in services.items():
        mounts = bind_mounts(service)
        path = str(service.get("environment", {}).get("PYTHONPATH", ""))
        if name == "airflow-cli":
            assert mounts["./devtools"] == "/opt/postsales/devtools"
            assert path.split(":") == [mounts["./plugins"], mounts["./devtools"]]
            scheduler = services["airflow-scheduler"]
            assert {s: t for s, t in mounts.items() if s != "./devtools"} == bind_mounts(scheduler)
            assert named_mounts(service) == named_mounts(scheduler)
        else:
            assert "./devtools" not in mounts and "devtools" not in path, name


def test_celery_executor_with_the_broker_on_redis_and_results_on_postgres(services):
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379), name
        backend = sa.engine.make_url(env["AIRFLOW__CELERY__RESULT_BACKEND"].removeprefix("db+"))
        assert (backend.host, backend.database) == ("postgres", services["postgres"]["environment"]["POSTGRES_DB"])


def test_metadata_and_warehouse_databases_are_the_postgres_service(services):
    pg = services["postgres"]["environment"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        metadata = sa.engine.make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert metadata.drivername == "postgresql+psycopg", "psycopg 3 is the driver in our pinned set"
        assert (metadata.host, metadata.port, metadata.database) == ("postgres", 5432, pg["POSTGRES_DB"]), name
        assert (metadata.username, metadata.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]), name
        warehouse = sa.engine.make_url(env["POSTSALES_WAREHOUSE_URL"])
        assert warehouse.drivername == "postgresql+psycopg"
        assert (warehouse.host, warehouse.port) == ("postgres", 5432), name
        # The role and database deploy/postgres-init creates from the postgres service's environment.
        assert warehouse.database == pg["POSTSALES_WAREHOUSE_DB"] != pg["POSTGRES_DB"], name
        assert (warehouse.username, warehouse.password) == (
            pg["POSTSALES_WAREHOUSE_USER"],
            pg["POSTSALES_WAREHOUSE_PASSWORD"],
        )
    init_scripts = {Path(target): Path(source) for source, target in bind_mounts(services["postgres"]).items()}
    assert (ROOT / init_scripts[Path("/docker-entrypoint-initdb.d")] / "10-postsales-warehouse.sh").exists()


def test_long_running_services_have_health_checks_and_wait_for_what_they_need(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "always", name
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s missing healthcheck"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        needs = services[name]["depends_on"]
        assert needs["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert needs["postgres"] == needs["redis"] == {"condition": "service_healthy"}, name
    assert services["airflow-init"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_every_airflow_service_shares_the_jwt_secret_and_reaches_the_execution_api(services):
    api_ports = {port.split(":")[-1] for port in services["airflow-apiserver"]["ports"]}
    secrets, fernet_keys = set(), set()
    for name in AIRFLOW_SERVICES | {"airflow-cli", "flower"}:
        env = services[name]["environment"]
        secrets.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
        fernet_keys.add(env["AIRFLOW__CORE__FERNET_KEY"])
        url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert url.hostname == "airflow-apiserver", f"{name}: the execution API is served by the api-server"
        assert str(url.port) in api_ports and url.path == "/execution/", name
    assert len(secrets) == 1 and "" not in secrets
    assert len(fernet_keys) == 1 and "" not in fernet_keys


def test_the_init_service_creates_the_pool_the_dags_use(services):
    script = services["airflow-init"]["command"]
    mounts = {target: source for source, target in bind_mounts(services["airflow-init"]).items()}
    text = (ROOT / mounts[script]).read_text()
    assert re.search(rf"^airflow pools set {WAREHOUSE_POOL} \"\$\{{POSTSALES_WAREHOUSE_POOL_SLOTS\}}\"", text, re.M)
    assert re.search(r"^airflow db migrate$", text, re.M)
    assert services["airflow-init"]["user"] == "0:0", "airflow-init chowns the volumes"


def test_the_admin_user_is_the_one_airflow_init_writes_and_the_api_server_reads(raw):
    # Another name than .env.example's, so a hard-coded user in the compose file shows.
    admin = "ops-lead"
    services = resolve(raw, {**env_example(), "AIRFLOW_ADMIN_USERNAME": admin})["services"]
    init_env = services["airflow-init"]["environment"]
    assert init_env["AIRFLOW_ADMIN_USERNAME"] == admin
    passwords = Path(init_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    for name in ("airflow-init", "airflow-apiserver"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager"), name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{admin}:admin", name
        assert Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]) == passwords, name
    # The file lives on a volume both services mount (the api-server reads what airflow-init wrote).
    init_volume = {Path(t): v for v, t in named_mounts(services["airflow-init"]).items()}[passwords.parent]
    assert named_mounts(services["airflow-apiserver"])[init_volume] == str(passwords.parent)


def test_every_variable_compose_reads_is_documented_in_env_example(raw):
    used = {m["name"] for _, value in strings(raw) for m in REFERENCE.finditer(value) if m["name"]}
    assert used, "the compose file reads its settings from .env"
    missing = used - documented_variables()
    assert not missing, f"document {sorted(missing)} in .env.example"


def test_no_secret_is_written_in_the_compose_file(raw):
    required = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")
    for path, value in strings(raw):
        if SECRET_NAME.search(path.rsplit(".", 1)[-1]):
            assert required.match(value), f"{path} must be a required ${{VAR:?...}} from .env, not {value!r}"
        for password in re.findall(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s/]*)@", value):
            assert required.match(password), f"{path}: the password in the URL must come from .env"


def test_env_example_holds_placeholders_not_secrets():
    values = env_example()
    secrets = {name: value for name, value in values.items() if SECRET_NAME.search(name)}
    assert secrets, ".env.example lists the secrets"
    for name, value in secrets.items():
        assert value.startswith("change-me"), f".env.example {name} must be a change-me placeholder"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_docker_compose_resolves_the_file_as_we_do(services):
    binary = shutil.which("docker-compose")
    if binary is None:
        if IN_CI:
            pytest.fail("CI installs docker-compose (.ci/run); it is missing")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [binary, "--env-file", str(ENV_EXAMPLE), "--file", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        # The shell's variables win over --env-file in compose: pass none of ours
        # (the test suite exports POSTSALES_WAREHOUSE_URL for every test).
        env={
            **{key: value for key, value in os.environ.items() if not key.startswith(("POSTSALES_", "AIRFLOW"))},
            "POSTSALES_ENV_FILE": str(ENV_EXAMPLE),
        },
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = yaml.safe_load(result.stdout)["services"]
    assert set(theirs) >= INFRA_SERVICES | AIRFLOW_SERVICES
    for name in AIRFLOW_SERVICES | INFRA_SERVICES:
        ours = {key: str(value) for key, value in services[name].get("environment", {}).items()}
        resolved = {key: str(value) for key, value in theirs[name].get("environment", {}).items()}
        # Theirs also holds the env_file variables (all of .env.example).
        assert {key: resolved.get(key) for key in ours} == ours, name
