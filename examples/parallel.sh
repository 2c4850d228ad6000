#!/usr/bin/env bash
# Probe and plan a tree with GNU parallel, two ways, convert its TIFFs with strip-convert
# and enrich its point clouds with laz-enrich, and summarise with jq.
#
#   cargo build --release -p mem-estimate -p chunk-plan -p strip-convert -p laz-enrich
#   examples/parallel.sh [INPUT_DIR] [BUDGET]
#
# Writes target/parallel/manifest.ndjson, JP2s under target/parallel/jp2 and enriched
# clouds under target/parallel/enriched, and prints a summary per format and the failures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PATH="${BIN:-$root/target/release}:$PATH"
in=${1:-$root/target/demo/in}
budget=${2:-256MiB}
out=$root/target/parallel
mkdir -p "$out"

# 1. --pipe: parallel cuts the stream of paths into blocks of 500 lines and gives each
#    block to its own mem-estimate on stdin; --keep-order keeps the input order.
#    A failed file makes its mem-estimate exit 1, so parallel's status counts failed
#    jobs; the records themselves say which files failed.
find "$in" -type f | LC_ALL=C sort |
    parallel --pipe -N 500 -j 2 --keep-order mem-estimate -q |
    chunk-plan --memory-limit "$budget" -q > "$out/manifest.ndjson" || true

# 2. One file per job (simple, slower for many small files): same records.
find "$in" -type f -name '*.tif' | LC_ALL=C sort |
    parallel -j 2 --keep-order mem-estimate -q {} > "$out/tiffs.ndjson" || true

# 3. Convert and enrich: blocks of 20 records, two jobs at once, one thread each. BUDGET
#    holds per job, so the two together may use twice it. Other formats are left out.
jq -c 'select(.format == "tiff")' "$out/manifest.ndjson" |
    parallel --pipe -N 20 -j 2 --keep-order strip-convert -q -f -j 1 -m "$budget" -o "$out/jp2" \
    > "$out/converted.ndjson" || true
jq -c 'select(.format == "las" or .format == "laz" or .format == "copc")' "$out/manifest.ndjson" |
    parallel --pipe -N 20 -j 2 --keep-order laz-enrich -q -f -j 1 -m "$budget" -o "$out/enriched" \
    > "$out/enriched.ndjson" || true

echo "records: $(wc -l < "$out/manifest.ndjson") in $out/manifest.ndjson"
echo "by format (count, total bytes):"
jq -r 'select(.format) | [.format, .bytes] | @tsv' "$out/manifest.ndjson" |
    awk -F'\t' '{n[$1]++; b[$1]+=$2} END {for (f in n) printf "  %-6s %5d %14d\n", f, n[f], b[f]}' |
    sort
echo "failed:"
jq -r 'select(.error) | "  \(.path): \(.error.kind): \(.error.message)"' "$out/manifest.ndjson"
echo "converted: $(jq -s '[.[] | select(."strip-convert".status == "ok")] | length' "$out/converted.ndjson") pages," \
    "enriched: $(jq -s '[.[] | select(."laz-enrich".status == "ok")] | length' "$out/enriched.ndjson") clouds"
