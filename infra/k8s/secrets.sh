#!/usr/bin/env bash
# The Kubernetes secrets of the cluster, made from your environment: the repo holds no credential.
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...    # S3-compatible storage (DVC, MLflow, Ray, code)
#   export AWS_ENDPOINT_URL=https://minio.example:9000        # only for a non-AWS S3 (MinIO, Ceph, R2, ...)
#   export POSTGRES_PASSWORD=$(openssl rand -hex 24)          # hex: it goes into the MLflow store URI as is
#   kubectl create namespace comic && bash infra/k8s/secrets.sh -n comic
# Idempotent (create --dry-run | apply). The Ray token secret is made by KubeRay (raycluster.yaml authOptions).
set -euo pipefail

: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}" "${POSTGRES_PASSWORD:?}"
s3=(--from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
    --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
    --from-literal=AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}")
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    # boto3, pyarrow and s3fs read AWS_ENDPOINT_URL; MLflow's artifact proxy reads its own variable.
    s3+=(--from-literal=AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" --from-literal=MLFLOW_S3_ENDPOINT_URL="$AWS_ENDPOINT_URL")
fi
kubectl "$@" create secret generic comic-s3 "${s3[@]}" --dry-run=client -o yaml | kubectl "$@" apply -f -
kubectl "$@" create secret generic comic-postgres --from-literal=POSTGRES_USER=mlflow \
    --from-literal=POSTGRES_PASSWORD="$POSTGRES_PASSWORD" --dry-run=client -o yaml | kubectl "$@" apply -f -
