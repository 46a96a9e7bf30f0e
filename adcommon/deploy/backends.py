"""Runtimes for an exported model: Paddle Inference (``paddle``, the default), ONNX Runtime and OpenVINO.

``export_model.py --onnx True`` converts the exported Paddle graph with paddle2onnx into
``inference.onnx`` beside it (opset 17), checks that ONNX Runtime gives the Paddle graph's outputs on a
random batch, and records both in ``inference.yml``; the same inference.yml then serves every backend.
OpenVINO reads the ONNX file (it cannot read Paddle 3's inference.json). Each runner has the
Predictor's interface: ``run(batch) -> list of numpy outputs`` in inference.yml's order, ``meta``.

    pip install -e .[onnx]     # paddle2onnx, onnx, onnxruntime, openvino
"""
import contextlib
import os
import sys
import tempfile

import numpy as np

from adbase import UserError
from adcommon.deploy.predictor import check_input_size, load_meta

BACKENDS = ("paddle", "onnxruntime", "openvino")
ONNX_FILE = "inference.onnx"
OPSET = 17
INSTALL = "pip install -e .[onnx] (or: pip install paddle2onnx onnxruntime openvino)"


def _need(module, what):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"{what} needs the {module} package, which is not installed: {INSTALL}") from None


@contextlib.contextmanager
def _quiet():
    """Silence the converter's C++ and Python chatter (it prints to the file descriptors directly); what
    it said is shown if the block fails."""
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            if tail:
                print("\n".join(tail), file=sys.stderr)
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def to_onnx(folder, model_file, params_file, meta):
    """Convert the Paddle graph in ``folder`` (with its inference.yml) to ``folder/inference.onnx`` and
    check it against Paddle Inference (oneDNN off) on a random batch of 2: one line if any output differs
    by more than 1e-4 of its scale. Returns what inference.yml records: {"file", "opset", "paddle2onnx",
    "max_rel_diff"}."""
    if meta.get("graph_has_gradients"):
        raise UserError("--onnx True: this graph computes input gradients (paddle.grad), which ONNX cannot "
                        "express; export the discrepancy map (--map discrepancy) for ONNX Runtime and OpenVINO")
    p2o = _need("paddle2onnx", "--onnx True")
    out = os.path.join(folder, ONNX_FILE)
    try:
        with _quiet():
            p2o.export(os.path.join(folder, model_file), os.path.join(folder, params_file), out, opset_version=OPSET,
                       enable_onnx_checker=True, verbose=False)
    except Exception as e:  # noqa: BLE001 - the converter raises many types for an op it cannot map
        raise UserError(f"paddle2onnx could not convert the graph: {str(e).splitlines()[0][:200] if str(e) else e}"
                        ) from None
    if not os.path.isfile(out):
        raise UserError("paddle2onnx wrote no ONNX file (see its messages above)")
    info = {"file": ONNX_FILE, "opset": OPSET, "paddle2onnx": getattr(p2o, "__version__", "?")}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("note: onnxruntime is not installed, so the ONNX model was not checked against Paddle", file=sys.stderr)
        return info
    from adcommon.deploy.predictor import Predictor
    size = meta["preprocess"].get("crop_size") or meta["preprocess"]["image_size"]
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    want = Predictor(folder, use_mkldnn=False).run(x)
    got = OnnxRuntime(folder).run(x)
    worst = max(float(np.abs(a - b).max() / max(1.0, float(np.abs(a).max()))) for a, b in zip(want, got))
    if not worst <= 1e-4:
        raise UserError(f"the ONNX model's outputs differ from the Paddle graph's by {worst:.2e} of their scale "
                        "(more than 1e-4): the conversion is wrong; export without --onnx")
    info["max_rel_diff"] = float(f"{worst:.3g}")
    return info


class _OnnxRunner:
    """What the ONNX runners share: inference.yml, the ONNX file, and the checks of the graph against it."""

    def __init__(self, model_dir, meta=None):
        self.meta = meta or load_meta(model_dir)
        onnx = (self.meta.get("onnx") or {}).get("file", ONNX_FILE)
        self.path = os.path.join(model_dir, onnx)
        if not os.path.isfile(self.path):
            raise UserError(f"no {onnx} in {model_dir}: export with `export_model.py --onnx True` for "
                            f"--backend {self.name}")
        self.config = {"backend": self.name}

    def _check(self, n_outputs, model_dir, input_shape=()):
        """The graph against inference.yml before the first image: its output count and, where the graph
        fixes it, its input size (OpenVINO or ONNX Runtime would otherwise run a graph of another size on
        images preprocessed for this one, or fail on the first batch)."""
        if n_outputs != len(self.meta["outputs"]):
            raise UserError(f"{model_dir}: {ONNX_FILE} has {n_outputs} outputs, inference.yml lists "
                            f"{len(self.meta['outputs'])}: the files come from different exports; re-run "
                            "export_model.py")
        check_input_size(self.meta, input_shape, model_dir, ONNX_FILE, "re-run export_model.py --onnx True")


class OnnxRuntime(_OnnxRunner):
    name = "onnxruntime"

    def __init__(self, model_dir, cpu_threads=None, precision="fp32", meta=None):
        ort = _need("onnxruntime", "--backend onnxruntime")
        super().__init__(model_dir, meta)
        if precision != "fp32":
            raise UserError(f"--precision {precision}: ONNX Runtime runs fp32 on the CPU here; use --precision fp32, "
                            "or --backend openvino for bf16")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(cpu_threads or _threads())
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file
            raise UserError(f"cannot load {self.path} ({str(e).splitlines()[0][:160]}): re-run export_model.py "
                            "--onnx True") from None
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._check(len(self.outputs), model_dir, self.session.get_inputs()[0].shape)
        self.config.update(threads=so.intra_op_num_threads, version=ort.__version__)

    def run(self, batch):
        return self.session.run(self.outputs, {self.input: np.ascontiguousarray(batch, dtype=np.float32)})


class OpenVino(_OnnxRunner):
    """OpenVINO on the CPU. Its default precision on CPUs with bf16 units is bf16; fp32 is asked for
    explicitly (``--precision fp16`` selects bf16). The model is compiled for the batch size it first
    sees (a static shape runs faster than a dynamic one); smaller batches are padded to it."""
    name = "openvino"

    def __init__(self, model_dir, cpu_threads=None, precision="fp32", meta=None):
        ov = _need("openvino", "--backend openvino")
        super().__init__(model_dir, meta)
        if precision == "int8":
            raise UserError("--precision int8 needs a quantised model; use fp32 or fp16 (bf16 on the CPU)")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(self.path)
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot load {self.path} ({str(e).splitlines()[0][:160]}): re-run export_model.py "
                            "--onnx True") from None
        shape = self.model.inputs[0].get_partial_shape()
        self._check(len(self.model.outputs), model_dir,
                    [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else ())
        self.settings = {"INFERENCE_NUM_THREADS": int(cpu_threads or _threads()),
                         "INFERENCE_PRECISION_HINT": "bf16" if precision == "fp16" else "f32",
                         "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = {}
        self.config.update(threads=self.settings["INFERENCE_NUM_THREADS"], version=ov.__version__,
                           precision=self.settings["INFERENCE_PRECISION_HINT"])

    def _for(self, shape):
        if shape not in self.compiled:
            m = self.model.clone() if hasattr(self.model, "clone") else self.core.read_model(self.path)
            m.reshape({m.inputs[0].get_any_name(): list(shape)})
            self.compiled[shape] = self.core.compile_model(m, "CPU", self.settings)
        return self.compiled[shape]

    def run(self, batch):
        x = np.ascontiguousarray(batch, dtype=np.float32)
        n = len(x)
        # a smaller batch (the last one of a run) is padded to a size already compiled: a second compiled
        # model would cost its compilation and a second copy of the weights (PaDiM's: 125 MB)
        fits = [s for s in self.compiled if s[1:] == x.shape[1:] and s[0] >= n]
        if fits:
            shape = min(fits)
            if shape[0] > n:
                x = np.concatenate([x, np.zeros((shape[0] - n,) + x.shape[1:], np.float32)])
        c = self._for(tuple(x.shape))
        res = c(x)
        return [np.asarray(res[o])[:n] for o in c.outputs]


def _threads():
    from adcommon.cli import cpu_threads
    return cpu_threads()


def make_runner(model_dir, backend="paddle", use_mkldnn=False, cpu_threads=None, precision="fp32", ir_optim=True,
                gpu=None):
    """The runner of ``backend`` over the export folder ``model_dir``. ``gpu``: a GpuOptions
    (adcommon.deploy.predictor) to run on a GPU, which only the paddle backend does; None: the CPU."""
    if backend == "paddle":
        from adcommon.deploy.predictor import Predictor
        return Predictor(model_dir, use_mkldnn=use_mkldnn, cpu_threads=cpu_threads, precision=precision,
                         ir_optim=ir_optim, gpu=gpu)
    if gpu:
        raise UserError(f"--use_gpu True: --backend {backend} runs on the CPU here; use --backend paddle on a GPU")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    cls = OnnxRuntime if backend == "onnxruntime" else OpenVino
    return cls(model_dir, cpu_threads=cpu_threads, precision=precision)
