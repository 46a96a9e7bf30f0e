"""Export a fitted PaDiM model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick
The graph returns the (N, 1, 56, 56) distance map; inference.yml holds preprocessing, post-processing,
the threshold and the output order. Nothing is pickled beside the model.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402

main, build_parser = entry("export", "padim", __doc__, aliases={"save_dir": ["--save_inference_dir"]},
                           ignored=["--depth", "--img_size"])  # the checkpoint knows

if __name__ == "__main__":
    run_cli(main)
