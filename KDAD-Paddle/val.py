"""Evaluate a trained KDAD model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--localization_method gradients] [--save_vis True]
    python val.py --dataset_root ../data/MVTec --normal_class capsule --model_path output/capsule/model.pdparams
metrics.json holds the standard image AUROC, pixel AUROC and AUPRO over all test images, and the paper's
own localization number as ``paper_localization_auroc`` (anomalous images only,
docs/reference.md#kdad-localization-auroc).
Methods other than gradients write to <output_dir>/<category>/<method>/.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # shared_data, adcommon

from adcommon import cli  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import postprocess, run_batches, save_val_outputs, summary_line
    from kdad import engine
    from kdad.config import apply_config
    from kdad.localization import detect, localize, paper_localization_auroc, soft_masks
    from shared_data.dataset import MVTecAD

    given_method = args.localization_method   # else the checkpoint's (then the config's)
    apply_config(args)
    if args.batch_size < 1:
        raise cli.UserError("--batch_size must be >= 1")
    cli.set_device(args.device)
    for cat in cli.categories_arg(args.data_dir, args.category):
        out = cli.category_dir(args.output_dir, cat)
        model, ck = engine.load(args.model_path or os.path.join(out, "model.pdparams"))
        trained = ck.get("localization_method")
        method = (given_method or trained or args.localization_method) if args.localization_test else None
        s = ck["model_args"]["image_size"]
        ds = MVTecAD(args.data_dir, cat, "test", s, None, None, None)

        def run(x):
            return localize(model, x, method, args.smooth_grad_n, args.seed) if method else detect(model, x)

        raw, t_model = run_batches(run, ds, args.batch_size)
        t0 = time.perf_counter()
        spec = engine.postprocess_spec(engine.map_kind(method), s) if method else \
            {"map_outputs": [], "score_output": 0}
        maps, scores = postprocess(raw, spec)
        paper = None  # the paper's threshold sweep (0..0.999) is defined for gradient maps in [0, 1] only
        if maps is not None and ds.has_masks and method != "discrepancy":
            idx, gt = soft_masks(ds, s)
            paper = paper_localization_auroc(maps[idx], gt)
        t_post = time.perf_counter() - t0
        meta = engine.deploy_meta(ck, method or "gradients")
        # the model's own map writes metrics.json in its folder; another one goes to a subfolder
        own = method in (None, trained or "gradients")
        save_dir = args.save_dir or (out if own else os.path.join(out, method))
        res = save_val_outputs(
            save_dir, engine.METHOD, ds, maps, scores, ck.get("threshold"),
            extra={"localization_method": method, "paper_localization_auroc": paper,
                   "paper_localization_auroc_note": "paper metric: anomalous test images only, 1000 thresholds, "
                                                    "3x3 elliptical opening (docs/reference.md"
                                                    "#kdad-localization-auroc); not a pixel AUROC",
                   "model_args": {k: v for k, v in ck["model_args"].items() if k != "postprocess"},
                   "timing": {"model_s": round(t_model, 3), "postprocess_s": round(t_post, 3), "images": len(ds)}},
            save_vis=args.save_vis, vrange=meta.get("vis_range"), map_threshold=meta.get("map_threshold"),
            region_only_if_anomalous=meta.get("region_only_if_anomalous", False))
        print(summary_line(cat, res, os.path.join(save_dir, "metrics.json"), paper_localization_AUROC=paper))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
