"""Scoring a stream of images in three overlapped stages, in order, at flat memory:

    decode + resize (a pool of threads: PIL and OpenCV release the GIL)  ->  the network (this thread)
    ->  post-processing + writing files (a pool of threads)  ->  records emitted in input order (this thread)

The decode stage works ``ahead`` batches in front of the network and the writing stage at most
``behind`` batches behind it, so what is held at any time does not depend on the number of images.
The stage functions come from the caller (adcommon.deploy.scoring); this module only orders and overlaps them.
"""
import collections
import concurrent.futures as cf
import dataclasses
import threading
import time
from typing import Callable

STAGES = ("decode", "network", "postprocess", "write")


class Timings:
    """Seconds spent per stage, summed over threads (a thread-safe counter: the stages overlap, so the
    sum can exceed the wall time)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds = {k: 0.0 for k in STAGES}

    def add(self, stage, seconds):
        with self._lock:
            self.seconds[stage] += seconds

    def as_dict(self):
        with self._lock:
            return {k: round(v, 3) for k, v in self.seconds.items()}


def default_workers():
    """One thread per core this process may use."""
    import os
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _Now:
    """An executor that runs each task at once in the calling thread (``workers=0``: the stages one after
    another, for comparison and debugging)."""

    def submit(self, fn, *args):
        f = cf.Future()
        try:
            f.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 - kept in the future, raised where it is read, as a pool does
            f.set_exception(e)
        return f

    def shutdown(self, wait=True):
        pass


@dataclasses.dataclass
class Stages:
    """The four stage functions ``run`` calls (see there). Any object with methods of these names will do
    as well (adcommon.deploy.scoring passes its scorer)."""
    prepare: Callable
    network: Callable
    finish: Callable
    emit: Callable


def _pools(workers):
    """The (decode, write) executors: two pools of ``workers`` threads (default one per core), or with 0 the
    calling thread for both."""
    if workers == 0:
        now = _Now()
        return now, now
    workers = workers or default_workers()
    return (cf.ThreadPoolExecutor(workers, thread_name_prefix="decode"),
            cf.ThreadPoolExecutor(workers, thread_name_prefix="write"))


class _Flow:
    """The chunks of one ``run`` in flight: decoding in front of the network (``waiting``, at most ``ahead``)
    and being written behind it (``writing``, at most ``behind`` once they are due)."""

    def __init__(self, chunks, stages, pools, ahead, behind):
        self.stages, (self.decode, self.write) = stages, pools
        self.ahead, self.behind = ahead, behind
        self.waiting = collections.deque()   # futures of each chunk's prepared items, oldest first
        self.writing = collections.deque()   # futures of finish(), oldest first
        self.source = iter(chunks)
        self.ended = False
        self.broken = False   # a chunk failed to be written or emitted: later ones must not be emitted (a gap)

    def fill(self):
        """Start decoding chunks until ``ahead`` are waiting, the chunks end or none is ready yet."""
        while not self.ended and len(self.waiting) < self.ahead:
            chunk = next(self.source, None)
            if chunk is None:
                self.ended = True
            elif not chunk:
                return   # nothing new for now: never block while work is in flight
            else:
                self.waiting.append([self.decode.submit(self.stages.prepare, item) for item in chunk])

    def drain(self, all_of_them=False):
        """Emit the written chunks, oldest first: those done, and any beyond ``behind`` (waiting for them)."""
        while self.writing and (all_of_them or self.writing[0].done() or len(self.writing) > self.behind):
            self.broken = True
            self.stages.emit(self.writing.popleft().result())
            self.broken = False

    def loop(self, idle):
        """Every chunk through the network and into the writing pool, until the chunks end."""
        while True:
            self.fill()
            if not self.waiting:
                self.drain(all_of_them=True)
                if self.ended:
                    break
                if idle:
                    time.sleep(idle)
                continue
            prepared = [f.result() for f in self.waiting.popleft()]
            self.fill()   # decode the next chunks while the network runs
            outputs = self.stages.network(prepared)
            self.writing.append(self.write.submit(self.stages.finish, prepared, outputs))
            self.drain()
        self.drain(all_of_them=True)

    def salvage(self):
        """After a failure: drop the chunks not started, and write and emit the ones already scored."""
        for futures in self.waiting:
            for f in futures:
                f.cancel()
        if not self.broken:   # keep what was scored: finish writing and emit those chunks (a few at most)
            for f in self.writing:
                try:
                    done = f.result()
                except BaseException:  # noqa: BLE001 - the first failure is the one raised by run
                    break
                self.stages.emit(done)


def run(chunks, stages, workers=None, ahead=2, behind=2, idle=None):
    """Feed every chunk (a list of items, e.g. image paths) through the ``stages`` (a Stages, or any object
    with these four methods):

    ``prepare(item)`` in the decode pool; ``network(prepared list)`` here, one chunk at a time, in order;
    ``finish(prepared list, network outputs)`` in the writing pool, returning that chunk's records;
    ``emit(records)`` here, chunk by chunk in input order.

    ``workers``: threads per pool (default one per core); 0 runs every stage here, one after another.
    ``chunks`` may be endless (a watched folder): an empty chunk means "nothing new yet"; with
    ``idle`` seconds, the loop then waits that long and asks again, writing out what it holds first.
    An exception in any stage (or Ctrl-C, SIGTERM) stops the run: the chunks not started are dropped, the
    ones already scored are written and emitted (their files exist: a resumed run need not redo them),
    and it is raised here.
    """
    decode, write = _pools(workers)
    flow = _Flow(chunks, stages, (decode, write), ahead, behind)
    try:
        flow.loop(idle)
    except BaseException:
        flow.salvage()
        raise
    finally:
        decode.shutdown(wait=True)
        write.shutdown(wait=True)
