"""Train CutPaste (3-way) + SSPCAB on the normal images of one or more categories, then fit the GDE.

    python train.py --data_dir ../data/synthetic --category brick [--backbone efficientnet_lite0] [--steps 256]
Writes <output_dir>/<category>/model.pdparams (weights, GDE buffers, threshold), args.yml, train.log.
--steps counts parameter updates (the paper's epoch is 256 of them); --epochs is the seed's name for it.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser, Range  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    cli.add_workers_arg(p)
    # seed names (liuxtakeoff/sspcab_paddle, Lieberk/Paddle-SSPCAB): --type, --model_dir, --workers, --cuda ...
    p.add_argument("--type", dest="category", help=argparse.SUPPRESS)
    p.add_argument("--model_dir", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--workers", dest="num_workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cuda", type=cli.str2bool, default=None, help="seed alias: True = --device gpu")
    p.add_argument("--backbone", default="resnet18", choices=["resnet18", "efficientnet_lite0"],
                   help="resnet18 (paper); efficientnet_lite0 has ImageNet weights offline")
    p.add_argument("--pretrained", default="imagenet", help="imagenet | none | PATH (.pdparams or torchvision .pth)")
    p.add_argument("--pretrained_resnet", type=cli.str2bool, default=None, help="seed alias: True/False")
    p.add_argument("--no-pretrained", "--no_pretrained", dest="no_pretrained", action="store_true",
                   help="seed alias of --pretrained none")
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
    p.add_argument("--threshold_quantile", type=float, default=0.99)
    p.add_argument("--threshold_rule", default="robust", choices=["robust", "quantile"],
                   help="threshold from held-out normal scores: robust = log-normal fit by median and MAD; "
                        "quantile = empirical quantile")
    p.add_argument("--resume", type=cli.str2bool, nargs="?", const=True, default=False,
                   help="continue from <output_dir>/<category>/last.pdparams")
    p.add_argument("--save_interval", type=int, limits=Range(0), default=100, help="updates between resumable states")
    p.add_argument("--log_interval", type=int, default=10)
    p.add_argument("--eval_interval", type=int, limits=Range(0), default=0,
                   help="every N updates: mean GDE score of the held-out normals (a convergence curve; 0: off)")
    p.add_argument("--test_epochs", type=int, default=None,
                   help="seed flag, ignored: no test-set evaluation (checkpoint selection) during training")
    p.add_argument("--val", type=cli.str2bool, default=False, help="evaluate on the test split afterwards")
    p.add_argument("--save_vis", type=cli.str2bool, default=False)
    p.set_defaults(seed=0)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon import checkpoint, distributed, pipeline
    from adcommon.files import save_yaml
    from shared_data.dataset import ImageCache, train_split
    from sspcab import engine
    from sspcab.cutpaste import VARIANTS
    from sspcab.model import ProjectionNet

    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"
    if args.pretrained_resnet is not None:
        args.pretrained = "imagenet" if args.pretrained_resnet else "none"
    if args.no_pretrained:
        args.pretrained = "none"
    for name in ("batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise cli.UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.steps < 0:
        raise cli.UserError(f"--steps must be >= 0 (0: no training, the GDE of ImageNet features), got {args.steps}")
    if not 0 <= args.holdout_ratio < 1:
        raise cli.UserError(f"--holdout_ratio must be in [0, 1), got {args.holdout_ratio}")
    # under paddle.distributed.launch (data parallel, --batch_size the global batch): rank 0 writes
    main_process = distributed.init()[0] == 0
    for cat in cli.training_categories(args):
        out = os.path.join(args.output_dir, cat)
        done = args.resume and checkpoint.finished_run(out, engine.METHOD, "step", args.steps)
        if done:   # --resume on a finished run: says so, and leaves it as it is
            print(done)
            continue
        # a second run into the same folder refuses
        with cli.training_output(out, main_process, os.path.join(args.data_dir, cat)) as log:
            if args.test_epochs:
                log("--test_epochs ignored: the final model is the model (no selection on test labels)")
            cli.set_seed(args.seed)
            model = ProjectionNet(args.backbone, args.pretrained, args.head_layer, args.variant, not args.no_sspcab,
                                  args.image_size, args.sspcab_kernel, args.sspcab_dilation,
                                  patch_layer=args.patch_layer, image_score=args.image_score)
            a = model.model_args
            fit_ds, hold_ds = train_split(args.data_dir, cat, args.holdout_ratio, image_size=a["image_size"],
                                          mean=a["mean"], std=a["std"])
            what = (f"CutPaste + SSPCAB (at {a['sspcab_site']}, lambda {args.sspcab_lambda})" if a["sspcab"]
                    else "CutPaste (no SSPCAB)")
            log(f"{what} {args.variant} {cat}: {a['backbone']} ({a['weights']}); "
                f"{len(fit_ds)} training + {len(hold_ds) if hold_ds else 0} held-out "
                f"normal images at {args.image_size} px; {args.steps} updates of {args.batch_size} x "
                f"{VARIANTS[args.variant]} images")
            if args.steps == 0 and a["sspcab"]:
                log("warning: --steps 0 keeps SSPCAB at its random initialisation; add --no_sspcab for the "
                    "untrained ImageNet-feature baseline")
            state = os.path.join(out, "last.pdparams")
            if hold_ds is not None:
                ImageCache(hold_ds)  # read the held-out images now: a bad one fails before training, not after
            train_stats = engine.train(model, ImageCache(fit_ds).rgb, args.steps, args.batch_size, args.lr,
                                       args.momentum, args.weight_decay, args.freeze_steps, args.sspcab_lambda,
                                       args.seed, args.num_workers, state, args.save_interval, args.resume,
                                       args.log_interval, log, holdout=(fit_ds, hold_ds) if hold_ds else None,
                                       eval_interval=args.eval_interval, frozen_stages=args.frozen_stages)
            if not main_process:
                continue   # the density fit, the threshold and every file: rank 0
            fit_stats = engine.fit_density(model, fit_ds, hold_ds, batch_size=min(args.batch_size, 32),
                                           threshold_quantile=args.threshold_quantile, seed=args.seed, log=log,
                                           threshold_rule=args.threshold_rule)
            train_stats["peak_rss_mb"] = round(cli.peak_rss_mb(), 1)
            engine.save(os.path.join(out, "model.pdparams"), model, cat, fit_stats, train_stats)
            save_yaml(os.path.join(out, "args.yml"), vars(args) | {"category": cat})
            if os.path.exists(state):
                os.remove(state)  # the fitted model supersedes the resumable state
            log(f"saved {os.path.join(out, 'model.pdparams')} ({train_stats['train_seconds']} s training, "
                f"{train_stats['train_images_per_s']} img/s, peak RSS {train_stats['peak_rss_mb']} MB)")
            if args.val:
                model, ck = pipeline.load(engine, os.path.join(out, "model.pdparams"))
                res = pipeline.evaluate(engine, model, ck, args.data_dir, cat, out, save_vis=args.save_vis)
                log(pipeline.report(engine, cat, res, os.path.join(out, "metrics.json")))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
