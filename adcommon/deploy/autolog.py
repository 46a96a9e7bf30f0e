"""Timing logger with the ``auto_log.AutoLogger`` interface and log format (docs/reference.md#autologger-log-format).

``get_autologger(...)`` returns the real ``auto_log.AutoLogger`` when that package is installed
(it is not on PyPI), else this module's ``AutoLogger``. Neither stops the process: the original
``report()`` ends with ``sys.exit(0)``, which the wrapper swallows so code after it still runs.
"""
import logging
import os
import platform
import sys
import time

import numpy as np

TIME_KEYS = ["preprocess_time", "inference_time", "postprocess_time"]


class Times:
    """start() -> stamp() ... -> end(): each stamp adds the time since the previous one to the next key
    in turn (keys[(count-1) % len(keys)]); means skip the first ``warmup`` entries per key."""

    def __init__(self, keys=None, warmup=0):
        self.keys = list(keys or TIME_KEYS)
        self.warmup = int(warmup)
        self.times = {k: [] for k in self.keys}
        self.totals = []
        self._count = 0
        self._t0 = self._last = None

    def start(self, stamp=True):
        self._count = 0
        self._t0 = self._last = time.perf_counter()

    def stamp(self):
        now = time.perf_counter()
        self._count += 1
        self.times[self.keys[(self._count - 1) % len(self.keys)]].append(now - self._last)
        self._last = now

    def end(self, stamp=False):
        if stamp:
            self.stamp()
        self.totals.append(time.perf_counter() - self._t0)

    def add_batch(self, seconds):
        """One batch's seconds per key, measured elsewhere (the stages of a pipelined run overlap, so
        start/stamp/end around them would measure the wrong thing); the total is their sum."""
        for k in self.keys:
            self.times[k].append(float(seconds.get(k, 0.0)))
        self.totals.append(float(sum(seconds.get(k, 0.0) for k in self.keys)))

    def _num_counts(self):
        return len(self.totals)

    def value(self, key=None, mode="mean"):
        """Mean (or sum) seconds of one key past the warmup; all keys as a dict when key is None."""
        if key is None:
            return {k: self.value(k, mode) for k in self.keys}
        v = self.times[key][self.warmup:]
        if not v:
            if self.times[key]:
                raise ValueError(f"{key}: {len(self.times[key])} entries, not more than warmup={self.warmup}")
            return 0.0
        return float(np.sum(v) if mode == "sum" else np.mean(v))

    def _report_total_time(self, mode="sum"):
        v = self.totals[self.warmup:] or self.totals
        return float(np.sum(v) if mode == "sum" else np.mean(v))


def _cpu_rss_mb(pid=None):
    try:
        import psutil
        return psutil.Process(pid or os.getpid()).memory_info().rss / 2 ** 20
    except Exception:  # psutil missing: peak RSS of this process from the kernel
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _conf_value(cfg, name):
    if cfg is None:
        return None
    if isinstance(cfg, dict):
        return cfg.get(name)
    if name in ("mkldnn_enabled",):
        f = getattr(cfg, "onednn_enabled", None) or getattr(cfg, "mkldnn_enabled", None)
    else:
        f = getattr(cfg, name, None)
    try:
        return f() if callable(f) else f
    except Exception:
        return None


class AutoLogger:
    """Drop-in for auto_log.AutoLogger: the same six leading parameters; of its keyword options (``options``),
    ``pids`` (the process whose memory is reported; default this one), ``time_keys``, ``warmup`` and ``logger``
    are used, and the others (process_name, gpu_ids) and unknown keywords are ignored."""

    def __init__(self, model_name, model_precision="fp32", batch_size=1, data_shape="dynamic",
                 save_path=None, inference_config=None, **options):
        self.model_name, self.precision = model_name, model_precision
        self.batch_size, self.data_shape = batch_size, data_shape
        self.save_path, self.config = save_path, inference_config
        pids = options.get("pids")
        self.pid = pids if isinstance(pids, int) else os.getpid()
        self.times = Times(options.get("time_keys") or TIME_KEYS, options.get("warmup", 0))
        self.logger = options.get("logger") or self._make_logger(save_path)
        self._rss_peak = _cpu_rss_mb(self.pid)

    @staticmethod
    def _make_logger(save_path):
        log = logging.getLogger(f"adcommon.deploy.autolog.{id(save_path)}.{time.time_ns()}")
        log.setLevel(logging.INFO)
        log.propagate = False
        fmt = logging.Formatter("[%(asctime)s] root %(levelname)s: %(message)s", datefmt="%Y/%m/%d %H:%M:%S")
        handlers = [logging.StreamHandler(sys.stdout)]
        if save_path:
            from adbase import make_dirs
            make_dirs(os.path.dirname(os.path.abspath(save_path)))
            handlers.append(logging.FileHandler(save_path, mode="a", encoding="utf-8"))
        for h in handlers:
            h.setFormatter(fmt)
            log.addHandler(h)
        return log

    def sample_memory(self):
        """Record the current RSS (call inside the loop for a peak; report() also samples)."""
        self._rss_peak = max(self._rss_peak, _cpu_rss_mb(self.pid))

    def report(self, identifier=None):
        import paddle
        self.sample_memory()
        info = self.logger.info
        ident = f"{identifier} " if identifier else ""
        use_gpu = _conf_value(self.config, "use_gpu")
        info("")
        info("---------------------- Env info ----------------------")
        info(f"{ident} OS_version: {platform.platform()}")
        info(f"{ident} CUDA_version: {paddle.version.cuda() if hasattr(paddle.version, 'cuda') else None}")
        info(f"{ident} CUDNN_version: {paddle.version.cudnn() if hasattr(paddle.version, 'cudnn') else None}")
        info(f"{ident} drivier_version: None")
        info("---------------------- Paddle info ----------------------")
        info(f"{ident} paddle_version: {paddle.__version__}")
        info(f"{ident} paddle_commit: {paddle.version.commit}")
        info(f"{ident} log_api_version: 1.0")
        info("----------------------- Conf info -----------------------")
        info(f"{ident} runtime_device: {'gpu' if use_gpu else 'cpu'}")
        info(f"{ident} ir_optim: {_conf_value(self.config, 'ir_optim')}")
        info(f"{ident} enable_memory_optim: {_conf_value(self.config, 'memory_optim_enabled')}")
        info(f"{ident} enable_tensorrt: {_conf_value(self.config, 'tensorrt_engine_enabled')}")
        info(f"{ident} enable_mkldnn: {_conf_value(self.config, 'mkldnn_enabled')}")
        info(f"{ident} cpu_math_library_num_threads: {_conf_value(self.config, 'cpu_math_library_num_threads')}")
        info("----------------------- Model info ----------------------")
        info(f"{ident} model_name: {self.model_name}")
        info(f"{ident} precision: {self.precision}")
        info("----------------------- Data info -----------------------")
        info(f"{ident} batch_size: {self.batch_size}")
        info(f"{ident} input_shape: {self.data_shape}")
        info(f"{ident} data_num: {self.times._num_counts()}")
        info("----------------------- Perf info -----------------------")
        info(f"{ident} cpu_rss(MB): {self._rss_peak:.4f}, gpu_rss(MB): None, gpu_util: None%")
        info(f"{ident} total time spent(s): {self.times._report_total_time('sum'):.4f}")
        ms = ", ".join(f"{k}(ms): {self.times.value(k) * 1000:.4f}" for k in self.times.keys)
        info(f"{ident} {ms}")
        for h in self.logger.handlers:
            h.flush()


class _RealAutoLogger:
    """The real auto_log.AutoLogger with its report() kept from ending the process."""

    def __init__(self, inner):
        self._inner = inner
        self.times = inner.times

    def report(self, identifier=None):
        try:
            self._inner.report(identifier)
        except SystemExit:
            pass

    def sample_memory(self):
        pass


def get_autologger(model_name, batch_size, inference_config=None, save_path=None, warmup=0,
                   model_precision="fp32", time_keys=None):
    """The real auto_log.AutoLogger when installed, else ours; same calls either way."""
    keys = time_keys or TIME_KEYS
    try:
        import auto_log  # noqa: F401
        inner = auto_log.AutoLogger(model_name=model_name, model_precision=model_precision,
                                    batch_size=batch_size, data_shape="dynamic", save_path=save_path,
                                    inference_config=inference_config, pids=os.getpid(), process_name=None,
                                    gpu_ids=None, time_keys=keys, warmup=warmup)
        return _RealAutoLogger(inner)
    except ImportError:
        return AutoLogger(model_name, model_precision, batch_size, "dynamic", save_path,
                          inference_config, time_keys=keys, warmup=warmup)
