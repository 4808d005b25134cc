"""comic's quiet environment defaults reach MLflow whatever the import order, and a user's value wins."""

import os
import subprocess
import sys

import pytest

PROBE = "import mlflow, logging; import comic; print(logging.getLogger('mlflow.store.db.utils').getEffectiveLevel())"


@pytest.mark.parametrize(("exported", "level"), [(None, "30"), ("DEBUG", "10")])
def test_mlflow_s_level_is_set_even_when_mlflow_was_imported_before_comic(exported, level):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    if exported:
        env["MLFLOW_LOGGING_LEVEL"] = exported
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == level
