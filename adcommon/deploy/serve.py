"""serve.py: an exported model as an HTTP service for a line's cameras, PLC gateways and MES, in every paper
folder (FastAPI + uvicorn: ``pip install -e .[serve]``).

    python serve.py --model_dir output/screw/inference [--backend openvino] [--port 8866] [--token SECRET]
    curl -F file=@part.png http://127.0.0.1:8866/predict
    curl --data-binary @part.png -H 'Content-Type: image/png' 'http://127.0.0.1:8866/predict?outputs=mask'

Endpoints: ``POST /predict`` (one image: a multipart upload or the raw bytes) and ``POST /predict_batch``
(several uploads in one multipart body) answer JSON: the score, the verdict at the stored threshold, the
regions at the image's own size and, on request (``?outputs=mask,map``), the mask (PNG) and the map
(16-bit PNG with its scaling) in base64. ``GET /health``, ``GET /model`` (inference.yml, the export
checks) and the OpenAPI docs at ``/docs``.

The numbers come from the code infer.py runs (adcommon.deploy.infer.open_model, adcommon.deploy.scoring.model_input,
maps.postprocess, infer.image_record): the same model gives the same scores, regions and masks. Requests
arriving together are batched (up to --batch_size images, waiting at most --max_wait_ms for a batch to
fill) and run on --workers runtimes; at most --queue images wait, beyond that the answer is 503 and the
memory stays flat. A bad request gets a 4xx with one message (400 no image, 401 no or a wrong token, 413
too large a body or image, 415 not an image, 422 a damaged image, 503 busy) and never changes another
request's answer. SIGTERM (and Ctrl-C) stop taking connections, answer the requests in flight (up to
--drain_s seconds), then end with 143 (130).
"""
import asyncio
import base64
import concurrent.futures
import hmac
import os
import queue
import socket
import sys
import threading
import time

import numpy as np

from adbase import ArgumentParser, Range, UserError, printable
from adcommon.cli import add_image_limit, add_infer_args, set_image_limit

__all__ = ["build_serve_parser", "serve_main", "Service", "make_app"]

TOKEN_ENV = "ADSUITE_SERVE_TOKEN"
OUTPUTS = ("mask", "map")


def build_serve_parser(description):
    p = ArgumentParser(description=description)
    p.add_argument("--model_dir", default=None, help="export folder (inference.yml + model + params)")
    p.add_argument("--model_file", default=None, help="alias: path of inference.json|pdmodel; its folder is used")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface; set --token then)")
    p.add_argument("--port", type=int, default=8866, limits=Range(0, 65535), help="TCP port (0: any free port)")
    p.add_argument("--batch_size", type=int, default=8, limits=Range(1, 256),
                   help="most images run through the network together")
    p.add_argument("--max_wait_ms", type=float, default=5.0, limits=Range(0, 10000),
                   help="how long the first image of a batch waits for others to join it")
    p.add_argument("--workers", type=int, default=1, limits=Range(1, 64),
                   help="runtimes scoring batches side by side (each holds its own copy of the model)")
    p.add_argument("--queue", type=int, default=64, limits=Range(1, 100000),
                   help="most images waiting for a runtime; beyond that a request gets 503")
    p.add_argument("--max_body_mb", type=float, default=64.0, limits=Range(0, 4096, lo_open=True),
                   help="largest request body; a larger one gets 413 before it is read")
    p.add_argument("--token", default=None,
                   help=f"bearer token every request but /health must carry (default: ${TOKEN_ENV}; none: open)")
    p.add_argument("--drain_s", type=float, default=30.0, limits=Range(0, 3600),
                   help="after SIGTERM, seconds to finish the requests in flight before stopping")
    p.add_argument("--access_log", default=False, action="store_true", help="one line per request on stderr")
    add_image_limit(p)
    add_infer_args(p)
    return p


class Rejected(Exception):
    """A request refused with an HTTP status and one message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _status_of(error):
    """The HTTP status of a UserError raised while an upload was read."""
    from shared_data.dataset import ImageTooLarge, NotAnImage
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, NotAnImage):
        return 415
    return 422


class Service:
    """The model behind the endpoints: ``workers`` runtimes, each a thread taking batches from one queue.

    ``score(data, name, outputs)`` is called from any thread (a request's): it decodes and prepares the
    image in that thread, waits for its batch to run, and builds the image's record in that thread again,
    so decoding and region finding of concurrent requests overlap the network."""

    def __init__(self, runners, meta, batch_size=8, max_wait_ms=5.0, queue_size=64):
        from adcommon.evaluate.maps import postprocess
        self.meta, self.runners = meta, list(runners)
        self.batch_size, self.max_wait = int(batch_size), max(0.0, float(max_wait_ms)) / 1000.0
        self.queue_size = int(queue_size)
        self._postprocess = postprocess
        self._q = queue.Queue()
        self.waiting = 0   # images submitted and not yet answered (at most queue_size)
        self.counts = {"requests": 0, "images": 0, "rejected": 0, "batches": 0}
        self._lock = threading.Lock()
        self._warm_up()
        self._threads = [threading.Thread(target=self._work, args=(r,), name=f"runtime-{i}", daemon=True)
                         for i, r in enumerate(self.runners)]
        for t in self._threads:
            t.start()

    # -- the runtimes' side
    def warm_up_sizes(self):
        """1, 2, 4, ... below --batch_size, and --batch_size."""
        sizes, n = {self.batch_size}, 1
        while n < self.batch_size:
            sizes.add(n)
            n *= 2
        return sorted(sizes)

    def _warm_up(self):
        """Batches of 1, 2, 4, ... and --batch_size images through each runtime before the first request:
        the first requests are not slowed by the runtime's set-up, and OpenVINO compiles those shapes now
        (a batch in between is padded to the next: adcommon.deploy.backends.OpenVino), so a batch of 3 costs at
        most 4 images' time, and the memory is flat from the start."""
        p = self.meta["preprocess"]
        side = p.get("crop_size") or p["image_size"]
        for runner in self.runners:
            for n in self.warm_up_sizes():
                runner.run(np.zeros((n, 3, side, side), np.float32))

    def _work(self, runner):
        while True:
            first = self._q.get()
            if first is None:
                return
            batch, deadline = [first], time.monotonic() + self.max_wait
            while len(batch) < self.batch_size:
                left = deadline - time.monotonic()
                try:
                    item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:   # closing: finish this batch, then stop
                    self._q.put(None)
                    break
                batch.append(item)
            self._run(runner, batch)

    def _run(self, runner, batch):
        try:
            outs = runner.run(np.stack([x for x, _ in batch]))
            maps, scores = self._postprocess(outs, self.meta["postprocess"])
            results = [(None if maps is None else maps[k], float(scores[k])) for k in range(len(batch))]
        except Exception as e:  # noqa: BLE001 - the error goes to the requests of this batch, the service lives
            results = [e] * len(batch)
        with self._lock:
            self.counts["batches"] += 1
        for (_, fut), r in zip(batch, results):
            try:
                fut.set_exception(r) if isinstance(r, Exception) else fut.set_result(r)
            except concurrent.futures.InvalidStateError:   # its request was cancelled (the client left)
                pass

    # -- the requests' side
    def prepare(self, data, name):
        """Bytes -> (network input, (width, height)); a UserError for what is not a readable image."""
        from adcommon.deploy.scoring import model_input
        from shared_data.dataset import decode_image
        rgb = decode_image(data, name)
        return model_input(rgb, self.meta["preprocess"])[0], (rgb.shape[1], rgb.shape[0])

    def submit(self, x):
        """Queue one prepared image; a concurrent Future of (map or None, score). Rejected (503) when
        --queue images are already waiting."""
        with self._lock:
            if self.waiting >= self.queue_size:
                self.counts["rejected"] += 1
                raise Rejected(503, f"busy: {self.queue_size} images are already waiting (--queue); retry shortly")
            self.waiting += 1
        fut = concurrent.futures.Future()
        fut.add_done_callback(self._answered)
        self._q.put((x, fut))
        return fut

    def _answered(self, _):
        with self._lock:
            self.waiting -= 1

    def count_request(self, images):
        with self._lock:
            self.counts["requests"] += 1
            self.counts["images"] += images

    def status(self):
        """What GET /health reports: the runtimes, the images waiting, the counters."""
        with self._lock:
            return {"workers": len(self.runners), "waiting": self.waiting, **self.counts}

    def record(self, name, size, result, outputs=()):
        """The answer for one scored image: infer.py's record (without its file names) plus, on request,
        the mask and the map as base64 PNGs."""
        from adcommon.deploy.scoring import _record, image_record
        from adcommon.evaluate import regions as R
        from adcommon.files import png_bytes
        m, score = result
        if m is None:
            rec, full, thr = _record(name, size, score, self.meta.get("threshold")), None, None
        else:
            rec, full, thr = image_record(name, size, m, score, self.meta)
        rec.pop("files", None)
        rec["image"] = rec.pop("path")
        if full is not None and "mask" in outputs and self.meta.get("threshold") is not None:
            rec["mask_png"] = base64.b64encode(png_bytes(R.mask_array(full, thr), "mask")).decode("ascii")
        if full is not None and "map" in outputs:
            u16, scale = R.map_png16(full, self.meta.get("vis_range"))
            rec["map_png16"] = base64.b64encode(png_bytes(u16, "map")).decode("ascii")
            rec["map_scale"] = scale
        return rec

    def close(self):
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join(timeout=60)


def _parse_outputs(text):
    wanted = [w.strip() for w in (text or "").split(",") if w.strip()]
    bad = [w for w in wanted if w not in OUTPUTS]
    if bad:
        raise Rejected(400, f"outputs: unknown {', '.join(map(repr, bad))}; choose from {', '.join(OUTPUTS)}")
    return tuple(wanted)


class _BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413, at once when its Content-Length says so,
    else as soon as it passes the limit. The rest of such a body is read and dropped (up to DRAIN_CAP
    bytes more), so that the client, still sending, receives the answer instead of a reset connection."""

    DRAIN_CAP = 256 * 10 ** 6

    def __init__(self, app, limit):
        self.app, self.limit = app, int(limit)

    async def _drain(self, receive, more):
        dropped = 0
        while more and dropped < self.DRAIN_CAP:
            msg = await receive()
            if msg.get("type") != "http.request":
                return
            dropped += len(msg.get("body") or b"")
            more = msg.get("more_body", False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        message = f"the request body is over the limit of {self.limit / 1e6:g} MB (--max_body_mb)"
        if length is not None and length.strip().isdigit() and int(length) > self.limit:
            from starlette.responses import JSONResponse
            await self._drain(receive, True)
            return await JSONResponse({"detail": message}, status_code=413,
                                      headers={"Connection": "close"})(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg.get("type") == "http.request":
                seen += len(msg.get("body") or b"")
                if seen > self.limit:
                    from fastapi import HTTPException
                    await self._drain(receive, msg.get("more_body", False))
                    raise HTTPException(413, message, headers={"Connection": "close"})
            return msg
        return await self.app(scope, limited, send)


def _authoriser(token):
    """The dependency every endpoint but /health carries: 401 unless the request has ``token`` as its bearer
    token (with no token, every request passes)."""
    from fastapi import HTTPException, Request

    def authorised(request: Request):
        if not token:
            return
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
    return authorised


async def _uploads(request, service, many):
    """[(name, bytes)] of the request: the multipart files (any field name), else the raw body."""
    from fastapi import HTTPException
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=max(1000, service.queue_size), max_fields=1000)
        except HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - a malformed multipart body
            raise Rejected(400, f"malformed multipart body: {e}") from None
        files = [(v.filename or k, await v.read()) for k, v in form.multi_items() if hasattr(v, "read")]
        await form.close()
    else:
        body = await request.body()
        files = [(request.query_params.get("name") or "upload", body)] if body else []
    if not files:
        raise Rejected(400, "no image in the request: send it as a multipart file (-F file=@x.png) or as "
                            "the raw body (--data-binary @x.png)")
    if not many and len(files) > 1:
        raise Rejected(400, f"{len(files)} images in one request: POST them to /predict_batch")
    return files


async def _score(service, name, data, outputs):
    """One uploaded image through ``service`` -> its answer; Rejected for what is not a readable image."""
    from starlette.concurrency import run_in_threadpool
    try:
        x, size = await run_in_threadpool(service.prepare, data, name)
    except UserError as e:
        raise Rejected(_status_of(e), str(e)) from None
    del data
    result = await asyncio.wrap_future(service.submit(x))
    return await run_in_threadpool(service.record, name, size, result, outputs)


def _add_predict_routes(app, service, authorised):
    """POST /predict and POST /predict_batch on ``app``, behind the ``authorised`` dependency."""
    from fastapi import Depends, Request

    @app.post("/predict", dependencies=[Depends(authorised)])
    async def predict(request: Request, outputs: str = ""):
        """One image (a multipart file, or the raw bytes with ?name=...) -> its score, verdict and regions;
        ``outputs=mask,map`` adds the mask and the map as base64 PNGs."""
        wanted = _parse_outputs(outputs)
        (name, data), = await _uploads(request, service, many=False)
        service.count_request(1)
        return await _score(service, name, data, wanted)

    @app.post("/predict_batch", dependencies=[Depends(authorised)])
    async def predict_batch(request: Request, outputs: str = ""):
        """Several images in one multipart body -> {"results": [...]} in their order; an image that cannot
        be read gets {"image", "error", "status"} in its place and the others are scored."""
        wanted = _parse_outputs(outputs)
        files = await _uploads(request, service, many=True)
        service.count_request(len(files))

        async def one(name, data):
            try:
                return await _score(service, name, data, wanted)
            except Rejected as e:
                if e.status == 503:
                    raise
                return {"image": name, "error": e.message, "status": e.status, "verdict": "unreadable"}
        return {"results": list(await asyncio.gather(*(one(n, d) for n, d in files)))}


def make_app(service, info, token=None, max_body=64 * 10 ** 6):
    """The FastAPI application over ``service``; ``info``: what GET /model answers."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import JSONResponse

    method = str(service.meta.get("method", "model"))
    app = FastAPI(title=f"{method} anomaly detection", version="1",
                  description="Scores images with an exported model of this suite (the numbers of infer.py).")
    app.add_middleware(_BodyLimit, limit=max_body)
    authorised = _authoriser(token)

    @app.exception_handler(Rejected)
    async def _rejected(request, e):
        headers = {"Retry-After": "1"} if e.status == 503 else None
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=headers)

    @app.get("/health")
    async def health():
        """Liveness and load: always open (no token), for a process manager or a load balancer."""
        return {"status": "ok", "method": method, **service.status()}

    @app.get("/model", dependencies=[Depends(authorised)])
    async def model():
        """The model: its method, inference.yml (thresholds, pre- and post-processing, the export's
        checks and digests) and how this service runs it."""
        return info

    _add_predict_routes(app, service, authorised)
    return app


def _listen(host, port):
    """The listening socket, bound before anything loads: a port in use is one line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_main(argv, model_name):
    """The whole serve.py: an exported model behind HTTP until SIGTERM or Ctrl-C."""
    args = build_serve_parser(f"{model_name}: an exported model as an HTTP service").parse_args(argv)
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: the uploads)
        import uvicorn
    except ImportError as e:
        raise UserError(f"serve.py needs FastAPI, uvicorn and python-multipart ({e.name} is missing): "
                        "pip install -e .[serve]") from None
    from adbase import extend_stop_grace
    from adcommon.cli import cpu_threads
    from adcommon.deploy.infer import RUNTIMES, model_dir_of, open_model
    set_image_limit(args)
    if args.token is not None and not args.token.strip():
        raise UserError("--token is empty: give the secret every request must carry, or leave the flag out")
    token = args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)
    model_dir = model_dir_of(args)
    sock = _listen(args.host, args.port)
    threads = args.cpu_threads or max(1, cpu_threads() // args.workers)
    runners = [open_model(args, model_name, model_dir, cpu_threads=threads) for _ in range(args.workers)]
    meta = runners[0].meta
    info = {"method": meta.get("method", model_name.lower()), "model_dir": os.path.realpath(model_dir),
            "backend": args.backend, "runtime": RUNTIMES[args.backend],
            "serving": {"batch_size": args.batch_size, "max_wait_ms": args.max_wait_ms, "workers": args.workers,
                        "cpu_threads": threads, "queue": args.queue, "max_megapixels": args.max_megapixels,
                        "max_body_mb": args.max_body_mb, "token": bool(token)},
            "inference": meta}
    service = Service(runners, meta, args.batch_size, args.max_wait_ms, args.queue)
    app = make_app(service, info, token, int(args.max_body_mb * 1e6))
    host, port = sock.getsockname()[:2]
    if args.host in ("0.0.0.0", "::") and not token:
        print("warning: listening on every interface without --token: anyone who can reach this port can use "
              "the model", file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", access_log=args.access_log,
                            timeout_graceful_shutdown=args.drain_s, lifespan="off")
    server = uvicorn.Server(config)
    print(f"serving {printable(model_dir)} ({model_name}, {RUNTIMES[args.backend]}, {args.workers} worker(s), "
          f"batch {args.batch_size}) on http://{host}:{port} (POST /predict, /predict_batch; GET /health, "
          f"/model, /docs)", flush=True)
    extend_stop_grace(args.drain_s)   # the stop watchdog waits for the drain
    try:
        server.run(sockets=[sock])   # SIGTERM / Ctrl-C: drain, then the signal is raised again (-> 143 / 130)
    finally:
        service.close()
        sock.close()
    return 0
