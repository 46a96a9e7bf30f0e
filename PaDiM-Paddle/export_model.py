"""Export a fitted PaDiM model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick
The graph returns the (N, 1, 56, 56) distance map; inference.yml holds preprocessing, post-processing,
the threshold and the output order. Nothing is pickled beside the model.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.add_argument("--category", default=None)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", "--save_inference_dir", dest="save_dir", default=None,
                   help="default <output_dir>/<category>/inference")
    cli.add_export_args(p)
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--img_size", type=int, default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    from adcommon.pipeline import export_main
    from padim import engine
    return export_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
