#!/usr/bin/env bash
# The main job on the embedded default: synthetic MVTec-layout data + the offline ImageNet backbone.
#   bash scripts/quickstart.sh [--categories brick,tablet] [--output_dir output/quickstart] [--skip_install]
# Installs what is needed, generates the data, runs every method train -> val -> predict -> export ->
# infer on two categories (about 15 minutes on 2 CPU cores), prints the results table and says where
# the pictures are.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
CATEGORIES="brick,tablet"
OUT="output/quickstart"
DATA="data/synthetic"
INSTALL=1
METHODS="padim,stfpm,sspcab,kdad"
while [ $# -gt 0 ]; do
    case "$1" in
        --categories) CATEGORIES=$2; shift 2 ;;
        --output_dir) OUT=$2; shift 2 ;;
        --data_dir) DATA=$2; shift 2 ;;
        --methods) METHODS=$2; shift 2 ;;
        --skip_install) INSTALL=0; shift ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "error: unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
mkdir -p "$DATA" && DATA=$(cd "$DATA" && pwd)

if [ "$INSTALL" = "1" ]; then
    echo "== installing requirements (pip)"
    "$PY" -m pip install -q -r requirements.txt
fi

echo "== synthetic data in $DATA"
"$PY" -m shared_data.synthetic --data_dir "$DATA" --categories ${CATEGORIES//,/ }

# Short schedules so all four methods fit in ~15 minutes on 2 cores; the paper defaults are the
# scripts' defaults (see each folder's README).
train_flags() {
    case "$1" in
        padim) echo "--backbone efficientnet_lite0" ;;
        stfpm) echo "--backbone efficientnet_lite0 --epochs 4" ;;
        sspcab) echo "--backbone efficientnet_lite0 --image_size 128 --steps 60 --batch_size 8" ;;
        kdad) echo "--backbone efficientnet_lite0 --epochs 20" ;;
    esac
}
. "$ROOT/scripts/methods.sh"  # folder_of

t_all=$SECONDS
IFS=',' read -r -a METHOD_LIST <<< "$METHODS"
IFS=',' read -r -a CAT_LIST <<< "$CATEGORIES"
for m in "${METHOD_LIST[@]}"; do
    dir="$ROOT/$(folder_of "$m")"
    [ -f "$dir/train.py" ] || { echo "== $m: not available yet, skipped"; continue; }
    for c in "${CAT_LIST[@]}"; do
        o="$OUT/$m"
        t0=$SECONDS
        echo "== $m / $c"
        mkdir -p "$o/$c"
        log="$o/$c/quickstart.log"
        if ! (
            set -e
            cd "$dir"
            "$PY" train.py --data_dir "$DATA" --category "$c" --output_dir "$o" $(train_flags "$m")
            "$PY" val.py --data_dir "$DATA" --category "$c" --output_dir "$o" --save_vis True
            "$PY" predict.py --output_dir "$o" --category "$c" --img_path "$DATA/$c/test" --save_dir "$o/$c/predict"
            "$PY" export_model.py --output_dir "$o" --category "$c"
            "$PY" infer.py --model_dir "$o/$c/inference" --img_path "$DATA/$c/test" --batch_size 8 \
                --use_mkldnn True --cpu_threads 2 --benchmark True --save_dir "$o/$c/infer"
        ) > "$log" 2>&1; then
            tail -n 5 "$log" >&2
            echo "error: $m/$c failed; full log: $log" >&2
            exit 1
        fi
        grep -E "^Category|^fitted|^exported|inference_time" "$log" | sed 's/^/   /' || true
        echo "   $m/$c done in $((SECONDS - t0)) s"
    done
done

echo "== results"
"$PY" scripts/collect_results.py --output_dir "$OUT" | sed '/^wrote/d'
echo "== finished in $((SECONDS - t_all)) s"
echo "Pictures: $OUT/<method>/<category>/vis/*.png (test set: image | anomaly map | prediction | ground truth),"
echo "          $OUT/<method>/<category>/predict/ (predict.py) and .../infer/ (exported model, Paddle Inference)."
echo "Tables:   $OUT/results.md and results.csv"
