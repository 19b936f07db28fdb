#!/bin/sh
# Render a serenity HTML report in headless Chromium and save a PNG screenshot.
#
#   scripts/screenshot.sh [MODEL [OUT.png [REPORT OPTIONS...]]]
#
# Defaults: NASNet-A Large from ../shared/models/onnx, docs/report.png, and the
# options --rewrite --plan-time-limit 10 (the README's picture). SIZE=WIDTHxHEIGHT sets the window
# (default 1200x2000).
# Needs the `report` extra (matplotlib) and Debian's `chromium` package
# (apt-get install -y chromium). Offline: the report has no external references
# and Chromium runs with networking, sync and component updates off, in a
# fresh profile directory that is removed afterwards.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-"$here/../../shared/models/onnx/nasnetalarge.onnx"}
[ -f "$model" ] || model=/work/shared/models/onnx/nasnetalarge.onnx
out=${2:-"$here/docs/report.png"}
[ $# -ge 2 ] && shift 2 || set --
[ $# -gt 0 ] || set -- --rewrite --plan-time-limit 10
size=${SIZE:-1200x2000}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "screenshot.sh: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
serenity report "$model" -o "$work/report.html" "$@"
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size="$(echo "$size" | tr x ,)" \
    --screenshot="$work/shot.png" "file://$work/report.html" 2>"$work/chromium.log" || {
    cat "$work/chromium.log" >&2
    exit 1
}
mv "$work/shot.png" "$out"
echo "wrote $out ($size)"
