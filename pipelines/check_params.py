"""DVC stage `check_params`: validate the whole params.yaml before any other stage touches its outputs.

    python pipelines/check_params.py --out reports/params_check.txt

It tracks the whole file, so a typo in any key, a value out of range or a search space that cannot work
stops `dvc repro` here, with one line naming the key. A key that a stage of dvc.yaml tracks by name must
be in the file: load_params would fill it with its default, but DVC would stop at that stage, after the
stages before it had run. Its output does not depend on the values (the other stages track the keys they
read), so a valid change reruns only the stages that read it.
"""

from pathlib import Path

import yaml

from comic import stage
from comic.config import Params, flatten, load_params
from comic.files import write_text
from comic.models.backbones import check_name

MISSING = object()


def check_tracked_keys(params_file: Path, dvc_file: Path) -> None:
    """Every dotted key a stage of `dvc_file` lists under `params` is present in `params_file`."""
    raw = yaml.safe_load(params_file.read_text()) or {}
    defaults = flatten(Params())
    for name, spec in yaml.safe_load(dvc_file.read_text())["stages"].items():
        for key in (k for k in spec.get("params", []) if isinstance(k, str)):
            node = raw
            for part in key.split("."):
                node = node.get(part, MISSING) if isinstance(node, dict) else MISSING
            if node is MISSING:
                default = f" (its default: {defaults[key]!r})" if key in defaults else ""
                raise ValueError(
                    f"{params_file}: {key} is missing; stage {name} of {dvc_file} tracks it: add it back{default}"
                )


def main() -> None:
    args = stage.arguments(__doc__, "out")
    params = load_params(args.params)
    check_tracked_keys(Path(args.params), Path(args.params).parent / "dvc.yaml")
    check_name(params.model.backbone)
    write_text(args.out, f"{args.params} passed comic.config.load_params\n")


if __name__ == "__main__":
    stage.run(main)
