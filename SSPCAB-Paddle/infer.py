"""Paddle Inference on an exported CutPaste + SSPCAB model (TIPC / deployment), with auto_log benchmark output.

    python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test --use_mkldnn True
Seed names are accepted: --img-path / --img_file, --data_type CAT (uses output/CAT/inference), --cuda.
The threshold is the one in inference.yml (change it with export_model.py --threshold).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from sspcab.flags import seed_argv  # noqa: E402

main, _ = entry("infer", "sspcab", __doc__, prepare=seed_argv)

if __name__ == "__main__":
    run_cli(main)
