# The MLflow tracking server image (compose and Kubernetes): mlflow with its basic-auth app, the PostgreSQL
# driver and boto3 for the S3 artifact store, at the versions pinned in pyproject.toml; and the script that
# creates comic's users (infra/mlflow/users.py, the Job in infra/k8s/mlflow.yaml).
#   DOCKER_BUILDKIT=1 docker build -f infra/image/mlflow.Dockerfile -t "$MLFLOW_IMAGE" . && docker push "$MLFLOW_IMAGE"
FROM python:3.11-slim

WORKDIR /opt/mlflow
COPY pyproject.toml infra/mlflow/users.py ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
pins = p['optional-dependencies']['cluster'] + p['dependencies']; \
print('\n'.join(d for d in pins if d.split('[')[0].split('=')[0] in ('mlflow', 'psycopg', 'boto3')))" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt
ENV MLFLOW_DISABLE_TELEMETRY=true
EXPOSE 5000
USER nobody
ENTRYPOINT ["mlflow", "server"]
