"""Scoring a file, a folder or a glob of images (or a watched folder): shared by every predict.py (dygraph,
through adcommon.method.pipeline.predict_main) and infer.py (an exported model), so both write the same files
from the same code. The images go through adcommon.deploy.stream's overlapped stages into an
adcommon.evaluate.results folder, batch by batch.

``meta`` is what export_model.py writes to inference.yml (and what predict.py builds from the
checkpoint): {"method", "preprocess": {image_size, crop_size, mean, std}, "postprocess": spec,
"threshold", "vis_range": [lo, hi], "outputs": [...]}
"""
import dataclasses
import json
import os
import sys
import time
from typing import Callable, Optional

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


@dataclasses.dataclass
class ScoringOptions:
    """How predict_images runs and what it writes beside each image's record: the batch size and threads,
    the panels, maps and report, what an unreadable image does, and whether an earlier run is continued."""
    batch_size: int = 1
    workers: Optional[int] = None        # threads per stage (adcommon.deploy.stream.run); 0: one after another
    save_vis: bool = True                # a panel (picture) per image
    save_maps: str = "none"              # each image's map at its own size: "none", "npy" or "png16"
    report: bool = False                 # report.html over the panels (which it turns on)
    title: str = "predictions"           # report.html's title
    strict: bool = False                 # the first unreadable image stops the run and nothing of it is kept
    resume: bool = False                 # keep what an earlier run with the same ``settings`` wrote
    settings: Optional[dict] = None      # what identifies the run for ``resume`` (the results folder's run.json)
    on_batch: Optional[Callable] = None  # on_batch(records, maps, scores) after each batch (maps at model size)


class _Scorer:
    """The stages of one predict_images run (adcommon.deploy.stream.run calls them): ``prepare`` decodes an
    image, ``network`` scores a batch, ``finish`` writes its files and records, ``emit`` adds them to the
    results folder and prints their lines."""

    def __init__(self, run_fn, meta, results, root, options, autolog=None, watch=None):
        self.run_fn, self.meta, self.results, self.root = run_fn, meta, results, root
        self.options, self.autolog, self.watch = options, autolog, watch
        self.save_vis = options.save_vis or options.report
        self.threshold = meta.get("threshold")
        self.timings = stream.Timings()
        self.vrange = meta.get("vis_range")   # None: the first batch sets it
        self.sizes = set()

    def prepare(self, q):
        """One image path -> a Prepared (or one saying why it could not be read)."""
        from adcommon.outputs import result_name
        t0 = time.perf_counter()
        try:
            rgb = dataset.load_image(q)
            x, small = model_input(rgb, self.meta["preprocess"])
            item = Prepared(q, result_name(q, self.root), x, (rgb.shape[1], rgb.shape[0]),
                            small if self.save_vis else None)
        except UserError as e:
            item = Prepared(q, None, error=str(e))
        item.seconds = time.perf_counter() - t0
        return item

    def network(self, items):
        """The readable images of a batch through ``run_fn`` -> (its outputs or None, seconds)."""
        ok = [it for it in items if it.error is None]
        if self.options.strict and len(ok) < len(items):
            raise UserError(next(it.error for it in items if it.error is not None))
        if not ok:
            return None, 0.0
        t0 = time.perf_counter()
        outs = self.run_fn(np.stack([it.x for it in ok]))
        seconds = time.perf_counter() - t0
        for it in ok:
            it.x = None
        if self.vrange is None and self.save_vis:   # no stored colour range: the first batch sets it, once
            maps = postprocess(outs, self.meta["postprocess"])[0]
            if maps is not None:
                meta = self.meta
                m_thr = meta.get("map_threshold") if meta.get("map_threshold") is not None else self.threshold
                self.vrange = vis_range(maps, m_thr)
        return outs, seconds

    def finish(self, items, net):
        """A scored batch -> (its records, maps, scores, seconds per stage), its files written."""
        outs, net_seconds = net
        spent = {"decode": sum(it.seconds for it in items), "network": net_seconds, "postprocess": 0.0, "write": 0.0}
        t0 = time.perf_counter()
        maps, scores = postprocess(outs, self.meta["postprocess"]) if outs is not None else (None, None)
        spent["postprocess"] += time.perf_counter() - t0
        records, k = [], 0
        for it in items:
            if it.error is not None:
                records.append({"path": it.path, "error": it.error, "score": None, "verdict": "unreadable",
                                "files": {}})
                continue
            if maps is None:
                records.append(_record(it.path, it.size, float(scores[k]), self.threshold))
            else:
                records.append(self.image_files(it, maps[k], float(scores[k]), spent))
            k += 1
        return records, maps, scores, spent

    def image_files(self, item, m, score, spent):
        """One image's files in the results folder (the mask and, with save_maps, the map at the image's own
        size; the panel with save_vis) and its predictions.jsonl record."""
        from adcommon.evaluate import regions as R
        meta, folder, save_maps = self.meta, self.results.folder, self.options.save_maps
        vrange = self.vrange or (0.0, 1.0)
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
        if self.save_vis:
            lo, hi = vrange
            rec["files"]["picture"] = item.name + SUFFIX["picture"]
            save_panel(os.path.join(folder, rec["files"]["picture"]), item.small, R.to_image(m, side, side, side, crop),
                       float(score), threshold, lo, hi, None, meta.get("map_threshold"),
                       bool(meta.get("region_only_if_anomalous")), clean=False)
        spent["postprocess"] += t1 - t0
        spent["write"] += time.perf_counter() - t1
        return rec

    def emit(self, done):
        """A finished batch, in input order: its seconds counted, its records added, one line each printed."""
        records, maps, scores, spent = done
        autolog = self.autolog
        for stage, seconds in spent.items():
            self.timings.add(stage, seconds)
        if autolog is not None and outs_scored(records) and hasattr(autolog.times, "add_batch"):
            autolog.times.add_batch({"preprocess_time": spent["decode"], "inference_time": spent["network"],
                                     "postprocess_time": spent["postprocess"]})
        self.results.add(records)
        for r in records:
            self.sizes.add((r.get("width"), r.get("height")))
            if r.get("error"):
                print(f"warning: {printable(r['error'])} (recorded as unreadable)", file=sys.stderr, flush=True)
            elif self.watch:
                print(json.dumps(r), flush=True)
            else:
                v = r["verdict"] if self.threshold is not None else "no threshold stored"
                print(f"{printable(r['path'])}\tscore {r['score']:.4f}\t{v}", flush=True)
        if self.options.on_batch is not None:
            self.options.on_batch(records, maps, scores)
        if autolog is not None:
            autolog.sample_memory() if hasattr(autolog, "sample_memory") else None


def predict_images(paths, run_fn, meta, save_dir, root=None, options=None, watch=None, autolog=None):
    """Score ``paths`` (or, with ``watch``, the images appearing in a folder) with
    ``run_fn(batch) -> list of outputs`` into the results folder ``save_dir`` (adcommon.evaluate.results; claimed
    and locked by the caller): each batch's lines and files are written as soon as it is scored. File
    names come from each path below ``root`` (adcommon.outputs.result_name). ``options``: a ScoringOptions
    (the defaults when None); ``autolog``: a benchmark logger (adcommon.deploy.autolog) given each batch's seconds.

    An unreadable image gets a record with its "error" and the verdict "unreadable", a warning line, and
    the rest are scored; with ``options.strict`` the first one stops the run and nothing of it is kept.
    ``options.resume``: keep what an earlier run with the same ``options.settings`` wrote and score only the
    other images. Returns the summary (summary.json): counts, and the seconds of each stage.
    """
    options = options or ScoringOptions()
    t_start = time.perf_counter()
    results = ResultsFolder(save_dir, options.settings or {}, options.resume,
                            log=lambda m: print(m, file=sys.stderr))
    root = root or os.path.commonpath([os.path.dirname(os.path.abspath(q)) for q in paths]) if paths else root
    scorer = _Scorer(run_fn, meta, results, root, options, autolog, watch)
    batch_size = options.batch_size
    todo = [q for q in paths if q not in results.done] if paths is not None else None
    chunks = ([todo[i:i + batch_size] for i in range(0, len(todo), batch_size)] if watch is None
              else watch.chunks(batch_size, results.done))
    try:
        stream.run(chunks, scorer, options.workers, idle=watch.poll if watch else None)
    except BaseException as e:
        if options.strict and isinstance(e, UserError):
            results.discard()
        else:
            results.close()
        raise
    return _summary(scorer, t_start)


def _summary(scorer, t_start):
    """The end of a predict_images run: report.html when asked for, summary.json (returned), and the notes
    on the centre crop and the stretched images on stderr."""
    from adcommon.cli import peak_rss_mb
    from adcommon.evaluate.regions import aspect_note, crop_note
    p, results = scorer.meta["preprocess"], scorer.results
    extra = {"seconds": round(time.perf_counter() - t_start, 3), "timings": scorer.timings.as_dict(),
             "peak_rss_mb": round(peak_rss_mb(), 1)}
    if scorer.options.report:
        from adcommon.evaluate.report import label_from_path, write_report
        recs = [dict(r, label=label_from_path(r["path"]), picture=r["files"].get("picture"))
                for r in results.records() if not r.get("error")]
        write_report(results.folder, recs, scorer.threshold, title=scorer.options.title,
                     note=crop_note(p["image_size"], p.get("crop_size")))
    summary = results.finish(extra)
    for note in (crop_note(p["image_size"], p.get("crop_size")),
                 aspect_note([s for s in scorer.sizes if s[0]], p["image_size"])):
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
