"""Train KDAD's cloner to copy a frozen expert on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick [--pretrained imagenet] [--epochs 601]
    python train.py --config configs/config.yaml --dataset_root ../data/MVTec --normal_class capsule --save_dir output
Values come from the command line, then configs/config.yaml, then the paper's MVTec settings. Writes
<output_dir>/<category>/model.pdparams (expert + cloner, held-out threshold), last.pdparams (--resume), args.yml.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adbase import ArgumentParser, Range  # noqa: E402
from adcommon import cli  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    p.set_defaults(category=None, seed=0)
    for seed, dest in (("--dataset_root", "data_dir"), ("--normal_class", "category"), ("--save_dir", "output_dir")):
        p.add_argument(seed, dest=dest, help=argparse.SUPPRESS)   # the seed's names
    p.add_argument("--config", default=None, help="YAML with the reference's keys (default configs/config.yaml)")
    p.add_argument("--backbone", default="vgg16", choices=["vgg16", "efficientnet_lite0"],
                   help="expert network (paper: vgg16; efficientnet_lite0 has offline ImageNet weights)")
    p.add_argument("--pretrained", default=None, help="expert weights: imagenet | none (random expert) | PATH")
    p.add_argument("--image_size", type=int, default=None, help="input size (paper 128)")
    p.add_argument("--batch_size", type=int, default=None, help="paper 64")
    p.add_argument("--epochs", "--num_epochs", dest="epochs", type=int, default=None, help="paper 601")
    p.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=None, help="Adam, paper 1e-3")
    p.add_argument("--lamda", type=float, limits=Range(0), default=None,
                   help="weight of the MSE term (paper 0.5 for MVTec)")
    p.add_argument("--use_bias", type=cli.str2bool, default=None)
    p.add_argument("--equal_network_size", type=cli.str2bool, default=None)
    p.add_argument("--direction_loss_only", type=cli.str2bool, default=None)
    p.add_argument("--resume", "--continue_train", dest="resume", type=cli.str2bool, nargs="?", const=True,
                   default=None, help="continue from <output_dir>/<category>/last.pdparams")
    p.add_argument("--localization_test", type=cli.str2bool, default=None, help="for --val")
    p.add_argument("--localization_method", default=None,
                   choices=["gradients", "smooth_grad", "gbp", "discrepancy"],
                   help="the model's map, stored in the checkpoint: what val.py, predict.py and export_model.py "
                        "use unless told otherwise (config: localization_method; paper: gradients)")
    p.add_argument("--experiment_name", default=None, help=argparse.SUPPRESS)
    p.add_argument("--holdout_ratio", type=float, default=0.2,
                   help="share of train/good kept aside (normal images only) for the periodic check and "
                        "the threshold; 0 trains on all images and sets no threshold")
    p.add_argument("--eval_interval", type=int, limits=Range(1), default=10,
                   help="epochs between held-out checks (reference 10)")
    p.add_argument("--save_interval", type=int, limits=Range(1), default=10,
                   help="epochs between writes of last.pdparams")
    p.add_argument("--select", default="last", choices=["last", "holdout"],
                   help="final weights: last epoch (reference) or lowest held-out normal mean score")
    p.add_argument("--cache_expert", type=cli.str2bool, default=True,
                   help="compute the frozen expert's features of the training images once")
    p.add_argument("--feature_scale", default=None, choices=["none", "rms"],
                   help="expert layers as they are (none; paper, default for vgg16) or each divided by its RMS "
                        "over the training images (rms; default for efficientnet_lite0, see README)")
    p.add_argument("--cloner_pools", default=None, choices=["relu", "linear"],
                   help="the cloner's conv before each pool with a ReLU (relu; paper, default for vgg16) or without "
                        "(linear; default for efficientnet_lite0, whose stage outputs are signed, see README)")
    p.add_argument("--image_score", default="loss", choices=["loss", "map_max"],
                   help="loss: the paper's detection score (eq. 3 on the whole image); map_max: the maximum of the "
                        "discrepancy map (needs --localization_method discrepancy; README)")
    cli.add_compile_arg(p)
    cli.add_sync_bn_arg(p)
    cli.add_threshold_args(p)
    cli.add_val_args(p, vis_aliases=["--save_picture"])
    return p


def main(argv=None):
    from adcommon.method.training import train_main
    from kdad import engine
    return train_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
