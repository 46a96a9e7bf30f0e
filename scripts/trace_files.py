"""Which of the repository's files a command runs code from: the count the docs give for an image's way
through the code, measured instead of written.

    python scripts/trace_files.py STFPM-Paddle train.py --data_dir data/synthetic --category brick \
        --backbone efficientnet_lite0 --image_size 64 --epochs 1 --val True --output_dir /tmp/trace

Runs ``<folder>/<script>`` in this process, from that folder, with the given flags, and records every
Python file of the repository in which a function ran (``sys.setprofile``: calls, not lines, so it
costs little). Prints the count and the files, the paper folder's first. Files of the standard
library and of installed packages are not counted.
"""
import os
import runpy
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ours(rel):
    """A file of the repository, not of a virtual environment kept inside it (.venv, site-packages)."""
    parts = rel.split(os.sep)
    return not any(p.startswith(".") or p in ("site-packages", "dist-packages") for p in parts)


def traced_files(folder, script, argv):
    """The repository's .py files (relative paths, sorted) whose code ran during the script."""
    seen, other = set(), set()
    root = ROOT + os.sep

    def profile(frame, event, arg):
        if event == "call":
            f = frame.f_code.co_filename
            if f in seen or f in other:
                return
            (seen if f.startswith(root) and f.endswith(".py") and _ours(f[len(root):]) else other).add(f)
    cwd, old_argv, old_path = os.getcwd(), sys.argv, list(sys.path)
    here = os.path.join(ROOT, folder)
    os.chdir(here)
    sys.argv = [script] + list(argv)
    sys.path[:0] = [here, ROOT]
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        runpy.run_path(os.path.join(here, script), run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        os.chdir(cwd)
        sys.argv, sys.path[:] = old_argv, old_path
    rel = sorted(os.path.relpath(f, ROOT) for f in seen)
    return sorted(rel, key=lambda p: (not p.startswith(folder + os.sep), p))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    folder, script = argv[0].rstrip("/"), argv[1]
    if not os.path.isfile(os.path.join(ROOT, folder, script)):
        print(f"error: no {script} in {folder}", file=sys.stderr)
        return 2
    files = traced_files(folder, script, argv[2:])
    print(f"{len(files)} files of the repository ran code for {folder}/{script}:")
    for f in files:
        print(f"  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
