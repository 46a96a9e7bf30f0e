"""Train STFPM students on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick --backbone efficientnet_lite0
    python train.py train --depth=18 --mvtec_ad=PATH/MVTec --category carpet --model_save_path=./output  (seed flags)
Writes <output_dir>/<category>/model.pdparams (best teacher + student, threshold, post-processing),
last.pdparams (for --resume), args.yml and train.log. `python train.py test ...` evaluates instead.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adbase import ArgumentParser, Range  # noqa: E402
from adcommon import cli  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("split", nargs="?", choices=["train", "test"], default="train",
                   help="seed compatibility: 'test' evaluates --checkpoint (or the trained model) instead")
    cli.add_common_args(p)
    p.add_argument("--mvtec_ad", dest="data_dir", help=argparse.SUPPRESS)            # seed name
    p.add_argument("--model_save_path", dest="output_dir", help=argparse.SUPPRESS)   # seed name
    p.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)            # seed: model for 'test'
    p.add_argument("--backbone", default="resnet18", choices=["resnet18", "wide_resnet50_2", "efficientnet_lite0"],
                   help="teacher and student architecture (paper: resnet18)")
    p.add_argument("--depth", type=int, choices=[18], default=None, help="seed alias: 18 = resnet18")
    p.add_argument("--pretrained", default="imagenet",
                   help="teacher weights: imagenet | none | PATH (.pdparams or torchvision .pth)")
    p.add_argument("--image_size", type=int, default=256, help="input size, a multiple of 32 (paper: 256)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.4)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=1e-4)
    p.add_argument("--holdout_ratio", type=float, default=0.2,
                   help="share of train/good held out to pick the best epoch and the threshold (paper: 0.2)")
    p.add_argument("--image_score_top", type=float, default=0.0, limits=Range(0.0, 0.5),
                   help="score an image by the mean of its map's highest FRACTION of pixels (e.g. 0.01) instead "
                        "of the map's maximum (0, the paper's)")
    cli.add_compile_arg(p)
    cli.add_sync_bn_arg(p)
    cli.add_threshold_args(p)
    p.add_argument("--cache_teacher", type=cli.str2bool, default=True,
                   help="compute the frozen teacher's features of the training images once (up to 4 GB)")
    p.add_argument("--resume", type=cli.str2bool, nargs="?", const=True, default=False,
                   help="continue from <output_dir>/<category>/last.pdparams")
    cli.add_val_args(p, val_aliases=["--train_val"], vis_aliases=["--save_fig"])
    for seed_only in ("--checkpoint_epoch", "--print_freq", "--result_path"):
        p.add_argument(seed_only, default=None, help=argparse.SUPPRESS)  # seed flags without a use here
    p.set_defaults(seed=42)  # the seed port's --seed 42 (the official code uses 0)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.method.pipeline import val_main
    from adcommon.method.training import train_main
    from stfpm import engine
    if args.split == "test":   # the seed's `train.py test`: evaluate a trained model (--checkpoint), as val.py
        args.model_path = args.checkpoint
        return val_main(engine, args)
    return train_main(engine, args)


if __name__ == "__main__":
    cli.run_cli(main)
