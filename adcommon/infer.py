"""Scoring a file, a folder or a glob of images: shared by every predict.py (dygraph, through
adcommon.pipeline.predict_main) and infer.py (Paddle Inference), so both write the same scores.csv and
pictures from the same code.

``meta`` is what export_model.py writes to inference.yml (and what predict.py builds from the
checkpoint): {"method", "preprocess": {image_size, crop_size, mean, std}, "postprocess": spec,
"threshold", "vis_range": [lo, hi], "outputs": [...]}
"""
import contextlib
import os
import sys
import time

import numpy as np

from shared_data import dataset as D
from shared_data.errors import ArgumentParser, UserError

from .cli import add_infer_args, add_result_args, str2bool
from .files import find_images, write_scores_csv
from .pipeline import postprocess, print_verdicts, save_panel, vis_range


def predict_dir(ckpt, save_dir=None):
    """predict.py's output folder: --save_dir, else <the checkpoint's folder>/predict."""
    return save_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt)), "predict")


def picture_names(paths):
    """One picture name per image path: ``<parent folder>_<stem>.png`` (as the panels of val.py), or, for
    paths that would share that name, their path below the images' common folder joined with '_'."""
    short = [f"{os.path.basename(os.path.dirname(q))}_{os.path.splitext(os.path.basename(q))[0]}.png"
             for q in paths]
    clash = {n for n in short if short.count(n) > 1}
    if not clash:
        return short
    common = os.path.commonpath([os.path.dirname(os.path.abspath(q)) for q in paths])
    return [n if n not in clash else
            os.path.splitext(os.path.relpath(os.path.abspath(q), common))[0].replace(os.sep, "_") + ".png"
            for n, q in zip(short, paths)]


def _previous_outputs(save_dir):
    """The files of the run whose results are in save_dir: those predictions.jsonl lists, else (a run of an
    earlier version) the pictures named after scores.csv's paths."""
    import csv
    import json
    path = os.path.join(save_dir, "predictions.jsonl")
    try:
        with open(path, encoding="utf-8") as f:
            return ["report.html"] + [name for line in f if line.strip()
                                      for name in json.loads(line).get("files", {}).values()]
    except (OSError, ValueError, AttributeError):
        pass
    path = os.path.join(save_dir, "scores.csv")
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return picture_names([row["path"] for row in csv.DictReader(f) if row.get("path")])
    except (OSError, csv.Error, KeyError, UnicodeDecodeError):
        return []


MAP_SUFFIX = {"npy": "_map.npy", "png16": "_map.png"}


def _record(q, rgb, score, threshold):
    """The predictions.jsonl fields every image has: path, size, score, threshold, verdict."""
    return {"path": q, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "score": round(float(score), 6),
            "threshold": threshold,
            "verdict": (("anomalous" if score >= threshold else "normal") if threshold is not None else None),
            "regions": [], "files": {}}


def _image_results(q, name, m, score, rgb, meta, work, save_vis, save_maps, vrange):
    """One image's files in ``work`` (the mask and, with ``save_maps``, the map at the image's own size;
    the panel with ``save_vis``) and its predictions.jsonl record."""
    from . import regions as R
    p, threshold = meta["preprocess"], meta.get("threshold")
    S, C = p["image_size"], p.get("crop_size")
    region_thr = meta.get("map_threshold") if meta.get("map_threshold") is not None else threshold
    if meta.get("region_only_if_anomalous") and threshold is not None and score < threshold:
        region_thr = None   # maps scaled per image always have a hot spot: regions only for anomalous images
    H, W = rgb.shape[:2]
    full = R.to_image(m, W, H, S, C)
    stem = os.path.splitext(name)[0]
    rec = dict(_record(q, rgb, score, threshold), inspected=list(R.inspected_box(W, H, S, C)),
               regions=R.find_regions(full, region_thr))
    if threshold is not None:
        R.save_mask(os.path.join(work, stem + "_mask.png"), full, region_thr)
        rec["files"]["mask"] = stem + "_mask.png"
    if save_maps != "none":
        fname = stem + MAP_SUFFIX[save_maps]
        scale = R.save_map(os.path.join(work, fname), full, save_maps, vrange)
        rec["files"]["map"] = fname
        if scale:
            rec["map_scale"] = scale
    if save_vis:
        lo, hi = vrange
        small = R.to_image(m, S, S, S, C)   # the panel: the whole resized image, the crop framed
        save_panel(os.path.join(work, name), D.resize_image(rgb, S), small, float(score), threshold, lo, hi, None,
                   meta.get("map_threshold"), bool(meta.get("region_only_if_anomalous")))
        rec["files"]["picture"] = name
    return rec


def predict_images(paths, run_fn, meta, save_dir, batch_size=1, save_vis=True, autolog=None, save_maps="none",
                   report=False, title="predictions"):
    """Score ``paths`` with ``run_fn(batch) -> list of outputs``; write into save_dir: scores.csv,
    predictions.jsonl (per image: score, verdict, the inspected box and the regions over the threshold in
    the image's own pixels), ``<name>_mask.png`` at each image's own size, with ``save_maps`` (npy |
    png16) the map at that size too, with ``save_vis`` the panels, and with ``report`` (panels included)
    report.html.

    Everything is written into a temporary folder first and moved into ``save_dir`` when the run has
    finished, replacing the previous run's files there (other files are left alone): a run that stops
    half-way leaves the previous one intact, and two runs never mix.
    With an ``autolog`` the three auto_log stamps are preprocess / inference / postprocess; writing
    results is outside them (it is output, not post-processing).
    Returns (scores (N,), maps (N, H, W) at model resolution, or None).
    """
    import json
    import shutil

    from shared_data.errors import make_temp_dir

    from . import regions as R
    p, spec, threshold = meta["preprocess"], meta["postprocess"], meta.get("threshold")
    map_threshold = meta.get("map_threshold")
    vrange = meta.get("vis_range")
    names = picture_names(paths)
    save_vis = save_vis or report
    all_scores, all_maps, records, sizes = [], [], [], []
    created = not os.path.isdir(save_dir)
    work = make_temp_dir("predict", save_dir)
    done = False
    try:
        for i in range(0, len(paths), batch_size):
            chunk = paths[i:i + batch_size]
            if autolog:
                autolog.times.start()
            rgbs = [D.load_image(q) for q in chunk]
            x = np.stack([D.to_tensor(D.resize_image(r, p["image_size"], p.get("crop_size")), p.get("mean"),
                                      p.get("std")) for r in rgbs])
            if autolog:
                autolog.times.stamp()
            outs = run_fn(x)
            if autolog:
                autolog.times.stamp()
            maps, scores = postprocess(outs, spec)
            if autolog:
                autolog.times.end(stamp=True)
                autolog.sample_memory() if hasattr(autolog, "sample_memory") else None
            all_scores.append(scores)
            sizes += [(r.shape[1], r.shape[0]) for r in rgbs]
            if maps is None:
                records += [_record(q, r, float(s), threshold) for q, r, s in zip(chunk, rgbs, scores)]
                continue
            all_maps.append(maps)
            if vrange is None:
                vrange = vis_range(maps, threshold if map_threshold is None else map_threshold)
            for q, name, m, s, rgb in zip(chunk, names[i:i + batch_size], maps, scores, rgbs):
                records.append(_image_results(q, name, m, float(s), rgb, meta, work, save_vis, save_maps, vrange))
        scores = np.concatenate(all_scores)
        rows = [(q, float(s)) + ((r["verdict"],) if threshold is not None else ())
                for q, s, r in zip(paths, scores, records)]
        header = ("path", "score") + (("verdict",) if threshold is not None else ())
        with open(os.path.join(work, "predictions.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        if report:
            from .report import label_from_path, write_report
            write_report(work, [dict(r, label=label_from_path(r["path"]), picture=r["files"].get("picture"))
                                for r in records], threshold, title=title,
                         note=R.crop_note(p["image_size"], p.get("crop_size")))
        write_scores_csv(os.path.join(work, "scores.csv"), rows, header)
        # finished: the previous run's files go, this run's files move in (scores.csv last)
        mine = set(os.listdir(work))
        for old in _previous_outputs(save_dir):
            if old not in mine:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(save_dir, old))
        for name in sorted(mine - {"scores.csv"}) + ["scores.csv"]:
            os.replace(os.path.join(work, name), os.path.join(save_dir, name))
        done = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created and not done:   # a first run that failed leaves no empty folder
            with contextlib.suppress(OSError):
                os.rmdir(save_dir)
    print_verdicts(paths, scores, threshold)
    for note in (R.crop_note(p["image_size"], p.get("crop_size")), R.aspect_note(sizes, p["image_size"])):
        if note:
            print(note, file=sys.stderr)
    return scores, (np.concatenate(all_maps) if all_maps else None)


def build_infer_parser(description):
    p = ArgumentParser(description=description)
    p.add_argument("--model_dir", default=None, help="export folder (inference.yml + model + params)")
    p.add_argument("--model_file", default=None, help="alias: path of inference.json|pdmodel; its folder is used")
    p.add_argument("--params_file", default=None, help="accepted for TIPC compatibility; taken from --model_dir")
    p.add_argument("--img_path", "--input_file", "--image_path", dest="img_path", default=None,
                   help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", "--save_path", dest="save_dir", default=None,
                   help="where scores.csv and pictures go (default: <model_dir>/../infer)")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", type=str2bool, default=True)
    add_result_args(p)
    p.add_argument("--warmup", type=int, default=0, help="batches left out of the benchmark means")
    p.add_argument("--log_path", default=None, help="auto_log file (default: <save_dir>/auto_log.log)")
    add_infer_args(p)
    return p


def infer_main(argv, model_name):
    """The whole infer.py: Paddle Inference over images, scores.csv, pictures, auto_log benchmark."""
    from .benchmark import get_autologger
    from .predictor import Predictor

    args = build_infer_parser(f"{model_name}: Paddle Inference on exported model").parse_args(argv)
    model_dir = args.model_dir or (os.path.dirname(args.model_file) if args.model_file else None)
    if not model_dir:
        raise UserError("--model_dir is required (the folder written by export_model.py)")
    if args.batch_size < 1:
        raise UserError("--batch_size must be >= 1")
    from .predictor import load_meta
    use_mkldnn = args.use_mkldnn
    if use_mkldnn and not args.use_gpu and load_meta(model_dir).get("graph_has_gradients"):
        # oneDNN's conv/pool backward kernels refuse inference mode (Paddle 3.3): a graph holding
        # paddle.grad runs with oneDNN off. Said once, not an error.
        print("note: this exported graph computes input gradients, which oneDNN cannot run; "
              "running with oneDNN off", file=sys.stderr)
        use_mkldnn = False
    exported_by = str(load_meta(model_dir).get("method", "")).lower()
    if exported_by and exported_by != model_name.lower():
        raise UserError(f"{model_dir} holds a {exported_by} model, not {model_name}: use that method's infer.py "
                        "(the graph's outputs and post-processing are the method's own)")
    pred = Predictor(model_dir, use_gpu=args.use_gpu, use_mkldnn=use_mkldnn, cpu_threads=args.cpu_threads,
                     precision=args.precision, use_tensorrt=args.use_tensorrt, gpu_mem=args.gpu_mem,
                     gpu_id=args.gpu_id, ir_optim=args.ir_optim)
    paths = find_images(args.img_path)
    save_dir = args.save_dir or os.path.join(os.path.dirname(os.path.abspath(model_dir)), "infer")
    autolog = None
    if args.benchmark:
        autolog = get_autologger(model_name, args.batch_size, inference_config=pred.config,
                                 save_path=args.log_path or os.path.join(save_dir, "auto_log.log"),
                                 warmup=args.warmup, model_precision=args.precision)
    t0 = time.perf_counter()
    predict_images(paths, pred.run, pred.meta, save_dir, args.batch_size, args.save_vis, autolog,
                   save_maps=args.save_maps, report=args.report, title=f"{model_name} (Paddle Inference): predictions")
    if autolog:
        autolog.report()
    print(f"{len(paths)} image(s) in {time.perf_counter() - t0:.2f} s; results in {save_dir}")
    return 0
