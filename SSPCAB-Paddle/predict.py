"""Score images with a trained CutPaste + SSPCAB checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
The verdict compares the GDE score with the threshold from held-out normal images (or --threshold);
the picture shows our patch-GDE map.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.add_argument("--category", "--data_type", "--type", dest="category", default=None,
                   help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_dir", dest="output_dir", help=argparse.SUPPRESS)    # seed name
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", "--img-path", "--img_file", "--image_path", dest="img_path",
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--threshold", "--dist_th", dest="threshold", type=float, default=None,
                   help="override the stored threshold (a GDE score)")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/predict")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--cuda", type=cli.str2bool, default=None, help="seed alias: True = --device gpu")
    p.add_argument("--img_size", type=int, default=None, help=argparse.SUPPRESS)  # the checkpoint knows
    p.add_argument("--density", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import predict_main
    from sspcab import engine

    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"
    if args.batch_size < 1:
        raise cli.UserError(f"--batch_size must be >= 1, got {args.batch_size}")
    return predict_main(engine, args)


if __name__ == "__main__":
    cli.run_cli(main)
