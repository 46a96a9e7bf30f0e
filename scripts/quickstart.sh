#!/usr/bin/env bash
# The main job on the embedded default: synthetic MVTec-layout data + the offline ImageNet backbone.
#   bash scripts/quickstart.sh [--categories brick,tablet] [--output_dir output/quickstart] [--jobs N] [--skip_install]
# Installs what is needed, generates the data, runs every method train -> val -> predict -> export ->
# infer on two categories (about 12 minutes on 2 CPU cores), prints the results table and says where
# the pictures are. Categories run side by side, one process per core (--jobs, default: the cores).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
CATEGORIES="brick,tablet"
OUT="output/quickstart"
DATA="data/synthetic"
INSTALL=1
. "$ROOT/scripts/methods.sh"  # the method table: method_names, folder_of, quickstart_flags
METHODS=$(method_names)
CORES=$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())')
JOBS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --categories) CATEGORIES=$2; shift 2 ;;
        --output_dir) OUT=$2; shift 2 ;;
        --data_dir) DATA=$2; shift 2 ;;
        --methods) METHODS=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --skip_install) INSTALL=0; shift ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "error: unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
mkdir -p "$DATA" && DATA=$(cd "$DATA" && pwd)
IFS=',' read -r -a METHOD_LIST <<< "$METHODS"
IFS=',' read -r -a CAT_LIST <<< "$CATEGORIES"
[ -n "$JOBS" ] || JOBS=$(( CORES < ${#CAT_LIST[@]} ? CORES : ${#CAT_LIST[@]} ))
case "$JOBS" in ''|*[!0-9]*|0) echo "error: --jobs must be a positive integer, got $JOBS" >&2; exit 2 ;; esac
# Eager Paddle's CPU kernels are mostly single-threaded (im2col, depthwise convolutions, batch norm):
# one category per core runs ~1.8x more work than one category on two threads (README benchmarks).
THREADS=$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))

if [ "$INSTALL" = "1" ]; then
    echo "== installing requirements (pip)"
    "$PY" -m pip install -q -r requirements.txt
fi

echo "== synthetic data in $DATA"
"$PY" -m shared_data.synthetic --data_dir "$DATA" --categories ${CATEGORIES//,/ }

# The recipes (methods.tsv's quickstart column) fit ~12 minutes on 2 cores with the offline
# EfficientNet-Lite0; the scripts' own defaults are the papers' settings. Why each differs (measured on
# other seeds of the synthetic data, never on these test sets) is in the README's quick-start section.

chain() {  # method category: train -> val -> predict -> export -> infer, log in <out>/<m>/<c>/quickstart.log
    local m=$1 c=$2 dir o log t0=$SECONDS
    dir="$ROOT/$(folder_of "$m")"
    o="$OUT/$m"
    log="$o/$c/quickstart.log"
    mkdir -p "$o/$c"
    # each step ends the chain when it fails or is stopped (set -e has no effect inside `if ! ( ... )`)
    (
        cd "$dir" || exit
        "$PY" train.py --data_dir "$DATA" --category "$c" --output_dir "$o" $(quickstart_flags "$m") || exit
        "$PY" val.py --data_dir "$DATA" --category "$c" --output_dir "$o" --save_vis True || exit
        "$PY" predict.py --output_dir "$o" --category "$c" --img_path "$DATA/$c/test" --save_dir "$o/$c/predict" \
            || exit
        "$PY" export_model.py --output_dir "$o" --category "$c" || exit
        "$PY" infer.py --model_dir "$o/$c/inference" --img_path "$DATA/$c/test" --batch_size 8 \
            --use_mkldnn True --cpu_threads "$THREADS" --benchmark True --save_dir "$o/$c/infer" || exit
    ) > "$log" 2>&1
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        # a step stopped by a signal (130 Ctrl-C, 143 SIGTERM) stops the whole quick start with its code
        [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] && return "$rc"
        tail -n 5 "$log" >&2
        echo "error: $m/$c failed; full log: $log" >&2
        return 1
    fi
    { echo "== $m / $c done in $((SECONDS - t0)) s"
      grep -E "^Category|^fitted|^exported|inference_time" "$log" | sed 's/^/   /' || true; }
}

category() {  # every method on one category, one after the other
    local c=$1 m
    for m in "${METHOD_LIST[@]}"; do
        [ -f "$ROOT/$(folder_of "$m")/train.py" ] || { echo "== $m: not available, skipped"; continue; }
        chain "$m" "$c" || return $?
    done
}

# SIGTERM or Ctrl-C stops everything this script started (each Python run cleans up after itself)
descendants() {   # the processes below $1, deepest first (Linux /proc)
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; echo "$c"; done
}
stop_all() {
    trap '' TERM INT
    kill -s "$1" $(descendants $$) 2>/dev/null
    wait
    echo "error: $([ "$1" = TERM ] && echo terminated || echo interrupted)" >&2
    exit "$2"
}
trap 'stop_all TERM 143' TERM
trap 'stop_all INT 130' INT

echo "== ${METHOD_LIST[*]} on ${CAT_LIST[*]}: $JOBS categories at a time, $THREADS thread(s) each"
export OMP_NUM_THREADS=$THREADS
t_all=$SECONDS
FAILED="$OUT/.failed"
rm -f "$FAILED"
for c in "${CAT_LIST[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    { rc=0; category "$c" || rc=$?; [ "$rc" -eq 0 ] || echo "$c $rc" >> "$FAILED"; } &
done
while [ -n "$(jobs -rp)" ]; do wait; done
if [ -s "$FAILED" ]; then
    # a category stopped by Ctrl-C or SIGTERM (its step exited 130 / 143): the quick start ends the same way
    for code in 143 130; do
        if grep -q " $code\$" "$FAILED"; then
            echo "error: $([ "$code" = 143 ] && echo terminated || echo interrupted)" >&2
            exit "$code"
        fi
    done
    echo "error: the quick start failed for: $(cut -d' ' -f1 "$FAILED" | tr '\n' ' ')(see the log named above)" >&2
    exit 1
fi

echo "== results"
"$PY" scripts/collect_results.py --output_dir "$OUT" | sed '/^wrote/d'
echo "== finished in $((SECONDS - t_all)) s"
echo "Pictures: $OUT/<method>/<category>/vis/*.png (test set: image | anomaly map | prediction | ground truth),"
echo "          $OUT/<method>/<category>/predict/ (predict.py) and .../infer/ (exported model, Paddle Inference)."
echo "Tables:   $OUT/results.md and results.csv"
