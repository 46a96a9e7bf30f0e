"""Where a result comes from: the machine and the code's commit, recorded in metrics.json and the benchmarks."""
import os
import platform


def machine():
    import paddle
    return {"python": platform.python_version(), "paddle": paddle.__version__, "cpu": cpu_name(),
            "cores": os.cpu_count(), "device": paddle.device.get_device()}


def git_commit():
    """Short commit of the code that produced a result ('+dirty' with local changes), or None."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                           timeout=10)
        if c.returncode != 0:
            return None
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
        return c.stdout.strip() + ("+dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
