"""The model file and its MLflow pyfunc: round trip, prediction schema, no pickled Python objects."""

import base64
import os

import cv2
import numpy as np
import pytest
import torch

from comic.config import Params, override
from comic.export import load_model_file, save_model_file
from comic.models import build_model, input_spec

NAMES = ["digit-0", "sneaker", "bag"]


def png(seed):
    image = np.random.default_rng(seed).integers(0, 255, (40, 40), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture
def model_file(tmp_path):
    params = override(Params(), {"data.image_size": 32})
    model = build_model(params.model, params.balance, num_classes=3)
    path = tmp_path / "model.pt"
    classes = {"names": NAMES, "train_counts": [50, 9, 3]}
    save_model_file(
        path,
        model.state_dict(),
        params,
        classes,
        [0.5, 0.4, 0.3],
        prediction="balanced",
        spec=input_spec(params.model, 32),
    )
    return path


def test_the_model_file_round_trips_and_predicts_like_the_saved_model(model_file):
    model, bundle = load_model_file(model_file)
    again, _ = load_model_file(model_file)
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.predict(images), again.predict(images))
    assert bundle["classes"]["names"] == NAMES and bundle["thresholds"] == [0.5, 0.4, 0.3]


def test_a_missing_or_foreign_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        load_model_file(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a comic model file"):
        load_model_file(tmp_path / "junk.pt")


@pytest.mark.timeout(180)
def test_the_pyfunc_returns_a_probability_for_every_class_and_stores_no_pickle(model_file, tmp_path, monkeypatch):
    import mlflow
    import pandas as pd

    from comic.serving import log_pyfunc

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    model_uri = log_pyfunc(uri, run_id, str(model_file), [png(0)])
    assert "MLFLOW_TRACKING_URI" not in os.environ, "log_pyfunc must not leak its tracking URI"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    loaded = mlflow.pyfunc.load_model(model_uri)
    request = pd.DataFrame({"image": [base64.b64encode(png(i)).decode() for i in range(3)]})
    out = loaded.predict(request)
    assert list(out.columns) == [*NAMES, "labels"] and len(out) == 3
    assert ((out[NAMES] >= 0) & (out[NAMES] <= 1)).all().all()
    stored = {p.name for p in (tmp_path / "artifacts").rglob("*")}
    assert "python_model.pkl" not in stored
    with pytest.raises(Exception, match="row 1"):
        loaded.predict(pd.DataFrame({"image": [request["image"][0], "%%% not base64"]}))
