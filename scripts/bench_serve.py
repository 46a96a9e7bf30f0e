"""The service benchmark (`python scripts/benchmark.py --serve`): serve.py under 1, 4 and 16 concurrent
clients sending real PNGs, against infer.py on the same images with the same runtime, in the same run.

PaDiM with ResNet-18 at 256 px (random weights: the speed is that of ImageNet weights; the model of
scripts/bench_deploy.py), 256 px PNG images. The clients are threads of this process, each with its own
keep-alive connection (httpx), posting the raw bytes to /predict; they share the two cores with the
server, as a camera gateway on the same box would. Reported per runtime: requests/s, p50 / p99 latency
and the server's peak RSS at each concurrency; infer.py --batch_size 8 --save_vis False on the same
images (its own timing, summary.json); and the server's peak RSS after 500 and after 5000 requests.
"""
import os
import re
import signal
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_deploy import _images, _infer, _models  # noqa: E402

FOLDER = "PaDiM-Paddle"
BATCH = 8


def _peak_rss_mb(pid):
    """The peak resident memory of process ``pid`` so far (VmHWM), MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


class _Server:
    def __init__(self, model, backend):
        from adcommon.tools.testing import start_serve
        args = ["--model_dir", model, "--backend", backend, "--batch_size", BATCH, "--max_wait_ms", 5,
                "--cpu_threads", 2, "--queue", 256] + (["--use_mkldnn", "True"] if backend == "paddle" else [])
        self.proc, self.url = start_serve(os.path.join(ROOT, FOLDER), *args)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def _load(url, payloads, clients, n):
    """``n`` requests from ``clients`` threads (request k sends payloads[k % len]); (seconds, latencies)."""
    import logging

    import httpx
    logging.getLogger("httpx").setLevel(logging.WARNING)   # no line per request
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(n))

    def client():
        with httpx.Client(base_url=url, timeout=120) as c:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                t0 = time.perf_counter()
                r = c.post("/predict", content=payloads[k % len(payloads)])
                dt = time.perf_counter() - t0
                with lock:
                    (latencies if r.status_code == 200 else errors).append(dt if r.status_code == 200 else r.text)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0][:200]}")
    return time.perf_counter() - t0, latencies


def serve_rows(quick=False):
    import numpy as np
    n = 100 if quick else 500
    many = 1000 if quick else 5000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data, sets = _images(tmp, n)
        model = _models(tmp, data)["PaDiM"]
        images = sorted(os.path.join(sets[n], f) for f in os.listdir(sets[n]))
        payloads = []
        for p in images:
            with open(p, "rb") as f:
                payloads.append(f.read())
        for backend in ("paddle", "openvino"):
            s = _infer(FOLDER, model, sets[n], os.path.join(tmp, f"infer_{backend}"), backend, BATCH)
            base = s["images"] / s["seconds"]
            rows.append({"method": "PaDiM", "what": f"infer.py --backend {backend}, batch {BATCH}, {n} images",
                         "value": f"{base:.1f} img/s", "note": f"peak RSS {s['peak_rss_mb']:.0f} MB (the reference)"})
            server = _Server(model, backend)
            try:
                _load(server.url, payloads, 4, 2 * BATCH)   # warm-up: the runtime's first batches
                for clients in (1, 4, 16):
                    secs, lat = _load(server.url, payloads, clients, n)
                    rate = n / secs
                    p50, p99 = (1000 * float(np.percentile(lat, q)) for q in (50, 99))
                    rows.append({"method": "PaDiM", "what": f"serve.py --backend {backend}, {clients} client(s), "
                                 f"{n} requests", "value": f"{rate:.1f} req/s",
                                 "note": f"x{rate / base:.2f} of infer.py; p50 {p50:.0f} ms, p99 {p99:.0f} ms; "
                                         f"server peak RSS {_peak_rss_mb(server.proc.pid):.0f} MB"})
            finally:
                server.stop()
            if backend == "openvino":   # memory under a long load (a fresh server, 16 clients): 500, then `many`
                server = _Server(model, backend)
                try:
                    _load(server.url, payloads, 16, 500)
                    early = _peak_rss_mb(server.proc.pid)
                    _load(server.url, payloads, 16, many - 500)
                    late = _peak_rss_mb(server.proc.pid)
                finally:
                    server.stop()
                rows.append({"method": "PaDiM", "what": f"serve.py --backend {backend}, 16 clients: server peak RSS "
                             f"after {many} requests", "value": f"{late:.0f} MB",
                             "note": f"x{late / early:.3f} of its peak after 500 requests ({early:.0f} MB)"})
    return rows
