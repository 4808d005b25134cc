"""Build the photo case: about 2,700 real COCO photos over the 20 VOC classes, long-tailed, 40 % of the
training positives hidden, as a data folder the harness trains on (docs/studies/photo-case.md).

The photos come from github:minto5z/coco_yolo (commit 4715f5c, `coco/images/`: COCO-2017 photos, every
one with a person in it), their image-level labels from github:PengtaoJiang/L2G (commit 0ec2504,
`data/coco14/{train,val}_cls.txt`: COCO-2014 ids, 0-based COCO-80 indices), mapped to VOC's 20 classes.
Neither is committed here: their licences are their owners'. Give this script the two repositories (a
clone or a bare git folder, e.g. what `git clone --bare` makes):

    PYTHONPATH=. .venv/bin/python benchmarks/photo_case.py --photos-repo ../coco_yolo --labels-repo ../L2G \
        --out data/photo_case

It writes `OUT/source/` (the photos, `train.json` / `test.json` in the comic_json layout, `classes.txt`),
`OUT/params.yaml` (the project's params with `data.source: comic_json` and the photos recipe's data keys)
and `OUT/data/plt`, built by the pipeline's own stages (build_data, split_data, drop_labels). The test
split (480 photos, every class with at least 4 positives) keeps all its labels; validation is carved from
the training pool (data.val_split carve) and hides labels like training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PHOTOS_COMMIT = "4715f5c"
LABELS_COMMIT = "0ec2504"
# VOC class -> its 0-based index among COCO's 80 categories sorted by id.
COCO_INDEX_OF_VOC = {
    "aeroplane": 4, "bicycle": 1, "bird": 14, "boat": 8, "bottle": 39, "bus": 5, "car": 2, "cat": 15,
    "chair": 56, "cow": 19, "diningtable": 60, "dog": 16, "horse": 17, "motorbike": 3, "person": 0,
    "pottedplant": 58, "sheep": 18, "sofa": 57, "train": 6, "tvmonitor": 62,
}  # fmt: skip
NUM_TEST = 480
MIN_TEST_POSITIVES = 4


def git(repo: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """A git command on `repo`, a work tree or a bare folder."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, **kwargs)


def check_commit(repo: Path, commit: str) -> None:
    done = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if done.returncode:
        raise SystemExit(f"{repo}: commit {commit} not found; is this the right repository (and not shallow)?")


def extract_photos(repo: Path, out: Path) -> list[Path]:
    """The photos of `coco/images/` at PHOTOS_COMMIT, written flat into `out`."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "images.tar"
        with archive.open("wb") as handle:
            git(repo, "archive", PHOTOS_COMMIT, "coco/images", stdout=handle)
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".jpg"):
                    (out / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return sorted(out.glob("*.jpg"))


def coco80_labels(repo: Path) -> dict[int, set[int]]:
    """COCO image id -> its COCO-80 class indices, from L2G's two label lists."""
    labels: dict[int, set[int]] = {}
    for name in ("train_cls.txt", "val_cls.txt"):
        text = git(repo, "show", f"{LABELS_COMMIT}:data/coco14/{name}", capture_output=True, text=True).stdout
        for line_no, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            indices = {int(f) for f in fields[1:]}
            if any(not 0 <= i < 80 for i in indices):
                raise ValueError(f"{name} line {line_no}: class index outside 0-79: {line!r}")
            labels[int(fields[0].rsplit("_", 1)[1])] = indices
    return labels


def voc_matrix(photos: list[Path], coco80: dict[int, set[int]]) -> np.ndarray:
    """N x 20 0/1 labels of the photos in VOC's class order."""
    missing = [p.name for p in photos if int(p.stem) not in coco80]
    if missing:
        raise ValueError(f"photos without a label row in L2G's lists: {missing[:5]} ({len(missing)} in all)")
    columns = list(COCO_INDEX_OF_VOC.values())
    return np.asarray([[int(c in coco80[int(p.stem)]) for c in columns] for p in photos], dtype=np.int16)


def choose_test(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of NUM_TEST test photos: each class first gets its share of positives (at least
    MIN_TEST_POSITIVES), rarest class first, while room is left; then random photos fill the rest."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    taken = np.zeros(len(labels), dtype=bool)
    counts = labels.sum(0)
    for c in np.argsort(counts, kind="stable"):
        target = max(MIN_TEST_POSITIVES, round(counts[c] * NUM_TEST / len(labels)))
        need = min(target - int(labels[taken, c].sum()), NUM_TEST - len(chosen))
        if need > 0:
            pool = rng.permutation(np.flatnonzero((labels[:, c] == 1) & ~taken))[:need]
            taken[pool] = True
            chosen.extend(pool.tolist())
    rest = rng.permutation(np.flatnonzero(~taken))[: NUM_TEST - len(chosen)]
    return np.sort(np.concatenate([chosen, rest]).astype(int))


def write_source(photos: list[Path], labels: np.ndarray, test: np.ndarray, source: Path) -> None:
    is_test = np.zeros(len(photos), dtype=bool)
    is_test[test] = True
    for split, mask in (("train", ~is_test), ("test", is_test)):
        entries = {photos[i].name: labels[i].tolist() for i in np.flatnonzero(mask)}
        (source / f"{split}.json").write_text(json.dumps(entries))
    (source / "classes.txt").write_text("\n".join(COCO_INDEX_OF_VOC) + "\n")


def write_params(out: Path, source: Path) -> Path:
    """The project's params.yaml with this case's data source and the photos recipe's data keys."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(source="comic_json", val_split="carve", image_size=224)
    raw["data"]["real"].update(
        train_annotations=str(source / "train.json"),
        train_images=str(source / "images"),
        test_annotations=str(source / "test.json"),
        test_images=str(source / "images"),
        class_names=str(source / "classes.txt"),
    )
    path = out / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def build(out: Path, params: Path) -> None:
    """The pipeline's three data stages, into `out/data`."""
    data = out / "data"
    stages = [
        ["pipelines/build_data.py", "--tile-bank", "comic/data/assets/tile_bank.npz", "--images",
         str(data / "images"), "--out", str(data / "raw")],
        ["pipelines/split_data.py", "--in", str(data / "raw"), "--out", str(data / "split")],
        ["pipelines/drop_labels.py", "--in", str(data / "split"), "--out", str(data / "plt")],
    ]  # fmt: skip
    for argv in stages:
        subprocess.run([sys.executable, *argv, "--params", str(params)], cwd=REPO, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos-repo", type=Path, required=True, help="github:minto5z/coco_yolo")
    parser.add_argument("--labels-repo", type=Path, required=True, help="github:PengtaoJiang/L2G")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "photo_case")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test split")
    args = parser.parse_args()
    check_commit(args.photos_repo, PHOTOS_COMMIT)
    check_commit(args.labels_repo, LABELS_COMMIT)
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    source = out / "source"
    photos = extract_photos(args.photos_repo, source / "images")
    labels = voc_matrix(photos, coco80_labels(args.labels_repo))
    test = choose_test(labels, args.seed)
    write_source(photos, labels, test, source)
    build(out, write_params(out, source))
    counts = dict(zip(COCO_INDEX_OF_VOC, labels.sum(0).tolist(), strict=True))
    print(f"photo case: {len(photos)} photos ({len(test)} test), positives per class {counts}")


if __name__ == "__main__":
    main()
