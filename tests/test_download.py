"""shared_data.download against a local HTTP server and hand-made archives (offline, < 10 s)."""
import hashlib
import http.server
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from adbase import UserError, run_cli
from shared_data import download
from shared_data.download import download_file, main, safe_extract, sha256sum

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- fixtures: archive and server

def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _category_files(cat, seed):
    """{relative path: bytes} of a tiny MVTec category: 3 train, 2 test good, 2 kinds x 2 defects + masks."""
    rng = np.random.default_rng(seed)
    files = {}
    for i in range(3):
        files[f"{cat}/train/good/{i:03d}.png"] = _png_bytes(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    for i in range(2):
        files[f"{cat}/test/good/{i:03d}.png"] = _png_bytes(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    for kind in ("crack", "hole"):
        for i in range(2):
            files[f"{cat}/test/{kind}/{i:03d}.png"] = _png_bytes(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
            m = np.zeros((8, 8), np.uint8)
            m[2:5, i:i + 3] = 255
            files[f"{cat}/ground_truth/{kind}/{i:03d}_mask.png"] = _png_bytes(m)
    return files


def _tar_xz(path, files, extra=()):
    """Write ``files`` ({name: bytes}) plus ``extra`` TarInfo members (appended last) as a .tar.xz."""
    with tarfile.open(path, "w:xz") as tf:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            tf.addfile(ti, io.BytesIO(files[name]))
        for ti, data in extra:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return str(path)


@pytest.fixture(scope="module")
def mvtec_files():
    files = {"license.txt": b"CC BY-NC-SA 4.0\n", "readme.txt": b"tiny test archive\n"}
    files.update(_category_files("bottle", 0))
    files.update(_category_files("carpet", 1))
    return files


@pytest.fixture
def archive(tmp_path, mvtec_files):
    """(path, sha256) of a tiny archive with bottle/ and carpet/, alone in its own folder."""
    (tmp_path / "src").mkdir()
    path = _tar_xz(tmp_path / "src" / "mvtec_anomaly_detection.tar.xz", mvtec_files)
    return path, sha256sum(path)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.payload at any path; honours `Range: bytes=N-` unless server.ignore_range.

    server.cut_first=K makes the first request send only K bytes of its body and then hang up.
    """

    def do_GET(self):
        srv = self.server
        srv.ranges.append(self.headers.get("Range"))
        if srv.payload is None:
            self.send_error(404)
            return
        data, start = srv.payload, 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not srv.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.cut_first is not None and len(srv.ranges) == 1:
            body = body[:srv.cut_first]  # HTTP/1.0: the server closes the socket after this short body
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload, srv.ranges, srv.ignore_range, srv.cut_first = None, [], False, None
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/mvtec_anomaly_detection.tar.xz"
    yield srv
    srv.shutdown()
    srv.server_close()


def _serve(server, path):
    with open(path, "rb") as f:
        server.payload = f.read()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _cli_error(argv, capsys):
    """Run the CLI in-process as run_cli does; return (exit code, stderr lines)."""
    with pytest.raises(SystemExit) as e:
        run_cli(main, argv)
    err = capsys.readouterr().err
    return e.value.code, err.splitlines()


def _listing(d):
    out = []
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(root, n), d))
    return sorted(out)


# ---------------------------------------------------------------- download + extract

def test_sha256sum_matches_hashlib(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc" * 1000)
    assert sha256sum(p) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_full_download_extracts_requested_categories(tmp_path, archive, server, mvtec_files):
    path, sha = archive
    _serve(server, path)
    data = tmp_path / "data"
    assert main(["--data_dir", str(data), "--url", server.url, "--sha256", sha, "--categories", "bottle"]) == 0
    # Only bottle, byte-identical; the archive, its folder and the temp dir are gone.
    assert os.listdir(data) == ["bottle"]
    for name, content in mvtec_files.items():
        if name.startswith("bottle/"):
            assert (data / name).read_bytes() == content
    assert download.layout_problem(str(data / "bottle")) is None
    assert server.ranges == [None]


def test_keep_archive_and_comma_separated_categories(tmp_path, archive, server):
    path, sha = archive
    _serve(server, path)
    data = tmp_path / "data"
    assert main(["--data_dir", str(data), "--url", server.url, "--sha256", sha,
                 "--categories", "bottle,carpet", "--keep_archive"]) == 0
    assert sorted(os.listdir(data)) == [".download", "bottle", "carpet"]
    assert os.listdir(data / ".download") == ["mvtec_anomaly_detection.tar.xz"]


def test_resume_after_cut_connection(tmp_path, archive, server):
    path, sha = archive
    _serve(server, path)
    server.cut_first = 1000
    dest = tmp_path / "dl" / "a.tar.xz"
    with pytest.raises(UserError, match="interrupted"):
        download_file(server.url, dest, sha256=sha, retries=0)
    assert not dest.exists()
    assert os.path.getsize(str(dest) + ".part") == 1000
    # Second run: asks for the rest only and ends with the verified file.
    assert download_file(server.url, dest, sha256=sha, retries=0) == str(dest)
    assert server.ranges == [None, "bytes=1000-"]
    assert sha256sum(dest) == sha
    assert not os.path.exists(str(dest) + ".part")


def test_cut_connection_is_resumed_within_one_run(tmp_path, archive, server):
    path, sha = archive
    _serve(server, path)
    server.cut_first = 500
    data = tmp_path / "data"
    assert main(["--data_dir", str(data), "--url", server.url, "--sha256", sha, "--categories", "carpet"]) == 0
    assert server.ranges == [None, "bytes=500-"]
    assert download.layout_problem(str(data / "carpet")) is None


def test_server_ignoring_range_restarts_from_zero(tmp_path, archive, server):
    path, sha = archive
    _serve(server, path)
    server.ignore_range = True
    dest = tmp_path / "a.tar.xz"
    with open(str(dest) + ".part", "wb") as f:
        f.write(b"stale bytes that must not end up in the file")
    download_file(server.url, dest, sha256=sha)
    assert server.ranges == ["bytes=44-"]
    assert sha256sum(dest) == sha


def test_416_means_part_is_complete(tmp_path, archive, server):
    path, sha = archive
    _serve(server, path)
    dest = tmp_path / "a.tar.xz"
    with open(path, "rb") as f, open(str(dest) + ".part", "wb") as g:
        g.write(f.read())
    download_file(server.url, dest, sha256=sha)
    assert server.ranges == [f"bytes={len(server.payload)}-"]
    assert sha256sum(dest) == sha


def test_checksum_mismatch_deletes_file_and_extracts_nothing(tmp_path, archive, server, capsys):
    path, _ = archive
    _serve(server, path)
    data = tmp_path / "data"
    code, err = _cli_error(["--data_dir", str(data), "--url", server.url, "--sha256", "0" * 64,
                            "--categories", "bottle"], capsys)
    assert code != 0
    assert len(err) == 1 and err[0].startswith("error: SHA-256 mismatch")
    assert not data.exists()   # the bad file was deleted, nothing extracted, and no empty folder left


def test_truncated_archive_is_one_error(tmp_path, archive, capsys):
    path, _ = archive
    bad = tmp_path / "cut.tar.xz"
    with open(path, "rb") as f:
        bad.write_bytes(f.read()[: os.path.getsize(path) // 2])
    data = tmp_path / "data"
    code, err = _cli_error(["--data_dir", str(data), "--archive", str(bad), "--sha256", "none",
                            "--categories", "bottle", "carpet"], capsys)
    assert code != 0
    assert len(err) == 1 and "truncated" in err[0]
    assert _listing(data) == []
    assert bad.exists()  # the user's file is never deleted


def test_truncated_download_is_deleted(tmp_path, archive, server, capsys):
    path, _ = archive
    with open(path, "rb") as f:
        server.payload = f.read()[:3000]
    data = tmp_path / "data"
    code, err = _cli_error(["--data_dir", str(data), "--url", server.url, "--sha256", "none",
                            "--categories", "bottle"], capsys)
    assert code != 0 and len(err) == 1 and "truncated" in err[0]
    assert not data.exists()   # a useless download is not kept, nor the folders made for it


def _evil(kind):
    if kind == "dotdot":
        ti = tarfile.TarInfo("../evil.txt")
    elif kind == "nested_dotdot":
        ti = tarfile.TarInfo("bottle/../../evil.txt")
    elif kind == "absolute":
        ti = tarfile.TarInfo("/tmp/evil-shared-data-test.txt")
    elif kind == "symlink":
        ti = tarfile.TarInfo("bottle/train/good/evil.png")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../../evil.txt"
        return ti, None
    elif kind == "hardlink":
        ti = tarfile.TarInfo("bottle/train/good/evil.png")
        ti.type, ti.linkname = tarfile.LNKTYPE, "bottle/train/good/000.png"
        return ti, None
    elif kind == "fifo":
        ti = tarfile.TarInfo("bottle/train/good/evil")
        ti.type = tarfile.FIFOTYPE
        return ti, None
    ti.size = 4
    return ti, b"evil"


@pytest.mark.parametrize("kind", ["dotdot", "nested_dotdot", "absolute", "symlink", "hardlink", "fifo"])
def test_unsafe_members_are_rejected(tmp_path, mvtec_files, kind):
    # The bad member comes last, after bottle's files were already extracted into the temp dir.
    path = _tar_xz(tmp_path / "evil.tar.xz", mvtec_files, extra=[_evil(kind)])
    data = tmp_path / "sub" / "data"
    with pytest.raises(UserError, match="unsafe archive member") as e:
        safe_extract(path, data, ["bottle"])
    assert "\n" not in str(e.value)
    assert _listing(data) == []
    assert not (tmp_path / "sub" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not os.path.exists("/tmp/evil-shared-data-test.txt")


def test_layout_is_checked_before_anything_lands(tmp_path, mvtec_files):
    files = {k: v for k, v in mvtec_files.items() if k != "carpet/ground_truth/hole/001_mask.png"}
    path = _tar_xz(tmp_path / "nomask.tar.xz", files)
    data = tmp_path / "data"
    with pytest.raises(UserError, match=r"carpet/ .*missing ground_truth/hole/001_mask.png"):
        safe_extract(path, data, ["bottle", "carpet"])
    assert _listing(data) == []  # bottle was fine but is not left behind either


def test_category_missing_from_archive(tmp_path, archive):
    path, _ = archive
    with pytest.raises(UserError, match="has no screw/ folder"):
        safe_extract(path, tmp_path / "data", ["bottle", "screw"])
    assert _listing(tmp_path / "data") == []


def test_no_server_is_one_line_with_archive_hint(tmp_path):
    # Through a real subprocess: exit code and a single stderr line, no traceback.
    url = f"http://127.0.0.1:{_free_port()}/mvtec_anomaly_detection.tar.xz"
    r = subprocess.run([sys.executable, "-m", "shared_data.download", "--data_dir", str(tmp_path / "data"),
                        "--url", url, "--categories", "bottle", "--timeout", "5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: could not reach 127.0.0.1") and "--archive" in lines[0]
    assert not os.path.exists(tmp_path / "data" / "bottle")


def test_http_404_is_one_line(tmp_path, server, capsys):
    code, err = _cli_error(["--data_dir", str(tmp_path / "data"), "--url", server.url,
                            "--categories", "bottle"], capsys)
    assert code != 0 and len(err) == 1 and "HTTP 404" in err[0] and "--archive" in err[0]


def test_second_run_is_a_no_op(tmp_path, archive, server, capsys):
    path, sha = archive
    _serve(server, path)
    data = tmp_path / "data"
    argv = ["--data_dir", str(data), "--url", server.url, "--sha256", sha, "--categories", "bottle", "carpet"]
    assert main(argv) == 0
    n = len(server.ranges)
    capsys.readouterr()
    assert main(argv) == 0
    assert "already present" in capsys.readouterr().out
    assert len(server.ranges) == n  # the server was not contacted again


def test_partial_category_folder_is_refused_before_download(tmp_path, server, capsys):
    (tmp_path / "data" / "bottle" / "train" / "good").mkdir(parents=True)
    code, err = _cli_error(["--data_dir", str(tmp_path / "data"), "--url", server.url,
                            "--categories", "bottle"], capsys)
    assert code != 0 and len(err) == 1 and "incomplete" in err[0]
    assert server.ranges == []


def test_archive_option_verifies_and_keeps_user_file(tmp_path, archive, mvtec_files):
    path, sha = archive
    data = tmp_path / "data"
    assert main(["--data_dir", str(data), "--archive", path, "--sha256", sha, "--categories", "carpet"]) == 0
    assert sorted(os.listdir(data)) == ["carpet"]
    assert (data / "carpet/ground_truth/crack/000_mask.png").read_bytes() == \
        mvtec_files["carpet/ground_truth/crack/000_mask.png"]
    assert os.path.isfile(path)
    # A folder holding the archive (AIStudio mounts datasets as folders) works too.
    assert main(["--data_dir", str(data), "--archive", os.path.dirname(path), "--sha256", sha,
                 "--categories", "bottle"]) == 0
    assert sorted(os.listdir(data)) == ["bottle", "carpet"]


def test_archive_option_with_wrong_hash(tmp_path, archive, capsys):
    path, _ = archive
    code, err = _cli_error(["--data_dir", str(tmp_path / "data"), "--archive", path, "--categories", "bottle"],
                           capsys)
    assert code != 0 and len(err) == 1 and "--sha256 none" in err[0]
    assert os.path.isfile(path)
    assert not os.path.exists(tmp_path / "data" / "bottle")


def test_unknown_category_and_bad_hash_argument(tmp_path, capsys):
    code, err = _cli_error(["--data_dir", str(tmp_path), "--categories", "bottle", "sofa"], capsys)
    assert code != 0 and len(err) == 1 and "unknown category 'sofa'" in err[0]
    code, err = _cli_error(["--data_dir", str(tmp_path), "--sha256", "abc"], capsys)
    assert code != 0 and len(err) == 1 and "64 hex digits" in err[0]


def test_not_enough_disk_space(tmp_path, archive, server, monkeypatch):
    path, sha = archive
    _serve(server, path)

    class Usage:
        free = 10

    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: Usage())
    with pytest.raises(UserError, match="not enough free space"):
        download_file(server.url, tmp_path / "a.tar.xz", sha256=sha)
