"""Stage split_data: the validation split, carved out of the training pool (data.val_split carve) or drawn
apart by build_data (natural), and the training split that is left."""

from comic import stage
from comic.config import load_params
from comic.data.split import carve_validation
from comic.data.store import load_classes, read_split, require_positives, write_dataset


def main() -> None:
    args = stage.arguments(__doc__, "in_", "out")
    data = load_params(args.params).data
    classes = load_classes(args.in_)
    if data.val_split == "carve":
        train, val = carve_validation(read_split(args.in_, "train"), data.val_fraction, data.seed)
    else:
        train, val = read_split(args.in_, "train"), read_split(args.in_, "val")
    require_positives(train.labels_full, classes["names"], f"{args.in_} after carving validation, split 'train'")
    write_dataset(args.out, [train, val, read_split(args.in_, "test")], classes)
    print(f"split_data: {len(train)} train, {len(val)} val images")


if __name__ == "__main__":
    stage.run(main)
