"""Evaluate a trained CutPaste + SSPCAB model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
Image AUROC (the paper's metric) uses the GDE score; pixel AUROC / AUPRO use our patch-GDE map.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from sspcab.flags import add_val_flags, check_val  # noqa: E402

main, build_parser = entry("val", "sspcab", __doc__, flags=add_val_flags, prepare=check_val,
                           aliases={"save_vis": ["--save_plots"]}, ignored=["--head_layer"],  # the checkpoint knows
                           hidden={"--type": "category", "--model_dir": "output_dir"})

if __name__ == "__main__":
    run_cli(main)
