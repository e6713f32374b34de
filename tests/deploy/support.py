"""What the deployment tests need to read: compose files (with Compose's variable
interpolation), Kubernetes manifests, the Dockerfile, pyproject, and the facts the
code states (settings classes, console scripts, proto service names, flags)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from aiworker_local.settings_doc import env_of
from svc_runtime.catalogue import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CPU = DEPLOY / "docker" / "compose.cpu.yaml"
COMPOSE_HOSTS = DEPLOY / "docker" / "compose.hosts.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
K8S = DEPLOY / "k8s"
# The OpenAPI schemas of the custom resources the manifests use (KEDA's), bundled: neither
# kubernetes-validate nor anything else here knows CRDs.
CRD_SCHEMAS = Path(__file__).with_name("keda_crds.yaml")

# What this repository ships, by console script: the model services from the catalogue
# (a service that runs on the CPU only has device "cpu"; the others want a GPU).
MODEL_SERVICES = tuple(SERVICES)
GPU_SERVICES = tuple(name for name, entry in SERVICES.items() if entry.device != "cpu")
# Each service's settings class is <module>.settings:<Name>Settings (Llm, Stt: as spelled in code).
SETTINGS_OF_SCRIPT = {
    **{entry.script: f"{entry.module}.settings:{entry.name.capitalize()}Settings" for entry in SERVICES.values()},
    "aiworker-gateway": "gateway.settings:GatewaySettings",
    "aiworker-exporter": "orchestrator.exporter.settings:ExporterSettings",
}
ORCHESTRATOR_SETTINGS = "orchestrator.settings:OrchestratorSettings"
# The pyproject extra a console script needs installed (a service's extra is its name).
EXTRA_OF_SCRIPT = {
    **{entry.script: entry.name for entry in SERVICES.values()},
    "aiworker-worker": "orchestrator",
    "aiworker-beat": "orchestrator",
    "aiworker-exporter": "orchestrator",
    "aiworker-gateway": "gateway",
    "celery": "orchestrator",
    "python -m orchestrator.storage.db": "orchestrator",
    "aiworker-health-probe": None,  # in the base dependencies
}
# Environment variables that are not aiworker settings but are read by something we run.
THIRD_PARTY_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "HF_HOME",
    "LD_LIBRARY_PATH",  # the image
    "FLOWER_BASIC_AUTH",  # Flower reads FLOWER_<option>
}
POSTGRES_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}
# SeaweedFS (`weed server -s3`) makes this key pair its admin identity.
SEAWEEDFS_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")  # svc_runtime.device's grammar


def load_object(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------ settings


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    return {env_of(settings_cls, name) for name in settings_cls.model_fields}


@cache
def settings_classes() -> dict[str, type[BaseSettings]]:
    specs = {**SETTINGS_OF_SCRIPT, "orchestrator": ORCHESTRATOR_SETTINGS}
    return {key: load_object(spec) for key, spec in specs.items()}


@cache
def settings_env_owner() -> dict[str, list[str]]:
    """Every valid AIWORKER_* name -> the settings classes that read it."""
    owners: dict[str, list[str]] = {}
    for cls in settings_classes().values():
        for name in env_names(cls):
            owners.setdefault(name, []).append(cls.__name__)
    return owners


def build_settings(settings_cls: type[BaseSettings], env: dict[str, str]) -> BaseSettings:
    """The settings a process would build from exactly `env`'s AIWORKER_* variables,
    through the environment source (so strings parse as they would in a container)."""
    with patched_environ({k: v for k, v in env.items() if k.startswith(("AIWORKER_", "AWS_"))}):
        return settings_cls()


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    import os

    saved = {k: v for k, v in os.environ.items() if k.startswith(("AIWORKER_", "AWS_"))}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def grpc_port(script: str, env: dict[str, str]) -> int:
    cls = settings_classes()[script]
    return int(build_settings(cls, env).port)


# ------------------------------------------------------------------ pyproject, code facts


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def console_scripts() -> set[str]:
    return set(pyproject()["project"]["scripts"])


def extras_closure(extras: str) -> set[str]:
    """`parser,gateway` -> every extra it installs, following aiworker[...] references."""
    table = pyproject()["project"]["optional-dependencies"]
    todo = [e.strip() for e in extras.split(",") if e.strip()]
    seen: set[str] = set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in table:
            raise KeyError(f"extra {extra!r} is not in pyproject's optional-dependencies")
        seen.add(extra)
        for requirement in table[extra]:
            match = re.match(r"^aiworker\[([^\]]+)\]", requirement)
            if match:
                todo.extend(e.strip() for e in match.group(1).split(","))
    return seen


@cache
def proto_service_names() -> dict[str, str]:
    """parser -> aiworker.parser.v1.Parser (and the gateway's), from the generated descriptors."""
    names = {}
    for service in (*SERVICES, "gateway"):
        module = importlib.import_module(f"aiworker.{service}.v1.{service}_pb2")
        (descriptor,) = module.DESCRIPTOR.services_by_name.values()
        names[service] = descriptor.full_name
    return names


def _help_text(main: Callable[[list[str]], None]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"])
    return out.getvalue()


@cache
def script_flags(script: str) -> set[str]:
    """The long flags a console script accepts."""
    if script in SETTINGS_OF_SCRIPT:
        cls = settings_classes()[script]
        return {"--" + name.replace("_", "-") for name in cls.model_fields} | {"--help"}
    target = pyproject()["project"]["scripts"][script]
    text = _help_text(load_object(target))
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


# ------------------------------------------------------------------ commands


@dataclass
class Command:
    """A container's command line, classified."""

    argv: list[str]
    script: str = ""  # a console script, "celery" or "python -m orchestrator.storage.db"
    problems: list[str] = field(default_factory=list)

    def flag(self, name: str) -> str | None:
        for i, arg in enumerate(self.argv):
            if arg == name and i + 1 < len(self.argv):
                return self.argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None


def check_command(argv: list[str]) -> Command:
    """Checks that the program exists in this repo and that its flags are real."""
    cmd = Command(list(argv))
    if not argv:
        cmd.problems.append("empty command")
        return cmd
    program = argv[0]
    if program in console_scripts():
        cmd.script = program
        known = script_flags(program)
        for arg in argv[1:]:
            if arg.startswith("--") and arg.split("=", 1)[0] not in known:
                cmd.problems.append(f"{program}: unknown flag {arg!r} (known: {sorted(known)})")
    elif program == "celery":
        cmd.script = "celery"
        if argv[1:3] != ["-A", "orchestrator.celery_entry"]:
            cmd.problems.append(f"celery must use -A orchestrator.celery_entry: {argv}")
        elif importlib.util.find_spec("orchestrator.celery_entry") is None:
            cmd.problems.append("orchestrator.celery_entry does not exist")
        if len(argv) < 4 or argv[3] not in {"worker", "beat", "flower", "inspect", "events"}:
            cmd.problems.append(f"unexpected celery subcommand: {argv}")
    elif program == "python" and argv[1:3] == ["-m", "orchestrator.storage.db"]:
        cmd.script = "python -m orchestrator.storage.db"
        if argv[3:] != ["upgrade"]:
            cmd.problems.append(f"orchestrator.storage.db knows only `upgrade`: {argv}")
    else:
        cmd.problems.append(
            f"{program!r} is not a console script of pyproject.toml, celery, or python -m orchestrator.storage.db"
        )
    return cmd


def healthcheck_argv(test: list[str] | str) -> list[str]:
    """A compose healthcheck `test` as an argv (CMD-SHELL is split with shlex, up to a pipe or redirect)."""
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, *rest = test
    if kind == "CMD":
        return rest
    assert kind == "CMD-SHELL", test
    words = shlex.split(rest[0])
    stop = next((i for i, w in enumerate(words) if w.startswith((">", "|", "&", ";"))), len(words))
    return words[:stop]


# ------------------------------------------------------------------ compose


class Reset(dict):
    """A mapping tagged !reset in an override file."""


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor(
    "!reset", lambda loader, node: Reset(loader.construct_mapping(node)) if isinstance(node, yaml.MappingNode) else None
)
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_sequence(node)
    ),
)

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return type(value)({k: interpolate(v, variables) for k, v in value.items()})
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in variables and (variables[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return variables[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise KeyError(f"required variable {name} is unset: {arg}")
            return variables[name]
        if op in (":+", "+"):
            return arg if present else ""
        return variables.get(name, "")

    return _VARIABLE.sub(substitute, value)


def load_compose(path: Path, variables: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.load(path.read_text(), Loader=ComposeLoader)
    return interpolate(raw, variables or {}) if variables is not None else raw


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def seconds(duration: str | int) -> float:
    """Compose durations: 30s, 1m30s, 620s, 10m."""
    if isinstance(duration, (int, float)):
        return float(duration)
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * scale[u] for n, u in parts)


# ------------------------------------------------------------------ Dockerfile


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARG defaults (every stage)
    env: dict[str, str]  # ENV of the final (runtime) stage
    copies: list[str]  # COPY sources from the build context
    run: str  # every RUN, joined
    entrypoint: list[str]


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    copies: list[str] = []
    runs: list[str] = []
    entrypoint: list[str] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            env = {}  # ENV does not carry across stages; keep the last stage's
        elif instruction == "ARG":
            name, _, default = rest.partition("=")
            if default or name not in args:
                args[name] = default
        elif instruction == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = value
        elif instruction == "COPY" and "--from" not in rest:
            *sources, _dest = shlex.split(rest)
            copies.extend(sources)
        elif instruction == "RUN":
            runs.append(rest)
        elif instruction == "ENTRYPOINT":
            entrypoint = yaml.safe_load(rest)
    return Dockerfile(args, env, copies, "\n".join(runs), entrypoint)


# ------------------------------------------------------------------ Kubernetes


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return tuple(docs)


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    """Deployments, StatefulSets and Jobs by name."""
    found = {}
    for kind in ("Deployment", "StatefulSet", "Job"):
        found.update(k8s_objects(kind))
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers") or [] if init else []), *spec["containers"]]


def image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def container_env(container: dict[str, Any], image_env: dict[str, str]) -> dict[str, str]:
    """What a container's process sees: image ENV, then envFrom, then env (later wins).
    An env item's secretKeyRef / configMapKeyRef takes the value the manifests give it;
    any other reference reads "<from a reference>"."""
    env = dict(image_env)
    configmaps = k8s_objects("ConfigMap")
    secrets = k8s_objects("Secret")
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update({k: str(v) for k, v in configmaps[source["configMapRef"]["name"]]["data"].items()})
        if "secretRef" in source:
            env.update({k: str(v) for k, v in secrets[source["secretRef"]["name"]]["stringData"].items()})
    for item in container.get("env") or []:
        env[item["name"]] = str(item["value"]) if "value" in item else _referenced(item, configmaps, secrets)
    return env


def _referenced(item: dict[str, Any], configmaps: dict[str, Any], secrets: dict[str, Any]) -> str:
    source = item.get("valueFrom") or {}
    for ref_kind, objects, field_name in (
        ("secretKeyRef", secrets, "stringData"),
        ("configMapKeyRef", configmaps, "data"),
    ):
        ref = source.get(ref_kind)
        if ref and ref["name"] in objects and ref["key"] in (objects[ref["name"]].get(field_name) or {}):
            return str(objects[ref["name"]][field_name][ref["key"]])
    return "<from a reference>"


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions; {} selects all)."""
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise ValueError(f"unknown selector operator {operator!r}")
    return True


# ------------------------------------------------------------------ custom resources


def _strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists its
    properties (the API server's strict field validation rejects unknown fields)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict JSON schema of a bundled custom resource."""
    bundled = yaml.safe_load(CRD_SCHEMAS.read_text())
    return {(api, kind): _strict(schema) for api, kinds in bundled.items() for kind, schema in kinds.items()}


def is_custom_resource(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in crd_schemas()
