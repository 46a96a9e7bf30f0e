"""Export a trained CutPaste + SSPCAB model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick
The graph returns [GDE score (N,), patch map (N, 1, h, w)]: the density's mean and precision are buffers
inside it, so the predictor gives the anomaly score directly (nothing pickled beside the model).
inference.yml holds preprocessing, post-processing, the threshold and the output order.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from sspcab.flags import add_export_flags  # noqa: E402

main, build_parser = entry("export", "sspcab", __doc__, flags=add_export_flags, ignored=["--img_size"],
                           aliases={"category": ["--data_type", "--type"], "save_dir": ["--save_inference_dir"]},
                           hidden={"--model_dir": "output_dir"})

if __name__ == "__main__":
    run_cli(main)
