"""Evaluate a fitted PaDiM model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    p.add_argument("--data_path", dest="data_dir", help=argparse.SUPPRESS)
    p.add_argument("--save_path", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=False)
    cli.add_result_args(p, maps=False)
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    from adcommon.pipeline import val_main
    from padim import engine
    return val_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
