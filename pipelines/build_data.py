"""Stage build_data: the raw dataset (training pool + test split, every label observed) in `--out`."""

from comic import stage
from comic.config import load_params
from comic.data.build import build_raw
from comic.data.store import write_dataset


def main() -> None:
    args = stage.arguments(__doc__, "tile_bank", "out")
    data = load_params(args.params).data
    raw = build_raw(data, tile_bank=args.tile_bank)
    write_dataset(args.out, [raw.train, raw.test], {"names": raw.names, "source": data.source})
    print(f"build_data: {len(raw.train)} pool and {len(raw.test)} test images, {len(raw.names)} classes")


if __name__ == "__main__":
    stage.run(main)
