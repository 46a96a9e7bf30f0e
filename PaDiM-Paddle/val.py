"""Evaluate a fitted PaDiM model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p)
    p.add_argument("--data_path", dest="data_dir", help=argparse.SUPPRESS)
    p.add_argument("--save_path", dest="output_dir", help=argparse.SUPPRESS)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=False)
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import paddle

    from adcommon.pipeline import postprocess, run_batches, save_val_outputs, summary_line
    from padim import engine
    from shared_data.dataset import MVTecAD

    cli.set_device(args.device)
    for cat in cli.categories_arg(args.data_dir, args.category):
        out = cli.category_dir(args.output_dir, cat)
        model, ck = engine.load(args.model_path or os.path.join(out, "model.pdparams"))
        a = ck["model_args"]
        ds = MVTecAD(args.data_dir, cat, "test", a["image_size"], a["crop_size"], a["mean"], a["std"])

        @paddle.no_grad()
        def run(x):
            return [model(paddle.to_tensor(x)).numpy()]

        raw, t_model = run_batches(run, ds, args.batch_size)
        t0 = time.perf_counter()
        maps, scores = postprocess(raw, a["postprocess"])
        t_post = time.perf_counter() - t0
        res = save_val_outputs(out, engine.METHOD, ds, maps, scores, ck.get("threshold"),
                               extra={"model_args": {k: v for k, v in a.items() if k != "postprocess"},
                                      "timing": {"model_s": round(t_model, 3), "postprocess_s": round(t_post, 3),
                                                 "images": len(ds)}},
                               save_vis=args.save_vis, vrange=ck.get("vis_range"))
        print(summary_line(cat, res, os.path.join(out, "metrics.json")))
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
