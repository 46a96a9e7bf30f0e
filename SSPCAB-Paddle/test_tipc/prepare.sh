#!/bin/bash
# Lite data for the TIPC chain (no download, nothing committed):
#   bash test_tipc/prepare.sh test_tipc/configs/SSPCAB/train_infer_python.txt lite_train_lite_infer
#       -> synthetic MVTec-layout 'brick' (8 train, 4 good + 4 defective test images, 128 px)
#   bash test_tipc/prepare.sh CONFIG lite_train_lite_infer /path/to/mvtec_anomaly_detection [bottle]
#       -> the first images of one MVTec AD category (shared_data.lite), 8 train and 8 test
# Writes ./test_tipc/data/lite/<category>/ under SSPCAB-Paddle/.
FILENAME=$(realpath "$1")
MODE=$2
MVTEC_DIR=$3
CATEGORY=${4:-bottle}
cd "$(dirname "$0")/.." || exit 1                        # SSPCAB-Paddle/
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:${PYTHONPATH}}"   # shared_data, adcommon
source test_tipc/common_func.sh
python=$(func_parser_value "$(sed -n 3p "${FILENAME}")")
data_dir=$(func_parser_value "$(sed -n 11p "${FILENAME}")")

if [ "${MODE}" != "lite_train_lite_infer" ]; then
    echo "prepare.sh: only lite_train_lite_infer is supported here (got '${MODE}'); for full data use" \
         "python -m shared_data.download --data_dir DIR" >&2
    exit 2
fi
rm -rf "${data_dir}"
if [ -n "${MVTEC_DIR}" ]; then
    ${python} -m shared_data.lite --src "${MVTEC_DIR}" --dst "${data_dir}" --categories "${CATEGORY}" \
        --n_train 8 --n_test 8 --seed 0
else
    ${python} -m shared_data.synthetic --data_dir "${data_dir}" --categories brick --image_size 128 \
        --n_train 8 --n_test_good 4 --n_test_defect 4 --seed 0
fi
