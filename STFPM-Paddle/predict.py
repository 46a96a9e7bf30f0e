"""Score images with a trained STFPM checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
    python predict.py --checkpoint=output/carpet/model.pdparams --image_path=000.png --save_path=predict.png
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, build_parser = entry("predict", "stfpm", __doc__, ignored=["--depth"],
                           aliases={"model_path": ["--checkpoint"], "img_path": ["--image_path"],
                                    "save_dir": ["--save_path"], "save_vis": ["--save_fig"]})

if __name__ == "__main__":
    run_cli(main)
