"""Scoring a file, a folder or a glob of images (or a watched folder): shared by every predict.py (dygraph,
through adcommon.method.pipeline.predict_main) and infer.py (an exported model), so both write the same files
from the same code. The images go through adcommon.deploy.stream's overlapped stages into an
adcommon.evaluate.results folder, batch by batch.

``meta`` is what export_model.py writes to inference.yml (and what predict.py builds from the
checkpoint): {"method", "preprocess": {image_size, crop_size, mean, std}, "postprocess": spec,
"threshold", "vis_range": [lo, hi], "outputs": [...]}
"""
import json
import os
import sys
import time

import numpy as np

from adbase import UserError, printable
from adcommon.deploy import stream
from adcommon.evaluate.maps import postprocess, vis_range
from adcommon.evaluate.results import SUFFIX, ResultsFolder
from adcommon.evaluate.visualize import save_panel
from shared_data import dataset

EXIT_UNREADABLE = 3   # predict.py / infer.py: every readable image scored, at least one could not be read


def predict_dir(ckpt, save_dir=None):
    """predict.py's output folder: --save_dir, else <the checkpoint's folder>/predict."""
    return save_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt)), "predict")


class Prepared:
    """One image after the decode stage: the network's input ``x``, its own ``size`` (width, height), the
    resized picture for its panel (``small``), or the one-line reason it could not be read (``error``)."""
    __slots__ = ("path", "name", "x", "size", "small", "error", "seconds")

    def __init__(self, path, name, x=None, size=None, small=None, error=None):
        self.path, self.name, self.x, self.size, self.small, self.error = path, name, x, size, small, error
        self.seconds = 0.0


def _record(q, size, score, threshold):
    """The predictions.jsonl fields every scored image has: path, size, score, threshold, verdict."""
    return {"path": q, "width": int(size[0]), "height": int(size[1]), "score": round(float(score), 6),
            "threshold": threshold,
            "verdict": (("anomalous" if score >= threshold else "normal") if threshold is not None else None),
            "regions": [], "files": {}}


def model_input(rgb, preprocess):
    """One decoded image -> (the network's input (3, H, W) float32, the image resized to the model's square
    for its panel): the resize, centre crop and normalisation of inference.yml's ``preprocess``, the same
    for predict.py, infer.py and serve.py."""
    side, crop = preprocess["image_size"], preprocess.get("crop_size")
    small = dataset.resize_image(rgb, side)   # the whole resized image: the panel shows what is cropped away
    scored = small if not crop or crop >= side else dataset.resize_image(rgb, side, crop)
    x = dataset.to_tensor(scored, preprocess.get("mean"),
                    preprocess.get("std"))
    return x, small


def region_threshold(meta, score):
    """The map level whose connected areas are an image's regions and its mask (None: no regions)."""
    threshold = meta.get("threshold")
    if meta.get("region_only_if_anomalous") and threshold is not None and score < threshold:
        return None   # maps scaled per image always have a hot spot: regions only for anomalous images
    return meta.get("map_threshold") if meta.get("map_threshold") is not None else threshold


def image_record(path, size, m, score, meta):
    """One scored image's record (path, size, score, threshold, verdict, the inspected box and its regions
    at the image's own size), its map at that size (NaN outside the inspected box) and the map level of
    its regions and mask: the same for predict.py, infer.py and serve.py. ``m``: the post-processed map
    at model resolution."""
    from adcommon.evaluate import regions as R
    p = meta["preprocess"]
    side, crop = p["image_size"], p.get("crop_size")
    W, H = size
    full = R.to_image(m, W, H, side, crop)
    thr = region_threshold(meta, score)
    rec = dict(_record(path, size, score, meta.get("threshold")), inspected=list(R.inspected_box(W, H, side, crop)),
               regions=R.find_regions(full, thr))
    return rec, full, thr


def _image_results(item, m, score, meta, folder, save_vis, save_maps, vrange, spent):
    """One image's files in ``folder`` (the mask and, with ``save_maps``, the map at the image's own size;
    the panel with ``save_vis``) and its predictions.jsonl record."""
    from adcommon.evaluate import regions as R
    p, threshold = meta["preprocess"], meta.get("threshold")
    side, crop = p["image_size"], p.get("crop_size")
    t0 = time.perf_counter()
    rec, full, region_thr = image_record(item.path, item.size, m, score, meta)
    t1 = time.perf_counter()
    if threshold is not None:
        rec["files"]["mask"] = item.name + SUFFIX["mask"]
        R.save_mask(os.path.join(folder, rec["files"]["mask"]), full, region_thr, clean=False)
    if save_maps != "none":
        rec["files"]["map"] = item.name + SUFFIX[save_maps]
        scale = R.save_map(os.path.join(folder, rec["files"]["map"]), full, save_maps, vrange, clean=False)
        if scale:
            rec["map_scale"] = scale
    if save_vis:
        lo, hi = vrange
        rec["files"]["picture"] = item.name + SUFFIX["picture"]
        save_panel(os.path.join(folder, rec["files"]["picture"]), item.small, R.to_image(m, side, side, side, crop),
                   float(score), threshold, lo, hi, None, meta.get("map_threshold"),
                   bool(meta.get("region_only_if_anomalous")), clean=False)
    spent["postprocess"] += t1 - t0
    spent["write"] += time.perf_counter() - t1
    return rec


def predict_images(paths, run_fn, meta, save_dir, root=None, batch_size=1, save_vis=True, autolog=None,
                   save_maps="none", report=False, title="predictions", strict=False, resume=False, workers=None,
                   settings=None, on_batch=None, watch=None, log=print):
    """Score ``paths`` (or, with ``watch``, the images appearing in a folder) with
    ``run_fn(batch) -> list of outputs`` into the results folder ``save_dir`` (adcommon.evaluate.results; claimed
    and locked by the caller): each batch's lines and files are written as soon as it is scored. File
    names come from each path below ``root`` (adcommon.outputs.result_name).

    An unreadable image gets a record with its "error" and the verdict "unreadable", a warning line, and
    the rest are scored; with ``strict`` the first one stops the run and nothing of it is kept.
    ``resume``: keep what an earlier run with the same ``settings`` wrote and score only the other images.
    ``on_batch(records, maps, scores)``: for callers that want the numbers (maps at model resolution).
    Returns the summary (summary.json): counts, and the seconds of each stage.
    """
    from adcommon.outputs import result_name
    p, spec, threshold = meta["preprocess"], meta["postprocess"], meta.get("threshold")
    save_vis = save_vis or report
    timings = stream.Timings()
    t_start = time.perf_counter()
    results = ResultsFolder(save_dir, settings or {}, resume, log=lambda m: print(m, file=sys.stderr))
    root = root or os.path.commonpath([os.path.dirname(os.path.abspath(q)) for q in paths]) if paths else root
    state = {"vrange": meta.get("vis_range"), "sizes": set()}

    def prepare(q):
        t0 = time.perf_counter()
        try:
            rgb = dataset.load_image(q)
            x, small = model_input(rgb, p)
            item = Prepared(q, result_name(q, root), x, (rgb.shape[1], rgb.shape[0]), small if save_vis else None)
        except UserError as e:
            item = Prepared(q, None, error=str(e))
        item.seconds = time.perf_counter() - t0
        return item

    def network(items):
        ok = [it for it in items if it.error is None]
        if strict and len(ok) < len(items):
            raise UserError(next(it.error for it in items if it.error is not None))
        if not ok:
            return None, 0.0
        t0 = time.perf_counter()
        outs = run_fn(np.stack([it.x for it in ok]))
        seconds = time.perf_counter() - t0
        for it in ok:
            it.x = None
        if state["vrange"] is None and save_vis:   # no stored colour range: the first batch sets it, once
            maps = postprocess(outs, spec)[0]
            if maps is not None:
                m_thr = meta.get("map_threshold") if meta.get("map_threshold") is not None else threshold
                state["vrange"] = vis_range(maps, m_thr)
        return outs, seconds

    def finish(items, net):
        outs, net_seconds = net
        spent = {"decode": sum(it.seconds for it in items), "network": net_seconds, "postprocess": 0.0, "write": 0.0}
        t0 = time.perf_counter()
        maps, scores = postprocess(outs, spec) if outs is not None else (None, None)
        spent["postprocess"] += time.perf_counter() - t0
        records, k = [], 0
        for it in items:
            if it.error is not None:
                records.append({"path": it.path, "error": it.error, "score": None, "verdict": "unreadable",
                                "files": {}})
                continue
            if maps is None:
                records.append(_record(it.path, it.size, float(scores[k]), threshold))
            else:
                records.append(_image_results(it, maps[k], float(scores[k]), meta, save_dir, save_vis, save_maps,
                                              state["vrange"] or (0.0, 1.0), spent))
            k += 1
        return records, maps, scores, spent

    def emit(done):
        records, maps, scores, spent = done
        for stage, seconds in spent.items():
            timings.add(stage, seconds)
        if autolog is not None and outs_scored(records) and hasattr(autolog.times, "add_batch"):
            autolog.times.add_batch({"preprocess_time": spent["decode"], "inference_time": spent["network"],
                                     "postprocess_time": spent["postprocess"]})
        results.add(records)
        for r in records:
            state["sizes"].add((r.get("width"), r.get("height")))
            if r.get("error"):
                print(f"warning: {printable(r['error'])} (recorded as unreadable)", file=sys.stderr, flush=True)
            elif watch:
                print(json.dumps(r), flush=True)
            else:
                v = r["verdict"] if threshold is not None else "no threshold stored"
                print(f"{printable(r['path'])}\tscore {r['score']:.4f}\t{v}", flush=True)
        if on_batch is not None:
            on_batch(records, maps, scores)
        if autolog is not None:
            autolog.sample_memory() if hasattr(autolog, "sample_memory") else None

    todo = [q for q in paths if q not in results.done] if paths is not None else None
    chunks = ([todo[i:i + batch_size] for i in range(0, len(todo), batch_size)] if watch is None
              else watch.chunks(batch_size, results.done))
    try:
        stream.run(chunks, prepare, network, finish, emit, workers, idle=watch.poll if watch else None)
    except BaseException as e:
        if strict and isinstance(e, UserError):
            results.discard()
        else:
            results.close()
        raise
    from adcommon.cli import peak_rss_mb
    extra = {"seconds": round(time.perf_counter() - t_start, 3), "timings": timings.as_dict(),
             "peak_rss_mb": round(peak_rss_mb(), 1)}
    if report:
        from adcommon.evaluate.regions import crop_note
        from adcommon.evaluate.report import label_from_path, write_report
        recs = [dict(r, label=label_from_path(r["path"]), picture=r["files"].get("picture"))
                for r in results.records() if not r.get("error")]
        write_report(save_dir, recs, threshold, title=title, note=crop_note(p["image_size"], p.get("crop_size")))
    summary = results.finish(extra)
    from adcommon.evaluate.regions import aspect_note, crop_note
    for note in (crop_note(p["image_size"], p.get("crop_size")),
                 aspect_note([s for s in state["sizes"] if s[0]], p["image_size"])):
        if note:
            print(note, file=sys.stderr)
    return summary


def outs_scored(records):
    """Whether a batch ran through the network (not only unreadable images)."""
    return any(not r.get("error") for r in records)


def scored_line(summary, save_dir):
    """The last line of predict.py / infer.py: how many images, how many unreadable, where the files are."""
    bad = summary.get("unreadable", 0)
    return (f"{summary['images']} image(s), {summary['anomalous']} anomalous"
            f"{f', {bad} unreadable' if bad else ''} in {summary['seconds']:.2f} s; results in {printable(save_dir)}")


def exit_code(summary):
    """0, or EXIT_UNREADABLE when some image could not be read (the others were scored)."""
    return EXIT_UNREADABLE if summary.get("unreadable") else 0
