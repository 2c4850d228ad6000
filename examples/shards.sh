#!/usr/bin/env bash
# Run the shards of a chunk-plan manifest with GNU parallel, one job per shard, on local
# job slots or on other machines over SSH; a job starts only when as much memory is free
# as the plan's budget (--memfree), and each job keeps to that budget (-m).
#
#   find /data/scans -type f | mem-estimate | chunk-plan --shards 8 -m 2GiB > manifest.ndjson
#   examples/shards.sh manifest.ndjson OUT                        # local job slots
#   examples/shards.sh manifest.ndjson OUT -j 2                   # any parallel option
#   examples/shards.sh manifest.ndjson OUT --sshloginfile nodes   # over SSH
#
# Over SSH the nodes must see the same paths (a shared filesystem: the manifest, the
# inputs, OUT) and have the tools: PATH is passed along (--env PATH), so install them at
# the same place everywhere or set BIN. Within a job the tool runs several inputs at once
# when the budget holds them (-j of the node's CPUs).
# Writes under OUT, mirroring the input tree below BASE (default /): JP2s (strip-convert),
# enriched clouds (laz-enrich, r = 1 m), and per shard its records: shard-N.ndjson (the
# plan), converted-N.ndjson, enriched-N.ndjson. Exit status: parallel's (the number of
# shards that had a failed input, records say which).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PATH="${BIN:-$root/target/release}:$PATH"
export PATH
manifest=$(realpath "${1:?usage: shards.sh MANIFEST OUT [PARALLEL OPTIONS...]}")
out=$(realpath -m "${2:?usage: shards.sh MANIFEST OUT [PARALLEL OPTIONS...]}")
shift 2
mkdir -p "$out"
base=${BASE:-/}

# The plan's budget: the most any job may use, and what must be free to start one.
budget=$(jq -s '[.[] | .plan.budget_bytes // empty] | max // empty' "$manifest")
[[ -n $budget ]] || { echo "shards.sh: $manifest has no plan (run chunk-plan first)" >&2; exit 2; }
shards=$(jq -r '.plan.shard // empty' "$manifest" | sort -n -u)

# One shard's work; exported to the jobs (over SSH too) with --env.
one_shard() {
    local s=$1 manifest=$2 out=$3 budget=$4 base=$5 st=0
    jq -c --argjson s "$s" 'select(.plan.shard == $s)' "$manifest" > "$out/shard-$s.ndjson"
    jq -c 'select(.format == "tiff")' "$out/shard-$s.ndjson" |
        strip-convert -q -f -m "$budget" -o "$out" --base "$base" > "$out/converted-$s.ndjson" || st=$?
    jq -c 'select(.format == "las" or .format == "laz" or .format == "copc")' "$out/shard-$s.ndjson" |
        laz-enrich -q -f -m "$budget" --radius 1 -o "$out" --base "$base" > "$out/enriched-$s.ndjson" || st=$?
    return "$st"
}
export -f one_shard

# shellcheck disable=SC2086 # one shard number a word
parallel --env one_shard --env PATH --memfree "$budget" "$@" \
    one_shard {} "$manifest" "$out" "$budget" "$base" ::: $shards
