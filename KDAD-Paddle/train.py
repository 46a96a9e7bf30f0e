"""Train KDAD's cloner to copy a frozen expert on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick [--pretrained imagenet] [--epochs 601]
    python train.py --config configs/config.yaml --dataset_root ../data/MVTec --normal_class capsule --save_dir output
Values come from the command line, then configs/config.yaml, then the paper's MVTec settings.
Writes <output_dir>/<category>/model.pdparams (expert + cloner, threshold from held-out normals),
last.pdparams (for --resume), args.yml and train.log.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser, Range  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    p.set_defaults(category=None, seed=0)
    p.add_argument("--dataset_root", dest="data_dir", help=argparse.SUPPRESS)         # seed name
    p.add_argument("--normal_class", dest="category", help=argparse.SUPPRESS)         # seed name
    p.add_argument("--save_dir", dest="output_dir", help=argparse.SUPPRESS)           # seed name
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
    p.add_argument("--threshold_quantile", type=float, default=0.99)
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
    cli.add_speed_args(p)
    p.add_argument("--val", type=cli.str2bool, default=False, help="evaluate on the test split afterwards")
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=False)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon import checkpoint, distributed, pipeline
    from adcommon.compiled import resolve
    from adcommon.files import save_yaml
    from kdad import engine
    from kdad.config import apply_config
    from shared_data.dataset import train_split

    apply_config(args)
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise cli.UserError(f"--{name} must be >= 1")
    if not 0 <= args.holdout_ratio < 1:
        raise cli.UserError("--holdout_ratio must be in [0, 1)")
    engine.check_image_score(args.image_score, args.localization_method)   # before any training
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
            cli.set_seed(args.seed)
            # built from the flags; a resumed run refuses a state written with other ones (restore_training)
            model = engine.build({"backbone": args.backbone, "image_size": args.image_size, "lamda": args.lamda,
                                  "use_bias": args.use_bias, "equal_network_size": args.equal_network_size,
                                  "direction_loss_only": args.direction_loss_only,
                                  "feature_scale": args.feature_scale, "cloner_pools": args.cloner_pools,
                                  "image_score": args.image_score},
                                 args.pretrained)
            s = model.model_args["image_size"]
            # [0, 1] inputs, no normalisation (the reference's)
            fit_ds, hold_ds = train_split(args.data_dir, cat, args.holdout_ratio, image_size=s, crop_size=None,
                                          mean=None, std=None)
            n_hold = len(hold_ds) if hold_ds is not None else 0
            compiled = resolve(args.compile, engine.COMPILE_BY_DEFAULT)
            log(f"KDAD {cat}: expert {args.backbone} ({model.model_args['weights']}), cloner "
                f"{'A' if args.equal_network_size else 'B'}, {len(fit_ds)} fit + {n_hold} held-out normal images, "
                f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, lamda {args.lamda}, seed {args.seed}, "
                f"expert features scaled: {model.model_args['feature_scale']}, "
                f"cloner pools: {model.model_args['cloner_pools']}, image score: {args.image_score}, "
                f"{'compiled (static oneDNN graph)' if compiled else 'eager'} cloner")
            fit, hold = engine.stack_images(fit_ds), engine.stack_images(hold_ds)
            stats = engine.train(model, fit, hold, out, log, args.epochs, args.batch_size, args.lr, args.seed,
                                 args.eval_interval, args.save_interval, resume, args.cache_expert, args.select,
                                 compiled=compiled)
            if not main_process:
                continue
            calib = engine.holdout_calibration(model, hold, args.batch_size, args.threshold_quantile,
                                               args.threshold_rule)
            stats["peak_rss_mb"] = round(cli.peak_rss_mb(), 1)
            path = os.path.join(out, "model.pdparams")
            engine.save(path, model, cat, calib, stats, args.experiment_name, localization=args.localization_method)
            save_yaml(os.path.join(out, "args.yml"), vars(args) | {"category": cat})
            thr = calib["threshold"]
            log(f"saved {path}; threshold {'none (no held-out images)' if thr is None else f'{thr:.4f}'}, "
                f"{stats['train_images_per_s']} train images/s, peak RSS {stats['peak_rss_mb']} MB")
            if args.val:
                model, ck = pipeline.load(engine, path)
                opts = {"localization": args.localization_method, "localization_test": bool(args.localization_test),
                        "seed": args.seed}
                # val.py's batch (16): the gradient maps hold both networks' activations per image
                res = pipeline.evaluate(engine, model, ck, args.data_dir, cat, out, 16, args.save_vis, opts)
                log(pipeline.report(engine, cat, res, os.path.join(out, "metrics.json")))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
