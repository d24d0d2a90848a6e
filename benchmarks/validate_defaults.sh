#!/usr/bin/env bash
# Issue #19's validation of the defaults on data seeds never used while choosing them:
# for each data seed, the bare mission command with --seed, then a promotion of its best trial
# with three model seeds. Logs (with the load before and after) go to $OUT/val-s<seed>.*.log.
#
#   bash benchmarks/validate_defaults.sh 10 11 12 ...      # OUT=/tmp/val by default
set -euo pipefail
OUT=${OUT:-/tmp/val}
R="$OUT/results"
mkdir -p "$R"
for s in "$@"; do
    n="val-s$s"
    {
        echo "load $(cat /proc/loadavg)"
        /usr/bin/time -f "wall %e s" python -m orchestrator.tune --trials 50 --seed "$s" --name "$n" --results-dir "$R"
        echo "load $(cat /proc/loadavg)"
    } > "$OUT/$n.tune.log" 2>&1
    {
        echo "load $(cat /proc/loadavg)"
        /usr/bin/time -f "wall %e s" python -m orchestrator.promote --name "$n" --results-dir "$R" --top-k 1 --seeds 3 --no-report
        echo "load $(cat /proc/loadavg)"
    } > "$OUT/$n.promote.log" 2>&1
done
