"""Evaluate a fitted PaDiM model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, build_parser = entry("val", "padim", __doc__, aliases={"save_vis": ["--save_picture"]}, ignored=["--depth"],
                           hidden={"--data_path": "data_dir", "--save_path": "output_dir"})

if __name__ == "__main__":
    run_cli(main)
