"""A new method's folder from the template, and its line in the method table.

    python scripts/new_method.py --name toy                      # TOY-Paddle/ + a line in methods.tsv
    python scripts/new_method.py --name toy --dest /tmp/x --table /tmp/x/methods.tsv

The folder holds the six scripts (train.py, val.py, predict.py, export_model.py, infer.py, serve.py) and a
package whose engine obeys the method contract (adcommon.method.contract) with a placeholder method that
works end to end: a Gaussian per pixel and channel of the raw normal images, the squared standardised
distance as the anomaly map, the threshold from held-out normal images. Replace the model and
``train_category`` with the paper's; everything else (folders, locks, resume, args.yml, --val,
evaluation, export, the three runtimes) comes from adcommon. Nothing existing is overwritten: a folder
or a table line of that name is refused.
"""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from adbase import ArgumentParser, UserError, make_dirs, run_cli, write_text_atomic  # noqa: E402
from adcommon import methods  # noqa: E402

HEAD = '''import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
'''
TAIL = '''

if __name__ == "__main__":
    run_cli(main)
'''

FILES = {
    "train.py": '''"""Fit __TITLE__ on the normal training images of one or more categories.

    python train.py --data_dir ../data/synthetic --category brick
Writes <output_dir>/<category>/model.pdparams, args.yml, train.log.
"""
__HEAD__from adcommon import cli  # noqa: E402


def add_flags(p):
    p.set_defaults(seed=0)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--holdout_ratio", type=float, default=0.2, help="share of train/good that sets the threshold")
    p.add_argument("--threshold_quantile", type=float, default=0.99)
    cli.add_val_args(p)


main, build_parser = entry("train", "__PKG__", __doc__, flags=add_flags)
__TAIL__''',
    "val.py": '''"""Evaluate a __TITLE__ model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--save_vis True]
"""
__HEAD__
main, build_parser = entry("val", "__PKG__", __doc__)
__TAIL__''',
    "predict.py": '''"""Score images with a __TITLE__ checkpoint (dygraph): results folder, pictures, verdicts.

    python predict.py --category brick --img_path ../data/synthetic/brick/test
"""
__HEAD__
main, build_parser = entry("predict", "__PKG__", __doc__)
__TAIL__''',
    "export_model.py": '''"""Export a __TITLE__ model for deployment: <output_dir>/<category>/inference/.

    python export_model.py --category brick [--onnx True]
"""
__HEAD__
main, build_parser = entry("export", "__PKG__", __doc__)
__TAIL__''',
    "infer.py": '''"""Run an exported __TITLE__ model (Paddle Inference, ONNX Runtime or OpenVINO) on images.

    python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test
"""
__HEAD__
main, _ = entry("infer", "__PKG__", __doc__)
__TAIL__''',
    "serve.py": '''"""An exported __TITLE__ model as an HTTP service (pip install -e .[serve]): infer.py's numbers.

    python serve.py --model_dir output/brick/inference --port 8866
"""
__HEAD__
main, _ = entry("serve", "__PKG__", __doc__)
__TAIL__''',
    "__PKG__/__init__.py": "",
    "__PKG__/engine.py": '''"""__TITLE__'s engine (the method contract, adcommon.method.contract).

The template's placeholder method: a Gaussian per pixel and channel of the raw normal images (inputs in
[0, 1]); the anomaly map is the squared standardised distance summed over the channels, blurred; the
image score its maximum; the threshold comes from held-out normal images. Replace ``PixelGaussian``
and ``train_category`` with the paper's model and training; a trained method runs its step in
adcommon.method.loop (a ``loop.Trainer`` with ``step`` and ``holdout``; STFPM's engine is the example) and
sets ``PROGRESS = "epoch"`` for --resume.
"""
import os

import numpy as np
import paddle

from adcommon import checkpoint as C
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range
from shared_data.dataset import train_split

METHOD = "__NAME__"
OUTPUTS = ["distance_map"]          # what the exported graph returns (the default runner and deploy_meta)


class PixelGaussian(paddle.nn.Layer):
    """images (N, 3, S, S) in [0, 1] -> squared standardised distance to the normal mean, (N, 1, S, S)."""

    def __init__(self, image_size):
        super().__init__()
        s = int(image_size)
        self.model_args = {"image_size": s, "mean": None, "std": None}   # no normalisation: raw [0, 1] pixels
        self.register_buffer("mu", paddle.zeros([3, s, s]))
        self.register_buffer("inv_var", paddle.ones([3, s, s]))

    def forward(self, x):
        return ((x - self.mu) ** 2 * self.inv_var).sum(axis=1, keepdim=True)


def postprocess_spec(image_size):
    return {"out_size": int(image_size), "combine": "product", "sigma": 2.0, "map_outputs": [0],
            "score_output": None}


def build(model_args):
    return PixelGaussian(model_args["image_size"])


def _stack(ds):
    return np.stack([ds[i][0] for i in range(len(ds))]).astype(np.float32)


def train_category(args, category, out, log, main=True):
    """Fit the Gaussians on the training share of train/good, set the threshold from the held-out share,
    write out/model.pdparams."""
    fit_ds, holdout_ds = train_split(args.data_dir, category, args.holdout_ratio, image_size=args.image_size,
                                  crop_size=None, mean=None, std=None)
    model = build({"image_size": args.image_size})
    x = _stack(fit_ds)
    model.mu.set_value(x.mean(0))
    model.inv_var.set_value(1.0 / (x.var(0) + 1e-3))
    spec = postprocess_spec(args.image_size)
    threshold = vr = None
    if holdout_ds is not None and len(holdout_ds):
        model.eval()
        with paddle.no_grad():
            maps, scores = postprocess([model(paddle.to_tensor(_stack(holdout_ds))).numpy()], spec)
        threshold = threshold_from_normals(scores, args.threshold_quantile)
        vr = list(vis_range(maps, threshold))
    log(f"__TITLE__ {category}: {len(fit_ds)} fit + {len(holdout_ds) if holdout_ds else 0} held-out normal images, "
        f"threshold {threshold}")
    if main:
        C.save_checkpoint(os.path.join(out, C.MODEL), METHOD, dict(model.model_args, postprocess=spec),
                          model.state_dict(), category=category, threshold=threshold, vis_range=vr,
                          fit={"n_fit": len(fit_ds), "n_holdout": len(holdout_ds) if holdout_ds else 0})
    return None
''',
    "README.md": '''# __TITLE__

Made from the suite's template (`scripts/new_method.py`): a per-pixel Gaussian placeholder that runs
end to end. Commands, as in every paper folder:

```bash
python train.py --data_dir ../data/synthetic --category brick --val True
python val.py --data_dir ../data/synthetic --category brick
python export_model.py --category brick
python infer.py --model_dir output/brick/inference --img_path ../data/synthetic/brick/test
python serve.py --model_dir output/brick/inference --port 8866   # HTTP: POST /predict
```

## Deviations from the paper

The placeholder is not a paper's method; list each deviation here once the paper's model is in.
''',
}


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="the method's name: lower case letters, digits, _")
    p.add_argument("--title", default=None, help="its display name (default: the name in capitals)")
    p.add_argument("--dest", default=ROOT, help="where the folder goes (default: the repository)")
    p.add_argument("--table", default=None, help="the method table to add the line to (default: methods.tsv)")
    args = p.parse_args(argv)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", args.name):
        raise UserError(f"--name must be lower case letters, digits and _, starting with a letter: {args.name!r}")
    table = args.table or methods.TABLE
    known = methods.parse(open(table, encoding="utf-8").read(), table) if os.path.isfile(table) else []
    if any(m.name == args.name for m in known):
        raise UserError(f"{table} already lists a method {args.name!r}")
    folder = f"{args.name.upper()}-Paddle"
    dest = os.path.join(args.dest, folder)
    if os.path.exists(dest):
        raise UserError(f"{dest} exists: nothing is overwritten; choose another --name or --dest")
    title = args.title or args.name.upper()
    if not re.fullmatch(r"[^\"'\\{}\x00-\x1f\x7f]{1,80}", title):
        # it goes into docstrings, strings and f-strings of the new files: no quote, backslash, brace or control
        raise UserError(f"--title may not hold quotes, backslashes, braces or control characters (80 at most): "
                        f"{title!r}")
    rel = os.path.relpath(dest, os.path.dirname(os.path.abspath(table)))
    line = "\t".join([args.name, rel, args.name, "fit", "", "--image_size 64"]) + "\n"
    make_dirs(dest)   # new (checked above): removed again if anything fails
    try:
        for name, text in FILES.items():
            path = os.path.join(dest, name.replace("__PKG__", args.name))
            make_dirs(os.path.dirname(path))
            text = text.replace("__HEAD__", HEAD.strip("\n") + "\n").replace("__TAIL__", TAIL)
            text = text.replace("__PKG__", args.name)
            write_text_atomic(path, text.replace("__NAME__", args.name).replace("__TITLE__", title))
        old = open(table, encoding="utf-8").read() if os.path.isfile(table) else ""
        write_text_atomic(table, old + ("" if not old or old.endswith("\n") else "\n") + line)
    except BaseException:
        import shutil
        shutil.rmtree(dest, ignore_errors=True)
        raise
    print(f"{dest}: train.py val.py predict.py export_model.py infer.py serve.py {args.name}/engine.py README.md; "
          f"{table}: {line.strip()!r}")
    return 0


if __name__ == "__main__":
    run_cli(main)
