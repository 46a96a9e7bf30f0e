#!/bin/bash
# TIPC lite data for any paper folder (format A configs). Each folder's test_tipc/prepare.sh changes into
# that folder and calls this script:
#   bash test_tipc/prepare.sh test_tipc/configs/MODEL/train_infer_python.txt [lite_train_lite_infer]
#       -> a small synthetic MVTec-layout category (offline, deterministic; MVTec AD cannot be redistributed)
#   bash test_tipc/prepare.sh CONFIG [lite_train_lite_infer] /path/to/mvtec_anomaly_detection
#       -> a lite subset (shared_data.lite) of that category of a real MVTec AD copy; the config's
#          --category must then be an MVTec one (e.g. sed 's/brick/capsule/g' CONFIG > mvtec.txt)
# The data goes to <--data_dir>/<--category> of the config's norm_train line (line 16), at its
# --image_size (default 128), replacing earlier lite data.
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
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "${ROOT}/scripts/tipc/common_func.sh"

if [ ! -f "${FILENAME}" ]; then
    echo "error: config not found: ${FILENAME}" >&2
    exit 1
fi
if [ "${MODE}" != "lite_train_lite_infer" ]; then
    case "${MODE}" in
        */*) echo "error: MVTec folder not found: ${MODE}" >&2 ;;
        *) echo "error: only lite_train_lite_infer is supported, got '${MODE}'" >&2 ;;
    esac
    exit 1
fi
dataline=$(awk 'NR==1, NR==51{print}' "${FILENAME}")
IFS=$'\n'
lines=(${dataline})
unset IFS
python=${PYTHON:-${TIPC_PYTHON:-$(func_parser_value "${lines[2]}")}}
norm_train=$(func_parser_value "${lines[15]}")
arg() { echo "${norm_train}" | sed -n "s/.*$1[= ]\([^ ]*\).*/\1/p"; }
category=$(arg --category)
data=$(arg --data_dir)
size=$(arg --image_size)
category=${category:-brick}
data=${data:-./test_tipc/data}
size=${size:-128}
if [ -n "${MVTEC}" ] && [ ! -d "${MVTEC}/${category}" ]; then
    echo "error: category '${category}' (from --category in ${FILENAME}) is not in ${MVTEC}; use a config" \
         "with an MVTec category, e.g. sed 's/${category}/capsule/g' ${FILENAME} > mvtec.txt" >&2
    exit 1
fi
mkdir -p "${data}"
export PYTHONPATH="${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
# both tools write to a temporary folder and rename it into place; --force replaces the old lite data
if [ -n "${MVTEC}" ]; then
    ${python} -m shared_data.lite --src "${MVTEC}" --dst "${data}" --categories "${category}" \
        --n_train 10 --n_test 8 --force || exit 1
else
    # 10 normal training images (8 to fit, 2 held out; PaDiM's 5 folds need 10), 3 good + 4 defective
    # test images with masks
    ${python} -m shared_data.synthetic --data_dir "${data}" --categories "${category}" --image_size "${size}" \
        --n_train 10 --n_test_good 3 --n_test_defect 4 --force || exit 1
fi
echo "TIPC data ready in ${data}/${category}"
