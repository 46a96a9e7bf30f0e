"""infer.py: an exported model on a file, a folder, a glob or a watched folder of images, in every paper
folder (the graph's outputs and post-processing come from inference.yml).

    python infer.py --model_dir output/widget/inference --img_path /line/2026-11-30 --save_dir /line/results
    python infer.py --model_dir ... --img_path /line/camera1 --save_dir /line/results --watch True

Exit codes: 0 every image scored; 3 every readable image scored and at least one could not be read
(its record says why); 2 a mistake (one error line); 130 / 143 stopped by Ctrl-C / SIGTERM (what was
written stays, and --resume continues it); 1 a bug.
"""
import os
import sys
import time

from adbase import ArgumentParser, UserError, printable
from adcommon.cli import add_infer_args, add_result_args, set_image_limit, str2bool
from adcommon.files import find_images, iter_images

__all__ = ["build_infer_parser", "infer_main", "HotFolder", "unfinished_warning", "model_dir_of", "open_model"]

RUNTIMES = {"paddle": "Paddle Inference", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def build_infer_parser(description):
    p = ArgumentParser(description=description)
    p.add_argument("--model_dir", default=None, help="export folder (inference.yml + model + params)")
    p.add_argument("--model_file", default=None, help="alias: path of inference.json|pdmodel; its folder is used")
    p.add_argument("--params_file", default=None, help="accepted for TIPC compatibility; taken from --model_dir")
    p.add_argument("--img_path", "--input_file", "--image_path", dest="img_path", default=None,
                   help="an image, a folder (recursive) or a glob; with --watch, the folder to watch")
    p.add_argument("--save_dir", "--save_path", dest="save_dir", default=None,
                   help="where scores.csv and pictures go (default: <model_dir>/../infer)")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", type=str2bool, default=True)
    add_result_args(p)
    p.add_argument("--watch", type=str2bool, default=False,
                   help="keep scoring the images that appear in --img_path (a camera's folder), one JSON line "
                        "each, until Ctrl-C or SIGTERM; a file is taken once its size has held still for --poll s")
    p.add_argument("--poll", type=float, default=0.5, help="--watch: seconds between looks at the folder")
    p.add_argument("--warmup", type=int, default=0, help="batches left out of the benchmark means")
    p.add_argument("--log_path", default=None, help="auto_log file (default: <save_dir>/auto_log.log)")
    add_infer_args(p)
    return p


class HotFolder:
    """The images that appear in ``folder`` (searched recursively, hidden files and masks skipped): each is
    taken once its size and modification time are the same at two looks ``poll`` seconds apart, so a file
    a camera or a copy is still writing is left until it is complete (a file renamed into place is
    complete when it appears). A file that changes after it was taken (a writer that stalled longer than
    a poll, a camera that reuses its names) is taken again, and its new line follows the earlier one."""

    def __init__(self, folder, poll=0.5):
        if not os.path.isdir(folder):
            raise UserError(f"--watch needs a folder for --img_path, got {printable(folder)}")
        self.folder, self.poll = folder, max(0.05, float(poll))
        self.warned = set()   # special files and unreadable folders: one warning each, not one a poll

    def chunks(self, batch_size, done):
        """Endless: lists of up to ``batch_size`` new images, and an empty list when none is ready yet."""
        taken = dict.fromkeys(done)   # path -> (size, mtime) when taken; None: taken by an earlier run
        last = {}                     # path -> (size, mtime) at the previous look, for files not taken
        while True:
            ready = []
            for q in iter_images(self.folder, warned=self.warned):
                try:
                    st = os.stat(q)
                except OSError:   # gone again
                    last.pop(q, None)
                    continue
                key = (st.st_size, st.st_mtime_ns)
                if q in taken:
                    if taken[q] is None:
                        taken[q] = key
                    if taken[q] == key:
                        continue
                    del taken[q]   # rewritten since it was taken: a new image under the same name
                if last.get(q) == key and st.st_size > 0:
                    ready.append(q)
                    taken[q] = key
                    last.pop(q)
                else:
                    last[q] = key
            for i in range(0, len(ready), batch_size):
                yield ready[i:i + batch_size]
            yield []


def _fingerprint(model_dir, meta):
    """What identifies an exported model for --resume: its inference.yml and the size and time of its
    parameters (a re-export changes them)."""
    import hashlib
    h = hashlib.sha1()
    with open(os.path.join(model_dir, "inference.yml"), "rb") as f:
        h.update(f.read())
    st = os.stat(os.path.join(model_dir, meta.get("params_file", "inference.pdiparams")))
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def unfinished_warning(meta, where):
    """The warning for a model whose training had not finished when it was saved or exported."""
    t = meta.get("training") or {}
    if t.get("complete") is False:
        p = t.get("progress") or {}
        at = "".join(f" ({k} {p[k]} of {p[k + 's']})" for k in ("epoch", "step") if k in p and k + "s" in p)
        print(f"warning: {printable(where)} holds a model whose training had not finished{at}: its numbers are "
              "not the full run's", file=sys.stderr)


def model_dir_of(args):
    """--model_dir, or the folder of --model_file (the TIPC alias)."""
    model_dir = args.model_dir or (os.path.dirname(args.model_file) if args.model_file else None)
    if not model_dir:
        raise UserError("--model_dir is required (the folder written by export_model.py)")
    return model_dir


def checked_meta(model_dir, model_name):
    """inference.yml of ``model_dir``, checked (adcommon.deploy.predictor.load_meta) and exported by ``model_name``."""
    from adcommon.deploy.predictor import load_meta
    meta = load_meta(model_dir)
    exported_by = str(meta.get("method", "")).lower()
    if exported_by and exported_by != model_name.lower():
        raise UserError(f"{model_dir} holds a {exported_by} model, not {model_name}: use that method's infer.py "
                        "(the graph's outputs and post-processing are the method's own)")
    return meta


def open_model(args, model_name, model_dir, cpu_threads=None):
    """The runtime of ``args.backend`` over the export in ``model_dir``, checked (its inference.yml, its
    files' digests, that ``model_name`` exported it), for infer.py and serve.py alike."""
    from adcommon.deploy.backends import make_runner
    from adcommon.deploy.predictor import GpuOptions
    meta = checked_meta(model_dir, model_name)
    use_mkldnn = args.use_mkldnn
    if use_mkldnn and not args.use_gpu and args.backend == "paddle" and meta.get("graph_has_gradients"):
        # oneDNN's conv/pool backward kernels refuse inference mode (Paddle 3.3): a graph holding
        # paddle.grad runs with oneDNN off. Said once, not an error.
        print("note: this exported graph computes input gradients, which oneDNN cannot run; "
              "running with oneDNN off", file=sys.stderr)
        use_mkldnn = False
    gpu = GpuOptions(gpu_mem=args.gpu_mem, gpu_id=args.gpu_id, use_tensorrt=args.use_tensorrt) if args.use_gpu else None
    pred = make_runner(model_dir, args.backend, use_mkldnn=use_mkldnn, cpu_threads=cpu_threads or args.cpu_threads,
                       precision=args.precision, ir_optim=args.ir_optim, gpu=gpu)
    unfinished_warning(pred.meta, model_dir)
    return pred


def infer_main(argv, model_name):
    """The whole infer.py: an exported model over images into a results folder, auto_log benchmark."""
    from adcommon.deploy.autolog import get_autologger
    from adcommon.deploy.scoring import ScoringOptions, exit_code, predict_images, scored_line
    from adcommon.evaluate.results import previous_files
    from adcommon.outputs import image_root, output_folder

    args = build_infer_parser(f"{model_name}: an exported model on images (Paddle Inference, ONNX Runtime or "
                              "OpenVINO)").parse_args(argv)
    set_image_limit(args)
    model_dir = model_dir_of(args)
    checked_meta(model_dir, model_name)
    watch = HotFolder(args.img_path, args.poll) if args.watch else None
    paths = None if watch else find_images(args.img_path, strict=args.strict)
    pred = open_model(args, model_name, model_dir)
    save_dir = args.save_dir or os.path.join(os.path.dirname(os.path.abspath(model_dir)), "infer")
    root = image_root(args.img_path)
    settings = {"method": model_name.lower(), "model": os.path.realpath(model_dir),
                "model_fingerprint": _fingerprint(model_dir, pred.meta), "threshold": pred.meta.get("threshold"),
                "map_threshold": pred.meta.get("map_threshold"), "save_vis": bool(args.save_vis or args.report),
                "save_maps": args.save_maps, "img_root": os.path.realpath(root)}
    with output_folder(save_dir, "results", "--save_dir", inputs=[root], owned=previous_files(save_dir)):
        autolog = None
        if args.benchmark:
            autolog = get_autologger(model_name, args.batch_size, inference_config=pred.config,
                                     save_path=args.log_path or os.path.join(save_dir, "auto_log.log"),
                                     warmup=args.warmup, model_precision=args.precision)
        t0 = time.perf_counter()
        options = ScoringOptions(batch_size=args.batch_size, workers=args.workers, save_vis=args.save_vis,
                                 save_maps=args.save_maps, report=args.report,
                                 title=f"{model_name} ({RUNTIMES[args.backend]}): predictions", strict=args.strict,
                                 resume=args.resume, settings=settings)
        summary = predict_images(paths, pred.run, pred.meta, save_dir, root, options, watch, autolog)
        if autolog:
            autolog.report()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    print(scored_line(summary, save_dir))
    return exit_code(summary)

