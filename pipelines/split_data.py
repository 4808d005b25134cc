"""Stage split_data: carve the validation split out of the training pool."""

from comic import stage
from comic.config import load_params
from comic.data.split import carve_validation
from comic.data.store import load_classes, read_split, require_positives, write_dataset


def main() -> None:
    args = stage.arguments(__doc__, "in_", "out")
    data = load_params(args.params).data
    classes = load_classes(args.in_)
    train, val = carve_validation(read_split(args.in_, "train"), data.val_fraction, data.seed)
    require_positives(train.labels_full, classes["names"], f"{args.in_} after carving validation, split 'train'")
    write_dataset(args.out, [train, val, read_split(args.in_, "test")], classes)
    print(f"split_data: {len(train)} train, {len(val)} val images")


if __name__ == "__main__":
    stage.run(main)
