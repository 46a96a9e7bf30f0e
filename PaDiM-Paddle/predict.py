"""Score images with a fitted PaDiM checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, build_parser = entry("predict", "padim", __doc__,
                           aliases={"img_path": ["--picture_path", "--image_path"], "save_vis": ["--save_picture"]})

if __name__ == "__main__":
    run_cli(main)
