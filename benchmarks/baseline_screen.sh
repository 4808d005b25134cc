#!/usr/bin/env bash
# The two strongest baselines on benchmark v2 (focal and Hill: highest 5-seed validation mAP after COMIC,
# docs/results/accuracy.md) get the screen COMIC's defaults came from (docs/method.md): 14 settings, seed 0,
# scored on validation. Usage: bash benchmarks/baseline_screen.sh [EPOCHS] [OUT_DIR]
# Runs the two baselines side by side, one core each; finished runs are kept and not repeated.
set -euo pipefail
epochs=${1:-15}
out=${2:-docs/results}
run() {  # config, label, overrides...
    local config=$1 label=$2
    shift 2
    PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py --data data/plt --epochs "$epochs" --seeds 0 \
        --configs "$config" --jobs 1 --label "$label" --reference "${config}_default" \
        --out "$out/screen_$config.json" ${1:+--set "$@"}
}
focal() {
    run focal _default
    for gamma in 0.25 0.5 0.75 1 1.25 1.5 1.75 2.5 3 3.5 4 5 6; do
        run focal "_g$gamma" "loss.focal.gamma=$gamma"
    done
}
hill() {
    run hill _default
    for lamb in 1.0 1.25 1.75 2.0 2.5; do run hill "_lamb$lamb" "loss.hill.lamb=$lamb"; done
    for margin in 0.0 0.5 1.5 2.0; do run hill "_margin$margin" "loss.hill.margin=$margin"; done
    for gamma in 0 1 3 4; do run hill "_g$gamma" "loss.hill.gamma=$gamma"; done
}
focal > "$out/screen_focal.log" 2>&1 &
hill > "$out/screen_hill.log" 2>&1 &
wait
