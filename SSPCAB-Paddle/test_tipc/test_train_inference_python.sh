#!/bin/bash
# TIPC lite chain of this folder; the runner is shared by the format-A folders (scripts/tipc/).
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/MODEL/train_infer_python.txt lite_train_lite_infer
cfg="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
cd "$(dirname "$0")/.." && exec bash ../scripts/tipc/test_train_inference_python.sh "${cfg}" "$@"
