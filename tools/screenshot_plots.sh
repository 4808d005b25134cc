#!/usr/bin/env bash
# Render `dvc plots show` offline and photograph it in headless Chromium, to look at what a user sees.
#   bash tools/screenshot_plots.sh            # after `make repro`; writes dvc_plots/index.html and dvc_plots/screenshot.png
# Needs Debian's chromium (`apt-get install chromium`); the pipeline itself does not.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "chromium is not installed: apt-get install chromium" >&2; exit 1; }
.venv/bin/dvc plots show -o dvc_plots >/dev/null
# No network: the page must render from local files alone (the plots are PNGs the evaluate stage drew).
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --window-size=1300,2600 --screenshot="$PWD/dvc_plots/screenshot.png" "file://$PWD/dvc_plots/index.html" 2>/dev/null
# Fails unless the page shows every plot dvc.yaml declares and loads nothing from the network.
declared=$(.venv/bin/python -c 'import yaml; print(len(yaml.safe_load(open("dvc.yaml"))["plots"]))')
shown=$(grep -o '<img' dvc_plots/index.html | wc -l)
echo "images in the page: $shown of $declared declared"
remote=$(grep -o 'https\?://[^"]*' dvc_plots/index.html | sort -u || true)
[ -z "$remote" ] || { echo "remote references (blank offline): $remote" >&2; exit 1; }
[ "$shown" -eq "$declared" ] || { echo "the page shows $shown images, dvc.yaml declares $declared" >&2; exit 1; }
[ -s dvc_plots/screenshot.png ] || { echo "chromium wrote no screenshot" >&2; exit 1; }
echo "screenshot: dvc_plots/screenshot.png"
