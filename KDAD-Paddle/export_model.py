"""Export a trained KDAD model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick [--map gradients|discrepancy]
The graph returns the detection score and the localization map. ``gradients`` (the paper's map)
contains paddle.grad: Paddle Inference runs it with oneDNN off (infer.py switches oneDNN off for it).
``discrepancy`` (expert/cloner per-position discrepancy, no gradients) runs with oneDNN on as well.
``auto`` = gradients on Paddle 3, discrepancy on Paddle 2.6 (its predictor fails on gradient graphs).
inference.yml holds preprocessing, post-processing, thresholds and the output order.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.add_argument("--category", "--normal_class", dest="category", default=None)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", "--save_inference_dir", dest="save_dir", default=None,
                   help="default <output_dir>/<category>/inference")
    cli.add_export_args(p)
    p.add_argument("--map", default="auto", choices=["auto", "gradients", "discrepancy"],
                   help="localization map in the graph (auto: the checkpoint's localization_method)")
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def default_map(ck):
    """The checkpoint's localization map; gradients need Paddle >= 3 (2.6's predictor cannot run them)."""
    import paddle

    from kdad import engine
    kind = engine.map_kind(engine.localization_of(ck))
    major = int(paddle.__version__.split(".")[0])
    return kind if major >= 3 or paddle.__version__.startswith("0.0") else "discrepancy"


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon import pipeline
    from kdad import engine

    def options(ck):
        return {"localization": default_map(ck) if args.map == "auto" else args.map}
    return pipeline.export_main(engine, args, options)


if __name__ == "__main__":
    cli.run_cli(main)
