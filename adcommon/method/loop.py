"""The training loop of every trained method, written once (STFPM, KDAD, CutPaste + SSPCAB): the units
(epochs or steps) from a resumed state to the target, the held-out score every few units and the best
unit kept, last.pdparams every few units, the progress bar, the log lines and the run's summary.

An engine supplies a ``Trainer``: its step (one unit of training), its held-out score and what it does
with the best unit (a candidate file, the weights in memory). ``run`` does the rest.
"""
import dataclasses
import os
import sys
import time
from typing import Any, Dict, List, Optional, Union

from tqdm import tqdm

from adcommon import checkpoint as C
from adcommon import distributed as D
from adcommon import vdl

SELECT = ("holdout", "last", "none")


@dataclasses.dataclass
class Schedule:
    """How ``run`` walks the units."""
    unit: str                 # "epoch" or "step": what --epochs / --steps counts; last.pdparams' progress key
    total: int                # train up to this unit
    eval_every: int = 1       # the held-out score every N units (0: never), and after the first and the last
    save_every: int = 1       # last.pdparams every N units and after the last (0: never)
    log_every: int = 1        # a log line and a history row every N units, and with every held-out score
    select: str = "holdout"   # holdout: keep the unit of the lowest held-out score; last: the last unit;
    #                           none: the score is a curve only, nothing is kept
    unit_bar: bool = True     # one progress bar over the units (False: the trainer's step draws its own)


class Trainer:
    """What an engine gives ``run``. Set ``method``, ``model`` (model_args and the state dict that
    last.pdparams keeps), ``network`` (the trained layer), ``optimizer`` and ``settings`` (what a resumed run
    must share); override ``step`` and the hooks it needs."""
    method: str
    model: Any
    network: Any
    optimizer: Any
    settings: Dict[str, Any]
    has_holdout: bool = False   # held-out normal images to score (without them select holdout keeps the last unit)

    def prepare(self, start: int, log) -> None:
        """Before the first unit, after a resumed state is restored (``start``: units already done)."""

    def step(self, unit: int) -> Dict[str, Any]:
        """Train one unit; its figures: ``loss`` and ``images`` (how many the unit trained on), and any
        others to log."""
        raise NotImplementedError

    def holdout(self, unit: int) -> Optional[Dict[str, Any]]:
        """The held-out normal images' figures after ``unit``: ``holdout_score`` (lower is better) and any
        others; None: no held-out images."""
        return None

    def keep(self, unit: int, record: Dict[str, Any]) -> None:
        """``unit`` is the best so far (select holdout or last): keep it."""

    def line(self, record: Dict[str, Any], best: bool) -> Union[str, List[str], None]:
        """The log line (or lines) of a logged unit (None: none)."""
        return None

    def state(self) -> Dict[str, Any]:
        """The trainer's own part of last.pdparams' progress."""
        return {}

    def restore(self, progress: Dict[str, Any]) -> None:
        """Read back ``state``'s part of a resumed progress."""

    def finish(self, stats: Dict[str, Any]) -> None:
        """After the last unit, with the run's summary (the trainer may add to it)."""


def _due(unit, every, start, total):
    return bool(every) and (unit % every == 0 or unit == total or unit == start + 1)


def _restore(trainer, sched, path, resume, log):
    """The progress of a resumed run (``resume``: a training state from checkpoint.training_state), or a fresh one."""
    progress = {sched.unit: 0, "history": [], "train_seconds": 0.0, "selected": None, "holdout_score": None}
    if resume is None:
        return progress
    saved = C.restore_training(resume, path, trainer.model, trainer.optimizer, trainer.network, trainer.settings)
    progress.update(saved)
    best = saved.get("best") or {}   # states written before this loop: selected_<unit>, or KDAD's best
    if "selected" not in saved:
        progress["selected"] = saved.get(f"selected_{sched.unit}", best.get(sched.unit))
    if saved.get("holdout_score") is None and best.get("score") is not None:
        progress["holdout_score"] = best["score"]
    trainer.restore(saved)
    best = f": best held-out score {progress['holdout_score']:.6g} at {sched.unit} {progress['selected']}" \
        if progress["holdout_score"] is not None else ""
    log(f"resumed from {path} after {sched.unit} {progress[sched.unit]}/{sched.total}{best}")
    return progress


def _better(select, progress, record):
    """Whether ``record``'s unit is the best so far (``select``: Schedule.select)."""
    if select != "holdout":
        return select == "last"
    score = record.get("holdout_score")
    return score is not None and (progress["holdout_score"] is None or score < progress["holdout_score"])


def run(trainer: Trainer, sched: Schedule, out_dir: str, log, resume=None) -> Dict[str, Any]:
    """Train ``trainer`` from ``resume`` (a training state, or None) to ``sched.total`` units, writing
    <out_dir>/last.pdparams on the process that writes (``out_dir`` None: nowhere). Returns the run's
    summary (also passed to ``trainer.finish``): units, the kept unit, the best held-out score, seconds,
    images/s, history."""
    u, main = sched.unit, D.is_main()
    path = os.path.join(out_dir, C.STATE) if out_dir else None   # None: no training state is written
    progress = _restore(trainer, sched, path, resume, log)
    start = int(progress[u])
    if start >= sched.total:
        log(f"already trained for {start} {u}s (--{u}s {sched.total}): nothing to do")
    trainer.prepare(start, log)
    seen, t_run = 0, 0.0
    select = "last" if sched.select == "holdout" and not trainer.has_holdout else sched.select
    units = range(start + 1, sched.total + 1)
    bar = tqdm(units, initial=start, total=sched.total, desc="train", unit=u, file=sys.stdout, dynamic_ncols=True,
               disable=not (main and sched.unit_bar))
    for unit in bar:
        t0 = time.perf_counter()
        record = {u: unit, **trainer.step(unit)}
        secs = time.perf_counter() - t0
        n = record.pop("images")
        seen, t_run = seen + n, t_run + secs
        record.update(images_per_s=n / max(secs, 1e-9), seconds=round(secs, 3))
        if trainer.has_holdout and _due(unit, sched.eval_every, start, sched.total):
            record.update(trainer.holdout(unit) or {})
        best = _better(select, progress, record)
        if best:
            progress["selected"] = unit
            if record.get("holdout_score") is not None:
                progress["holdout_score"] = record["holdout_score"]
            trainer.keep(unit, record)
        progress[u], progress["train_seconds"] = unit, progress["train_seconds"] + secs
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        vdl.scalars(unit, {k: v for k, v in record.items() if k != u})
        if _due(unit, sched.log_every, -1, sched.total) or "holdout_score" in record:
            progress["history"].append(record)
            msg = trainer.line(record, best) or []
            for text in [msg] if isinstance(msg, str) else msg:
                log(text)
        if main and path and _due(unit, sched.save_every, -1, sched.total):
            C.save_training_state(path, trainer.method, trainer.model, trainer.optimizer, trainer.network,
                                  trainer.settings, dict(progress, **trainer.state()))
    bar.close()
    stats = {f"{u}s": sched.total, f"start_{u}": start, f"selected_{u}": progress["selected"],
             "holdout_score": progress["holdout_score"], "history": progress["history"],
             "train_seconds": round(progress["train_seconds"], 3),
             "train_images_per_s": round(seen / t_run, 2) if t_run > 0 else None, "processes": D.world_size()}
    trainer.finish(stats)
    return stats

