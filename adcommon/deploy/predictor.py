"""Paddle Inference predictor over an export folder written by adcommon.deploy.export.

oneDNN is ON by default in Paddle 3's CPU config, so ``use_mkldnn=False`` disables it explicitly
(otherwise the TIPC "mkldnn False" rows would silently run with oneDNN).
"""
import dataclasses
import functools
import hashlib
import math
import os

import numpy as np
import yaml

from adbase import UserError
from adcommon.cli import cpu_threads as _cli_threads
from adcommon.outputs import MODEL_FILES


def load_meta(model_dir, check=True):
    """inference.yml of an export folder, checked (check_meta; ``check=False`` for graphs that are not an
    image model, such as a benchmark's scoring graph); a one-line error when the folder is not one or the
    file is not what export_model.py writes."""
    yml = os.path.join(model_dir, "inference.yml")
    if not os.path.isfile(yml):
        raise UserError(f"no inference.yml in {model_dir} (run export_model.py first)")
    try:
        with open(yml, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{yml} is not valid YAML ({' '.join(str(e).split())[:120]}): re-run export_model.py") \
            from None
    if check:
        check_meta(meta, yml)
        verify_files(model_dir, meta)
    return meta


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@functools.lru_cache(maxsize=16)
def _sha256(path, size, mtime_ns):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path):
    """SHA-256 of a file (hex), computed once per process for a given size and modification time."""
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def verify_files(model_dir, meta):
    """The files of an export against the SHA-256 digests export_model.py recorded in inference.yml: a
    swapped, damaged or foreign graph, parameters or ONNX file is refused with one line naming it, before
    it scores anything. An export from before the digests (no ``sha256``) is read as it is."""
    digests = meta.get("sha256")
    if digests is None:
        return
    if not isinstance(digests, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in digests.items()):
        raise UserError(f"{model_dir}/inference.yml: sha256 must map file names to digests; re-run export_model.py")
    for name, want in digests.items():
        path = os.path.join(model_dir, name)
        if os.path.basename(name) != name or not os.path.isfile(path):
            raise UserError(f"{model_dir}: {name} is missing (inference.yml records it); re-run export_model.py")
        if file_digest(path) != want.lower():
            raise UserError(f"{path} does not match the SHA-256 that inference.yml records for it: the file was "
                            "changed, damaged or comes from another export; re-run export_model.py")


def check_input_size(meta, shape, model_dir, what, fix):
    """A graph's input ``shape`` (N, C, H, W; None or <= 0 where it is dynamic) against the size inference.yml
    preprocesses to, before the first image: one line when a fixed side differs."""
    size = meta["preprocess"].get("crop_size") or meta["preprocess"]["image_size"]
    fixed = [int(d) for d in list(shape)[2:] if d is not None and not isinstance(d, str) and int(d) > 0]
    if fixed and any(d != int(size) for d in fixed):
        raise UserError(f"{model_dir}: inference.yml preprocesses to {size} px but {what} takes "
                        f"{'x'.join(map(str, fixed))} px: {fix}")


def check_meta(meta, where="inference.yml"):
    """What infer.py reads from inference.yml must have the types export_model.py writes; otherwise one
    line naming the field (an edited or foreign file would fail later with a traceback, or silently)."""
    def bad(field, what):
        raise UserError(f"{where}: {field} {what}; re-run export_model.py rather than editing it")
    if not isinstance(meta, dict):
        bad("the file", "is not a mapping")
    p, spec, outs = meta.get("preprocess"), meta.get("postprocess"), meta.get("outputs")
    if not isinstance(p, dict):
        bad("preprocess", "is missing")
    for k in ("image_size", "crop_size"):
        v = p.get(k)
        if (v is not None or k == "image_size") and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            bad(f"preprocess.{k}", f"must be a positive integer, got {v!r}")
    if p.get("crop_size") is not None and p["crop_size"] > p["image_size"]:
        bad("preprocess.crop_size", f"{p['crop_size']} is larger than image_size {p['image_size']}")
    for k in ("mean", "std"):
        v = p.get(k)
        if v is not None and not (isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v)):
            bad(f"preprocess.{k}", f"must be 3 numbers or null, got {v!r}")
    if not isinstance(outs, list) or not outs:
        bad("outputs", "must list the graph's outputs")
    if not isinstance(spec, dict):
        bad("postprocess", "is missing")
    idx = list(spec.get("map_outputs") or []) + ([spec["score_output"]] if spec.get("score_output") is not None else [])
    if not idx or not all(isinstance(i, int) and 0 <= i < len(outs) for i in idx):
        bad("postprocess", f"names outputs {idx} of a graph with {len(outs)}")
    for k in ("threshold", "map_threshold"):
        if meta.get(k) is not None and not _number(meta[k]):
            bad(k, f"must be a number or null, got {meta[k]!r}")
    vr = meta.get("vis_range")
    if vr is not None and not (isinstance(vr, list) and len(vr) == 2 and all(_number(x) for x in vr)):
        bad("vis_range", f"must be two numbers or null, got {vr!r}")


def set_onednn(config, on):
    """The one place that knows the mkldnn -> onednn rename (Paddle 3.3 has both names)."""
    if on:
        (getattr(config, "enable_onednn", None) or config.enable_mkldnn)()
    else:
        (getattr(config, "disable_onednn", None) or config.disable_mkldnn)()


def onednn_enabled(config):
    f = getattr(config, "onednn_enabled", None) or config.mkldnn_enabled
    return bool(f())


@dataclasses.dataclass
class GpuOptions:
    """Paddle Inference on a GPU (infer.py's --gpu_mem, --gpu_id and --use_tensorrt): the card, the memory
    it starts with (MB), and whether TensorRT runs the graph."""
    gpu_mem: int = 500
    gpu_id: int = 0
    use_tensorrt: bool = False


class Predictor:
    """Run an exported model: ``outputs = Predictor(dir).run(batch)`` with batch (N, 3, H, W) float32.

    Outputs come back as numpy arrays in the order recorded in inference.yml (``meta['outputs']``).
    ``gpu``: a GpuOptions to run on a GPU; None (the default) runs on the CPU, with ``cpu_threads`` threads
    and oneDNN as ``use_mkldnn`` says. ``check=False``: a graph that is not an image model (load_meta).
    """

    def __init__(self, model_dir, use_mkldnn=False, cpu_threads=None, precision="fp32", ir_optim=True, gpu=None,
                 check=True):
        import paddle
        from paddle import inference

        self.meta = load_meta(model_dir, check)
        model_file = self.meta.get("model_file") or next(
            (f for f in MODEL_FILES if os.path.isfile(os.path.join(model_dir, f))), MODEL_FILES[0])
        model_path = os.path.join(model_dir, model_file)
        params_path = os.path.join(model_dir, self.meta.get("params_file", "inference.pdiparams"))
        for p in (model_path, params_path):
            if not os.path.isfile(p):
                raise UserError(f"missing {p} (re-run export_model.py)")
        if model_file.endswith(".json") and int(paddle.__version__.split(".")[0]) == 2 \
                and paddle.__version__ != "0.0.0":
            raise UserError(f"{model_path} was exported by Paddle {self.meta.get('paddle_version')} (PIR .json); "
                            "Paddle 2.x reads only .pdmodel: re-run export_model.py under this Paddle")
        config = inference.Config(model_path, params_path)
        if gpu:
            if not paddle.device.is_compiled_with_cuda():
                raise UserError("--use_gpu True: this Paddle build has no CUDA support (use --use_gpu False)")
            config.enable_use_gpu(gpu.gpu_mem, gpu.gpu_id)
            if gpu.use_tensorrt:
                prec = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
                        "int8": inference.PrecisionType.Int8}[precision]
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                              precision_mode=prec, use_static=False, use_calib_mode=False)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(cpu_threads or _cli_threads()))
            set_onednn(config, bool(use_mkldnn))
            if use_mkldnn and precision == "int8":
                raise UserError("--precision int8 on CPU needs a quantised model; use fp32")
            if use_mkldnn and precision == "fp16":
                # oneDNN has no fp16 CPU path in Paddle Inference; bfloat16 is its reduced precision.
                config.enable_mkldnn_bfloat16()
        config.switch_ir_optim(bool(ir_optim))
        # enable_memory_optim() breaks create_predictor for PIR programs on 3.3 (memory_optimize_pass lookup).
        config.disable_glog_info()
        self.config = config
        try:
            self.predictor = inference.create_predictor(config)
        except Exception as e:  # noqa: BLE001 - Paddle raises several types for a damaged model
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"cannot load the exported model in {model_dir} ({first}): a truncated or foreign "
                            f"{model_file} / inference.pdiparams? re-run export_model.py") from None
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()
        if check:
            self._check_graph(model_dir)

    def _check_graph(self, model_dir):
        """inference.yml against the graph: the output count and the input size."""
        if len(self.output_names) != len(self.meta["outputs"]):
            raise UserError(f"{model_dir}: the graph has {len(self.output_names)} outputs, inference.yml lists "
                            f"{len(self.meta['outputs'])} ({', '.join(map(str, self.meta['outputs']))}): "
                            "the files come from different exports; re-run export_model.py")
        graph = ((self.meta.get("input") or {}).get("shape") or [])
        try:  # the graph's own input size, where the predictor knows it (else the shape recorded at export)
            own = self.predictor.get_input_handle(self.input_names[0]).shape()
            graph = own if any(d > 0 for d in list(own)[2:]) else graph
        except Exception:  # noqa: BLE001 - older builds
            pass
        check_input_size(self.meta, graph, model_dir, "the graph", "re-run export_model.py rather than editing it")

    def run(self, batch):
        """(N, 3, H, W) float32 -> list of numpy outputs (copies), in export order."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        h = self.predictor.get_input_handle(self.input_names[0])
        h.reshape(list(x.shape))
        h.copy_from_cpu(x)
        self.predictor.run()
        return [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names]
