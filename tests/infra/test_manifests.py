"""The cluster manifests parse, carry what their controllers require (KubeRay's ray.io/v1 types, Kubernetes
workloads, Ray's cluster-launcher schema, compose), reference only things that exist (secrets, volumes,
services, entry points, dvc.yaml stages, params keys) and hold no credential. No network, no kubectl."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.cluster_job import DATA, FEATURES, STAGES, plan, stage_command
from tests.data.conftest import REPO

INFRA = REPO / "infra"
K8S = INFRA / "k8s"

# ---------------------------------------------------------------- KubeRay ray.io/v1 (KubeRay 1.5 Go types)
# Required: json tags without omitempty. Known: every field of the type, to catch typos that the API server
# would reject (strict validation) or silently prune.
RAY_CLUSTER_SPEC = {
    "required": {"headGroupSpec"},
    "known": set(
        "suspend managedBy autoscalerOptions headServiceAnnotations enableInTreeAutoscaling gcsFaultToleranceOptions"
        " headGroupSpec rayVersion workerGroupSpecs authOptions".split()
    ),
}
HEAD_GROUP_SPEC = {
    "required": {"template", "rayStartParams"},
    "known": {"template", "headService", "enableIngress", "rayStartParams", "serviceType"},
}
WORKER_GROUP_SPEC = {
    "required": {"groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"},
    "known": set(
        "suspend groupName replicas minReplicas maxReplicas idleTimeoutSeconds rayStartParams template scaleStrategy"
        " numOfHosts".split()
    ),
}
RAY_JOB_SPEC = {
    "required": {"entrypoint"},  # optional in the type, but a RayJob without one submits nothing
    "known": set(
        "activeDeadlineSeconds backoffLimit rayClusterSpec submitterPodTemplate metadata clusterSelector"
        " submitterConfig managedBy deletionStrategy entrypoint runtimeEnvYAML jobId submissionMode entrypointResources"
        " entrypointNumCpus entrypointNumGpus ttlSecondsAfterFinished shutdownAfterJobFinishes suspend schedule".split()
    ),
}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode"}


def check_fields(node: dict, schema: dict, where: str) -> None:
    assert isinstance(node, dict), f"{where} must be a mapping"
    missing = schema["required"] - set(node)
    assert not missing, f"{where} lacks required fields {sorted(missing)}"
    unknown = set(node) - schema["known"]
    assert not unknown, f"{where} has fields its type does not have: {sorted(unknown)}"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in documents(path):
        out.setdefault(doc["kind"], []).append(doc)
    return out


def containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def check_pod(pod_template: dict, where: str, claims: set[str] = frozenset()) -> None:
    """Containers have a name and an image; every mount names a pod volume (or a StatefulSet's claim
    template); env comes from a value or a reference."""
    spec = pod_template["spec"]
    volumes = {v["name"] for v in spec.get("volumes", [])} | claims
    assert containers(pod_template), f"{where}: no containers"
    for container in containers(pod_template):
        assert container.get("name") and container.get("image"), f"{where}: a container needs name and image"
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{where}: mount {mount['name']} is not a volume of the pod"
        for env in container.get("env", []):
            assert ("value" in env) != ("valueFrom" in env), f"{where}: env {env['name']} needs value or valueFrom"


def secret_names_created() -> set[str]:
    return set(re.findall(r"create secret generic (\S+)", (K8S / "secrets.sh").read_text()))


def secret_keys_created(name: str) -> set[str]:
    """Keys that secrets.sh puts in secret `name` (--from-literal=KEY=...)."""
    text = (K8S / "secrets.sh").read_text()
    if name == "comic-postgres":
        block = text[text.index("comic-postgres") :]
    else:
        block = text[: text.index("comic-postgres")]
    return set(re.findall(r"--from-literal=([A-Z_]+)=", block))


def secret_refs(pod_template: dict) -> set[str]:
    refs = set()
    for container in containers(pod_template):
        refs |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
        refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e}
    return refs


def claim_names(pod_template: dict) -> set[str]:
    volumes = pod_template["spec"].get("volumes", [])
    return {v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}


def test_every_infra_file_opens_with_a_comment_giving_its_apply_or_run_command():
    commands = ("kubectl", "docker", "ray up", "ray job", "bash infra/", "python -m infra.", "python infra/")
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        head = "\n".join(path.read_text().splitlines()[:14])
        if path.suffix == ".py":
            assert head.startswith('"""'), f"{path.name}: no module docstring"
        elif path.name.endswith(".dockerignore"):
            assert head.startswith("#"), f"{path.name}: no header comment"
            continue
        else:
            assert head.startswith(("#", "#!/usr/bin/env bash\n#")), f"{path.name}: no header comment"
        assert any(c in head for c in commands), f"{path.relative_to(REPO)}: the header names no command"


def test_the_ray_cluster_has_a_head_without_training_load_and_a_gpu_worker_group():
    (cluster,) = by_kind(K8S / "raycluster.yaml")["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    check_fields(spec, RAY_CLUSTER_SPEC, "RayCluster.spec")
    assert spec.get("authOptions", {}).get("mode") in ("token", None)
    head = spec["headGroupSpec"]
    check_fields(head, HEAD_GROUP_SPEC, "headGroupSpec")
    check_pod(head["template"], "head")
    assert head["rayStartParams"]["num-cpus"] == "0", "no task may be scheduled on the head"
    groups = spec["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    for group in [head, *groups]:
        # The CRD types rayStartParams as map[string]string: a bare number fails admission.
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams values are strings"
    gpu_groups = []
    for group in groups:
        check_fields(group, WORKER_GROUP_SPEC, f"workerGroupSpecs[{group['groupName']}]")
        check_pod(group["template"], group["groupName"])
        assert group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]
        limits = [c.get("resources", {}).get("limits", {}) for c in containers(group["template"])]
        if any("nvidia.com/gpu" in lim for lim in limits):
            gpu_groups.append(group)
            for container in containers(group["template"]):
                resources = container["resources"]
                assert int(resources["limits"]["nvidia.com/gpu"]) >= 1
                # Extended resources cannot be overcommitted: a request must equal the limit.
                assert (
                    resources.get("requests", {}).get("nvidia.com/gpu", resources["limits"]["nvidia.com/gpu"])
                    == (resources["limits"]["nvidia.com/gpu"])
                )
    assert gpu_groups, "a worker group must ask for nvidia.com/gpu"

    pods = [head["template"], *(g["template"] for g in groups)]
    assert set().union(*map(secret_refs, pods)) <= secret_names_created(), "a secret no script creates"
    (claim,) = by_kind(K8S / "shared-volume.yaml")["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every node mounts the shared volume"
    for pod in pods:
        assert claim_names(pod) == {claim["metadata"]["name"]}
        mounts = {m["mountPath"] for c in containers(pod) for m in c.get("volumeMounts", [])}
        assert "/shared" in mounts


def test_the_ray_job_runs_existing_entry_points_and_stages_on_that_cluster_with_shared_storage():
    (job,) = by_kind(K8S / "rayjob.yaml")["RayJob"]
    (cluster,) = by_kind(K8S / "raycluster.yaml")["RayCluster"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    check_fields(spec, RAY_JOB_SPEC, "RayJob.spec")
    assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec), "one of rayClusterSpec or clusterSelector"
    assert spec["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert spec["shutdownAfterJobFinishes"] is False, "a selected (shared) cluster must not be shut down by a job"
    assert spec.get("submissionMode", "K8sJobMode") in SUBMISSION_MODES

    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["python", "infra/cluster_job.py"] and (REPO / argv[1]).is_file()
    submit = (K8S / "submit-rayjob.sh").read_text()
    default_stages = re.search(r"COMIC_STAGES=\$\{COMIC_STAGES:-([a-z ]+)\}", submit).group(1).split()
    assert set(default_stages) <= set(STAGES)
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", (K8S / "rayjob.yaml").read_text()))
    substituted = set(re.findall(r"\$\{([A-Z_]+)\}", re.search(r"envsubst '([^']+)'", submit).group(1)))
    assert placeholders <= substituted, "a placeholder submit-rayjob.sh does not fill"

    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert set(runtime_env) <= {"working_dir", "env_vars", "excludes", "py_modules", "pip", "config"}
    assert runtime_env["working_dir"] == "${CODE_URI}"
    env = runtime_env["env_vars"]
    assert env["COMIC_STORAGE_PATH"].startswith("s3://"), "multi-node Ray Train needs storage every node sees"
    assert env["COMIC_DATA_ROOT"].startswith("/shared/")
    assert env["DVC_REMOTE_URL"].startswith("s3://")
    cluster_env = {e["name"]: e["value"] for e in containers(cluster["spec"]["headGroupSpec"]["template"])[0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == cluster_env["MLFLOW_TRACKING_URI"]
    job_text = (INFRA / "cluster_job.py").read_text()
    job_reads = set(re.findall(r"\b(COMIC_[A-Z_]+|DVC_REMOTE_[A-Z]+|MLFLOW_TRACKING_URI)\b", job_text))
    assert set(env) <= job_reads | {"COMIC_GIT_COMMIT"}, "env the job does not read"


def test_the_stages_a_job_runs_exist_with_their_scripts_params_and_a_swappable_storage_path():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for stage in STAGES:
        argv = stage_command(dvc_yaml, stage, storage="s3://bucket/ray", data="/shared/data/v1")
        original = shlex.split(dvc_yaml["stages"][stage]["cmd"])
        assert argv[0] == sys.executable and (REPO / argv[1]).is_file()
        assert f"--data={DATA}" in "=".join(original) or "--data" not in original
        assert argv[argv.index("--data") + 1] == "/shared/data/v1"
        changed = {original[i] for i, (a, b) in enumerate(zip(argv[1:], original[1:], strict=True), 1) if a != b}
        assert changed <= {"ray_results", DATA, FEATURES}, "only the storage, data and features paths change"
        if stage in ("tune", "train"):
            assert argv[argv.index("--storage") + 1] == "s3://bucket/ray"
        for key in dvc_yaml["stages"][stage].get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"stage {stage} reads params key {key}, which params.yaml lacks"
                node = node[part]
    # The cheap stages that tune and train read run first, once, and their features folder is shared too.
    assert plan(["tune", "train", "register"]) == ["cache_features", "tune", "apply_tuned", "train", "register"]
    assert plan(["register"]) == ["register"]
    for stage, flag in (("cache_features", "--out"), ("train", "--features")):
        argv = stage_command(dvc_yaml, stage, storage="s3://b", data="/shared/data/v1", features="/shared/f/job")
        assert FEATURES in dvc_yaml["stages"][stage]["cmd"] and argv[argv.index(flag) + 1] == "/shared/f/job"
    with pytest.raises(SystemExit, match="no stage"):
        stage_command(dvc_yaml, "deploy", storage="s3://b", data="/d")


def test_the_mlflow_server_runs_on_the_postgres_service_with_an_s3_artifact_store_and_secrets_only():
    postgres, mlflow = by_kind(K8S / "postgres.yaml"), by_kind(K8S / "mlflow.yaml")
    services = {s["metadata"]["name"]: s for s in postgres["Service"] + mlflow["Service"]}
    workloads = postgres["StatefulSet"] + mlflow["Deployment"]
    for workload in workloads:
        spec = workload["spec"]
        assert workload["apiVersion"] == "apps/v1"
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        check_pod(spec["template"], workload["metadata"]["name"], claims)
        assert secret_refs(spec["template"]) <= secret_names_created()
        # A Service selects this workload's pods and targets a port its container names.
        labels = spec["template"]["metadata"]["labels"].items()
        (service,) = [s for s in services.values() if s["spec"]["selector"].items() <= labels]
        port_names = {p["name"] for c in containers(spec["template"]) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    (statefulset,) = postgres["StatefulSet"]
    assert statefulset["spec"]["serviceName"] in services
    assert statefulset["spec"]["volumeClaimTemplates"], "the database survives its pod"

    (deployment,) = mlflow["Deployment"]
    (container,) = containers(deployment["spec"]["template"])
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    store = re.fullmatch(r"postgresql://\$\((\w+)\):\$\((\w+)\)@([\w-]+):5432/(\w+)", args["backend-store-uri"])
    assert store, args["backend-store-uri"]
    user, password, host, database = store.groups()
    assert host in services and {user, password} <= secret_keys_created("comic-postgres")
    env = {e["name"]: e["value"] for e in containers(statefulset["spec"]["template"])[0]["env"]}
    assert env["POSTGRES_DB"] == database
    assert args["artifacts-destination"].startswith("s3://")
    (mlflow_service,) = mlflow["Service"]
    (cluster,) = by_kind(K8S / "raycluster.yaml")["RayCluster"]
    head_env = {e["name"]: e["value"] for e in containers(cluster["spec"]["headGroupSpec"]["template"])[0]["env"]}
    service_url = f"http://{mlflow_service['metadata']['name']}:{mlflow_service['spec']['ports'][0]['port']}"
    assert head_env["MLFLOW_TRACKING_URI"] == service_url
    assert "comic-mlflow" in args["allowed-hosts"], "the server must accept the service name as Host"


def test_the_compose_file_wires_postgres_minio_and_mlflow_with_credentials_from_the_environment():
    compose = yaml.safe_load((INFRA / "mlflow" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    build = services["mlflow"]["build"]
    assert (INFRA / "mlflow" / build["context"] / build["dockerfile"]).resolve().is_file()
    args = dict(arg.removeprefix("--").split("=", 1) for arg in services["mlflow"]["command"])
    assert re.fullmatch(r"postgresql://mlflow:\$\{POSTGRES_PASSWORD\}@postgres:5432/mlflow", args["backend-store-uri"])
    assert args["artifacts-destination"].startswith("s3://")
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    # Each credential is required from the environment (compose stops on `:?`), never written here.
    text = (INFRA / "mlflow" / "compose.yaml").read_text()
    for var in ("POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.search(rf"\$\{{{var}:\?", text), f"{var} must be required from the environment"


def test_the_cluster_launcher_config_passes_rays_own_schema_with_the_same_head_and_worker_split():
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((INFRA / "cluster-launcher.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` runs first: unknown or missing fields fail
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert workers and all(t["max_workers"] >= t.get("min_workers", 0) for t in workers)
    start = " ".join(config["head_start_ray_commands"])
    assert "--head" in start and "--num-cpus=0" in start and "--autoscaling-config" in start
    assert "/shared" in " ".join(config["initialization_commands"])
    assert "-v /shared:/shared" in config["docker"]["run_options"], "the containers see the shared volume"


def test_the_images_install_the_pinned_dependencies_and_the_cluster_extra():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[=<>]", d)[0] for d in project["dependencies"] + project["optional-dependencies"]["cluster"]}
    assert {"dvc-s3", "boto3", "psycopg", "mlflow", "ray"} <= names
    for dockerfile in ("Dockerfile", "mlflow.Dockerfile"):
        text = (INFRA / "image" / dockerfile).read_text()
        assert "COPY pyproject.toml" in text and "optional-dependencies']['cluster']" in text
        assert "!pyproject.toml" in (INFRA / "image" / f"{dockerfile}.dockerignore").read_text().splitlines()
    ray_pin = next(d for d in project["dependencies"] if d.startswith("ray["))
    assert ray_pin.endswith("==2.60.0") and "rayproject/ray:2.60.0-" in (INFRA / "image" / "Dockerfile").read_text()


def test_no_credential_is_written_in_the_infra_files():
    secret_like = re.compile(
        r"AKIA[0-9A-Z]{16}"  # an AWS access key id
        r"|://[^:/\s@]+:(?![$]|\{)[^@\s]{4,}@"  # a password in a URI
        r"|(?i:(password|secret(?!name|ref|keyref)|token)[\w]*)\s*[:=]\s*['\"]?(?![$\s'\"]|\{|\(|None|null)[^\s'\"]{6,}"
    )
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            assert not secret_like.search(line), f"{path.relative_to(REPO)}:{number} looks like a credential: {line}"


def test_the_shell_scripts_parse():
    for script in sorted(INFRA.rglob("*.sh")):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script.name}: {done.stderr}"


def test_the_params_keys_and_infra_files_that_docs_cluster_md_names_exist():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    text = (REPO / "docs" / "cluster.md").read_text()
    keys = {k for k in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", text) if k.split(".")[0] in params}
    assert {"train.num_workers", "train.use_gpu"} <= keys
    for key in keys:
        node = params
        for part in key.split("."):
            assert part in node, f"docs/cluster.md names params key {key}, which params.yaml lacks"
            node = node[part]
    paths = re.findall(r"`((?:infra|pipelines|comic|k8s|mlflow|image)/[\w./-]+\.(?:py|sh|yaml))`", text)
    assert len(paths) >= 10
    for path in paths:
        assert (REPO / path).is_file() or (INFRA / path).is_file(), f"docs/cluster.md names a missing {path}"


def test_the_mlflow_server_requires_a_login_stays_inside_the_cluster_and_reads_credentials_from_secrets():
    mlflow = by_kind(K8S / "mlflow.yaml")
    (deployment,) = mlflow["Deployment"]
    (container,) = containers(deployment["spec"]["template"])
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "comic-mlflow-auth"
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["secret"]["secretName"] == "comic-mlflow-auth"
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith(container["volumeMounts"][0]["mountPath"])
    (service,) = mlflow["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    (policy,) = mlflow["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert all("namespaceSelector" not in source for rule in policy["spec"]["ingress"] for source in rule["from"])
    assert {"comic-mlflow-auth", "comic-mlflow-trainer", "comic-mlflow-reader"} <= secret_names_created()
    (job,) = mlflow["Job"]
    assert secret_refs(job["spec"]["template"]) <= secret_names_created()
    (cluster,) = by_kind(K8S / "raycluster.yaml")["RayCluster"]
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    assert all("comic-mlflow-trainer" in secret_refs(group["template"]) for group in groups)
    (statefulset,) = by_kind(K8S / "postgres.yaml")["StatefulSet"]
    (config,) = by_kind(K8S / "postgres.yaml")["ConfigMap"]
    assert "CREATE DATABASE mlflow_auth" in next(iter(config["data"].values()))
    check_pod(statefulset["spec"]["template"], "postgres", {"data"})
