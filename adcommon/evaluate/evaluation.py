"""The test split's result files: metrics.json (written last: its presence means the evaluation finished),
scores.csv, and with pictures or report.html; the summary line val.py prints. The lifecycle
(adcommon.method.pipeline.evaluate) runs the model and calls ``save_val_outputs``."""
import contextlib
import dataclasses
import os
import time
from typing import Optional, Tuple

import numpy as np

from adcommon.evaluate.maps import vis_range
from adcommon.evaluate.regions import crop_note
from adcommon.evaluate.visualize import PanelStyle, save_panel, verdict
from adcommon.files import save_json, write_scores_csv
from adcommon.provenance import git_commit, machine


def run_batches(fn, dataset, batch_size):
    """Apply ``fn(images (B,3,S,S) numpy) -> list of numpy outputs`` over a dataset; concat per output.

    Returns (outputs, seconds). Masks/labels are read from the dataset separately, so the
    dataset's images are decoded once here.
    """
    outs, t = None, 0.0
    for i in range(0, len(dataset), batch_size):
        xb = np.stack([dataset[j][0] for j in range(i, min(i + batch_size, len(dataset)))])
        t0 = time.perf_counter()
        res = fn(xb)
        t += time.perf_counter() - t0
        outs = [[r] for r in res] if outs is None else [o + [r] for o, r in zip(outs, res)]
    return [np.concatenate(o) for o in outs], t


def fmt_metric(v):
    """A metric for a one-line summary: four decimals, 'n/a' when it cannot be computed."""
    return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.4f}"


def summary_line(category, res, path, pixel_note="", **more):
    """The line val.py prints per category: image / pixel AUROC, AUPRO, any extra metrics, where it went."""
    parts = [f"Category: {category}", f"Image AUROC: {fmt_metric(res.get('image_auroc'))}",
             f"Pixel AUROC{pixel_note}: {fmt_metric(res.get('pixel_auroc'))}",
             f"AUPRO{pixel_note}: {fmt_metric(res.get('aupro'))}"]
    parts += [f"{k.replace('_', ' ').replace('auroc', 'AUROC')}: {fmt_metric(v)}" for k, v in more.items()]
    return "\t".join(parts) + f"\t-> {path}"


@dataclasses.dataclass
class ValOptions:
    """What save_val_outputs writes besides metrics.json and scores.csv, and how. ``save_vis``: the
    pictures (vis/: roc.png and a panel per test image); ``report``: report.html, with the pictures.
    The panels' colour scale is ``vrange`` (lo, hi; default: vis_range of the normal images' maps);
    ``map_threshold`` is for maps whose units differ from the image score's (KDAD's per-image scaled
    gradient maps; default: the image threshold); ``region_only_if_anomalous`` draws the predicted region
    only on images over the threshold. ``fpr_limit``: AUPRO's false-positive-rate limit."""
    save_vis: bool = False
    vrange: Optional[Tuple[float, float]] = None
    fpr_limit: float = 0.3
    map_threshold: Optional[float] = None
    region_only_if_anomalous: bool = False
    report: bool = False


@dataclasses.dataclass
class _Scored:
    """The test split as the model scored it: its dataset, maps (None: image scores only), image scores,
    ground-truth masks (None: no maps or no masks) and the image threshold (None: none)."""
    dataset: object
    maps: object
    scores: object
    masks: object
    threshold: Optional[float]

    def style(self, opts):
        """The panels' PanelStyle: ``opts.vrange``, else vis_range of the normal images' maps."""
        labels, thr = np.asarray(self.dataset.labels), self.threshold
        lo, hi = opts.vrange or vis_range(self.maps[labels == 0], thr if opts.map_threshold is None else
                                          opts.map_threshold)
        return PanelStyle(thr, lo, hi, opts.map_threshold, opts.region_only_if_anomalous)


def save_val_outputs(out_dir, method, dataset, maps, scores, threshold, extra=None, **options):
    """Metrics on the test split -> metrics.json and scores.csv (and pictures with save_vis; pictures and
    report.html with report). ``options``: the fields of ValOptions.

    Metrics use the raw scores: the references' min-max over the test set is monotonic, so AUROC,
    AUPRO and F1-max are unchanged by it. ``map_threshold`` (pictures only) is for maps whose units
    differ from the image score's (KDAD's per-image scaled gradient maps); default: ``threshold``.
    """
    opts = ValOptions(**options)
    masks = None
    if maps is not None and dataset.has_masks:
        masks = np.stack([dataset.load_mask(i) for i in range(len(dataset))])
    scored = _Scored(dataset, maps, scores, masks, threshold)
    out = _metrics_record(method, scored, opts.fpr_limit)
    out.update(extra or {})
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out["commit"] = git_commit()
    from adcommon import vdl
    if vdl.wanted():   # train.py --use_vdl --val: the metrics and a few panels in VisualDL
        vdl.evaluation(out, _vdl_panels(scored, opts))
    rows, header = _score_rows(scored)
    # built aside and moved in when complete (metrics.json last: its presence means the evaluation
    # finished), so an interrupted run never mixes its files with the previous run's
    with built_aside(out_dir, "val") as work:
        write_scores_csv(os.path.join(work, "scores.csv"), rows, header)
        pictures = {}
        if opts.save_vis or opts.report:
            pictures = _save_pictures(work, method, scored, opts)
        if opts.report:
            _save_report(work, method, scored, pictures, out)
        save_json(os.path.join(work, "metrics.json"), out)
    return out


def _metrics_record(method, scored, fpr_limit):
    """metrics.json's first entries: what was evaluated, then the metrics (all_metrics on the raw scores)."""
    from adcommon.evaluate.metrics import all_metrics
    dataset, threshold = scored.dataset, scored.threshold
    labels = dataset.labels
    res = all_metrics(labels, scored.scores, masks=scored.masks, maps=scored.maps, fpr_limit=fpr_limit,
                      threshold=threshold)
    res = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in res.items()}
    out = {"method": method, "category": dataset.category, "data_dir": os.path.abspath(dataset.root),
           "n_test": int(len(labels)), "n_anomalous": int(labels.sum()), "threshold": threshold}
    out.update(res)
    return out


def _score_rows(scored):
    """(rows, header) of scores.csv: path, label, score, and the verdict when there is a threshold."""
    threshold = scored.threshold
    rows = [(s.path, s.label, float(sc)) + ((verdict(sc, threshold),) if threshold is not None else ())
            for s, sc in zip(scored.dataset.samples, scored.scores)]
    header = ("path", "label", "score") + (("verdict",) if threshold is not None else ())
    return rows, header


def _save_pictures(work, method, scored, opts):
    """vis/roc.png, and with maps a panel per test image, in ``work``. Returns {index: the panel's path
    relative to ``work``}."""
    from adcommon.evaluate.visualize import save_roc
    dataset, scores = scored.dataset, scored.scores
    vis_dir = os.path.join(work, "vis")
    save_roc(dataset.labels, scores, os.path.join(vis_dir, "roc.png"), title=f"{method} {dataset.category}")
    pictures = {}
    if scored.maps is None:
        return pictures
    from adcommon.evaluate.results import SUFFIX
    from adcommon.outputs import result_name
    style = scored.style(opts)
    test_root = os.path.join(dataset.root, dataset.category, "test")
    for i in range(len(dataset)):
        name = result_name(dataset.samples[i].path, test_root) + SUFFIX["picture"]
        rgb, amap, gt = _panel_frame(dataset, i, scored.maps[i], scored.masks)
        save_panel(os.path.join(vis_dir, name), rgb, amap, scores[i], style, gt_mask=gt)
        pictures[i] = f"vis/{name}"
    return pictures


def _save_report(work, method, scored, pictures, out):
    """report.html in ``work``: every test image with its score, label, verdict and picture."""
    from adcommon.evaluate.report import write_report
    dataset, threshold = scored.dataset, scored.threshold
    records = [{"path": s.path, "score": float(sc), "label": s.kind, "picture": pictures.get(i),
                "verdict": verdict(sc, threshold) if threshold is not None else None}
               for i, (s, sc) in enumerate(zip(dataset.samples, scored.scores))]
    write_report(work, records, threshold, out, title=f"{method} {dataset.category}: test split",
                 note=crop_note(dataset.image_size, dataset.crop_size))


def _vdl_panels(scored, opts, n=2):
    """[(tag, picture)] of the ``n`` highest-scored defective and normal test images, for VisualDL."""
    from adcommon.evaluate.visualize import panel_picture
    if scored.maps is None:
        return []
    labels, scores = np.asarray(scored.dataset.labels), np.asarray(scored.scores, np.float64)
    style = scored.style(opts)
    out = []
    for label, kind in ((1, "defective"), (0, "normal")):
        idx = np.flatnonzero(labels == label)
        for rank, i in enumerate(idx[np.argsort(-scores[idx], kind="stable")][:n]):
            rgb, amap, gt = _panel_frame(scored.dataset, int(i), scored.maps[i], scored.masks)
            out.append((f"{kind}_{rank + 1}", panel_picture(rgb, amap, float(scores[i]), style, gt)))
    return out


def _panel_frame(dataset, i, amap, masks):
    """(image, map, ground truth) of test image i for its picture: with a centre crop, the whole resized
    image with the map on the inspected square (NaN around it, framed in the picture), else as scored."""
    from adcommon.evaluate.regions import to_image
    from shared_data.dataset import load_image, load_mask, resize_image, resize_mask
    size, crop = dataset.image_size, dataset.crop_size
    gt = masks[i] if masks is not None else None
    if not crop or crop >= size:
        return dataset.load_rgb(i), amap, gt
    s = dataset.samples[i]
    if gt is not None:
        gt = resize_mask(load_mask(s.mask_path), size) if s.mask_path else np.zeros((size, size), bool)
    return resize_image(load_image(s.path), size), to_image(amap, size, size, size, crop), gt


@contextlib.contextmanager
def built_aside(out_dir, stem):
    """Yield a temporary folder in ``out_dir``; when the block succeeds, move its entries into ``out_dir``
    (a folder replaces the folder of that name; metrics.json moves last), else remove it."""
    import shutil

    from adbase import make_temp_dir
    work = make_temp_dir(stem, out_dir)
    replaced = []
    try:
        yield work
        for name in sorted(os.listdir(work), key=lambda n: n == "metrics.json"):
            src, dst = os.path.join(work, name), os.path.join(out_dir, name)
            if os.path.isdir(src) and os.path.isdir(dst):
                replaced.append(make_temp_dir(f"old-{name}", out_dir))
                os.replace(dst, os.path.join(replaced[-1], name))
            os.replace(src, dst)
    finally:
        for d in [work] + replaced:
            shutil.rmtree(d, ignore_errors=True)
