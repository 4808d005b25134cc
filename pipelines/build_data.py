"""Stage build_data: the raw dataset (training pool, test split and, with data.val_split natural, the
validation split; every label observed) in `--out`."""

from comic import stage
from comic.config import load_params
from comic.data.build import build_raw
from comic.data.store import write_dataset


def main() -> None:
    args = stage.arguments(__doc__, "tile_bank", "out")
    data = load_params(args.params).data
    raw = build_raw(data, tile_bank=args.tile_bank)
    write_dataset(args.out, raw.tables, {"names": raw.names, "source": data.source})
    sizes = ", ".join(f"{len(t)} {'pool' if t.split == 'train' else t.split}" for t in raw.tables)
    print(f"build_data: {sizes} images, {len(raw.names)} classes")


if __name__ == "__main__":
    stage.run(main)
