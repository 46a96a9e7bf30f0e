"""Evaluate a trained KDAD model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--localization_method gradients] [--save_vis True]
    python val.py --dataset_root ../data/MVTec --normal_class capsule --model_path output/capsule/model.pdparams
metrics.json holds the standard image AUROC, pixel AUROC and AUPRO over all test images, and the paper's
own localization number as ``paper_localization_auroc`` (anomalous images only,
docs/reference.md#kdad-localization-auroc).
The localization method defaults to the one chosen at training (stored in the checkpoint); another one
writes to <output_dir>/<category>/<method>/.
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
    cli.add_common_args(p)
    p.set_defaults(seed=0)
    p.add_argument("--dataset_root", dest="data_dir", help=argparse.SUPPRESS)
    p.add_argument("--normal_class", dest="category", help=argparse.SUPPRESS)
    p.add_argument("--config", default=None, help="YAML with the reference's keys (default configs/config.yaml)")
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", default=None,
                   help="where metrics.json etc. go (default <output_dir>/<category>[/<method>])")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--localization_test", type=cli.str2bool, default=None,
                   help="also compute anomaly maps and pixel metrics (config: localization_test)")
    p.add_argument("--localization_method", default=None,
                   choices=["gradients", "smooth_grad", "gbp", "discrepancy"])
    p.add_argument("--smooth_grad_n", type=int, default=50, help="noisy copies per image for smooth_grad")
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=False)
    cli.add_result_args(p, maps=False)
    return p


def options(args, given_method):
    """The run's options for kdad.engine (localization method: the flag, else the checkpoint's)."""
    return {"localization": given_method, "fallback": args.localization_method,
            "localization_test": bool(args.localization_test), "smooth_grad_n": args.smooth_grad_n,
            "seed": args.seed}


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import val_main
    from kdad import engine
    from kdad.config import apply_config

    given_method = args.localization_method   # else the checkpoint's (then the config's)
    apply_config(args)
    if args.batch_size < 1:
        raise cli.UserError("--batch_size must be >= 1")
    return val_main(engine, args, options(args, given_method))


if __name__ == "__main__":
    cli.run_cli(main)
