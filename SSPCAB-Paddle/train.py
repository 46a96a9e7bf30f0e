"""Train CutPaste (3-way) + SSPCAB on the normal images of one or more categories, then fit the GDE.

    python train.py --data_dir ../data/synthetic --category brick [--backbone efficientnet_lite0] [--steps 256]
Writes <output_dir>/<category>/model.pdparams (weights, GDE buffers, threshold), args.yml, train.log.
--steps counts parameter updates (the paper's epoch is 256 of them); --epochs is the seed's name for it.
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
    cli.add_workers_arg(p)
    cli.add_sync_bn_arg(p)
    p.add_argument("--type", dest="category", help=argparse.SUPPRESS)  # seed names: the two SSPCAB Paddle ports
    p.add_argument("--model_dir", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--workers", dest="num_workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cuda", type=cli.str2bool, default=None, help="seed alias: True = --device gpu")
    p.add_argument("--backbone", default="resnet18", choices=["resnet18", "efficientnet_lite0"],
                   help="resnet18 (paper); efficientnet_lite0 has ImageNet weights offline")
    p.add_argument("--pretrained", default="imagenet", help="imagenet | none | PATH (.pdparams or torchvision .pth)")
    p.add_argument("--pretrained_resnet", type=cli.str2bool, default=None, help="seed alias: True/False")
    p.add_argument("--no-pretrained", "--no_pretrained", dest="no_pretrained", action="store_true", help="seed alias")
    p.add_argument("--no_sspcab", action="store_true", help="plain CutPaste (the ablation's baseline)")
    p.add_argument("--sspcab_lambda", type=float, limits=Range(0), default=0.1, help="weight of L_SSPCAB (paper: 0.1)")
    p.add_argument("--sspcab_kernel", type=int, limits=Range(1), default=1, help="sub-kernel size k' (paper: 1)")
    p.add_argument("--sspcab_dilation", type=int, limits=Range(1), default=1, help="dilation d (paper: 1)")
    p.add_argument("--variant", default="3way", choices=["3way", "normal", "scar"])
    p.add_argument("--head_layer", type=int, limits=Range(0), default=1,
                   help="hidden 512-wide head layers before the 128 one")
    p.add_argument("--patch_layer", default="layer3", choices=["layer3", "layer4"],
                   help="features of the localisation map (patch GDE): layer3 (stride 16) or layer4 (stride 32)")
    p.add_argument("--frozen_stages", default="none", choices=["none", "layer1", "layer2", "layer3"],
                   help="keep the backbone up to this stage at its ImageNet weights and BN statistics "
                        "(none: fine-tune all, the paper; layer3: the quick start's short schedules)")
    p.add_argument("--image_score", default="pooled", choices=["pooled", "patch_max"],
                   help="pooled: GDE of the pooled embedding (paper); patch_max: maximum of the patch map")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--steps", "--epochs", dest="steps", type=int, default=256,
                   help="parameter updates (seed: --epochs; the paper's epoch = 256 updates, Runinho's README runs "
                        "10000); 0 = no training (the GDE of ImageNet features, with --no_sspcab)")
    p.add_argument("--batch_size", type=int, default=64, help="images per class; an update sees 3x as many")
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--optim", default="sgd", choices=["sgd"], help=argparse.SUPPRESS)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=3e-5)
    p.add_argument("--freeze_steps", "--freeze_resnet", dest="freeze_steps", type=int, limits=Range(0), default=20,
                   help="updates with the pretrained backbone frozen (ignored with --pretrained none)")
    p.add_argument("--holdout_ratio", type=float, default=0.2,
                   help="share of train/good kept out of training to set the threshold (then added to the GDE)")
    cli.add_threshold_args(p)
    p.add_argument("--resume", type=cli.str2bool, nargs="?", const=True, default=False, help="continue last.pdparams")
    p.add_argument("--save_interval", type=int, limits=Range(0), default=100, help="updates between resumable states")
    p.add_argument("--log_interval", type=int, default=10)
    p.add_argument("--eval_interval", type=int, limits=Range(0), default=0,
                   help="every N updates: mean GDE score of the held-out normals (a convergence curve; 0: off)")
    p.add_argument("--test_epochs", type=int, help="seed flag, ignored: no checkpoint selection on the test set")
    cli.add_val_args(p)
    p.set_defaults(seed=0)
    return p


def main(argv=None):
    from adcommon.method.training import train_main
    from sspcab import engine
    return train_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
