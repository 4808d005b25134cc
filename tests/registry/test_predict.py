"""`comic predict`: JSON Lines schema, the same answers from the registry and from the model file, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comic.cli import main
from comic.data.dataset import MultiLabelDataset
from comic.data.store import read_split
from comic.export import load_model_file
from tests.registry.conftest import log_trained_run, register_run


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_schema(rows, names, thresholds):
    for row in rows:
        assert set(row) == {"id", "probabilities", "labels"}
        assert list(row["probabilities"]) == names
        assert all(0.0 <= p <= 1.0 for p in row["probabilities"].values())
        expected = [n for n, t in zip(names, thresholds, strict=True) if row["probabilities"][n] >= t]
        assert row["labels"] == expected


@pytest.fixture(scope="module")
def image_folder(tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    table = MultiLabelDataset(tiny_data, "test", transform=None)
    (folder / "nested").mkdir()
    for i in range(5):
        (folder / ("nested" if i % 2 else ".") / f"img{i}.png").write_bytes(table.image_bytes(i))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.timeout(240)
def test_predict_from_the_registry_and_from_the_file_give_the_same_rows_with_the_documented_schema(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)
    _, bundle = load_model_file(model_file)
    names, thresholds = bundle["classes"]["names"], bundle["thresholds"]
    split = str(tiny_data / "test.parquet")

    from_registry, from_file = tmp_path / "registry.jsonl", tmp_path / "file.jsonl"
    uri = ["--tracking-uri", sqlite_store.uri]
    main(
        ["predict", "--model", f"models:/{model_name}@champion", "--input", split, "--output", str(from_registry), *uri]
    )
    main(["predict", "--model", str(model_file), "--input", split, "--output", str(from_file), "--batch-size", "7"])

    rows = read_jsonl(from_registry)
    assert [r["id"] for r in rows] == read_split(tiny_data, "test").ids
    assert_schema(rows, names, thresholds)
    for a, b in zip(rows, read_jsonl(from_file), strict=True):
        assert a["id"] == b["id"] and a["labels"] == b["labels"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


@pytest.mark.timeout(120)
def test_the_comic_command_predicts_an_image_folder_recursively(model_file, image_folder, tmp_path):
    output = tmp_path / "out" / "preds.jsonl"
    command = Path(sys.executable).with_name("comic")
    args = [str(command), "predict", "--model", str(model_file), "--input", str(image_folder), "--output", str(output)]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=100, env=os.environ | {"PYTHONWARNINGS": "ignore"}
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 5 predictions" in done.stderr
    rows = read_jsonl(output)
    assert [r["id"] for r in rows] == ["img0.png", "img2.png", "img4.png", "nested/img1.png", "nested/img3.png"]
    _, bundle = load_model_file(model_file)
    assert_schema(rows, bundle["classes"]["names"], bundle["thresholds"])


def test_bad_inputs_are_clear_errors_and_write_no_output(model_file, image_folder, tmp_path, capsys):
    output = tmp_path / "preds.jsonl"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes((image_folder / "img0.png").read_bytes())
    (tmp_path / "broken" / "b.png").write_bytes(b"not a png")
    cases = [
        (["--model", "models/absent.pt", "--input", str(image_folder)], "no such model file"),
        (["--model", str(model_file), "--input", str(tmp_path / "none")], "give an image folder or a .parquet"),
        (["--model", str(model_file), "--input", str(tmp_path / "broken")], "'b.png': image does not decode"),
        (
            ["--model", "models:/x@champion", "--input", str(image_folder), "--tracking-uri", "sqlite:///no/such.db"],
            "no MLflow tracking store",
        ),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as info:
            main(["predict", *args, "--output", str(output)])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not output.exists() and not list(tmp_path.glob(".preds.jsonl.*"))


@pytest.mark.timeout(240)
def test_predict_from_the_registry_of_a_moved_checkout(
    tiny_data, model_file, model_name, example_png, tmp_path, capsys
):
    import shutil

    from mlflow.tracking import MlflowClient

    from tests.registry.conftest import Store

    old = tmp_path / "old" / "mlflow"
    uri = f"sqlite:///{old / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("moved", artifact_location=(old / "artifacts").as_uri())
    store = Store(uri, experiment)
    record = log_trained_run(store, model_file, example_png, tmp_path / "run.json")
    register_run(record, store=store, data=tiny_data, model_path=model_file, name=model_name)
    new = tmp_path / "new" / "mlflow"
    shutil.copytree(old, new)
    shutil.rmtree(tmp_path / "old")  # the checkout moved: its store still names the old absolute paths
    output = tmp_path / "preds.jsonl"
    args = ["predict", "--model", f"models:/{model_name}@champion", "--input", str(tiny_data / "test.parquet")]
    main([*args, "--output", str(output), "--tracking-uri", f"sqlite:///{new / 'mlflow.db'}"])
    assert len(read_jsonl(output)) == len(read_split(tiny_data, "test").ids)


def test_an_empty_image_file_in_a_folder_is_a_clear_error_naming_it(model_file, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(model_file), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o")])
    assert "'empty.jpg': image does not decode (empty: 0 bytes)" in capsys.readouterr().err
