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

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402

DEPTHS = {18: "resnet18"}  # the seed's --depth; 34/50/101 have no backbone here


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
    p.add_argument("--depth", type=int, choices=sorted(DEPTHS), default=None, help="seed alias: 18 = resnet18")
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
    p.add_argument("--threshold_quantile", type=float, default=0.99)
    cli.add_speed_args(p)
    p.add_argument("--cache_teacher", type=cli.str2bool, default=True,
                   help="compute the frozen teacher's features of the training images once (up to 4 GB)")
    p.add_argument("--resume", type=cli.str2bool, nargs="?", const=True, default=False,
                   help="continue from <output_dir>/<category>/last.pdparams")
    p.add_argument("--val", "--train_val", dest="val", type=cli.str2bool, default=False,
                   help="evaluate on the test split after training (never used to pick a checkpoint)")
    p.add_argument("--save_vis", "--save_fig", dest="save_vis", type=cli.str2bool, nargs="?", const=True,
                   default=False)
    for seed_only in ("--checkpoint_epoch", "--print_freq", "--result_path"):
        p.add_argument(seed_only, default=None, help=argparse.SUPPRESS)  # seed flags without a use here
    p.set_defaults(seed=42)  # the seed port's --seed 42 (the official code uses 0)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon import checkpoint, distributed, pipeline
    from adcommon.compiled import resolve
    from adcommon.files import save_yaml
    from shared_data.dataset import train_split
    from stfpm import engine
    from stfpm.model import STFPM

    if args.depth:
        args.backbone = DEPTHS[args.depth]
    if args.image_size % 32 or args.image_size < 32:
        raise cli.UserError(f"--image_size must be a positive multiple of 32, got {args.image_size}")
    if args.epochs < 1 or args.batch_size < 1:
        raise cli.UserError("--epochs and --batch_size must be >= 1")
    if args.split == "test":
        return _test(args)
    # under paddle.distributed.launch (data parallel, --batch_size the global batch): rank 0 writes
    main_process = distributed.init()[0] == 0
    for cat in cli.training_categories(args):
        out = os.path.join(args.output_dir, cat)
        done = args.resume and checkpoint.finished_run(out, engine.METHOD, "epoch", args.epochs)
        if done:   # --resume on a finished run: says so, and leaves it as it is
            print(done)
            continue
        with cli.training_output(out, main_process, os.path.join(args.data_dir, cat)) as log:
            resume = checkpoint.training_state(os.path.join(out, "last.pdparams"), engine.METHOD, log, args.resume)
            cli.set_seed(args.seed)  # per category: a category's run does not depend on the ones before it
            # built from the flags; a resumed run refuses a state written with other ones (restore_training)
            model = STFPM(args.backbone, args.pretrained, args.image_size)
            a = model.model_args
            fit_ds, hold_ds = train_split(args.data_dir, cat, args.holdout_ratio, image_size=a["image_size"],
                                          crop_size=None, mean=a["mean"], std=a["std"])
            compiled = resolve(args.compile, a["backbone"] in engine.COMPILE_BY_DEFAULT)
            log(f"STFPM {cat}: teacher {a['weights']}, student {a['backbone']} random init, {a['image_size']}px, "
                f"{len(fit_ds)} training + {len(hold_ds) if hold_ds else 0} held-out normal images, "
                f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, seed {args.seed}, device {args.device}, "
                f"{'compiled (static oneDNN graph)' if compiled else 'eager'} student")
            stats = engine.train(model, fit_ds, hold_ds, out, cat, args.epochs, args.batch_size, args.lr,
                                 args.momentum, args.weight_decay, args.seed, resume, args.threshold_quantile, log,
                                 threshold_rule=args.threshold_rule, compiled=compiled,
                                 cache_teacher=args.cache_teacher)
            if not main_process:
                continue
            save_yaml(os.path.join(out, "args.yml"), vars(args) | {"category": cat})
            log(f"saved {os.path.join(out, 'model.pdparams')} (selected epoch {stats['selected_epoch']}, "
                f"{stats['train_seconds']:.1f} s training, peak RSS {cli.peak_rss_mb():.0f} MB)")
            if args.val:
                model, ck = pipeline.load(engine, os.path.join(out, "model.pdparams"))
                res = pipeline.evaluate(engine, model, ck, args.data_dir, cat, out, args.batch_size, args.save_vis)
                log(pipeline.report(engine, cat, res, os.path.join(out, "metrics.json")))
    return 0


def _test(args):
    """Seed's `train.py test`: evaluate a trained model, as val.py does (--checkpoint = --model_path)."""
    from adcommon.pipeline import val_main
    from stfpm import engine
    args.model_path = args.checkpoint
    return val_main(engine, args)


if __name__ == "__main__":
    cli.run_cli(main)
