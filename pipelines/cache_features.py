"""DVC stage `cache_features`: the trunk features of every image, when model.freeze_backbone (comic/features.py).

    python pipelines/cache_features.py --data data/plt --out data/features

A frozen pretrained trunk computes the same features every epoch: they are computed once here (the
eval-mode transform at the trunk's input size) and the tune and train stages read them. With a trunk
that learns, the folder holds only a meta.json that says so.
"""

from comic import stage
from comic.config import load_params
from comic.features import cache_features, write_unused
from comic.models import run_input_spec


def main() -> None:
    args = stage.arguments(__doc__, "data", "out")
    params = load_params(args.params)
    if not params.model.freeze_backbone:
        write_unused(args.out, "model.freeze_backbone is false: the trunk learns, images go to training")
        print("cache_features: nothing to cache (model.freeze_backbone is false)")
        return
    meta = cache_features(params.model, run_input_spec(params), args.data, args.out)
    print(f"cache_features: {meta['dim']}-d features of {meta['backbone']} ({meta['weights']}) at {meta['size']} px")


if __name__ == "__main__":
    stage.run(main)
