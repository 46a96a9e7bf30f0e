"""Evaluate a trained STFPM model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
    python val.py --depth=18 --mvtec_ad=PATH/MVTec --category carpet --checkpoint=output/carpet/model.pdparams
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, build_parser = entry("val", "stfpm", __doc__,
                           aliases={"model_path": ["--checkpoint"], "save_vis": ["--save_fig"]},
                           hidden={"--mvtec_ad": "data_dir", "--model_save_path": "output_dir"},
                           ignored=["--compute_pro", "--depth"])  # AUPRO is always computed; the checkpoint knows

if __name__ == "__main__":
    run_cli(main)
