"""Fit PaDiM on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick [--backbone resnet18 --pretrained imagenet]
Writes <output_dir>/<category>/model.pdparams (weights, Gaussians, channel index, threshold), args.yml, train.log.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adbase import ArgumentParser  # noqa: E402
from adcommon import cli  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    cli.add_workers_arg(p)
    p.add_argument("--data_path", dest="data_dir", help=argparse.SUPPRESS)        # seed name
    p.add_argument("--save_path", dest="output_dir", help=argparse.SUPPRESS)      # seed name
    p.add_argument("--backbone", "--arch", dest="backbone", default="resnet18",
                   choices=["resnet18", "wide_resnet50_2", "efficientnet_lite0"])
    p.add_argument("--depth", type=int, choices=[18, 50], default=None,
                   help="seed alias: 18 = resnet18, 50 = wide_resnet50_2")
    p.add_argument("--pretrained", "--pretrained_backbone", dest="pretrained", default="imagenet",
                   help="imagenet | none | PATH (.pdparams or torchvision .pth)")
    p.add_argument("--d", type=int, default=None, help="random channel subset size (paper: 100 R18, 550 WR50)")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--crop_size", type=cli.crop_arg, default="auto",
                   help="centre crop of the resized image: auto (the paper's 224 of 256 on MVTec AD categories, "
                        "the whole image on any other data), none, or a side in pixels")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--folds", type=int, default=5,
                   help="every training image is scored by Gaussians fitted without its fold; the threshold "
                        "comes from these out-of-fold normal scores (0: no threshold)")
    p.add_argument("--holdout_ratio", type=float, default=None,
                   help=argparse.SUPPRESS)  # earlier versions' held-out share: r > 0 means round(1 / r) folds
    cli.add_threshold_args(p)
    cli.add_val_args(p, vis_aliases=["--save_picture"])
    p.set_defaults(seed=1024)  # the reference's random.seed(1024) for the channel subset
    return p


def main(argv=None):
    from adcommon.method.training import train_main
    from padim import engine
    return train_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
