"""CutPaste + SSPCAB's own script flags beyond the shared ones (adcommon.method.scripts), and the seeds' infer.py
command line."""
import os

from adbase import UserError
from adcommon.cli import str2bool

RENAMED = {"--img-path": "--img_path", "--img_file": "--img_path", "--cuda": "--use_gpu"}


def add_cuda_flag(p):
    p.add_argument("--cuda", type=str2bool, default=None, help="seed alias: True = --device gpu")


def add_val_flags(p):
    add_cuda_flag(p)
    p.add_argument("--density", default="gde", choices=["gde", "paddle", "torch", "sklearn"],
                   help="gde (paddle/torch are the seeds' names for it); the seeds' sklearn KDE is not offered")


def add_export_flags(p):
    p.add_argument("--threshold", "--dist_th", dest="threshold", type=float, default=None,
                   help="write this threshold (a GDE score) instead of the one from held-out normals")


def apply_cuda(args):
    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"


def check_val(args):
    if args.density == "sklearn":
        raise UserError("--density sklearn (kernel density) is not offered: the Gaussian density (GDE) is "
                        "what the exported model computes; use --density gde")
    apply_cuda(args)


def seed_argv(argv):
    """The seeds' infer.py flags -> adcommon.deploy.scoring's; --data_type CAT -> --model_dir output/CAT/inference."""
    out, category = [], None
    it = iter(argv)
    for a in it:
        key, eq, val = a.partition("=")
        if key in ("--data_type", "--type"):
            category = val if eq else next(it, None)
        elif key == "--dist_th":
            raise UserError("--dist_th: the threshold is stored in inference.yml; "
                            "re-export with `python export_model.py --category CAT --threshold X`")
        else:
            out.append(RENAMED.get(key, key) + eq + val)
    if category and not any(a.partition("=")[0] in ("--model_dir", "--model_file") for a in out):
        out += ["--model_dir", os.path.join("output", category, "inference")]
    return out
