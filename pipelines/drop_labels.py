"""Stage drop_labels: hide data.missing_rate of each class's positives in train and val; class stats."""

from comic import stage
from comic.config import load_params
from comic.data.partial import class_summary, hide_labels
from comic.data.store import load_classes, read_split, write_dataset


def main() -> None:
    args = stage.arguments(__doc__, "in_", "out")
    params = load_params(args.params)
    data, metrics = params.data, params.metrics
    train = hide_labels(read_split(args.in_, "train"), data.missing_rate, data.seed)
    val = hide_labels(read_split(args.in_, "val"), data.missing_rate, data.seed)
    test = read_split(args.in_, "test")
    names = load_classes(args.in_)["names"]
    classes = class_summary(names, train, val, test, metrics.many_threshold, metrics.few_threshold)
    write_dataset(args.out, [train, val, test], classes)
    hidden = 1 - train.labels_observed.sum() / train.labels_full.sum()
    groups = {g: classes["groups"].count(g) for g in ("many", "medium", "few")}
    print(f"drop_labels: hid {hidden:.1%} of training positives; classes per group {groups}")


if __name__ == "__main__":
    stage.run(main)
