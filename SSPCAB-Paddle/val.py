"""Evaluate a trained CutPaste + SSPCAB model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
Image AUROC (the paper's metric) uses the GDE score; pixel AUROC / AUPRO use our patch-GDE map.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402

LOCALIZATION = ("ours, not in the papers: a GDE fitted to every position of the patch-layer features "
                "(model_args patch_layer; patch map, bilinear upsampling, Gaussian blur sigma 4)")
IMAGE_SCORE_DOC = {"pooled": "GDE: Mahalanobis distance of the L2-normalised pooled embedding (paper)",
                   "patch_max": "maximum of the patch map (ours)"}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    p.add_argument("--type", dest="category", help=argparse.SUPPRESS)          # seed names
    p.add_argument("--model_dir", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--cuda", type=cli.str2bool, default=None, help="seed alias: True = --device gpu")
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", "--save_plots", dest="save_vis", type=cli.str2bool, default=False)
    p.add_argument("--density", default="gde", choices=["gde", "paddle", "torch", "sklearn"],
                   help="gde (paddle/torch are the seeds' names for it); the seeds' sklearn KDE is not offered")
    p.add_argument("--head_layer", type=int, default=None, help=argparse.SUPPRESS)  # the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import paddle

    from adcommon.pipeline import postprocess, run_batches, save_val_outputs, summary_line
    from shared_data.dataset import MVTecAD
    from sspcab import engine

    if args.density == "sklearn":
        raise cli.UserError("--density sklearn (kernel density) is not offered: the Gaussian density (GDE) is "
                            "what the exported model computes; use --density gde")
    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"
    if args.batch_size < 1:
        raise cli.UserError(f"--batch_size must be >= 1, got {args.batch_size}")
    cli.set_device(args.device)
    cats = cli.categories_arg(args.data_dir, args.category)
    if args.model_path and len(cats) > 1:
        raise cli.UserError("--model_path names one checkpoint; give a single --category")
    for cat in cats:
        out = cli.category_dir(args.output_dir, cat)
        model, ck = engine.load(args.model_path or os.path.join(out, "model.pdparams"))
        a = ck["model_args"]
        ds = MVTecAD(args.data_dir, cat, "test", a["image_size"], None, a["mean"], a["std"])

        @paddle.no_grad()
        def run(x):
            return [t.numpy() for t in model(paddle.to_tensor(x))]

        raw, t_model = run_batches(run, ds, args.batch_size)
        t0 = time.perf_counter()
        maps, scores = postprocess(raw, a["postprocess"])
        t_post = time.perf_counter() - t0
        # both image scores, whichever decides: the pooled GDE (output 0) and the map's maximum
        other = {"pooled": maps.reshape(len(maps), -1).max(1), "patch_max": raw[0]}[a.get("image_score", "pooled")]
        other_name = "patch_max" if a.get("image_score", "pooled") == "pooled" else "pooled"
        from adcommon.metrics import SingleClassError, image_auroc
        try:
            other_auroc = image_auroc(ds.labels, other)
        except SingleClassError:
            other_auroc = None
        extra = {"model_args": {k: v for k, v in a.items() if k != "postprocess"},
                 "image_score": IMAGE_SCORE_DOC[a.get("image_score", "pooled")],
                 f"image_auroc_{other_name}": other_auroc,
                 "localization": LOCALIZATION,
                 "timing": {"model_s": round(t_model, 3), "postprocess_s": round(t_post, 3), "images": len(ds)}}
        res = save_val_outputs(out, engine.METHOD, ds, maps, scores, ck.get("threshold"), extra=extra,
                               save_vis=args.save_vis, vrange=ck.get("vis_range"))
        print(summary_line(cat, res, os.path.join(out, "metrics.json"), pixel_note=" (ours)",
                           **{f"image AUROC {other_name}": other_auroc}))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
