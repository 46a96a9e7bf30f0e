"""Paddle Inference on an exported KDAD model (TIPC / deployment), with auto_log benchmark output.

    python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test --use_mkldnn False
The gradient graph cannot run on oneDNN (its conv/pool backward kernels refuse inference mode):
asked for oneDNN, infer.py says so in one line and runs with oneDNN off. Export with
``--map discrepancy`` for a graph that runs with oneDNN.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, _ = entry("infer", "kdad", __doc__)

if __name__ == "__main__":
    run_cli(main)
