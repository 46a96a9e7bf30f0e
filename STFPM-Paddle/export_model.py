"""Export a trained STFPM model for Paddle Inference: <output_dir>/<category>/inference/.

    python export_model.py --category brick
    python export_model.py --depth 18 --img_size=256 --model_path=output/carpet/model.pdparams  (seed flags)
The graph holds teacher and student and returns the three per-layer distance maps at feature
resolution, (N, 1, S/4, S/4), (N, 1, S/8, S/8), (N, 1, S/16, S/16); inference.yml holds preprocessing,
post-processing (bilinear to S, product, score = max), the threshold and the output order.
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
    p.add_argument("--category", default=None)
    p.add_argument("--model_path", "--checkpoint", dest="model_path", default=None,
                   help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", "--save_inference_dir", dest="save_dir", default=None,
                   help="default <output_dir>/<category>/inference")
    cli.add_export_args(p)
    p.add_argument("--img_size", "--image_size", dest="img_size", type=int, default=None,
                   help="input size; must equal the size the model was trained at (the default)")
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.pipeline import export_main
    from stfpm import engine
    if args.img_size is not None:   # the threshold and the colour scale were measured at the training size
        from adcommon.checkpoint import checkpoint_path, load_checkpoint
        ck = load_checkpoint(checkpoint_path(args.model_path, args.output_dir, args.category), engine.METHOD)
        if args.img_size != ck["model_args"]["image_size"]:
            raise cli.UserError(f"--img_size {args.img_size}: this model was trained at "
                                f"{ck['model_args']['image_size']}; leave --img_size out")
    return export_main(engine, args)


if __name__ == "__main__":
    cli.run_cli(main)
