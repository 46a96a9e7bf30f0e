"""A training forward pass run as one static graph with oneDNN kernels (Paddle >= 3 on a CPU).

Why: eager Paddle runs a CPU convolution as a per-image im2col (one thread) plus a GEMM and never
uses oneDNN, so a ResNet-18 training step reaches about a quarter of this machine's GEMM rate. A
``paddle.jit.to_static`` program built while ``FLAGS_use_onednn`` is set runs oneDNN's convolution,
batch-norm, ReLU and their backward kernels instead (the README's benchmark table has the figures).

Paddle 3.3's oneDNN training path has three defects; each is worked around here and checked by
``tests/test_compiled.py`` against the eager step (same loss, weights and BN statistics):

1. oneDNN's ``pool2d_grad`` raises (``dnnl::error``): max-pool layers run
   ``max_pool2d(..., return_mask=True)``, an op without a oneDNN kernel (the same values).
2. oneDNN's ``batch_norm`` does not write the running mean and variance back to the layer: each
   batch-norm layer's batch mean and biased variance become extra outputs of the graph, and the
   running statistics are set after the step as Paddle's kernel would, r = m r + (1 - m) batch.
3. An output produced directly by some oneDNN ops (a batch-norm or depthwise convolution) crashes
   the creation of the program's outputs: every output goes through ``paddle.assign``.

A loss computed inside such a graph got wrong gradients in our tests (the loss rose step after step),
so the graph ends at the features and the caller computes the loss eagerly; ``backward(loss)``
runs the program's backward part, which needs the same flag. Anything else (a GPU, Paddle 2.6,
``enabled=False``) runs the layer eagerly, unchanged.
"""
import contextlib

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["CompiledForward", "available", "resolve"]

_FLAG = "FLAGS_use_onednn"


def available():
    """True where the compiled path can run: Paddle >= 3 (PIR, FLAGS_use_onednn) built with oneDNN,
    on the CPU."""
    try:
        major = int(paddle.__version__.split(".")[0])
    except ValueError:  # a develop build ("0.0.0") has the flag too
        major = 3
    if major < 3 and paddle.__version__ != "0.0.0":
        return False
    try:
        paddle.get_flags([_FLAG])
    except (ValueError, RuntimeError):
        return False
    core = paddle.base.core
    built = getattr(core, "is_compiled_with_onednn", None) or getattr(core, "is_compiled_with_mkldnn", None)
    return bool(built and built()) and paddle.device.get_device() == "cpu"


def resolve(compile_arg, default):
    """``--compile`` value (auto | True | False) -> bool. ``auto`` takes the method's measured default
    (``default``: where the static graph is faster than eager) wherever the path is available."""
    if compile_arg in (None, "auto"):
        return bool(default) and available()
    return bool(compile_arg) and available()


def _max_pool_with_index(layer):
    # Same result as MaxPool2D.forward; max_pool2d_with_index has no oneDNN kernel (defect 1).
    def forward(x):
        return F.max_pool2d(x, layer.ksize, layer.stride, layer.padding, ceil_mode=layer.ceil_mode,
                            return_mask=True, data_format=layer.data_format)[0]
    return forward


class _Graph(nn.Layer):
    """layer(x) -> (its outputs, [batch mean, batch variance] of each BN that ran, in order)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.rec = {"trace": None, "order": None}   # filled while the program is traced

    def forward(self, x):
        self.rec["trace"] = []
        out = self.layer(x)
        trace, self.rec["trace"] = self.rec["trace"], None
        self.rec["order"] = [bn for bn, _, _ in trace]
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        stats = [paddle.assign(t) for _, mu, var in trace for t in (mu, var)]
        return [paddle.assign(o) for o in outs], stats   # defect 3


class CompiledForward:
    """Callable ``fwd(x) -> list of outputs`` of ``layer`` (one input tensor) in training mode.

    With ``enabled`` (see ``resolve``) the first call builds a static program; parameters stay the
    layer's own, so an optimizer, ``state_dict`` and checkpoints see no difference. A new input shape
    builds a new program.
    """

    def __init__(self, layer, enabled=True):
        self.layer = layer
        self.enabled = bool(enabled)
        if not self.enabled:
            return
        self.bns = []
        for sub in layer.sublayers(include_self=True):
            if isinstance(sub, nn.MaxPool2D):
                sub.forward = _max_pool_with_index(sub)
            elif isinstance(sub, nn.layer.norm._BatchNormBase):
                self.bns.append(sub)
                sub.register_forward_pre_hook(self._record_batch_stats)
        self._graph = _Graph(layer)
        self._static = paddle.jit.to_static(self._graph, full_graph=True)

    def _record_batch_stats(self, bn, inputs):
        # pre-hook, active only while the program is traced: the statistics this BN normalises with
        trace = self._graph.rec["trace"]
        if trace is None or not bn.training:
            return None
        x = inputs[0].detach()
        axes = [0] + list(range(2, len(x.shape)))                 # all but the channels (NCHW / NC)
        mu = x.mean(axis=axes)
        xc = x - mu.reshape([1, -1] + [1] * (len(x.shape) - 2))
        trace.append((bn, mu, (xc * xc).mean(axis=axes)))         # biased variance, as Paddle's kernel
        return None

    def __call__(self, x):
        if not self.enabled:
            out = self.layer(x)
            return list(out) if isinstance(out, (list, tuple)) else [out]
        before = {id(bn): (bn._mean.numpy(), bn._variance.numpy()) for bn in self.bns if bn.training}
        with _onednn():
            outs, stats = self._static(x)
        order = self._graph.rec["order"] or []
        if len(stats) != 2 * len(order):
            raise RuntimeError(f"compiled forward: {len(stats)} statistics for {len(order)} BN layers")
        with paddle.no_grad():   # defect 2: r = m r + (1 - m) batch, from the values before the step
            for k, bn in enumerate(order):
                if id(bn) not in before:
                    continue
                m = float(bn._momentum)
                mean0, var0 = before[id(bn)]
                bn._mean.set_value(m * mean0 + (1 - m) * stats[2 * k].numpy())
                bn._variance.set_value(m * var0 + (1 - m) * stats[2 * k + 1].numpy())
        return outs

    def backward(self, loss):
        """``loss.backward()``; the program's backward part must also be lowered and run with the
        oneDNN flag set (without it the gradients are wrong)."""
        if not self.enabled:
            loss.backward()
            return
        with _onednn():
            loss.backward()


@contextlib.contextmanager
def _onednn():
    old = paddle.get_flags([_FLAG])[_FLAG]
    paddle.set_flags({_FLAG: True})
    try:
        yield
    finally:
        paddle.set_flags({_FLAG: old})
