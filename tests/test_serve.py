"""serve.py as a line's PLC gateway or MES uses it: a real HTTP client (httpx) against a server started
on 127.0.0.1, one per test, on a model exported by each paper folder's tiny recipe (methods.tsv)."""
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from adcommon import methods  # noqa: E402
from adcommon.tools.testing import start_serve, tiny_synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = methods.names()


class Server:
    """``python serve.py ...`` in a paper folder, on a free port; stopped (SIGKILL) if a test leaves it."""

    def __init__(self, folder, *args, env=None):
        self.proc, self.url = start_serve(folder, *args, env=env)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.client.close()
        return code, self.proc.stderr.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.client.close()


@pytest.fixture
def serve():
    started = []

    def start(folder, *args, env=None):
        s = Server(folder, *args, env=env)
        started.append(s)
        return s
    yield start
    for s in started:
        s.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory, 96, 8, 2, 3, name="serve")


@pytest.fixture(scope="module")
def exports(data, tmp_path_factory):
    """{method: its export folder}, built lazily: each method's tiny run, exported."""
    base = tmp_path_factory.mktemp("serve_models")
    done = {}

    def get(name):
        if name not in done:
            m = methods.get(name)
            out = base / name
            for args in (["train.py", "--data_dir", data, "--category", "brick", "--output_dir", out,
                          *shlex.split(m.tiny)], ["export_model.py", "--category", "brick", "--output_dir", out]):
                r = subprocess.run([sys.executable, *map(str, args)], cwd=m.path, capture_output=True, text=True)
                assert r.returncode == 0, r.stderr[-2000:]
            done[name] = str(out / "brick" / "inference")
        return done[name]
    return get


def _images(data):
    test = os.path.join(data, "brick", "test")
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(test) for f in fs)


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _png(shape=(64, 80, 3), seed=0):
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)).save(b, "PNG")
    return b.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_the_service_answers_what_infer_py_writes(name, data, exports, serve, tmp_path):
    """Every method: /predict (multipart and raw bytes), /predict_batch and 16 concurrent requests (batched
    together) give infer.py's scores (1e-6 relative), verdicts and regions; ?outputs=mask gives infer.py's
    mask PNG."""
    model, images = exports(name), _images(data)
    folder = methods.get(name).path
    res = tmp_path / "infer"
    r = subprocess.run([sys.executable, "infer.py", "--model_dir", model, "--img_path",
                        os.path.join(data, "brick", "test"), "--save_dir", res, "--save_vis", "False"],
                       cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    want = {json.loads(x)["path"]: json.loads(x) for x in (res / "predictions.jsonl").read_text().splitlines()}
    s = serve(folder, "--model_dir", model, "--batch_size", "4", "--max_wait_ms", "50")

    def same(got, path):
        w = want[path]
        assert got["score"] == pytest.approx(w["score"], rel=1e-6, abs=1e-6), (path, got, w)
        assert got["verdict"] == w["verdict"] and (got["width"], got["height"]) == (w["width"], w["height"])
        assert [g["bbox"] for g in got["regions"]] == [g["bbox"] for g in w["regions"]]

    for i, path in enumerate(images):
        if i % 2:
            got = s.client.post("/predict", files={"file": (os.path.basename(path), _bytes(path), "image/png")})
        else:
            got = s.client.post("/predict", content=_bytes(path), params={"name": os.path.basename(path)})
        assert got.status_code == 200, got.text
        assert got.json()["image"] == os.path.basename(path)
        same(got.json(), path)
    batch = s.client.post("/predict_batch", files=[("files", (os.path.basename(p), _bytes(p), "image/png"))
                                                   for p in images])
    assert batch.status_code == 200
    for got, path in zip(batch.json()["results"], images):
        same(got, path)
    many = (images * 4)[:16]
    out = [None] * len(many)

    def call(k):
        out[k] = s.client.post("/predict", content=_bytes(many[k])).json()
    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(many))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, path in zip(out, many):
        same(got, path)
    assert s.client.get("/health").json()["batches"] < len(images) * 2 + 1 + len(many)   # some ran together
    # the mask on request equals infer.py's mask file (where infer.py writes one: a stored threshold)
    path = next(p for p in images if "good" not in p)
    got = s.client.post("/predict", content=_bytes(path), params={"outputs": "mask,map"}).json()
    w = want[path]
    if "mask" in w["files"]:
        import base64
        assert base64.b64decode(got["mask_png"]) == (res / w["files"]["mask"]).read_bytes()
    assert "map_png16" in got and set(got["map_scale"]) == {"png16", "lo", "hi"}
    info = s.client.get("/model").json()
    assert info["method"] == name and info["inference"]["threshold"] == w["threshold"]
    assert s.client.get("/openapi.json").status_code == 200


@pytest.mark.slow
def test_bad_uploads_get_a_4xx_and_never_change_another_answer(exports, serve):
    """Not an image (415), truncated (422), over --max_megapixels (413), a body over --max_body_mb with or
    without its length (413), no image (400), two at /predict (400), an unknown output (400): one message
    each, and the service (two runtimes here) scores the next image as before."""
    model = exports("padim")
    s = serve(methods.get("padim").path, "--model_dir", model, "--max_megapixels", "0.01", "--max_body_mb", "0.2",
              "--workers", "2")
    good = _png()
    first = s.client.post("/predict", content=good)
    assert first.status_code == 200
    cases = [
        (s.client.post("/predict", content=b"GIF? no: plain text"), 415, "not an image file"),
        (s.client.post("/predict", content=good[:len(good) // 2]), 422, "truncated"),
        (s.client.post("/predict", content=_png((120, 120, 3))), 413, "--max_megapixels"),
        (s.client.post("/predict", content=b"x" * 300_000), 413, "--max_body_mb"),
        (s.client.post("/predict", content=iter([b"x" * 100_000] * 3)), 413, "--max_body_mb"),   # chunked: no length
        (s.client.post("/predict", content=b""), 400, "no image in the request"),
        (s.client.post("/predict", files=[("a", ("a.png", good)), ("b", ("b.png", good))]), 400, "/predict_batch"),
        (s.client.post("/predict", content=good, params={"outputs": "heat"}), 400, "unknown 'heat'"),
        (s.client.post("/predict", files={"file": ("x.png", good[:40])}), 422, "cannot read image x.png"),
    ]
    for r, status, words in cases:
        assert r.status_code == status and words in r.json()["detail"], (status, r.status_code, r.text)
    batch = s.client.post("/predict_batch", files=[("f", ("ok.png", good)), ("f", ("bad.txt", b"text"))]).json()
    assert batch["results"][0]["score"] == first.json()["score"]
    assert batch["results"][1]["status"] == 415 and batch["results"][1]["verdict"] == "unreadable"
    again = s.client.post("/predict", content=good)
    assert again.status_code == 200 and again.json()["score"] == first.json()["score"]
    assert s.client.get("/health").json()["status"] == "ok"


@pytest.mark.slow
def test_a_token_guards_every_endpoint_but_health(exports, serve):
    model = exports("padim")
    s = serve(methods.get("padim").path, "--model_dir", model, env={"ADSUITE_SERVE_TOKEN": "s3cret"})
    good = _png()
    assert s.client.post("/predict", content=good).status_code == 401
    assert s.client.get("/model").status_code == 401
    wrong = s.client.post("/predict", content=good, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    ok = s.client.post("/predict", content=good, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["score"] is not None
    assert s.client.get("/health").status_code == 200


@pytest.mark.slow
def test_sigterm_answers_the_requests_in_flight_then_exits_143(exports, serve):
    """A request waiting for its batch when SIGTERM arrives gets its answer; the service then ends with
    143; a full queue answers 503 meanwhile."""
    model = exports("padim")
    s = serve(methods.get("padim").path, "--model_dir", model, "--batch_size", "8", "--max_wait_ms", "2000",
              "--queue", "1")
    good, got = _png(), {}
    t = threading.Thread(target=lambda: got.setdefault("r", s.client.post("/predict", content=good)))
    t.start()
    time.sleep(0.8)   # the first request holds the only queue place for 2 s
    busy = s.client.post("/predict", content=good)
    assert busy.status_code == 503 and "--queue" in busy.json()["detail"] and busy.headers["retry-after"]
    code, err = s.stop(signal.SIGTERM)
    t.join(30)
    assert got["r"].status_code == 200 and got["r"].json()["score"] is not None
    assert code == 143 and "terminated" in err


def test_missing_packages_and_a_port_in_use_are_one_line(tmp_path):
    """Without FastAPI: what to install. A port another program holds, or an empty --token: one line, exit
    2, before any model loads. train.py --use_vdl True without VisualDL: what to install."""
    import socket
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "fastapi.py").write_text("raise ImportError('no fastapi here', name='fastapi')\n")
    (fake / "visualdl.py").write_text("raise ImportError('no visualdl here', name='visualdl')\n")
    env = dict(os.environ, PYTHONPATH=str(fake))
    padim = methods.get("padim").path
    r = subprocess.run([sys.executable, "serve.py", "--model_dir", str(tmp_path)], cwd=padim, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: serve.py needs FastAPI")
    assert "pip install -e .[serve]" in r.stderr
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "serve.py", "--model_dir", str(tmp_path), "--port", str(port)],
                           cwd=padim, capture_output=True, text=True)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "serve.py", "--model_dir", str(tmp_path), "--token", " "], cwd=padim,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--token is empty" in r.stderr
    r = subprocess.run([sys.executable, "train.py", "--data_dir", str(tmp_path), "--category", "brick",
                        "--output_dir", str(tmp_path / "out"), "--use_vdl", "True"], cwd=padim, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "pip install visualdl" in r.stderr and not (tmp_path / "out").exists()
