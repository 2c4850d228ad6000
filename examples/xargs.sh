#!/usr/bin/env bash
# Probe and plan a tree with find and xargs: batches of paths as arguments, two batches
# at a time, one manifest at the end, then a jq summary.
#
#   cargo build --release -p mem-estimate -p chunk-plan
#   examples/xargs.sh [INPUT_DIR] [BUDGET] > manifest.ndjson
#
# Exit status: 0 every input planned, 1 some inputs failed (their records say why),
# 3 the budget is too small for some input, 2 anything else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PATH="${BIN:-$root/target/release}:$PATH"
in=${1:-$root/target/demo/in}
budget=${2:-256MiB}

# -print0/-0: any file name works. -n 200: paths per mem-estimate; -P 2: two at once.
# xargs exits 123 when a mem-estimate exited 1 (some file failed): that is a result,
# not an error; chunk-plan sees those error records and exits 1 for them too.
set +e
find "$in" -type f -print0 |
    xargs -0 -n 200 -P 2 mem-estimate -q |
    chunk-plan --memory-limit "$budget" -q
status=("${PIPESTATUS[@]}")
set -e
[[ ${status[1]} == 0 || ${status[1]} == 123 ]] || exit 2
exit "${status[2]}"
