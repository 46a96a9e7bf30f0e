"""Scoring a stream of images in three overlapped stages, in order, at flat memory:

    decode + resize (a pool of threads: PIL and OpenCV release the GIL)  ->  the network (this thread)
    ->  post-processing + writing files (a pool of threads)  ->  records emitted in input order (this thread)

The decode stage works ``ahead`` batches in front of the network and the writing stage at most
``behind`` batches behind it, so what is held at any time does not depend on the number of images.
The stage functions come from the caller (adcommon.deploy.scoring); this module only orders and overlaps them.
"""
import collections
import concurrent.futures as cf
import threading
import time

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


def run(chunks, prepare, network, finish, emit, workers=None, ahead=2, behind=2, idle=None):
    """Feed every chunk (a list of items, e.g. image paths) through the stages:

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
    if workers == 0:
        decode = write = _Now()
    else:
        workers = workers or default_workers()
        decode = cf.ThreadPoolExecutor(workers, thread_name_prefix="decode")
        write = cf.ThreadPoolExecutor(workers, thread_name_prefix="write")
    waiting = collections.deque()   # (chunk, futures of its prepared items), oldest first
    writing = collections.deque()   # futures of finish(), oldest first
    source = iter(chunks)
    ended = False

    def fill():
        nonlocal ended
        while not ended and len(waiting) < ahead:
            chunk = next(source, None)
            if chunk is None:
                ended = True
            elif not chunk:
                return   # nothing new for now: never block while work is in flight
            else:
                waiting.append([decode.submit(prepare, item) for item in chunk])

    broken = [False]   # a chunk failed to be written or emitted: later ones must not be emitted (a gap)

    def drain(all_of_them=False):
        while writing and (all_of_them or writing[0].done() or len(writing) > behind):
            broken[0] = True
            emit(writing.popleft().result())
            broken[0] = False

    try:
        while True:
            fill()
            if not waiting:
                drain(all_of_them=True)
                if ended:
                    break
                if idle:
                    time.sleep(idle)
                continue
            prepared = [f.result() for f in waiting.popleft()]
            fill()   # decode the next chunks while the network runs
            outputs = network(prepared)
            writing.append(write.submit(finish, prepared, outputs))
            drain()
        drain(all_of_them=True)
    except BaseException:
        for futures in waiting:
            for f in futures:
                f.cancel()
        if not broken[0]:   # keep what was scored: finish writing and emit those chunks (a few at most)
            for f in writing:
                try:
                    done = f.result()
                except BaseException:  # noqa: BLE001 - the first failure is the one raised below
                    break
                emit(done)
        raise
    finally:
        decode.shutdown(wait=True)
        write.shutdown(wait=True)
