"""Stage scan_sources (always run): `--out` fingerprints the files outside the repository that build_data
reads (a real dataset's annotations and image folders, label-row files), so a change to any reruns it."""

from comic import stage
from comic.config import load_params
from comic.data.sources import fingerprint
from comic.files import write_json


def main() -> None:
    args = stage.arguments(__doc__, "out")
    scanned = fingerprint(load_params(args.params).data)
    write_json(args.out, scanned)
    folders = [v for v in scanned["files"].values() if "digest" in v]
    print(f"scan_sources: {len(scanned['files'])} source files and folders ({sum(f['files'] for f in folders)} images)")


if __name__ == "__main__":
    stage.run(main)
