"""Score images with a trained KDAD checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
    python predict.py --model_path output/capsule/model.pdparams --image_path capsule.png --threshold 0.5
The verdict compares the detection score with the threshold from held-out normal images; the red
region of the picture is the gradient map above --map_threshold (seed flag --threshold, default 0.5).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.set_defaults(seed=0)
    p.add_argument("--category", "--normal_class", dest="category", default=None,
                   help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", "--image_path", "--picture_path", dest="img_path", default=None,
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/predict")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--localization_method", default=None,
                   choices=["gradients", "smooth_grad", "gbp", "discrepancy"])
    p.add_argument("--smooth_grad_n", type=int, default=50)
    p.add_argument("--map_threshold", "--threshold", dest="map_threshold", type=float, default=None,
                   help="display threshold on the anomaly map (default: stored in the checkpoint)")
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import predict_main
    from kdad import engine

    if args.batch_size < 1:
        raise cli.UserError("--batch_size must be >= 1")
    return predict_main(engine, args, {"localization": args.localization_method,
                                       "smooth_grad_n": args.smooth_grad_n, "seed": args.seed})


if __name__ == "__main__":
    cli.run_cli(main)
