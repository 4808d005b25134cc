"""Stage split_data: carve the validation split out of the training pool."""

import argparse

from comic.config import load_params
from comic.data.split import carve_validation
from comic.data.store import load_classes, read_split, require_positives, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--in", dest="in_dir", required=True, help="folder of build_data")
    parser.add_argument("--out", required=True, help="output folder: train/val/test.parquet, classes.json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    data = load_params(args.params).data
    classes = load_classes(args.in_dir)
    train, val = carve_validation(read_split(args.in_dir, "train"), data.val_fraction, data.seed)
    where = f"{args.in_dir} after carving validation, split 'train'"
    require_positives(train.labels_full, classes["names"], where)
    write_dataset(args.out, [train, val, read_split(args.in_dir, "test")], classes)
    print(f"split_data: {len(train)} train, {len(val)} val images")


if __name__ == "__main__":
    main()
