"""The method lifecycle: what every method's scripts share around its own model, written once.

A method's engine module fills the method contract (adcommon.method.contract). This module runs, for every
method: ``load`` (a checkpoint into its model), ``evaluate`` (the test split through the model; the
only writer of metrics.json, scores.csv and the test pictures, adcommon.evaluate.evaluation), ``export``; and the
val.py / predict.py / export_model.py mains. The post-processing from raw outputs to maps and scores and
the thresholds are adcommon.evaluate.maps, the checkpoint files adcommon.checkpoint, the data shared_data.dataset.
"""
import dataclasses
import os
import sys
import time

from adbase import UserError, printable
from adcommon import checkpoint as C
from adcommon.evaluate.evaluation import run_batches, save_val_outputs, summary_line
from adcommon.evaluate.maps import postprocess
from adcommon.evaluate.regions import aspect_note, crop_note
from adcommon.method.contract import bind


def load(engine, path):
    """(model in eval mode, checkpoint) from a checkpoint of ``engine``'s method (adcommon.method.contract): the
    architecture comes from the checkpoint's model_args, every tensor must fit."""
    method = bind(engine)
    ck = C.load_checkpoint(path, method.name)
    if ck.get("kind") == "train_state":
        step = (ck.get("progress") or {})
        at = f"epoch {step['epoch']}" if "epoch" in step else f"step {step['step']}" if "step" in step else "unfinished"
        raise UserError(f"{path} is a training state ({at}), not a trained model: use model.pdparams, or finish "
                        "the run with train.py --resume")
    if ck.get("complete") is False:  # written during a training that has not (yet) ended
        p = ck.get("progress") or {}
        at = f" (kept at epoch {p['epoch']} of {p['epochs']})" if "epochs" in p else ""
        print(f"warning: {printable(path)} comes from a training that did not finish{at}: its numbers are not the "
              "full run's; finish it with train.py --resume", file=sys.stderr)
    ck = method.upgrade(ck, path)
    try:
        model = method.build(ck["model_args"])
    except KeyError as e:
        raise UserError(f"{path}: model_args lacks {e} (written by another version?)") from None
    C.set_state_strict(model, ck["state_dict"], f"{method.name} checkpoint {path}")
    model.model_args["weights"] = ck["model_args"].get("weights")
    model.eval()
    return model, ck


def training_summary(ck):
    """What metrics.json records of the training: the checkpoint's train/fit statistics without the
    per-epoch history and the held-out scores."""
    stats = dict(ck.get("train") or ck.get("fit") or {})
    return {k: v for k, v in stats.items() if k not in ("history", "holdout_scores")}


@dataclasses.dataclass
class Evaluation:
    """What ``evaluate`` runs: the test split of ``category`` under ``data_dir``, into ``out_dir``."""
    data_dir: str
    category: str
    out_dir: str
    batch_size: int = 32
    save_vis: bool = False   # the test pictures and roc.png
    report: bool = False     # report.html


def evaluate(engine, model, ck, run):
    """The test split through the model (``run``: an Evaluation) -> metrics.json, scores.csv (+ pictures,
    + report.html) in its out_dir. Says in a line when a centre crop leaves a border unscored, or images
    are stretched to the model's square. Returns the metrics dict."""
    method = bind(engine)
    from shared_data.dataset import MVTecAD, image_size_of
    meta = method.deploy_meta(ck)
    p = meta["preprocess"]
    ds = MVTecAD(run.data_dir, run.category, "test", p["image_size"], p.get("crop_size"), p.get("mean"),
                 p.get("std"))
    for note in (crop_note(p["image_size"], p.get("crop_size")),
                 aspect_note([image_size_of(s.path) or (0, 0) for s in ds.samples], p["image_size"])):
        if note:
            print(note, file=sys.stderr)
    raw, t_model = run_batches(method.runner(model, ck), ds, run.batch_size)
    t0 = time.perf_counter()
    maps, scores = postprocess(raw, meta["postprocess"])
    t_post = time.perf_counter() - t0
    extra = {"model_args": {k: v for k, v in ck["model_args"].items() if k != "postprocess"},
             "training": training_summary(ck)}
    extra.update(method.extra_metrics(ck, ds, raw, maps, scores))
    extra["timing"] = {"model_s": round(t_model, 3), "postprocess_s": round(t_post, 3), "images": len(ds)}
    return save_val_outputs(run.out_dir, method.name, ds, maps, scores, meta.get("threshold"), extra=extra,
                            save_vis=run.save_vis, vrange=meta.get("vis_range"),
                            map_threshold=meta.get("map_threshold"),
                            region_only_if_anomalous=meta.get("region_only_if_anomalous", False), report=run.report)


def export(engine, model, ck, out_dir, onnx=False):
    """The model's deployable graph + inference.yml (``onnx``: + inference.onnx) into out_dir
    (adcommon.deploy.export). Returns inference.yml's path."""
    method = bind(engine)
    from adcommon.deploy.export import export_inference
    meta = method.deploy_meta(ck)
    # whether the model comes from a finished training: infer.py warns about an unfinished one
    meta["training"] = {"complete": ck.get("complete") is not False, "progress": ck.get("progress")}
    p = meta["preprocess"]
    size = p.get("crop_size") or p["image_size"]
    layer = method.export_layer(model, ck)
    return export_inference(layer, out_dir, [None, 3, size, size], meta, onnx=onnx)


def summary(engine, category, res, path):
    """The line val.py (and train.py --val) prints for a category: summary_line with the engine's
    PIXEL_NOTE and the metrics.json keys it names in SUMMARY_EXTRA."""
    method = bind(engine)
    more = {k: res[k] for k in method.summary_extra if k in res}
    return summary_line(category, res, path, method.pixel_note, **more)


def load_for_run(engine, path, configure=None):
    """``load``, then the script's ``configure(ck)`` step (the run's choices into the checkpoint, see
    adcommon.method.contract), if it has one."""
    model, ck = load(engine, path)
    if configure is not None:
        configure(ck)
    return model, ck


def val_main(engine, args, configure=None):
    """The whole val.py: every category of --category, the checkpoint of each (or --model_path), results
    into --save_dir if the script has it, else the engine's ``result_dir`` (optional), else the category's
    folder; that folder and the checkpoint's are held while it runs (adcommon.outputs)."""
    method = bind(engine)
    from adcommon import cli
    from adcommon.outputs import output_folder
    cli.set_image_limit(args)
    cli.set_device(args.device)
    cats = cli.categories_arg(args.data_dir, args.category)
    if args.model_path and len(cats) > 1:
        raise UserError("--model_path names one checkpoint: give one --category")
    for cat in cats:
        out = os.path.join(args.output_dir, cat)
        ckpt = args.model_path or os.path.join(out, "model.pdparams")
        model, ck = load_for_run(method, ckpt, configure)
        dest = getattr(args, "save_dir", None) or method.result_dir(out, ck)
        same = os.path.realpath(dest) == os.path.realpath(out)
        with output_folder(dest, "category" if same else "val", "--output_dir" if same else "--save_dir",
                           inputs=[os.path.join(args.data_dir, cat)],
                           also_lock=[os.path.dirname(os.path.abspath(ckpt)), out]):
            res = evaluate(method, model, ck, Evaluation(args.data_dir, cat, dest, args.batch_size, args.save_vis,
                                                         getattr(args, "report", False)))
        print(summary(method, cat, res, os.path.join(dest, "metrics.json")))
    return 0


def _choices(ck):
    """The run's choices in ck["run"] (a dataclass, see adcommon.method.contract) as a flat dict of plain
    values, for the record of a results folder."""
    run = ck.get("run")
    if run is None or not dataclasses.is_dataclass(run):
        return {}
    return {k: v for k, v in dataclasses.asdict(run).items() if isinstance(v, (str, int, float, bool))}


def predict_main(engine, args, configure=None):
    """The whole predict.py: images (a file, a folder, a glob) through a checkpoint -> the results folder
    --save_dir (default <checkpoint's folder>/predict; adcommon.evaluate.results), held with the checkpoint's
    folder while it runs. ``--threshold`` and ``--map_threshold`` override the stored image and map
    thresholds. Returns the exit code (adcommon.deploy.scoring.exit_code)."""
    method = bind(engine)
    from adcommon import cli
    from adcommon.deploy.scoring import ScoringOptions, exit_code, predict_dir, predict_images, scored_line
    from adcommon.evaluate.results import previous_files
    from adcommon.files import find_images
    from adcommon.outputs import image_root, output_folder
    cli.set_image_limit(args)
    ckpt = C.checkpoint_path(args.model_path, args.output_dir, args.category)
    paths = find_images(args.img_path)
    root = image_root(args.img_path)
    save_dir = predict_dir(ckpt, args.save_dir)
    cli.set_device(args.device)
    model, ck = load_for_run(method, ckpt, configure)
    meta = method.deploy_meta(ck)
    for key in ("threshold", "map_threshold"):
        if getattr(args, key, None) is not None:
            meta[key] = getattr(args, key)
    st = os.stat(ckpt)
    settings = {"method": method.name, "model": os.path.realpath(ckpt), "model_fingerprint":
                f"{st.st_size}:{st.st_mtime_ns}", "threshold": meta.get("threshold"),
                "map_threshold": meta.get("map_threshold"), "save_vis": bool(args.save_vis or getattr(args, "report",
                                                                                                          False)),
                "save_maps": getattr(args, "save_maps", "none"), "img_root": os.path.realpath(root),
                "options": _choices(ck)}
    with output_folder(save_dir, "results", "--save_dir", inputs=[root], owned=previous_files(save_dir),
                       also_lock=[os.path.dirname(os.path.abspath(ckpt))]):
        options = ScoringOptions(
            batch_size=args.batch_size, workers=getattr(args, "workers", None), save_vis=args.save_vis,
            save_maps=getattr(args, "save_maps", "none"), report=getattr(args, "report", False),
            title=f"{method.name} {os.path.basename(os.path.dirname(os.path.abspath(ckpt)))}: predictions",
            strict=getattr(args, "strict", False), resume=getattr(args, "resume", False), settings=settings)
        summary = predict_images(paths, method.runner(model, ck), meta, save_dir, root, options)
    print(scored_line(summary, save_dir))
    return exit_code(summary)


PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def predict_picture_or_main(engine, args, configure=None):
    """predict.py: predict_main, or with a picture name as --save_dir (a seed's --save_path=predict.png),
    the panel of one image at that name: scored into a private folder, then the panel alone is put there."""
    picture = args.save_dir if (args.save_dir or "").lower().endswith(PICTURE_EXTENSIONS) else None
    if not picture:
        return predict_main(engine, args, configure)
    import shutil
    import tempfile

    from adbase import atomic_path, check_utf8
    from adcommon.evaluate.results import SUFFIX
    from adcommon.files import find_images
    from adcommon.outputs import image_root, result_name
    paths = find_images(args.img_path)
    if len(paths) != 1:
        raise UserError(f"--save_dir {picture} is a picture name: give one image, or a folder name")
    check_utf8(picture, "--save_dir")
    if os.path.exists(picture) and os.path.samefile(picture, paths[0]):
        raise UserError(f"--save_dir {picture} is the input image itself: the picture would replace it; "
                        "give another name")
    work = tempfile.mkdtemp(prefix="predict-")
    try:
        args.save_dir, args.save_vis = os.path.join(work, "results"), True
        code = predict_main(engine, args, configure)
        with atomic_path(picture) as tmp:
            shutil.copyfile(os.path.join(args.save_dir, result_name(paths[0], image_root(args.img_path)) +
                                         SUFFIX["picture"]), tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"picture {picture}")
    return code


def export_main(engine, args, configure=None):
    """The whole export_model.py: <checkpoint's folder>/inference (or --save_dir), held with the
    checkpoint's folder while it is written. ``configure``: the script's step that puts the run's choices
    into the checkpoint (KDAD's map follows the checkpoint's localization method), or None."""
    method = bind(engine)
    from adcommon.outputs import output_folder
    ckpt = C.checkpoint_path(args.model_path, args.output_dir, args.category)
    model, ck = load_for_run(method, ckpt, configure)
    if getattr(args, "threshold", None) is not None:
        ck["threshold"] = args.threshold
    out = args.save_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt)), "inference")
    with output_folder(out, "export", "--save_dir", also_lock=[os.path.dirname(os.path.abspath(ckpt))]):
        onnx = getattr(args, "onnx", False)
        yml = export(method, model, ck, out, onnx=onnx)
    label = getattr(ck.get("run"), "label", None)
    what = f"{label} " if label else ""
    print(f"exported {what}to {printable(out)} ({printable(yml)}{', inference.onnx' if onnx else ''})")
    return 0
