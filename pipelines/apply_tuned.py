"""DVC stage `apply_tuned`: the overrides the train stage applies, from the search when train.use_tuned.

    python pipelines/apply_tuned.py --best reports/tune/best_params.yaml --out reports/tune/applied.yaml

With train.use_tuned false it writes `{}`, whatever the search found, so a new search does not retrain;
with true, the best trial's values. Only this small file is the train stage's dependency.
"""

import yaml

from comic import stage
from comic.config import load_params, override
from comic.files import write_text
from comic.tune_results import applied_values


def main() -> None:
    args = stage.arguments(__doc__, "best", "out")
    params = load_params(args.params)
    values = applied_values(params.train.use_tuned, args.best)
    override(params, values)  # fails here, naming the key, if the search's values no longer fit the params
    write_text(args.out, yaml.safe_dump(values, sort_keys=True))
    print(f"apply_tuned: {'the search values ' + str(values) if values else 'nothing (train.use_tuned is false)'}")


if __name__ == "__main__":
    stage.run(main)
