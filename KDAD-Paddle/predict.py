"""Score images with a trained KDAD checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
    python predict.py --model_path output/capsule/model.pdparams --image_path capsule.png --threshold 0.5
The verdict compares the detection score with the threshold from held-out normal images; the red
region of the picture is the gradient map above --map_threshold (seed flag --threshold, default 0.5).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from kdad.flags import add_predict_flags, predict_options  # noqa: E402

main, build_parser = entry("predict", "kdad", __doc__, flags=add_predict_flags, prepare=predict_options,
                           aliases={"category": ["--normal_class"], "img_path": ["--image_path", "--picture_path"],
                                    "save_vis": ["--save_picture"]}, ignored=["--config"])  # the checkpoint knows

if __name__ == "__main__":
    run_cli(main)
