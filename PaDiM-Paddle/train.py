"""Fit PaDiM on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick [--backbone resnet18 --pretrained imagenet]
Writes <output_dir>/<category>/model.pdparams (weights, Gaussians, channel index, threshold), args.yml, train.log.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402

DEPTHS = {18: "resnet18", 50: "wide_resnet50_2"}


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    cli.add_workers_arg(p)
    p.add_argument("--data_path", dest="data_dir", help=argparse.SUPPRESS)        # seed name
    p.add_argument("--save_path", dest="output_dir", help=argparse.SUPPRESS)      # seed name
    p.add_argument("--backbone", "--arch", dest="backbone", default="resnet18",
                   choices=["resnet18", "wide_resnet50_2", "efficientnet_lite0"])
    p.add_argument("--depth", type=int, choices=sorted(DEPTHS), default=None,
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
    p.add_argument("--threshold_quantile", type=float, default=0.99)
    p.add_argument("--threshold_rule", default="robust", choices=["robust", "quantile"],
                   help="robust: log-normal fit by median and MAD (few normals); quantile: empirical")
    p.add_argument("--val", type=cli.str2bool, default=False, help="evaluate on the test split afterwards")
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=False)
    p.set_defaults(seed=1024)  # the reference's random.seed(1024) for the channel subset
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon import distributed, pipeline
    from adcommon.files import save_yaml
    from padim import engine
    from padim.model import PaDiM
    from shared_data.dataset import MVTecAD

    if args.depth:
        args.backbone = DEPTHS[args.depth]
    if args.holdout_ratio is not None:
        args.folds = int(round(1 / args.holdout_ratio)) if args.holdout_ratio > 0 else 0
    cli.set_seed(args.seed)
    main_process = distributed.init()[0] == 0   # under paddle.distributed.launch: rank 0 writes, all fit
    for cat in cli.training_categories(args):
        out = os.path.join(args.output_dir, cat)
        with cli.training_output(out, main_process, os.path.join(args.data_dir, cat)) as log:
            crop = cli.resolve_crop(args.crop_size, args.image_size, cat)
            model = PaDiM(args.backbone, args.pretrained, args.d, args.image_size, crop, args.seed)
            a = model.model_args
            kw = dict(image_size=a["image_size"], crop_size=a["crop_size"], mean=a["mean"], std=a["std"])
            train_ds = MVTecAD(args.data_dir, cat, "train", **kw)
            if len(train_ds) < 2:   # a mean and a covariance per position need two images at the very least
                raise cli.UserError(f"PaDiM needs at least 2 training images to fit its Gaussians; "
                                    f"{os.path.join(args.data_dir, cat, 'train', 'good')} has {len(train_ds)}")
            log(f"PaDiM {cat}: {args.backbone} ({a['weights']}), d={a['d']}, {len(train_ds)} normal images, "
                f"threshold from {args.folds}-fold out-of-fold scores")
            stats = engine.fit(model, train_ds, args.batch_size, args.num_workers, args.folds, args.threshold_quantile,
                               args.threshold_rule, args.seed, log)
            peaks = distributed.all_gather(round(cli.peak_rss_mb(), 1))   # every process's peak memory
            stats["peak_rss_mb"] = max(peaks)
            if len(peaks) > 1:
                stats["peak_rss_mb_per_process"] = peaks
            if not main_process:
                continue
            engine.save(os.path.join(out, "model.pdparams"), model, stats, cat)
            save_yaml(os.path.join(out, "args.yml"), vars(args) | {"category": cat, "crop_size": crop})
            log(f"saved {os.path.join(out, 'model.pdparams')} (peak RSS {stats['peak_rss_mb']} MB)")
            if args.val:
                model, ck = pipeline.load(engine, os.path.join(out, "model.pdparams"))
                res = pipeline.evaluate(engine, model, ck, args.data_dir, cat, out, args.batch_size, args.save_vis)
                print(pipeline.report(engine, cat, res, os.path.join(out, "metrics.json")))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
