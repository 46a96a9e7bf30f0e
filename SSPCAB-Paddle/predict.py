"""Score images with a trained CutPaste + SSPCAB checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
The verdict compares the GDE score with the threshold from held-out normal images (or --threshold);
the picture shows our patch-GDE map.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from sspcab.flags import add_cuda_flag, apply_cuda  # noqa: E402

main, build_parser = entry("predict", "sspcab", __doc__, flags=add_cuda_flag, prepare=apply_cuda,
                           aliases={"category": ["--data_type", "--type"], "threshold": ["--dist_th"],
                                    "img_path": ["--img-path", "--img_file", "--image_path"]},
                           hidden={"--model_dir": "output_dir"}, ignored=["--img_size", "--density"])

if __name__ == "__main__":
    run_cli(main)
