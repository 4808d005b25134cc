"""The MLflow model registry: register a trained run's model, gate the `champion` alias, report why.

Every trained model becomes a version of one registered model (params `register.model_name`), tagged at
creation with its test metrics, the data it was trained and evaluated on and the git commit. The alias
`champion` moves to the new version only when `decide` says so: at least `min_gain` mAP points above the
current champion, both evaluated now on the same test split, and no shot group more than `max_group_drop`
points worse. Otherwise the version gets the alias `challenger` (the latest version that was not
promoted). The first version becomes champion. See docs/registry.md.

Failure is all-or-nothing for a version: the server is probed and the challenger evaluated before
anything is written, and the version is created with its tags in one call.

What is promoted is verified whole: every file of the registered pyfunc must hash to what the train stage
logged (`comic.serving.ARTIFACT_TAG`), its model file must be the one scored, and the code it would run
(entry point and `code/`) must be this checkout's comic package, byte for byte. A champion that cannot be
verified stops the stage with the command that replaces it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from comic.config import MetricsConfig, RegisterConfig
from comic.files import file_sha256, write_json
from comic.metrics import GROUPS
from comic.tracking import RunRecord, local_artifact_uri

CHAMPION, CHALLENGER = "champion", "challenger"
SUMMARY_KEYS = ("mAP", "mAP_many", "mAP_medium", "mAP_few", "recall@0.5", "precision@0.5")
# Tags every registered version carries (plus one `test/<metric>` tag per evaluated metric).
VERSION_TAGS = (
    "run_id",
    "model_sha256",
    "artifact_sha256",
    "git_commit",
    "dvc_data_version",
    "eval_dvc_data_version",
    "gate",
)
# Tag `gate`: pending while the version is being gated, then the outcome (failed: the gate raised;
# abandoned: its registration died while pending); `gate_reason` says why for rejected and abandoned.
PENDING, PROMOTED, REJECTED, FAILED, ABANDONED = "pending", "promoted", "rejected", "failed", "abandoned"
STALE_PENDING_S = 600  # a version pending longer than this belongs to a registration that was killed
ALIAS_ATTEMPTS = 5  # re-reads of a champion that moved while we decided


class RegistryError(RuntimeError):
    """The registry could not be used; the message says why and what to do. Nothing half-written."""


class UnverifiableChampion(RegistryError):
    """The current champion cannot be verified or compared; the message holds the command that replaces it."""


# ------------------------------------------------------------------------------------------- gate
@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]


def decide(challenger: dict, champion: dict | None, *, min_gain: float, max_group_drop: float) -> Decision:
    """Promote the challenger iff mAP_challenger >= mAP_champion + min_gain and no shot group loses more
    than max_group_drop points. Reports are `test_report` summaries (percent; None = no classes/positives).
    A group missing from either report is not compared. No champion: the first model is promoted."""
    if champion is None:
        return Decision(True, ["no champion yet: the first registered model becomes champion"])
    eps = 1e-9  # the same model evaluated twice must tie, not lose by rounding
    if challenger.get("mAP") is None or champion.get("mAP") is None:
        return Decision(False, ["mAP is undefined for the challenger or the champion (no test positives)"])
    reasons, promote = [], True
    gain = challenger["mAP"] - champion["mAP"]
    ok = gain + eps >= min_gain
    promote &= ok
    verdict = ">=" if ok else "<"
    reasons.append(
        f"mAP {challenger['mAP']:.2f} vs champion {champion['mAP']:.2f}: gain {gain:+.2f} {verdict} "
        f"min_gain {min_gain:.2f}"
    )
    for group in GROUPS:
        key = f"mAP_{group}"
        if challenger.get(key) is None or champion.get(key) is None:
            reasons.append(f"{key}: not compared (no classes with test positives in this group)")
            continue
        drop = champion[key] - challenger[key]
        ok = drop <= max_group_drop + eps
        promote &= ok
        verdict = "<=" if ok else ">"
        reasons.append(
            f"{key} {challenger[key]:.2f} vs champion {champion[key]:.2f}: drop {drop:.2f} {verdict} "
            f"max_group_drop {max_group_drop:.2f}"
        )
    return Decision(bool(promote), reasons)


# ------------------------------------------------------------------------------------ the server
def _is_http(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https")


def display_uri(uri: str) -> str:
    """The URI without user:password, and a SQLite store under the working directory as a relative path
    (it goes into committed reports and into messages)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return f"sqlite:///{path.relative_to(Path.cwd())}" if path.is_relative_to(Path.cwd()) else uri
    parts = urllib.parse.urlparse(uri)
    if parts.password is None and parts.username is None:
        return uri
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()


_env_lock, _env_depth, _env_ours = threading.Lock(), [0], set()


@contextlib.contextmanager
def http_limits(timeout: int) -> Iterator[None]:
    """Short MLflow HTTP timeouts and few retries while registering (MLflow's defaults: 120 s and 7
    retries with backoff, minutes against a dead server). MLflow reads these at every request; the
    variables a user set are kept. Nested and concurrent uses share one setting (reference-counted)."""
    limits = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",  # transient 5xx of a busy server; the probe fails fast
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    with _env_lock:
        if _env_depth[0] == 0:
            for key, value in limits.items():
                if key not in os.environ:
                    _env_ours.add(key)
                    os.environ[key] = value
        _env_depth[0] += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_depth[0] -= 1
            if _env_depth[0] == 0:
                for key in _env_ours:
                    os.environ.pop(key, None)
                _env_ours.clear()


def check_reachable(uri: str, timeout: float, untouched: str = "Nothing was registered.") -> None:
    """Raise RegistryError within `timeout` seconds if an http(s) tracking server does not answer /health;
    `untouched` tells the user what the failed command left as it was."""
    if not _is_http(uri):
        return
    import requests

    try:
        response = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as err:
        raise RegistryError(
            f"cannot reach the MLflow tracking server at {display_uri(uri)} ({type(err).__name__}: {err}). "
            "Start it (`mlflow server ...`) or point MLFLOW_TRACKING_URI / params tracking.uri at a running "
            f"one, then run it again. {untouched}"
        ) from err


# ----------------------------------------------------------------------------------- evaluation
def evaluate_model_file(path: str | Path, data_dir: str | Path, metrics: MetricsConfig) -> dict:
    """Test-split summary (`SUMMARY_KEYS`, percent) of a model file, with the shot groups of `data_dir`.
    Raises ValueError if the model predicts other classes than the dataset has."""
    from comic.evaluation import score_model_file

    report, _ = score_model_file(path, data_dir, metrics)
    return {key: report[key] for key in SUMMARY_KEYS}


def _metric_tags(summary: dict) -> dict[str, str]:
    return {
        f"test/{key.replace('@', '_at_')}": f"{value:.4f}"
        for key, value in summary.items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }


# ----------------------------------------------------------------------------------- registering
def registry_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="COMIC models; aliases champion and challenger")
    except MlflowException:
        client.get_registered_model(name)  # created concurrently: fine; any other error raises here


def _logged_model(client, record: RunRecord, uri: str) -> tuple[str, str, str | None]:
    """(model id, artifact location, the train stage's `ARTIFACT_TAG`) of the run's logged pyfunc;
    RegistryError if the store lacks it."""
    from mlflow.exceptions import MlflowException

    from comic.serving import ARTIFACT_TAG

    model_id = record.model_uri.removeprefix("models:/")
    try:
        model = client.get_logged_model(model_id)
    except MlflowException as err:
        raise RegistryError(
            f"logged model {record.model_uri} (run {record.run_id}) is not in {display_uri(uri)}; rerun the "
            f"train stage ({err})"
        ) from err
    return model_id, model.artifact_location, model.tags.get(ARTIFACT_TAG)


def _find_or_create_version(client, name: str, record: RunRecord, model: tuple[str, str], tags: dict[str, str]):
    """The version of this logged model (a rerun of the stage reuses it), else a new one with its tags.
    The source is the logged model's artifact location: given `models:/m-...`, MLflow's SQL registry
    store looks the model up through the process-wide tracking URI instead of this client's."""
    model_id, location, _ = model
    for version in client.search_model_versions(f"name='{name}' and run_id='{record.run_id}'"):
        if version.source == location:
            return version, False
    version = client.create_model_version(name, source=location, run_id=record.run_id, tags=tags, model_id=model_id)
    return version, True


def _download_version(client, uri: str, name: str, version: str | int, dst: str) -> Path:
    """Every file of a registered version, downloaded into `dst` (no logged code is loaded or run)."""
    import mlflow

    root = local_artifact_uri(client.get_model_version_download_uri(name, str(version)).rstrip("/"), uri)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=dst, tracking_uri=uri))


def _model_file_in(root: Path, name: str, version: str | int) -> Path:
    """The comic model file of a downloaded pyfunc, found through its MLmodel (read as plain YAML)."""
    import yaml

    from comic.serving import MODEL_ARTIFACT

    mlmodel = root / "MLmodel"
    flavor = (yaml.safe_load(mlmodel.read_text()) if mlmodel.is_file() else {}) or {}
    flavor = flavor.get("flavors", {}).get("python_function", {})
    artifact = (flavor.get("artifacts") or {}).get(MODEL_ARTIFACT, {}).get("path")
    path = (root / str(artifact)).resolve() if artifact else None
    if path is None or not path.is_relative_to(root.resolve()) or not path.is_file():
        raise RegistryError(f"version {version} of {name} is not a comic pyfunc (no `{MODEL_ARTIFACT}` artifact)")
    return path


def download_verified_model_file(client, uri: str, name: str, version: str | int, dst: str) -> Path:
    """The comic model file of a registered version, refused (RegistryError) unless every file of the
    version hashes to its `artifact_sha256` tag (set by the gate that verified it) and the model file to its
    `model_sha256` tag (the file that was scored). Nothing of the version is imported or run."""
    from comic.serving import artifact_sha256

    tags = client.get_model_version(name, str(version)).tags
    missing = [tag for tag in ("model_sha256", "artifact_sha256") if not tags.get(tag)]
    if missing:
        raise RegistryError(
            f"version {version} of {name} has no {' and no '.join(missing)} tag; it was not registered and "
            "verified by comic's gate"
        )
    root = _download_version(client, uri, name, version, dst)
    actual = artifact_sha256(root)
    if actual != tags["artifact_sha256"]:
        raise RegistryError(
            f"version {version} of {name}: its files hash to {actual[:12]}..., not the {tags['artifact_sha256'][:12]}"
            "... they had when the gate verified them; refusing to use it (someone changed the registry's artifacts)"
        )
    path = _model_file_in(root, name, version)
    actual = file_sha256(path)
    if actual != tags["model_sha256"]:
        raise RegistryError(
            f"version {version} of {name}: its model file has sha256 {actual[:12]}..., not the "
            f"{tags['model_sha256'][:12]}... that was scored when it was registered; refusing to use it"
        )
    return path


def foreign_files(root: Path, scored_sha: str) -> list[str]:
    """What in a downloaded pyfunc is not what this checkout's train stage logs, one line each (empty: all
    of it is): MLflow must load it through comic's entry point with comic's code (`code/comic/...` equal
    to this checkout's package, byte for byte), its model file must be the scored one, its requirements
    comic's pins. Only these files are run or installed when MLflow loads or serves the pyfunc."""
    import yaml

    from comic.serving import CODE_DIR, ENTRY_POINT, MODEL_ARTIFACT, _requirements

    problems = []
    flavors = ((yaml.safe_load((root / "MLmodel").read_text()) if (root / "MLmodel").is_file() else {}) or {}).get(
        "flavors"
    ) or {}
    pyfunc = flavors.get("python_function") or {}
    if set(flavors) != {"python_function"}:
        problems.append(f"MLmodel has the flavors {sorted(flavors)}, not python_function alone")
    if pyfunc.get("loader_module") != "mlflow.pyfunc.loaders.code_model" or "python_model" in pyfunc:
        problems.append(f"MLmodel loads it with {pyfunc.get('loader_module')!r}, not comic's code entry point")
    if Path(str(pyfunc.get("model_code_path", ""))).name != ENTRY_POINT.name or pyfunc.get("code") != "code":
        problems.append(f"MLmodel's entry point is {pyfunc.get('model_code_path')!r}, not {ENTRY_POINT.name}")
    if set(pyfunc.get("artifacts") or {}) != {MODEL_ARTIFACT}:
        problems.append(f"MLmodel names the artifacts {sorted(pyfunc.get('artifacts') or {})}, not {MODEL_ARTIFACT!r}")
    entry = root / ENTRY_POINT.name
    if not entry.is_file() or entry.read_bytes() != ENTRY_POINT.read_bytes():
        problems.append(f"{ENTRY_POINT.name} is not comic's entry point")
    ours = {
        p.relative_to(CODE_DIR.parent).as_posix(): p
        for p in CODE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    code = root / "code"
    logged = {p.relative_to(code).as_posix(): p for p in code.rglob("*") if p.is_file()} if code.is_dir() else {}
    for rel in sorted(logged):
        if rel not in ours:
            problems.append(f"code/{rel} is not in this checkout's comic package")
        elif logged[rel].read_bytes() != ours[rel].read_bytes():
            problems.append(f"code/{rel} differs from this checkout's {rel}")
    problems += [f"code/{rel} is missing" for rel in sorted(set(ours) - set(logged))]
    requirements = root / "requirements.txt"
    if not requirements.is_file() or requirements.read_text().split() != _requirements():
        problems.append("requirements.txt is not comic's pinned requirements")
    try:
        if file_sha256(_model_file_in(root, "the logged model", "")) != scored_sha:
            problems.append("its model file is not the scored model file")
    except RegistryError as err:
        problems.append(str(err))
    return problems


def resolve_version(client, model_uri: str) -> tuple[str, str]:
    """(name, version) of `models:/<name>@<alias>` or `models:/<name>/<version>`."""
    from mlflow.exceptions import MlflowException

    rest = model_uri.removeprefix("models:/")
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, version = rest.rsplit("/", 1)
        return name, str(client.get_model_version(name, version).version)
    except (MlflowException, ValueError) as err:
        raise RegistryError(f"{model_uri}: no such registered model version ({err})") from err


def _aliases(client, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def register(
    record: RunRecord,
    *,
    model_path: str | Path,
    data_dir: str | Path,
    uri: str,
    config: RegisterConfig,
    metrics: MetricsConfig,
    eval_data_version: str,
    git_commit: str,
) -> dict:
    """Register `record`'s model, gate the champion alias, and return the report (reports/registry.json)."""
    name = config.model_name
    with http_limits(config.http_timeout):
        check_reachable(uri, config.http_timeout)
        sha = file_sha256(model_path)
        if sha != record.model_sha256:
            raise RegistryError(
                f"{model_path} differs from the model the train stage logged to run {record.run_id} "
                "(sha256 mismatch); rerun the train stage (`dvc repro train`)"
            )
        client = registry_client(uri)
        run = _get_run(client, record, uri)
        model = _logged_model(client, record, uri)
        challenger = evaluate_model_file(model_path, data_dir, metrics)  # before anything is written
        tags = {
            "run_id": record.run_id,
            "model_sha256": sha,
            "git_commit": run.data.tags.get("git_commit", git_commit),
            "dvc_data_version": run.data.tags.get("dvc_data_version", "unknown"),  # what it was trained on
            "eval_dvc_data_version": eval_data_version,  # the test split of this evaluation
            "gate": PENDING,
            "gate_owner": f"{socket.gethostname()}:{os.getpid()}",  # who is gating it (see _stale)
            **_metric_tags(challenger),
        }
        _ensure_registered_model(client, name)
        version, created = _find_or_create_version(client, name, record, model, tags)
        mine = str(version.version)
        try:
            _wait_for_earlier_gates(client, name, int(mine))
            with tempfile.TemporaryDirectory(prefix="comic-registry-") as scratch:
                tags["artifact_sha256"] = _check_registered_artifact(client, uri, name, mine, sha, model, scratch)
                outcome = _gate(client, uri, name, mine, challenger, data_dir, metrics, config, scratch)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: later registrations need not wait for us
                if client.get_model_version(name, mine).tags.get("gate") == PENDING:
                    client.set_model_version_tag(name, mine, "gate", FAILED)
            raise
        tags["gate"] = PROMOTED if outcome["promoted"] or outcome["already_champion"] else REJECTED
        client.set_model_version_tag(name, mine, "gate", tags["gate"])
    return {
        "registered_model": name,
        "version": int(mine),
        "model_uri": f"models:/{name}/{mine}",
        "new_version": created,
        "alias": CHAMPION if outcome["promoted"] or outcome["already_champion"] else CHALLENGER,
        **outcome,
        "challenger_metrics": challenger,
        "gate": {"min_gain": config.min_gain, "max_group_drop": config.max_group_drop},
        "run_id": record.run_id,
        "source": record.model_uri,
        "tags": tags,
        "tracking_uri": display_uri(uri),
        "test_split": {"data": str(data_dir), "dvc_data_version": eval_data_version},
    }


def _get_run(client, record: RunRecord, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(record.run_id)
    except MlflowException as err:
        raise RegistryError(
            f"run {record.run_id} is not in the tracking store {display_uri(uri)} (the train stage logged it to "
            f"{display_uri(record.tracking_uri)}); set MLFLOW_TRACKING_URI to that store or retrain ({err})"
        ) from err


def _check_registered_artifact(client, uri: str, name: str, version: str, scored_sha: str, model, scratch) -> str:
    """The version must hold, file for file, what the train stage logged (its `ARTIFACT_TAG`), and that must
    be comic's code with the scored model file; else it is rejected and nothing else moves. Returns the
    artifact's sha256, now the version's `artifact_sha256` tag."""
    from comic.serving import ARTIFACT_TAG, artifact_sha256

    root = _download_version(client, uri, name, version, str(Path(scratch) / f"registered-{version}"))
    digest, logged = artifact_sha256(root), model[2]
    try:
        model_file = file_sha256(_model_file_in(root, name, version))
    except RegistryError:
        model_file = None
    if model_file is not None and model_file != scored_sha:
        reason = (
            f"the registered artifact's model file has sha256 {model_file[:12]}..., the scored model file "
            f"{scored_sha[:12]}...: the run record names another logged model than the file; rerun the train stage"
        )
    elif logged is None:
        reason = f"the logged model has no {ARTIFACT_TAG} tag: the train stage did not log it; rerun the train stage"
    elif digest != logged:
        reason = (
            f"its files hash to {digest[:12]}..., not the {logged[:12]}... the train stage logged: they were changed "
            "in the store since; rerun the train stage"
        )
    else:
        foreign = foreign_files(root, scored_sha)
        if not foreign:
            client.set_model_version_tag(name, version, "artifact_sha256", digest)
            return digest
        reason = (
            f"it is not what this checkout logs ({'; '.join(foreign[:3])}{'; ...' if len(foreign) > 3 else ''}): "
            "MLflow would run that code when it loads or serves it. If comic/ changed since training, rerun the "
            "train stage (`dvc repro -f train`)"
        )
    client.set_model_version_tag(name, version, "gate", REJECTED)
    client.set_model_version_tag(name, version, "gate_reason", reason)
    raise RegistryError(f"version {version} of {name} rejected: {reason}")


def _stale(version, now_s: float) -> str | None:
    """Why a pending version can no longer finish its gate (None if it may): its registering process is
    gone from this host, or it has been pending longer than STALE_PENDING_S."""
    host, _, pid = str(version.tags.get("gate_owner", "")).partition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return f"its registering process {pid} on {host} is gone"
    age = now_s - version.creation_timestamp / 1000
    if age > STALE_PENDING_S:
        return f"it has been pending for {age:.0f} s (> {STALE_PENDING_S} s)"
    return None


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _wait_for_earlier_gates(client, name: str, mine: int, poll_s: float = 0.5, say_every_s: float = 10) -> None:
    """Gates run in version order: MLflow numbers versions atomically, so a registration waits while a
    lower version is still pending. A pending version whose registration died is marked `abandoned` with
    the reason and never blocks. Two racing registrations therefore compare in turn instead of both
    against the same old champion. Says what it waits for, and for how long."""
    started, said = time.monotonic(), -say_every_s
    while True:
        pending = []
        for version in client.search_model_versions(f"name='{name}' and tags.gate = '{PENDING}'"):
            if int(version.version) >= mine:
                continue
            reason = _stale(version, time.time())
            if reason is None:
                pending.append(version)
            else:
                client.set_model_version_tag(name, version.version, "gate", ABANDONED)
                client.set_model_version_tag(name, version.version, "gate_reason", f"abandoned: {reason}")
        if not pending:
            return
        waited = time.monotonic() - started
        if waited - said >= say_every_s:
            owners = ", ".join(f"{v.version} ({v.tags.get('gate_owner', '?')})" for v in pending)
            print(f"register: version {mine} waits for the gate of version {owners}; {waited:.0f} s so far", flush=True)
            said = waited
        time.sleep(poll_s)


def _gate(client, uri, name, mine, challenger, data_dir, metrics, config, scratch) -> dict:
    """Compare with the current champion and move the aliases. MLflow has no compare-and-set on aliases,
    so besides the version order above: re-read the champion right before setting it and verify after;
    if it moved meanwhile (a registration that did not wait, e.g. a stale one), decide again."""
    champion_metrics: dict[str, dict] = {}  # version -> summary, each evaluated once
    for _ in range(ALIAS_ATTEMPTS):
        current = _aliases(client, name).get(CHAMPION)
        if current == mine:
            return _outcome(False, True, None, None, ["this version is already the champion"])
        if current is not None and current not in champion_metrics:
            try:
                path = download_verified_model_file(client, uri, name, current, os.path.join(scratch, current))
                champion_metrics[current] = evaluate_model_file(path, data_dir, metrics)
            except (ValueError, RegistryError) as err:
                verb = "verified" if isinstance(err, RegistryError) else "evaluated on this test split"
                reason = f"champion version {current} cannot be {verb} ({err})"
                client.set_registered_model_alias(name, CHALLENGER, mine)
                client.set_model_version_tag(name, mine, "gate", REJECTED)
                client.set_model_version_tag(name, mine, "gate_reason", reason)
                raise UnverifiableChampion(
                    f"{reason}. Version {mine} is verified and stays challenger; nothing can be compared with that "
                    f"champion. To make version {mine} champion, run\n  {promote_command(uri, name, mine)}\nthen "
                    "run the stage again"
                ) from None
        before = champion_metrics.get(current) if current is not None else None
        decision = decide(challenger, before, min_gain=config.min_gain, max_group_drop=config.max_group_drop)
        if not decision.promote:
            client.set_registered_model_alias(name, CHALLENGER, mine)
            return _outcome(False, False, current, before, decision.reasons)
        if _aliases(client, name).get(CHAMPION) != current:
            continue  # moved while we evaluated
        client.set_registered_model_alias(name, CHAMPION, mine)
        aliases = _aliases(client, name)
        if aliases.get(CHAMPION) == mine:
            if aliases.get(CHALLENGER) == mine:  # promoted on a rerun with another gate
                client.delete_registered_model_alias(name, CHALLENGER)
            return _outcome(True, False, current, before, decision.reasons)
    raise RegistryError(
        f"the champion alias of {name} kept moving during {ALIAS_ATTEMPTS} attempts (concurrent registrations); "
        f"version {mine} is registered with its tags but has no alias: run the stage again"
    )


def promote_command(uri: str, name: str, version: str | int) -> str:
    """The shell command that moves the champion alias to `version` by hand."""
    client = f"MlflowClient({display_uri(uri)!r})"
    return (
        f'python -c "from mlflow import MlflowClient; {client}.set_registered_model_alias({name!r}, '
        f"'{CHAMPION}', {int(version)})\""
    )


def _outcome(promoted: bool, already: bool, before: str | None, before_metrics, reasons: list[str]) -> dict:
    return {
        "promoted": promoted,
        "already_champion": already,
        "previous_champion": None if before is None else {"version": int(before), "metrics": before_metrics},
        "reasons": reasons,
    }


def write_report(path: str | Path, report: dict) -> None:
    write_json(path, report)
