"""Peak memory of the served model for the largest image and the largest request it accepts.

    PYTHONPATH=. .venv/bin/python benchmarks/serving_memory.py [--model models/model.pt]

Loads the pyfunc (`comic.serving.ComicModel`, what `mlflow models serve` runs) from a model file (a
freshly initialised default COMIC model when none is given), then scores, in order: one small image,
one image of exactly the limit (a 40 MP PNG), the largest request (as many of those as
comic.serving.MAX_REQUEST_PIXELS allows), and one 20000 x 20000 PNG header (refused before decoding).
Prints the process's peak RSS (ru_maxrss) after each.
"""

from __future__ import annotations

import argparse
import base64
import resource
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a comic model file (default: an untrained default COMIC model)")
    args = parser.parse_args()
    from comic.config import Params
    from comic.data.transforms import InputSpec
    from comic.export import save_model_file
    from comic.images import MAX_PIXELS
    from comic.models import build_model
    from comic.serving import MAX_REQUEST_PIXELS, ComicModel
    from tests.test_images import png_header

    path = args.model
    if path is None:
        params = Params()
        model = build_model(params.model, params.balance, num_classes=20)
        classes = {"names": [f"class-{i}" for i in range(20)], "train_counts": [10] * 20}
        path = str(Path(tempfile.mkdtemp()) / "model.pt")
        save_model_file(
            path, model.state_dict(), params, classes, [0.5] * 20, prediction="balanced", spec=InputSpec(64)
        )
    predictor = ComicModel().load(path)
    small = cv2.imencode(".png", np.zeros((64, 64), np.uint8))[1].tobytes()
    predictor.predict(None, pd.DataFrame({"image": [base64.b64encode(small).decode()]}))
    print(f"after loading and one 64 x 64 image: peak RSS {peak_mb():.0f} MB")
    side = int(MAX_PIXELS**0.5)  # 6324 x 6324 = 39.99 MP
    ramp = np.tile(np.arange(side, dtype=np.uint16) % 256, (side, 1)).astype(np.uint8)
    large = cv2.imencode(".png", np.dstack([ramp] * 3))[1].tobytes()
    del ramp
    out = predictor.predict(None, pd.DataFrame({"image": [base64.b64encode(large).decode()]}))
    size = f"{side} x {side} RGB PNG ({len(large) / 1e6:.1f} MB, {side * side / 1e6:.1f} MP)"
    print(f"after a {size}: peak RSS {peak_mb():.0f} MB; {len(out)} row")
    rows = MAX_REQUEST_PIXELS // (side * side)
    out = predictor.predict(None, pd.DataFrame({"image": [base64.b64encode(large).decode()] * rows}))
    print(f"after a request of {rows} of them ({rows * side * side / 1e6:.0f} MP): peak RSS {peak_mb():.0f} MB")
    try:
        predictor.predict(None, pd.DataFrame({"image": [base64.b64encode(png_header(20000, 20000)).decode()]}))
    except Exception as err:  # noqa: BLE001  (the refusal is what is measured)
        print(f"a 20000 x 20000 PNG header: refused ({str(err)[:90]}); peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
