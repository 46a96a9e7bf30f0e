"""Score images with a trained STFPM checkpoint (dygraph): panel pictures, scores.csv, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test/crack
    python predict.py --checkpoint=output/carpet/model.pdparams --image_path=000.png --save_path=predict.png
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon import cli  # noqa: E402
from shared_data.errors import ArgumentParser  # noqa: E402

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(p, data=False)
    p.add_argument("--category", default=None, help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", "--checkpoint", dest="model_path", default=None,
                   help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", "--image_path", dest="img_path", default=None,
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", "--save_path", dest="save_dir", default=None,
                   help="folder for pictures and scores.csv (default <output_dir>/<category>/predict); "
                        "a .png name (seed style) receives the picture of a single image")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", "--save_fig", dest="save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--threshold", type=float, default=None, help="image-score threshold instead of the stored one")
    p.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # seed flag; the checkpoint knows
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.files import find_images
    from adcommon.pipeline import predict_main
    from stfpm import engine

    picture = args.save_dir if (args.save_dir or "").lower().endswith(PICTURE_EXTENSIONS) else None
    if not picture:
        return predict_main(engine, args)
    # seed: --save_path=predict.png, the picture of one image: scored into a private folder, then the
    # panel alone is put at that name
    import tempfile

    from adcommon.outputs import image_root, result_name
    from adcommon.results import SUFFIX
    from shared_data.errors import atomic_path, check_utf8
    paths = find_images(args.img_path)
    if len(paths) != 1:
        raise cli.UserError(f"--save_path {picture} is a picture name: give one image, or a folder name")
    check_utf8(picture, "--save_path")
    if os.path.exists(picture) and os.path.samefile(picture, paths[0]):
        raise cli.UserError(f"--save_path {picture} is the input image itself: the picture would replace it; "
                            "give another name")
    work = tempfile.mkdtemp(prefix="stfpm-predict-")
    try:
        args.save_dir, args.save_vis = os.path.join(work, "results"), True
        code = predict_main(engine, args)
        with atomic_path(picture) as tmp:
            shutil.copyfile(os.path.join(args.save_dir, result_name(paths[0], image_root(args.img_path)) +
                                         SUFFIX["picture"]), tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"picture {picture}")
    return code


if __name__ == "__main__":
    cli.run_cli(main)
