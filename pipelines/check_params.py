"""DVC stage `check_params`: validate the whole params.yaml before any other stage touches its outputs.

    python pipelines/check_params.py --out reports/params_check.txt

It tracks the whole file, so a typo in any key, a value out of range or a search space that cannot work
stops `dvc repro` here, with one line naming the key. Its output does not depend on the values (the other
stages track the keys they read), so a valid change reruns only the stages that read it.
"""

from comic import stage
from comic.config import load_params
from comic.files import write_text
from comic.models.backbones import check_name


def main() -> None:
    args = stage.arguments(__doc__, "out")
    params = load_params(args.params)
    check_name(params.model.backbone)
    write_text(args.out, f"{args.params} passed comic.config.load_params\n")


if __name__ == "__main__":
    stage.run(main)
