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
grep -c '<img' dvc_plots/index.html | sed 's/^/images in the page: /'
grep -o 'https\?://[^"]*' dvc_plots/index.html | sort -u | sed 's/^/remote reference: /' || true
echo "screenshot: dvc_plots/screenshot.png"
