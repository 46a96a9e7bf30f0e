"""Export a trained KDAD model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick [--map gradients|discrepancy]
The graph returns the detection score and the localization map. ``gradients`` (the paper's map)
contains paddle.grad: Paddle Inference runs it with oneDNN off (infer.py switches oneDNN off for it).
``discrepancy`` (expert/cloner per-position discrepancy, no gradients) runs with oneDNN on as well.
``auto`` = gradients on Paddle 3, discrepancy on Paddle 2.6 (its predictor fails on gradient graphs).
inference.yml holds preprocessing, post-processing, thresholds and the output order.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from kdad.flags import add_export_flags, export_options  # noqa: E402

main, build_parser = entry("export", "kdad", __doc__, flags=add_export_flags, prepare=export_options,
                           aliases={"category": ["--normal_class"], "save_dir": ["--save_inference_dir"]},
                           ignored=["--config"])  # the checkpoint knows

if __name__ == "__main__":
    run_cli(main)
