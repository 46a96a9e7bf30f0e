"""Score images with a fitted PaDiM checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.add_argument("--category", default=None, help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", "--picture_path", "--image_path", dest="img_path", required=False,
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/predict")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", "--save_picture", dest="save_vis", type=cli.str2bool, default=True)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import paddle

    from adcommon.infer import predict_checkpoint
    from padim import engine

    ckpt = cli.checkpoint_path(args.model_path, args.output_dir, args.category)
    paths = cli.find_images(args.img_path)
    cli.set_device(args.device)
    model, ck = engine.load(ckpt)

    @paddle.no_grad()
    def run(x):
        return [model(paddle.to_tensor(x)).numpy()]

    return predict_checkpoint(paths, run, engine.deploy_meta(ck), ckpt, args)


if __name__ == "__main__":
    cli.run_cli(main)
