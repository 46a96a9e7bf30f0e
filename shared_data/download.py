"""Download, verify and safely extract the MVTec AD archive (docs/design.md#data).

    python -m shared_data.download --data_dir data/mvtec [--categories bottle carpet]
    python -m shared_data.download --data_dir data/mvtec --archive /path/mvtec_anomaly_detection.tar.xz

Standard library only (plus tqdm for the progress bar), so it runs before paddle is installed.
"""
import errno
import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import PurePosixPath

from tqdm import tqdm

from adbase import ArgumentParser, UserError, make_dirs, make_temp_dir, run_cli

from .categories import IMAGE_EXTENSIONS, MVTEC_ARCHIVE_NAME, MVTEC_CATEGORIES, MVTEC_SHA256, MVTEC_URL

__all__ = ["download_file", "sha256sum", "safe_extract", "layout_problem", "main"]

MVTEC_PAGE = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
MANUAL_HINT = (f"download {MVTEC_ARCHIVE_NAME} from {MVTEC_PAGE} (the licence must be accepted there) "
               "and pass --archive FILE")
# tarfile.data_filter exists from Python 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 / 3.12.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
# What a damaged archive raises while being read; the decompressors' errors carry no errno.
_CORRUPT_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile)


class CorruptArchive(UserError):
    """The archive cannot be read to the end (truncated or not a tar archive)."""


class _Interrupted(Exception):
    """The connection dropped mid-body; the .part file is kept so the next attempt resumes."""


def sha256sum(path, progress=False):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True,
                                      unit_divisor=1024, desc="sha256", disable=not progress,
                                      file=sys.stdout) as bar:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _host(url):
    return urllib.parse.urlsplit(url).netloc or url


def _disk_full(where):
    return UserError(f"no space left on the device holding {where}; free some space (MVTec AD needs about "
                     "5 GB for the archive and 5 GB extracted) and run the same command again")


def _fetch(url, part, chunk, timeout):
    """One HTTP request that appends to ``part`` from its current size. Raises _Interrupted on a cut."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return  # nothing left past `offset`: the .part is already whole; the hash decides
        raise UserError(f"{url} answered HTTP {e.code} {e.reason}; the link may have moved: pass --url NEW_URL, "
                        f"or {MANUAL_HINT}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(f"could not reach {_host(url)} ({reason}); check the network and run again "
                        f"(the download resumes), or {MANUAL_HINT}") from None

    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        mode = "ab"
        if resp.status == 206:
            # Trust the body only if it starts where our file ends.
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                os.remove(part)
                raise _Interrupted("the server resumed at the wrong offset; restarting from zero")
        else:
            # A 200 to a Range request means the server ignores ranges: this body is the whole file.
            if offset:
                print(f"{_host(url)} does not resume downloads; starting again from zero")
            offset, mode = 0, "wb"
        if length is not None:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(part))).free
            if free < length:
                raise UserError(f"not enough free space for {os.path.basename(part)}: need "
                                f"{length / 2**30:.2f} GiB, {free / 2**30:.2f} GiB free in {os.path.dirname(part)}")
        got = 0
        try:
            with open(part, mode) as f, tqdm(total=None if length is None else offset + length, initial=offset,
                                             unit="B", unit_scale=True, unit_divisor=1024, file=sys.stdout,
                                             desc=os.path.basename(part)[:-5],
                                             mininterval=0.1 if sys.stdout.isatty() else 5) as bar:
                while True:
                    try:
                        buf = resp.read(chunk)
                    except (http.client.HTTPException, socket.timeout, OSError) as e:  # reset, timeout, ...
                        raise _Interrupted(f"{type(e).__name__}: {e}") from None
                    if not buf:
                        break
                    f.write(buf)
                    got += len(buf)
                    bar.update(len(buf))
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise _disk_full(part) from None
            raise UserError(f"cannot write {part}: {e.strerror or e}") from None
    if length is not None and got < length:
        # http.client returns b"" on an early close instead of raising; count the bytes ourselves.
        raise _Interrupted(f"connection closed after {offset + got} of {offset + length} bytes")


def download_file(url, dest, sha256=None, chunk=1 << 20, timeout=60, retries=3):
    """Stream ``url`` to ``dest`` through ``dest.part``, resuming a partial file with an HTTP Range request.

    The .part is renamed to ``dest`` only when complete and (if ``sha256`` is given) verified; a file that
    fails the check is deleted. A dropped connection is resumed up to ``retries`` times. Returns ``dest``.
    """
    dest = os.fspath(dest)
    part = dest + ".part"
    make_dirs(os.path.dirname(os.path.abspath(dest)))
    if os.path.exists(dest):
        if sha256 is None or sha256sum(dest, progress=True) == sha256.lower():
            print(f"using the already downloaded {dest}")
            return dest
        os.remove(dest)  # a stale or foreign file under our name; fetch a fresh one
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, chunk, timeout)
            break
        except _Interrupted as e:
            if attempt == retries:
                raise UserError(f"download of {url} interrupted ({e}); run the same command again to resume "
                                f"from {os.path.getsize(part) if os.path.exists(part) else 0} bytes") from None
            print(f"download interrupted ({e}); resuming, attempt {attempt + 2} of {retries + 1}")
            time.sleep(0.5 * (attempt + 1))
    if sha256 is not None:
        print(f"verifying SHA-256 of {part}")
        actual = sha256sum(part, progress=True)
        if actual != sha256.lower():
            os.remove(part)
            raise UserError(f"SHA-256 mismatch for {os.path.basename(dest)} from {_host(url)}: expected "
                            f"{sha256.lower()}, got {actual}; the file was deleted. Run again to re-download, "
                            f"or {MANUAL_HINT}")
    os.replace(part, dest)
    return dest


def _images(folder):
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS))


def layout_problem(cat_dir):
    """None if ``cat_dir`` is a complete MVTec category, else a short reason.

    Needs train/good images, test/good plus at least one defect folder with images, and
    ground_truth/<kind>/<stem>_mask.png for every defective test image.
    """
    if not _images(os.path.join(cat_dir, "train", "good")):
        return "no images in train/good"
    test = os.path.join(cat_dir, "test")
    if not _images(os.path.join(test, "good")):
        return "no images in test/good"
    kinds = sorted(k for k in os.listdir(test) if k != "good" and os.path.isdir(os.path.join(test, k)))
    kinds = [k for k in kinds if _images(os.path.join(test, k))]
    if not kinds:
        return "no defect folder with images in test/"
    for kind in kinds:
        for name in _images(os.path.join(test, kind)):
            mask = os.path.join("ground_truth", kind, os.path.splitext(name)[0] + "_mask.png")
            if not os.path.isfile(os.path.join(cat_dir, mask)):
                return f"missing {mask} for test/{kind}/{name}"
    return None


def _member_category(name):
    """The category folder a tar member lies under (None for top-level files like license.txt).

    Raises UserError for a member that could write outside the target folder.
    """
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UserError(f"unsafe archive member {name!r} (absolute path); refusing to extract")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise UserError(f"unsafe archive member {name!r} (contains '..'); refusing to extract")
    return parts[0] if len(parts) > 1 else None


def _check_member(m):
    cat = _member_category(m.name)
    if m.issym() or m.islnk():
        raise UserError(f"unsafe archive member {m.name!r} (link to {m.linkname!r}); refusing to extract")
    if not (m.isfile() or m.isdir()):
        raise UserError(f"unsafe archive member {m.name!r} (device, fifo or other special file); "
                        "refusing to extract")
    return cat


def safe_extract(archive, data_dir, categories):
    """Extract ``<category>/`` of each requested category from ``archive`` into ``data_dir``.

    Every member is checked (no absolute paths, '..', links or special files; tarfile's "data" filter on
    top where Python has it). Extraction goes to a temp dir inside ``data_dir``; each category is
    layout-checked and then renamed into place, so a failure leaves nothing half-extracted.
    """
    archive, data_dir = os.fspath(archive), os.fspath(data_dir)
    categories = list(dict.fromkeys(categories))
    if not os.path.isfile(archive):
        raise UserError(f"archive not found: {archive}")
    for c in categories:
        if os.path.exists(os.path.join(data_dir, c)) and os.listdir(os.path.join(data_dir, c)):
            raise UserError(f"{os.path.join(data_dir, c)} already exists; remove it first")
    make_dirs(data_dir)
    tmp = make_temp_dir("extract", data_dir)
    wanted = set(categories)
    seen = set()
    try:
        try:
            # Stream mode reads the .xz once; random access would decompress it again for every backward seek.
            with tarfile.open(archive, "r|*", bufsize=1 << 20) as tf:
                for m in tqdm(tf, desc="extracting", unit=" files", file=sys.stdout,
                              mininterval=0.1 if sys.stdout.isatty() else 5):
                    cat = _check_member(m)  # checked even when skipped: a hostile archive is rejected whole
                    if cat not in wanted:
                        continue
                    seen.add(cat)
                    if HAS_DATA_FILTER:
                        tf.extract(m, tmp, filter="data")
                    else:
                        # Our checks above already reject what the filter would; skipping attributes keeps
                        # an odd read-only directory mode from blocking the files that follow.
                        tf.extract(m, tmp, set_attrs=False)
        except _CORRUPT_ERRORS as e:
            raise CorruptArchive(f"{archive} is truncated or not a valid tar archive ({type(e).__name__}: {e}); "
                                 "download it again") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise _disk_full(data_dir) from None
            if e.errno is None:  # bz2 and friends report bad data as a bare OSError
                raise CorruptArchive(f"{archive} is truncated or corrupt ({e}); download it again") from None
            raise UserError(f"cannot extract into {data_dir}: {e.strerror or e}") from None
        missing = [c for c in categories if c not in seen]
        if missing:
            raise UserError(f"{archive} has no {', '.join(c + '/' for c in missing)} folder; is it the MVTec AD "
                            "archive?")
        for c in categories:
            problem = layout_problem(os.path.join(tmp, c))
            if problem:
                raise UserError(f"{c}/ in {archive} is not in MVTec layout ({problem}); nothing was extracted")
        for c in categories:
            target = os.path.join(data_dir, c)
            if os.path.isdir(target):
                os.rmdir(target)  # empty (checked above); rename cannot replace a directory portably
            os.rename(os.path.join(tmp, c), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [os.path.join(data_dir, c) for c in categories]


def _parse_categories(values):
    if not values:
        return list(MVTEC_CATEGORIES)
    # Accept both `--categories a b` and the shell scripts' `--categories a,b`.
    cats = [c.strip() for v in values for c in v.split(",") if c.strip()]
    if "all" in cats:
        return list(MVTEC_CATEGORIES)
    for c in cats:
        if c not in MVTEC_CATEGORIES:
            raise UserError(f"unknown category {c!r}; choose from: {', '.join(MVTEC_CATEGORIES)}")
    return list(dict.fromkeys(cats))


def _parse_sha256(value):
    if value.lower() == "none":
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise UserError(f"--sha256 must be 64 hex digits or 'none', got {value!r}")
    return value.lower()


def build_parser():
    p = ArgumentParser(prog="python -m shared_data.download",
                                description="Download, verify and extract MVTec AD into DATA_DIR/<category>/.")
    p.add_argument("--data_dir", required=True, help="where the category folders go")
    p.add_argument("--categories", nargs="+", default=None,
                   help="categories to extract (space or comma separated; default: all 15)")
    p.add_argument("--url", default=MVTEC_URL, help="archive URL (default: the official MVTec link)")
    p.add_argument("--sha256", default=MVTEC_SHA256, help="expected SHA-256 of the archive, or 'none' to skip")
    p.add_argument("--archive", default=None,
                   help="use this already downloaded archive (or a folder holding it) instead of downloading")
    p.add_argument("--keep_archive", action="store_true", help="keep the downloaded archive in DATA_DIR/.download")
    p.add_argument("--timeout", type=float, default=60, help="network timeout in seconds")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    categories = _parse_categories(args.categories)
    sha256 = _parse_sha256(args.sha256)
    data_dir = args.data_dir
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise UserError(f"--data_dir {data_dir} is a file, not a folder")

    # Decide what is missing before touching the network: a complete copy means no download at all.
    missing = _missing_categories(data_dir, categories)
    if not missing:
        print(f"MVTec AD already present in {data_dir}: {', '.join(categories)}")
        return 0
    present = [c for c in categories if c not in missing]
    if present:
        print(f"already present: {', '.join(present)}")

    if args.archive:
        archive, downloaded = _given_archive(args.archive, sha256), False
    else:
        name = os.path.basename(urllib.parse.urlsplit(args.url).path) or MVTEC_ARCHIVE_NAME
        archive = os.path.join(data_dir, ".download", name)
        print(f"downloading {args.url}\n  -> {archive}")
        download_file(args.url, archive, sha256=sha256, timeout=args.timeout)
        downloaded = True

    print(f"extracting {', '.join(missing)} from {archive}")
    try:
        safe_extract(archive, data_dir, missing)
    except CorruptArchive:
        if downloaded:
            os.remove(archive)  # useless; the next run must fetch it again rather than trip over it
        raise
    if downloaded and not args.keep_archive:
        _remove_download(archive)
    print(f"done: {', '.join(os.path.join(data_dir, c) for c in missing)}")
    return 0


def _missing_categories(data_dir, categories):
    """The categories with no folder (or an empty one) in ``data_dir``; an incomplete folder is an error."""
    missing = []
    for c in categories:
        d = os.path.join(data_dir, c)
        if not os.path.exists(d) or (os.path.isdir(d) and not os.listdir(d)):
            missing.append(c)
            continue
        problem = layout_problem(d)
        if problem:
            raise UserError(f"{d} exists but is incomplete ({problem}); remove it and run again")
    return missing


def _given_archive(archive, sha256):
    """The path of the --archive file (a folder holding it: MVTEC_ARCHIVE_NAME in it), its SHA-256 checked
    unless ``sha256`` is None."""
    if os.path.isdir(archive):
        archive = os.path.join(archive, MVTEC_ARCHIVE_NAME)
    if not os.path.isfile(archive):
        raise UserError(f"archive not found: {archive}")
    if sha256 is not None:
        print(f"verifying SHA-256 of {archive}")
        actual = sha256sum(archive, progress=True)
        if actual != sha256:
            # Never delete the user's own file; say how to bypass the check if they trust it.
            raise UserError(f"{archive} does not match the expected SHA-256 (expected {sha256}, got {actual}); "
                            "it may be incomplete or a different file (pass --sha256 none to skip the check)")
    return archive


def _remove_download(archive):
    """Delete the downloaded archive, and its .download folder when nothing else is in it."""
    os.remove(archive)
    try:
        os.rmdir(os.path.dirname(archive))
    except OSError:
        pass  # holds something else (another .part); leave it

if __name__ == "__main__":
    run_cli(main)
