"""The method contract, written once: what a method's ``engine`` module provides to the shared mains
(adcommon.method.training: train.py; adcommon.method.pipeline: val.py, predict.py, export_model.py;
adcommon.deploy.infer: infer.py). docs/design.md and CONTRIBUTING.md point here.

An engine is a module (``<package>/engine.py`` of the method's folder, listed in methods.tsv). The
required parts are in ``Engine``; the optional ones have defaults in ``Method``, which the mains use, so
no main asks an engine what it has. ``check(engine)`` lists what an engine gets wrong
(tests/test_contract.py runs it on every method of the table).

A checkpoint ``ck`` is the dict of adcommon.checkpoint: ``model_args`` (the architecture, incl. the
post-processing spec under ``postprocess``, adcommon.evaluate.maps), ``state_dict``, ``threshold``,
``vis_range``, ``category``, and the method's own entries. A script whose flags change the graph or its
outputs (KDAD's localization method) puts that choice into the loaded checkpoint before anything reads
it: its ``prepare`` hook (adcommon.method.scripts) returns a ``configure(ck)`` step, which stores the
method's own typed object under ``ck["run"]``; the method's hooks read it from there, and nothing shared
looks inside it (a ``label`` attribute, if it has one, names the exported graph in export's line).
"""
import inspect
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, runtime_checkable

RunFn = Callable[[Any], List[Any]]   # images (B, 3, S, S) float32 numpy -> list of numpy outputs

# what deploy_meta must give (inference.yml; predict.py and val.py read the same dict)
META_KEYS = ("method", "preprocess", "postprocess", "outputs", "threshold", "vis_range", "model_args")


@runtime_checkable
class Engine(Protocol):
    """The required parts of an engine module."""

    METHOD: str
    """The method's name in checkpoints, metrics.json and output folders (methods.tsv's name)."""

    def build(self, model_args: Dict[str, Any]) -> Any:
        """The untrained Layer of the architecture in ``model_args`` (weights come from a checkpoint)."""

    def train_category(self, args: Any, category: str, out: str, log: Callable[[str], None],
                       main: bool) -> Optional[Dict[str, Any]]:
        """The training half: train (or fit) a model of ``args`` (train.py's flags) on the normal training
        images of ``category``, calibrate it on held-out normal images (threshold, picture range; never
        the test split), and, on the process that writes (``main``), write ``out``/model.pdparams through
        adcommon.checkpoint: model_args with the post-processing spec, the weights and buffers, threshold,
        vis_range and the training's statistics. A resumable method continues from its training state
        under --resume. Returns what args.yml should record besides the flags (values the method
        resolved, e.g. an automatic crop), or None. adcommon.method.training.train_main calls it inside the
        claimed, locked folder, with ``log`` writing train.log and the seed set."""


class Method:
    """An engine seen through the contract: its own parts where it has them, else the defaults below.

    Optional parts of an engine, with their defaults:

    OUTPUTS                       names of the exported graph's outputs (needed by the default deploy_meta)
    runner(model, ck)             fn(images) -> list of numpy outputs, exactly what the exported graph
                                  returns, eval mode. Default: the model's forward, every output
    deploy_meta(ck)               what a deployment needs besides the graph: META_KEYS, preprocess with
                                  image_size, crop_size, mean, std (+ map_threshold,
                                  region_only_if_anomalous for maps in
                                  other units than the score). Default: from model_args and OUTPUTS
    export_layer(model, ck)       the Layer to trace. Default: the model
    extra_metrics(ck, ds, raw, maps, scores)   method-specific metrics.json entries. Default: none
    upgrade(ck, path)             read checkpoints of earlier versions. Default: as they are
    result_dir(out, ck)           val.py's folder. Default: the category's folder ``out``
    TITLE, SUMMARY                the method's name and a sentence on what it does, for people (notebooks,
                                  docs). Default: METHOD in capitals, ""
    PIXEL_NOTE                    " (ours)" where the papers do not localise. Default: ""
    SUMMARY_EXTRA                 metrics.json keys added to val.py's summary line. Default: none

    and for training (adcommon.method.training.train_main):
    PROGRESS                      "epoch" or "step": what a resumable training counts (its flag is
                                  --epochs / --steps, its state last.pdparams). Default: None, a fit
    prepare_args(args)            check and complete train.py's flags before any work. Default: nothing
    val_settings(args)            (batch size, configure step or None) of train.py --val. Default:
                                  (--batch_size or 32, None)
    """

    def __init__(self, engine):
        self.engine = engine
        self.name = engine.METHOD
        self.title = getattr(engine, "TITLE", engine.METHOD.upper())
        self.summary = getattr(engine, "SUMMARY", "")
        self.pixel_note = getattr(engine, "PIXEL_NOTE", "")
        self.summary_extra = tuple(getattr(engine, "SUMMARY_EXTRA", ()))
        self.progress = getattr(engine, "PROGRESS", None)

    def __repr__(self):
        return f"Method({self.name})"

    def build(self, model_args):
        return self.engine.build(model_args)

    def runner(self, model, ck) -> RunFn:
        if hasattr(self.engine, "runner"):
            return self.engine.runner(model, ck)
        return forward_runner(model)

    def deploy_meta(self, ck):
        if hasattr(self.engine, "deploy_meta"):
            return self.engine.deploy_meta(ck)
        return standard_meta(self.name, ck, self.engine.OUTPUTS)

    def export_layer(self, model, ck):
        f = getattr(self.engine, "export_layer", None)
        return f(model, ck) if f else model

    def extra_metrics(self, ck, ds, raw, maps, scores):
        f = getattr(self.engine, "extra_metrics", None)
        return f(ck, ds, raw, maps, scores) if f else {}

    def upgrade(self, ck, path):
        f = getattr(self.engine, "upgrade", None)
        return f(ck, path) if f else ck

    def result_dir(self, out, ck):
        f = getattr(self.engine, "result_dir", None)
        return f(out, ck) if f else out

    def train_category(self, args, category, out, log, main=True):
        return self.engine.train_category(args, category, out, log, main)

    def prepare_args(self, args):
        f = getattr(self.engine, "prepare_args", None)
        if f:
            f(args)

    def val_settings(self, args):
        f = getattr(self.engine, "val_settings", None)
        return f(args) if f else (getattr(args, "batch_size", 32), None)


def bind(engine):
    """A Method from an engine module (a Method is returned as it is)."""
    return engine if isinstance(engine, Method) else Method(engine)


def forward_runner(model) -> RunFn:
    """The default runner: the model's forward in eval mode without gradients, each output as numpy."""
    import paddle
    model.eval()

    @paddle.no_grad()
    def run(x):
        out = model(paddle.to_tensor(x))
        return [t.numpy() for t in (out if isinstance(out, (list, tuple)) else [out])]
    return run


def standard_meta(name, ck, outputs: Sequence[str]):
    """The default deploy_meta: preprocessing from model_args (a centre crop where it has crop_size),
    its stored post-processing spec, the outputs' names, the checkpoint's threshold and picture range."""
    a = ck["model_args"]
    return {"method": name, "category": ck.get("category"),
            "preprocess": {"image_size": a["image_size"], "crop_size": a.get("crop_size"),
                           "mean": a["mean"], "std": a["std"]},
            "postprocess": a["postprocess"], "outputs": list(outputs),
            "threshold": ck.get("threshold"), "vis_range": ck.get("vis_range"),
            "model_args": {k: v for k, v in a.items() if k != "postprocess"}}


_OPTIONAL_FUNCTIONS = {"runner": 2, "deploy_meta": 1, "export_layer": 2, "extra_metrics": 5, "upgrade": 2,
                       "result_dir": 2, "prepare_args": 1, "val_settings": 1}


def _takes(fn, n):
    """Whether ``fn`` can be called with n positional arguments."""
    try:
        inspect.signature(fn).bind(*range(n))
        return True
    except TypeError:
        return False


def check(engine) -> List[str]:
    """What ``engine`` gets wrong about the contract, one sentence each (empty: it obeys)."""
    where = getattr(engine, "__name__", repr(engine))
    problems = []
    if not isinstance(getattr(engine, "METHOD", None), str) or not engine.METHOD:
        problems.append(f"{where}: METHOD must be the method's name (a string)")
    build = getattr(engine, "build", None)
    if not callable(build) or not _takes(build, 1):
        problems.append(f"{where}: build(model_args) is required")
    train = getattr(engine, "train_category", None)
    if not callable(train) or not _takes(train, 5):
        problems.append(f"{where}: train_category(args, category, out, log, main) is required")
    if getattr(engine, "PROGRESS", None) not in (None, "epoch", "step"):
        problems.append(f"{where}: PROGRESS must be 'epoch', 'step' or None")
    for name, n in _OPTIONAL_FUNCTIONS.items():
        f = getattr(engine, name, None)
        if f is not None and (not callable(f) or not _takes(f, n)):
            problems.append(f"{where}: {name} must take {n} arguments (adcommon.method.contract.Method)")
    if getattr(engine, "deploy_meta", None) is None:
        outs = getattr(engine, "OUTPUTS", None)
        if not outs or not all(isinstance(o, str) for o in outs):
            problems.append(f"{where}: OUTPUTS (the graph's output names) is needed without a deploy_meta")
    for name in ("PIXEL_NOTE", "TITLE", "SUMMARY"):
        if not isinstance(getattr(engine, name, ""), str):
            problems.append(f"{where}: {name} must be a string")
    if not all(isinstance(k, str) for k in getattr(engine, "SUMMARY_EXTRA", ())):
        problems.append(f"{where}: SUMMARY_EXTRA must be metrics.json keys (strings)")
    return problems


def check_meta(meta: Dict[str, Any], n_outputs: Optional[int] = None) -> List[str]:
    """What a deploy_meta dict gets wrong: a key it must give (META_KEYS), inference.yml's own checks
    (adcommon.deploy.predictor.check_meta, what infer.py applies), and, given the runner's number of outputs,
    whether its output names fit them."""
    from adbase import UserError
    from adcommon.deploy.predictor import check_meta as check_yml
    problems = [f"deploy_meta lacks {k}" for k in META_KEYS if k not in meta]
    try:
        check_yml(meta, "deploy_meta")
    except UserError as e:
        problems.append(str(e))
    if n_outputs is not None and len(meta.get("outputs") or []) != n_outputs:
        problems.append(f"deploy_meta names {len(meta.get('outputs') or [])} outputs, the runner returns {n_outputs}")
    return problems
