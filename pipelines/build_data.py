"""Stage build_data: the image store (`--images`: every image once, in tar shards) and the raw dataset
(`--out`: label tables of the training pool, the test split and, with data.val_split natural, the validation
split; every label observed)."""

from comic import stage
from comic.config import load_params
from comic.data.build import build_raw, store_images


def main() -> None:
    args = stage.arguments(__doc__, "tile_bank", "images", "out")
    data = load_params(args.params).data
    raw = build_raw(data, tile_bank=args.tile_bank)
    classes = {"names": raw.names, "source": data.source}
    tables = store_images(raw, args.out, args.images, embed=data.real.embed_images, classes=classes)
    sizes = ", ".join(f"{len(t)} {'pool' if t.split == 'train' else t.split}" for t in tables)
    print(f"build_data: {sizes} images, {len(raw.names)} classes")


if __name__ == "__main__":
    stage.run(main)
