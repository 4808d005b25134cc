#!/usr/bin/env bash
# Submit the pipeline at this checkout's commit to a running Ray cluster (cluster launcher, a port-forwarded
# KubeRay head, or the local two-node cluster of infra/local_cluster.py):
#
#   export RAY_ADDRESS=http://<head>:8265              # the dashboard / job API
#   export COMIC_STORAGE_PATH=s3://comic/ray_results   # or a volume every node mounts
#   export MLFLOW_TRACKING_URI=http://<mlflow>:5000 DVC_REMOTE_URL=s3://comic-dvc/store
#   export COMIC_DATA_ROOT=/shared/data                # optional: a volume every node mounts
#   bash infra/submit-job.sh [ray job submit options] [-- stages]      # stages default: train register
#
# The working dir is this checkout without .git and without git-ignored files (data, venv, runs): the job
# pulls its data version from the DVC remote (infra/cluster_job.py). A dirty tree is refused, since the
# job's data and MLflow tags come from the commit (COMIC_ALLOW_DIRTY=1 overrides). Credentials are not
# passed here: nodes have them from their own environment (Kubernetes secrets, instance profiles).
set -euo pipefail

submit_args=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    submit_args+=("$1")
    shift
done
[[ "${1:-}" == "--" ]] && shift
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(train register)

: "${RAY_ADDRESS:?set RAY_ADDRESS to the job API, e.g. http://127.0.0.1:8265}"
: "${COMIC_STORAGE_PATH:?set COMIC_STORAGE_PATH (s3://... or a shared volume)}"
: "${DVC_REMOTE_URL:?set DVC_REMOTE_URL (infra/dvc-remote.sh)}"
if [[ -n "$(git status --porcelain)" && "${COMIC_ALLOW_DIRTY:-0}" != 1 ]]; then
    echo "the working tree has uncommitted changes: commit them (the job runs a commit) or set COMIC_ALLOW_DIRTY=1" >&2
    exit 1
fi
commit=$(git rev-parse HEAD)

# The job's environment: every COMIC_* variable, the tracking server, the DVC remote, quiet defaults.
# COMIC_WORKER_SETUP_HOOK (module.function) runs in every Ray worker process (infra/bench_cluster.py uses it).
runtime_env=$(COMIC_GIT_COMMIT="$commit" python - <<'EOF'
import json, os

env = {k: v for k, v in os.environ.items() if v and (k.startswith(("COMIC_", "DVC_REMOTE_")) or k == "MLFLOW_TRACKING_URI")}
env.pop("COMIC_ALLOW_DIRTY", None)
hook = env.pop("COMIC_WORKER_SETUP_HOOK", None)
env.update(RAY_USAGE_STATS_ENABLED="0", MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1",
           NO_ALBUMENTATIONS_UPDATE="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
runtime_env = {"excludes": [".git"], "env_vars": env}
if hook:
    runtime_env["worker_process_setup_hook"] = hook
print(json.dumps(runtime_env))
EOF
)

exec ray job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env-json "$runtime_env" \
    "${submit_args[@]}" -- python infra/cluster_job.py "${stages[@]}"
