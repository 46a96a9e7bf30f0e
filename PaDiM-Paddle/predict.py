"""Score images with a fitted PaDiM checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
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
    p.add_argument("--category", default=None, help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", "--picture_path", "--image_path", dest="img_path", required=False,
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/predict")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--threshold", type=float, default=None, help="image-score threshold instead of the stored one")
    return p


def main(argv=None):
    from adcommon.pipeline import predict_main
    from padim import engine
    return predict_main(engine, build_parser().parse_args(argv))


if __name__ == "__main__":
    cli.run_cli(main)
