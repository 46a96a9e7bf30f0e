#!/bin/bash
# TIPC lite data of this folder; the script is shared by the four folders (scripts/tipc/prepare.sh).
#   bash test_tipc/prepare.sh test_tipc/configs/MODEL/train_infer_python.txt lite_train_lite_infer [MVTEC_ROOT]
cfg="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
cd "$(dirname "$0")/.." && exec bash ../scripts/tipc/prepare.sh "${cfg}" "$@"
