"""Paddle Inference on an exported CutPaste + SSPCAB model (TIPC / deployment), with auto_log benchmark output.

    python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test --use_mkldnn True
Seed names are accepted: --img-path / --img_file, --data_type CAT (uses output/CAT/inference), --cuda.
The threshold is the one in inference.yml (change it with export_model.py --threshold).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import UserError, run_cli  # noqa: E402
from adcommon.deploy import infer_main  # noqa: E402

RENAMED = {"--img-path": "--img_path", "--img_file": "--img_path", "--cuda": "--use_gpu"}


def seed_argv(argv):
    """The seeds' infer.py flags -> adcommon.infer's; --data_type CAT -> --model_dir output/CAT/inference."""
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


if __name__ == "__main__":
    run_cli(lambda argv: infer_main(seed_argv(sys.argv[1:] if argv is None else argv), "SSPCAB"))
