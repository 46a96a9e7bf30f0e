#!/usr/bin/env bash
# Train + evaluate every method on every category, then gather one results table.
#
#   bash scripts/run_all_mvtec.sh [--methods a,b (default: every method of methods.tsv)] [--categories carpet,grid,...]
#        [--data_dir data/mvtec] [--output_dir output] [--recipe paper|real|quickstart] [--gpus 0,1,...]
#        [--epochs N] [--steps N] [--backbone NAME --pretrained X] [--extra "--image_size 128 ..."] [--force] [--shard i/n]
#
# --recipe: paper (default) runs each train.py with its own defaults, the paper's settings; real takes each
# method's train.py flags for real images on a 2-core CPU (methods.tsv's real column, each folder's README
# says why), quickstart those of scripts/quickstart.sh. The flags after it (--backbone, --epochs, --extra ...)
# come later on the command line, so they win.
#
# --shard i/n: this machine takes job i, i+n, i+2n, ... of the (method, category) jobs in the order
# methods x categories (1 <= i <= n), so n machines with the same flags share the work without talking
# to each other; afterwards copy their output folders to one place and merge them with
# `python scripts/collect_results.py --output_dir out1 out2 ...`.
#
# Resumable: a category whose run finished (its marker run_all.done, written after train and val both
# succeeded; a metrics.json alone does not count) is skipped unless --force. A failed category is
# reported and the rest go on; the exit code is non-zero if anything failed. With --gpus, categories
# are spread over the GPUs, one process per GPU; without it they run one after another on the CPU.
# Each run logs to <output_dir>/<method>/<category>/run.log.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python3}
. "$ROOT/scripts/methods.sh"  # the method table: method_names, folder_of
METHODS=$(method_names)
CATEGORIES="carpet,grid,leather,tile,wood,bottle,cable,capsule,hazelnut,metal_nut,pill,screw,toothbrush,transistor,zipper"
DATA_DIR="data/mvtec"
OUTPUT_DIR="output"
GPUS=""
EPOCHS=""
STEPS=""
BACKBONE=""
PRETRAINED=""
EXTRA=""
FORCE=0
SHARD="1/1"
RECIPE="paper"
while [ $# -gt 0 ]; do
    case "$1" in
        --methods) METHODS=$2; shift 2 ;;
        --categories) CATEGORIES=$2; shift 2 ;;
        --data_dir) DATA_DIR=$2; shift 2 ;;
        --output_dir) OUTPUT_DIR=$2; shift 2 ;;
        --gpus) GPUS=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --backbone) BACKBONE=$2; shift 2 ;;
        --pretrained) PRETRAINED=$2; shift 2 ;;
        --extra) EXTRA=$2; shift 2 ;;
        --recipe) RECIPE=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        --shard) SHARD=$2; shift 2 ;;
        -h|--help) sed -n 2,23p "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "${SHARD}" =~ ^[0-9]+/[0-9]+$ ]] || [ "${SHARD%/*}" -lt 1 ] || [ "${SHARD%/*}" -gt "${SHARD#*/}" ]; then
    echo "error: --shard takes i/n with 1 <= i <= n (e.g. 2/4), got ${SHARD}" >&2; exit 2
fi
case "${RECIPE}" in
    paper|real|quickstart) ;;
    *) echo "error: --recipe takes paper, real or quickstart, got '${RECIPE}'" >&2; exit 2 ;;
esac
SHARD_I=$(( ${SHARD%/*} - 1 ))
SHARD_N=${SHARD#*/}
DATA_DIR=$(cd "${DATA_DIR}" 2>/dev/null && pwd) || { echo "error: --data_dir not found: $DATA_DIR" >&2; exit 2; }
mkdir -p "${OUTPUT_DIR}" && OUTPUT_DIR=$(cd "${OUTPUT_DIR}" && pwd)

# The training flags of a method: the common ones, --epochs / --steps where its train.py has that flag
# (the expected numbers per method are in the README's results section).
train_flags() {
    local m=$1 f="" script
    script="${ROOT}/$(folder_of "$m")/train.py"
    [ "${RECIPE}" = "real" ] && f="$(real_flags "$m")"
    [ "${RECIPE}" = "quickstart" ] && f="$(quickstart_flags "$m")"
    [ -n "${BACKBONE}" ] && f="$f --backbone ${BACKBONE}"
    [ -n "${PRETRAINED}" ] && f="$f --pretrained ${PRETRAINED}"
    [ -n "${EXTRA}" ] && f="$f ${EXTRA}"
    [ -n "${EPOCHS}" ] && grep -q 'add_argument("--epochs"' "$script" && f="$f --epochs ${EPOCHS}"
    [ -n "${STEPS}" ] && grep -q 'add_argument("--steps"' "$script" && f="$f --steps ${STEPS}"
    echo "$f"
}

IFS=',' read -r -a METHOD_LIST <<< "${METHODS}"
IFS=',' read -r -a CAT_LIST <<< "${CATEGORIES}"
IFS=',' read -r -a GPU_LIST <<< "${GPUS}"
N_JOBS=$(( ${#METHOD_LIST[@]} * ${#CAT_LIST[@]} ))
if [ "${SHARD_I}" -ge "${N_JOBS}" ]; then
    echo "error: --shard ${SHARD} has no job: there are ${N_JOBS} (${#METHOD_LIST[@]} method(s) x ${#CAT_LIST[@]} categories)" >&2
    exit 2
fi
for m in "${METHOD_LIST[@]}"; do
    [ -n "$(folder_of "$m")" ] || { echo "error: unknown method '$m' ($(method_names | sed 's/,/, /g'))" >&2; exit 2; }
done

STATUS_DIR=$(mktemp -d)
trap 'rm -rf "${STATUS_DIR}"' EXIT

# SIGTERM (a process manager) or Ctrl-C stops the whole run: the Python run in progress gets the same
# signal (it removes its temporary files and keeps its --resume state), the GPU workers stop theirs, and
# this script ends with 143 / 130. A category stopped this way has no run_all.done, so the next
# run_all_mvtec.sh redoes it.
CHILD=""
stop_all() {   # stop_all SIGNAL EXIT_CODE
    trap '' TERM INT
    [ -n "${CHILD}" ] && kill -s "$1" "${CHILD}" 2>/dev/null
    for j in $(jobs -p); do kill -s "$1" "$j" 2>/dev/null; done
    wait
    [ "${IS_WORKER:-0}" = "1" ] || echo "error: $([ "$1" = TERM ] && echo terminated || echo interrupted)" >&2
    exit "$2"
}
trap 'stop_all TERM 143' TERM
trap 'stop_all INT 130' INT

# in_folder FOLDER LOG CMD...: run CMD in FOLDER, appending to LOG, in the background so that a signal
# reaches this script at once (bash runs a trap only after a foreground command ends)
in_folder() {
    local dir=$1 log=$2
    shift 2
    ( cd "${dir}" && exec "$@" ) >> "${log}" 2>&1 &
    CHILD=$!
    wait "${CHILD}"
    local rc=$?
    CHILD=""
    return ${rc}
}

# run_one METHOD CATEGORY DEVICE: train + val, log to run.log, record ok/failed/skipped.
run_one() {
    local m=$1 c=$2 dev=$3
    local folder out log
    folder="${ROOT}/$(folder_of "$m")"
    out="${OUTPUT_DIR}/${m}"
    log="${out}/${c}/run.log"
    if [ "${FORCE}" = "0" ] && [ -f "${out}/${c}/run_all.done" ]; then
        echo "skip   ${m}/${c} (finished earlier: ${out}/${c}/run_all.done; --force to redo)"
        echo "skipped" > "${STATUS_DIR}/${m}_${c}"
        return
    fi
    mkdir -p "${out}/${c}"
    rm -f "${out}/${c}/run_all.done"
    echo "start  ${m}/${c} on ${dev} -> ${log}"
    local t0=$SECONDS t1
    : > "${log}"
    # shellcheck disable=SC2046 # train_flags is a list of words
    in_folder "${folder}" "${log}" ${PYTHON} train.py --data_dir "${DATA_DIR}" --category "${c}" --output_dir "${out}" \
        --device "${dev}" $(train_flags "$m") &&
    t1=$SECONDS &&
    in_folder "${folder}" "${log}" ${PYTHON} val.py --data_dir "${DATA_DIR}" --category "${c}" --output_dir "${out}" \
        --device "${dev}"
    local rc=$?
    if [ "${rc}" -eq 130 ] || [ "${rc}" -eq 143 ]; then
        # a step stopped by Ctrl-C or SIGTERM (its process alone, or the whole group): the run stops here
        echo "failed" > "${STATUS_DIR}/${m}_${c}"
        stop_all "$([ "${rc}" -eq 143 ] && echo TERM || echo INT)" "${rc}"
    fi
    if [ "${rc}" -eq 0 ]; then
        # the marker comes last: a run stopped anywhere before it is redone next time. Its lines are YAML
        # (collect_results.py reports the minutes of a run from them).
        local flags
        flags=$(train_flags "$m" | sed -e 's/^ *//' -e 's/\\/\\\\/g' -e 's/"/\\"/g')
        printf 'finished: %s\nrecipe: %s\ntrain_flags: "%s"\ntrain_seconds: %d\nval_seconds: %d\nseconds: %d\n' \
            "$(date '+%Y-%m-%d %H:%M:%S')" "${RECIPE}" "${flags}" $((t1 - t0)) $((SECONDS - t1)) $((SECONDS - t0)) \
            > "${out}/${c}/run_all.done"
        echo "done   ${m}/${c} in $((SECONDS - t0)) s: $(tail -n 1 "${log}")"
        echo "ok" > "${STATUS_DIR}/${m}_${c}"
    else
        echo "FAILED ${m}/${c} after $((SECONDS - t0)) s: $(grep -v '^\s*$' "${log}" | tail -n 1)"
        echo "failed" > "${STATUS_DIR}/${m}_${c}"
    fi
}

for mi in "${!METHOD_LIST[@]}"; do
    m=${METHOD_LIST[$mi]}
    MINE=()   # this shard's categories of method m: job (mi, ci) is number mi * #categories + ci
    for ci in "${!CAT_LIST[@]}"; do
        [ $(( (mi * ${#CAT_LIST[@]} + ci) % SHARD_N )) -eq "${SHARD_I}" ] && MINE+=("${CAT_LIST[$ci]}")
    done
    [ ${#MINE[@]} -gt 0 ] || continue
    if [ ${#GPU_LIST[@]} -gt 0 ]; then
        # One worker per GPU; worker k takes categories k, k+n, k+2n, ...
        n=${#GPU_LIST[@]}
        for k in "${!GPU_LIST[@]}"; do
            (
                IS_WORKER=1 CHILD=""
                trap 'stop_all TERM 143' TERM
                trap 'stop_all INT 130' INT
                export CUDA_VISIBLE_DEVICES=${GPU_LIST[$k]}
                for i in "${!MINE[@]}"; do
                    [ $((i % n)) -eq "$k" ] && run_one "$m" "${MINE[$i]}" gpu
                done
            ) &
        done
        wait
        wait   # a trap interrupts the first wait; the second lets the workers finish stopping
    else
        for c in "${MINE[@]}"; do run_one "$m" "$c" cpu; done
    fi
done

failed=$(grep -l failed "${STATUS_DIR}"/* 2>/dev/null | xargs -r -n1 basename)
${PYTHON} "${ROOT}/scripts/collect_results.py" --output_dir "${OUTPUT_DIR}" || true
if [ -n "${failed}" ]; then
    echo "failed runs: $(echo ${failed})" >&2
    exit 1
fi
echo "all runs finished; tables in ${OUTPUT_DIR}/results.md"
