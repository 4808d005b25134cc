"""Memory is bounded per request and per batch: a request's pixels are summed from the image headers and
refused before anything is decoded, and serving and `comic predict` hold at most one full-size image."""

import base64
import weakref

import cv2
import numpy as np
import pandas as pd
import pytest

import comic.serving
from comic.predict import predict_to_jsonl
from comic.serving import MAX_REQUEST_PIXELS, ComicModel
from tests.test_images import png_header


class LiveImages:
    """Wraps `decode_image` and counts the decoded images alive at each call."""

    def __init__(self, decode):
        self.decode, self.live, self.most = decode, 0, 0

    def __call__(self, data, where):
        image = self.decode(data, where)
        self.live += 1
        self.most = max(self.most, self.live)
        weakref.finalize(image, self._freed)
        return image

    def _freed(self):
        self.live -= 1


def test_a_request_over_the_pixel_budget_is_refused_from_its_headers_before_anything_is_decoded(
    model_file, monkeypatch
):
    from mlflow.exceptions import MlflowException

    monkeypatch.setattr(comic.serving, "decode_image", lambda *_: pytest.fail("decoded an image"))
    side = 6000  # 36 MP: each under the 40 MP limit, six of them over the request's budget
    rows = [base64.b64encode(png_header(side, side)).decode()] * (MAX_REQUEST_PIXELS // side**2 + 1)
    with pytest.raises(MlflowException, match=r"6 images hold 216\.0 MP together, more than the 200 MP"):
        ComicModel().load(model_file).predict(None, pd.DataFrame({"image": rows}))


@pytest.mark.parametrize("batch_size", [1, 64])
def test_serving_and_predict_hold_one_decoded_image_at_a_time_whatever_the_batch(
    model_file, tmp_path, monkeypatch, batch_size
):
    live = LiveImages(comic.serving.decode_image)
    monkeypatch.setattr(comic.serving, "decode_image", live)
    rng = np.random.default_rng(0)
    images = [cv2.imencode(".png", rng.integers(0, 255, (48, 40, 3), np.uint8))[1].tobytes() for _ in range(10)]
    for i, image in enumerate(images):
        (tmp_path / f"{i}.png").write_bytes(image)
    predictor = ComicModel().load(model_file)
    assert predict_to_jsonl(predictor, tmp_path, tmp_path / "out" / "p.jsonl", batch_size=batch_size) == 10
    request = pd.DataFrame({"image": [base64.b64encode(image).decode() for image in images]})
    assert len(predictor.predict(None, request)) == 10
    assert live.most == 1
