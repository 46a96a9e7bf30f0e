"""Evaluate a trained KDAD model on the test split: metrics.json, scores.csv (and pictures).

    python val.py --data_dir ../data/synthetic --category brick [--localization_method gradients] [--save_vis True]
    python val.py --dataset_root ../data/MVTec --normal_class capsule --model_path output/capsule/model.pdparams
metrics.json holds the standard image AUROC, pixel AUROC and AUPRO over all test images, and the paper's
own localization number as ``paper_localization_auroc`` (anomalous images only,
docs/reference.md#kdad-localization-auroc).
The localization method defaults to the one chosen at training (stored in the checkpoint); another one
writes to <output_dir>/<category>/<method>/.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

from adcommon.cli import run_cli  # noqa: E402
from adcommon.method.scripts import entry  # noqa: E402
from kdad.flags import add_val_flags, val_options  # noqa: E402

main, build_parser = entry("val", "kdad", __doc__, flags=add_val_flags, prepare=val_options,
                           aliases={"save_vis": ["--save_picture"]},
                           hidden={"--dataset_root": "data_dir", "--normal_class": "category"})

if __name__ == "__main__":
    run_cli(main)
