"""Create the MLflow users of comic on a server running the basic-auth app (idempotent).

    MLFLOW_TRACKING_URI=http://comic-mlflow:5000 MLFLOW_AUTH_ADMIN_PASSWORD=... \
        COMIC_TRAINER_PASSWORD=... COMIC_READER_PASSWORD=... python infra/mlflow/users.py

Two users besides the admin: `comic-trainer`, what training jobs log, register and move aliases as (it
creates the experiment and the registered model, so it owns them: MANAGE), and `comic-reader`, for
people and serving, who may read everything (the server's default permission is READ) and write
nothing. Whoever holds the trainer's password can register a model and move `champion`: give it to the
training jobs alone (the Secret `comic-mlflow-trainer`). Anonymous requests are refused (401).
"""

from __future__ import annotations

import os

import requests

USERS = {"comic-trainer": "COMIC_TRAINER_PASSWORD", "comic-reader": "COMIC_READER_PASSWORD"}


def create_users(uri: str, admin: tuple[str, str], users: dict[str, str], timeout: float = 10) -> list[str]:
    """Create each user (name -> password) that does not exist yet; returns the names created."""
    created = []
    for name, password in users.items():
        response = requests.post(
            f"{uri.rstrip('/')}/api/2.0/mlflow/users/create",
            json={"username": name, "password": password},
            auth=admin,
            timeout=timeout,
        )
        if response.ok:
            created.append(name)
        elif "RESOURCE_ALREADY_EXISTS" not in response.text:
            raise SystemExit(f"cannot create MLflow user {name}: HTTP {response.status_code} {response.text[:300]}")
    return created


def main() -> None:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    admin = (os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"), os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"])
    missing = [variable for variable in USERS.values() if not os.environ.get(variable)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} (the users' passwords, from the Secrets)")
    created = create_users(uri, admin, {name: os.environ[variable] for name, variable in USERS.items()})
    print(f"MLflow users created: {created or 'none (they exist)'}")


if __name__ == "__main__":
    main()
