"""Export a trained STFPM model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick
    python export_model.py --depth 18 --img_size=256 --model_path=output/carpet/model.pdparams  (seed flags)
The graph holds teacher and student and returns the three per-layer distance maps at feature
resolution, (N, 1, S/4, S/4), (N, 1, S/8, S/8), (N, 1, S/16, S/16); inference.yml holds preprocessing,
post-processing (bilinear to S, product, score = max), the threshold and the output order.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from stfpm.flags import add_export_flags, check_export  # noqa: E402

main, build_parser = entry("export", "stfpm", __doc__, flags=add_export_flags, prepare=check_export,
                           aliases={"model_path": ["--checkpoint"], "save_dir": ["--save_inference_dir"]},
                           ignored=["--depth"])

if __name__ == "__main__":
    run_cli(main)
