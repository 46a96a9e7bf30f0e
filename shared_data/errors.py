"""One-line user errors and atomic file writes shared by every command-line entry point."""
import contextlib
import os
import sys
import tempfile


class UserError(Exception):
    """A problem the user can fix (bad path, unknown category, no network, corrupt file).

    Command-line entry points print it as one line and exit with code 2, no traceback.
    """


def run_cli(main, argv=None):
    """Call ``main(argv)``; turn UserError (and Ctrl-C) into one line on stderr and a non-zero exit."""
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the extension (``.x.tmp123.png``) so writers that infer the format
    from it (cv2, matplotlib, paddle.save) still work.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=d)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
