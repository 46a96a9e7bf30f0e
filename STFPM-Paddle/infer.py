"""Paddle Inference on an exported STFPM model (TIPC / deployment), with auto_log benchmark output.

    python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test --use_mkldnn True
Same pre- and post-processing code as val.py and predict.py (adcommon), so the scores agree.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, _ = entry("infer", "stfpm", __doc__)

if __name__ == "__main__":
    run_cli(main)
