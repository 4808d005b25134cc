#!/usr/bin/env bash
# The Kubernetes secrets of the cluster, made from your environment: the repo holds no credential.
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...    # S3-compatible storage (DVC, MLflow, Ray, code)
#   export AWS_ENDPOINT_URL=https://minio.example:9000        # only for a non-AWS S3 (MinIO, Ceph, R2, ...)
#   export POSTGRES_PASSWORD=$(openssl rand -hex 24)          # hex: it goes into the MLflow store URIs as is
#   kubectl create namespace comic && bash infra/k8s/secrets.sh -n comic
# MLflow's users (basic-auth app): the admin, `comic-trainer` (training jobs: log, register, move aliases)
# and `comic-reader` (read only). Their passwords are made here unless exported (MLFLOW_ADMIN_PASSWORD,
# COMIC_TRAINER_PASSWORD, COMIC_READER_PASSWORD); read them back with
#   kubectl -n comic get secret comic-mlflow-reader -o jsonpath='{.data.MLFLOW_TRACKING_PASSWORD}' | base64 -d
# Idempotent (create --dry-run | apply), but a rerun without the exported passwords makes new ones: export
# them to keep the users' passwords (MLflow keeps the first ones). The Ray token secret is made by KubeRay.
set -euo pipefail

: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}" "${POSTGRES_PASSWORD:?}"
apply() { kubectl "$@" --dry-run=client -o yaml | kubectl "${namespace[@]}" apply -f -; }
namespace=("$@")
s3=(--from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
    --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
    --from-literal=AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}")
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    # boto3, pyarrow and s3fs read AWS_ENDPOINT_URL; MLflow's artifact proxy reads its own variable.
    s3+=(--from-literal=AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" --from-literal=MLFLOW_S3_ENDPOINT_URL="$AWS_ENDPOINT_URL")
fi
apply "$@" create secret generic comic-s3 "${s3[@]}"
apply "$@" create secret generic comic-postgres --from-literal=POSTGRES_USER=mlflow \
    --from-literal=POSTGRES_PASSWORD="$POSTGRES_PASSWORD"

new_password() { openssl rand -hex 24; }
admin=${MLFLOW_ADMIN_PASSWORD:-}; [[ -n "$admin" ]] || admin=$(new_password)
trainer=${COMIC_TRAINER_PASSWORD:-}; [[ -n "$trainer" ]] || trainer=$(new_password)
reader=${COMIC_READER_PASSWORD:-}; [[ -n "$reader" ]] || reader=$(new_password)
ini=$(mktemp)
trap 'rm -f "$ini"' EXIT
cat > "$ini" <<INI
[mlflow]
default_permission = READ
database_uri = postgresql://mlflow:${POSTGRES_PASSWORD}@comic-postgres:5432/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
apply "$@" create secret generic comic-mlflow-auth --from-file=basic_auth.ini="$ini" \
    --from-literal=MLFLOW_AUTH_ADMIN_PASSWORD="$admin" \
    --from-literal=MLFLOW_FLASK_SERVER_SECRET_KEY="$(openssl rand -hex 24)" \
    --from-literal=COMIC_TRAINER_PASSWORD="$trainer" --from-literal=COMIC_READER_PASSWORD="$reader"
apply "$@" create secret generic comic-mlflow-trainer --from-literal=MLFLOW_TRACKING_USERNAME=comic-trainer \
    --from-literal=MLFLOW_TRACKING_PASSWORD="$trainer"
apply "$@" create secret generic comic-mlflow-reader --from-literal=MLFLOW_TRACKING_USERNAME=comic-reader \
    --from-literal=MLFLOW_TRACKING_PASSWORD="$reader"
