"""The argument parser of every entry point: a bad flag or value is one line and exit code 2, and each
numeric flag is checked against its range while parsing."""
import argparse
import math

from adbase.errors import UserError


class Range:
    """The values a numeric flag accepts: ``lo``/``hi`` bounds (None: unbounded), open or closed."""

    def __init__(self, lo=None, hi=None, lo_open=False, hi_open=False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def __contains__(self, v):
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self):
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi}"
        return f"in {'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"


# Counts of threads and worker processes: past these a runtime spends minutes creating them (ONNX Runtime
# with 100000 threads never started), and no machine has that many cores.
MAX_THREADS, MAX_WORKERS = 1024, 256


# What every script's flag of that name accepts, unless the flag declares its own ``limits``. Every
# float flag is finite besides (NaN, inf and 1e999 are refused; _ranged).
RANGES = {
    "batch_size": Range(1), "epochs": Range(1), "steps": Range(0), "image_size": Range(32), "crop_size": Range(32),
    "lr": Range(0, lo_open=True), "momentum": Range(0, 1, hi_open=True), "weight_decay": Range(0),
    "holdout_ratio": Range(0, 1, hi_open=True), "threshold_quantile": Range(0, 1, lo_open=True, hi_open=True),
    "num_workers": Range(0, MAX_WORKERS), "cpu_threads": Range(1, MAX_THREADS), "warmup": Range(0),
    "seed": Range(0, 2 ** 32 - 1),
    "gpu_id": Range(0), "gpu_mem": Range(1), "d": Range(1), "folds": Range(0), "smooth_grad_n": Range(1),
    "log_interval": Range(1), "workers": Range(0, MAX_WORKERS), "max_megapixels": Range(0, lo_open=True),
    "poll": Range(0, lo_open=True), "n_train": Range(1), "n_test": Range(1), "n_test_good": Range(0),
    "n_test_defect": Range(0), "timeout": Range(0, lo_open=True),
}


def _ranged(kind, flag, limits=None):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(v):  # nan, inf, and 1e999 that float() reads as inf
            raise argparse.ArgumentTypeError(f"{flag} takes a finite number, got {text}")
        if limits is not None and v not in limits:
            raise argparse.ArgumentTypeError(f"{flag} must be {limits}, got {text}")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def check_number(name, value, kind=float, limits=None):
    """A number read outside argparse (a config file, inference.yml) under the same rules as the flag of
    that name: finite, in RANGES[name] (or ``limits``); UserError otherwise."""
    try:
        return _ranged(kind, name, limits if limits is not None else RANGES.get(name.lstrip("-")))(str(value))
    except argparse.ArgumentTypeError as e:
        raise UserError(str(e)) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the suite's conventions: a bad flag or value ends in one ``error:`` line and exit
    code 2, and numeric flags are checked against their range while parsing, before any work starts
    (``limits=Range(...)`` beside a flag, else RANGES by the flag's name)."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kw)

    def add_argument(self, *names, limits=None, **kw):
        flag = next((n for n in names if n.startswith("--")), names[0])
        dest = kw.get("dest") or flag.lstrip("-").replace("-", "_")
        limits = limits if limits is not None else RANGES.get(dest)
        if kw.get("type") is float or (limits is not None and kw.get("type") is int):
            kw["type"] = _ranged(kw["type"], flag, limits)
        return super().add_argument(*names, **kw)

    def error(self, message):
        self.exit(2, f"error: {message} (--help lists the flags)\n")
