#!/bin/bash
# Lite data for the TIPC chain: bash test_tipc/prepare.sh CONFIG MODE [MVTEC_ROOT [CATEGORY]]
# Without MVTEC_ROOT, a small synthetic MVTec-layout category is generated (offline, deterministic);
# with it, a deterministic subset of the real CATEGORY (default capsule, the seed port's) is cut by
# shared_data.lite and placed where the config expects its data. VGG-16 ImageNet weights cannot be
# fetched offline, so the lite config trains with a random expert (--pretrained none).
set -e
FILENAME=$1
MODE=$2
MVTEC_ROOT=$3
CATEGORY=${4:-capsule}
if [ "${MODE}" != "lite_train_lite_infer" ]; then
    echo "only lite_train_lite_infer is supported"; exit 1
fi
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:${PYTHONPATH}}"
rm -rf ./test_tipc/data/synthetic ./test_tipc/data/mvtec_lite
if [ -n "${MVTEC_ROOT}" ]; then
    ${PYTHON} -m shared_data.lite --src "${MVTEC_ROOT}" --dst ./test_tipc/data/mvtec_lite --categories "${CATEGORY}" \
        --n_train 8 --n_test 8 --force
    mkdir -p ./test_tipc/data/synthetic && cp -r "./test_tipc/data/mvtec_lite/${CATEGORY}" ./test_tipc/data/synthetic/brick
else
    ${PYTHON} -m shared_data.synthetic --data_dir ./test_tipc/data/synthetic --categories brick \
        --n_train 10 --n_test_good 3 --n_test_defect 6 --image_size 128 --seed 0
fi
