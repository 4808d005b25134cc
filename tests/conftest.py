import os

import comic  # noqa: F401  (its quiet environment defaults, before torch, Ray or MLflow start)

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one torch thread per test process and per stage it starts

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaked_mlflow_uri():
    """A test that points MLflow somewhere must not change where the next test (or a stage subprocess it
    starts, which inherits MLFLOW_TRACKING_URI) logs."""
    before = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    import mlflow

    mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
