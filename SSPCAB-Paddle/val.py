"""Evaluate a trained CutPaste + SSPCAB model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
Image AUROC (the paper's metric) uses the GDE score; pixel AUROC / AUPRO use our patch-GDE map.
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
    p.add_argument("--type", dest="category", help=argparse.SUPPRESS)          # seed names
    p.add_argument("--model_dir", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--cuda", type=cli.str2bool, default=None, help="seed alias: True = --device gpu")
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", "--save_plots", dest="save_vis", type=cli.str2bool, default=False)
    cli.add_result_args(p, maps=False)
    p.add_argument("--density", default="gde", choices=["gde", "paddle", "torch", "sklearn"],
                   help="gde (paddle/torch are the seeds' names for it); the seeds' sklearn KDE is not offered")
    p.add_argument("--head_layer", type=int, default=None, help=argparse.SUPPRESS)  # the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import val_main
    from sspcab import engine

    if args.density == "sklearn":
        raise cli.UserError("--density sklearn (kernel density) is not offered: the Gaussian density (GDE) is "
                            "what the exported model computes; use --density gde")
    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"
    if args.batch_size < 1:
        raise cli.UserError(f"--batch_size must be >= 1, got {args.batch_size}")
    return val_main(engine, args)


if __name__ == "__main__":
    cli.run_cli(main)
