"""The MLflow run lifecycle's local store: a copied checkout writes to its own artifacts folder."""

import shutil

from mlflow.tracking._tracking_service.utils import _artifact_repos_cache

from comic.tracking import start_run


def test_a_copied_checkout_writes_its_artifacts_into_its_own_folder_not_the_originals(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    original, copy = tmp_path / "original", tmp_path / "copy"
    (original / "mlflow").mkdir(parents=True)
    monkeypatch.chdir(original)  # the train stage's default root is mlflow/artifacts of the working directory
    uri = f"sqlite:///{original / 'mlflow' / 'mlflow.db'}"
    first = start_run(uri, "comic", "first", {}, {})
    MlflowClient(uri).log_text(first, "a", "a.txt")
    shutil.copytree(original, copy)
    _artifact_repos_cache.clear()  # what MLflow remembers per run in this process; a stage is a new process

    monkeypatch.chdir(copy)
    uri = f"sqlite:///{copy / 'mlflow' / 'mlflow.db'}"
    second = start_run(uri, "comic", "second", {}, {})
    assert start_run(uri, "comic", "first", {}, {}) == first  # a resumed run too
    client = MlflowClient(uri)
    client.log_text(second, "b", "b.txt")
    client.log_text(first, "c", "c.txt")

    def written(root):
        return sorted(p.name for p in (root / "mlflow" / "artifacts").rglob("*.txt"))

    assert written(original) == ["a.txt"]
    assert written(copy) == ["a.txt", "b.txt", "c.txt"]
    assert client.get_run(first).info.artifact_uri.startswith((copy / "mlflow" / "artifacts").as_uri())
