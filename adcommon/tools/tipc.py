"""Check a paper folder's TIPC config, run its lite_train_lite_infer chain and read its results log.

All four folders use one 51-line ("format A") config layout and the runner in scripts/tipc/. The TIPC
scripts never fail themselves: success is only in test_tipc/output/<model>/results_python.log, one
"Run successfully/failed with command - ..." line per step (docs/reference.md, TIPC).
"""
import os
import re
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_results(path):
    """Lines of a results_python.log without colour codes."""
    with open(path, encoding="utf-8") as f:
        return [ANSI.sub("", line).strip() for line in f if line.strip()]


# 0-based config line -> the script that receives its "--key:value" (format A, scripts/tipc/)
KEY_OWNERS = {4: "train", 6: "train", 7: "train", 8: "train", 9: "train", 27: "export_model", 28: "export_model",
              **{i: "infer" for i in range(40, 51)}}
COMMAND_LINES = {15: "train", 23: "val", 29: "export_model", 39: "infer"}   # lines holding a fixed command


def read_config(folder, config):
    """The 51 lines of a format-A config (ValueError otherwise)."""
    with open(os.path.join(folder, config), encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) != 51 or not lines[0].startswith("====") or not lines[1].startswith("model_name:"):
        raise ValueError(f"{config}: not a 51-line format-A TIPC config")
    return lines


def _flags(folder, script):
    if script == "infer":
        from adcommon.deploy.infer import build_infer_parser
        parser = build_infer_parser("TIPC check")
    else:
        from adcommon.tools.testing import load_script
        parser = load_script(os.path.join(folder, f"{script}.py")).build_parser()
    return {s for a in parser._actions for s in a.option_strings}


def config_errors(folder, config):
    """Every key and fixed argument of the config that is not a flag of the script that receives it."""
    lines = read_config(folder, config)
    flags = {}
    errors = []
    for i, script in KEY_OWNERS.items():
        key = lines[i].split(":", 1)[0]
        if key.startswith("--") and key not in flags.setdefault(script, _flags(folder, script)):
            errors.append(f"line {i + 1}: {key} is not a flag of {script}.py")
    for i, script in COMMAND_LINES.items():
        value = lines[i].split(":", 1)[1]
        if value == "null":
            continue
        words = value.split()
        if words[0] != f"{script}.py":
            errors.append(f"line {i + 1}: expected {script}.py, got {words[0]}")
        for key in re.findall(r"(--[a-z_]+)", value):
            if key not in flags.setdefault(script, _flags(folder, script)):
                errors.append(f"line {i + 1}: {key} is not a flag of {script}.py")
    return errors


def expected_results(folder, config, cuda):
    """How many results lines a complete lite chain writes: per training device, train + eval + export
    + the inference matrix (CPU: oneDNN x threads x batch x precision; GPU: TensorRT x precision x batch)."""
    lines = read_config(folder, config)
    n = lambda i: len(lines[i].split(":", 1)[1].split("|"))  # noqa: E731
    devices = lines[4].split(":", 1)[1].split("|")
    trainings = sum(1 for d in devices if d == "cpu" or cuda)
    per = (2 if lines[23].split(":", 1)[1] != "null" else 1) + 1            # train (+ eval) + export
    per += n(41) * n(42) * n(43) * n(45)
    per += n(44) * n(45) * n(43) if cuda else 0
    return trainings * per


def run_lite_chain(folder, config, model_name, mode="lite_train_lite_infer", timeout=1800):
    """prepare.sh + test_train_inference_python.sh in ``folder``; returns (result lines, failed lines, output)."""
    env = dict(os.environ, PYTHON=sys.executable)
    out = []
    for script in ("prepare.sh", "test_train_inference_python.sh"):
        r = subprocess.run(["bash", os.path.join("test_tipc", script), config, mode], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=timeout)
        out.append(r.stdout[-3000:] + r.stderr[-3000:])
        if r.returncode != 0:
            raise RuntimeError(f"{script} exited {r.returncode}:\n{out[-1]}")
    lines = read_results(os.path.join(folder, "test_tipc", "output", model_name, "results_python.log"))
    failed = [line for line in lines if not line.startswith("Run successfully")]
    return lines, failed, "\n".join(out)


def check_lite_chain(folder, config, model_name):
    """What every folder's TIPC test asserts about its lite chain, run as users run it: no failed
    command, one result line per command the config implies (adcommon.tools.tipc.expected_results), and
    inference run with oneDNN both off and on."""
    import paddle
    lines, failed, out = run_lite_chain(folder, config, model_name)
    assert not failed, "\n".join(failed) + out
    cuda = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    assert len(lines) == expected_results(folder, config, cuda), "\n".join(lines)
    assert any("--use_mkldnn=False" in ln for ln in lines) and any("--use_mkldnn=True" in ln for ln in lines)
