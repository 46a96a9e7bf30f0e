#!/bin/bash
# TIPC data for STFPM (format A). Run from STFPM-Paddle/:
#   bash test_tipc/prepare.sh test_tipc/configs/STFPM/train_infer_python.txt lite_train_lite_infer
#       -> synthetic MVTec-layout lite data (offline; MVTec AD cannot be redistributed)
#   bash test_tipc/prepare.sh CONFIG [lite_train_lite_infer] /path/to/mvtec_anomaly_detection
#       -> a lite subset of a real MVTec AD copy (the config's --category must be an MVTec category)
# Writes ./test_tipc/data/MVTec/<category>/ (the category is the --category of the config's norm_train line).
FILENAME=$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")
MODE=lite_train_lite_infer
MVTEC=""
if [ -n "$2" ] && [ -d "$2" ]; then
    MVTEC=$2
else
    MODE=${2:-lite_train_lite_infer}
    MVTEC=$3
fi
[ -n "${MVTEC}" ] && MVTEC=$(cd "${MVTEC}" 2>/dev/null && pwd || echo "${MVTEC}")

TIPC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$(dirname "${TIPC_DIR}")")       # the repo root holds shared_data/
source "${ROOT}/scripts/tipc/common_func.sh"
cd "$(dirname "${TIPC_DIR}")" || exit 1          # paths in the config are relative to STFPM-Paddle/

if [ ! -f "${FILENAME}" ]; then
    echo "error: config not found: ${FILENAME}" >&2
    exit 1
fi
dataline=$(awk 'NR==1, NR==51{print}' "${FILENAME}")
IFS=$'\n'
lines=(${dataline})
unset IFS
python=${PYTHON:-${TIPC_PYTHON:-$(func_parser_value "${lines[2]}")}}
norm_train=$(func_parser_value "${lines[15]}")
category=$(echo "${norm_train}" | sed -n 's/.*--category[= ]\([^ ]*\).*/\1/p')
category=${category:-brick}

if [ "${MODE}" != "lite_train_lite_infer" ]; then
    case "${MODE}" in
        */*) echo "error: MVTec folder not found: ${MODE}" >&2 ;;
        *) echo "error: only lite_train_lite_infer is supported, got '${MODE}'" >&2 ;;
    esac
    exit 1
fi
if [ -n "${MVTEC}" ] && [ ! -d "${MVTEC}/${category}" ]; then
    echo "error: category '${category}' (from --category in ${FILENAME}) is not in ${MVTEC}; use a config" \
         "with an MVTec category, e.g. sed 's/brick/capsule/g' ${FILENAME} > test_tipc/configs/STFPM/mvtec.txt" >&2
    exit 1
fi

data=./test_tipc/data/MVTec
mkdir -p ./test_tipc/data
export PYTHONPATH="${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
# both tools write to a temporary folder and rename it into place; --force replaces the old lite data
if [ -n "${MVTEC}" ]; then
    ${python} -m shared_data.lite --src "${MVTEC}" --dst "${data}" --categories "${category}" \
        --n_train 8 --n_test 8 --force || exit 1
else
    # 8 normal training images (6 to train, 2 held out), 2 good + 2 defective test images with masks
    ${python} -m shared_data.synthetic --data_dir "${data}" --categories "${category}" --image_size 256 \
        --n_train 8 --n_test_good 2 --n_test_defect 2 --force || exit 1
fi
echo "TIPC data ready in ${data}/${category}"
