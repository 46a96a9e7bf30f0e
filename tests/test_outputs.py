"""The rules every writer follows in an output folder (adcommon.outputs): ours or new, never emptied,
apart from the inputs, one writer at a time, no folder left behind by a failed run."""
import json
import os
import subprocess
import sys

import pytest

from adbase import UserError, make_dirs, remove_created_dirs
from adcommon.outputs import MARKER, check_apart, claim, output_folder, owns


def _tree(root):
    """Every path below ``root`` with its bytes (None for folders)."""
    out = {}
    for d, dirs, files in os.walk(root):
        out.update({os.path.relpath(os.path.join(d, x), root): None for x in dirs})
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


def test_a_new_folder_is_made_and_marked(tmp_path):
    folder = tmp_path / "out" / "brick"
    assert claim(str(folder), "category", "--output_dir") == (True, True)
    assert json.loads((folder / MARKER).read_text())["kind"] == "category"
    assert owns(str(folder), "category") and not owns(str(folder), "export")
    assert claim(str(folder), "category", "--output_dir") == (False, False)   # ours: taken again as it is


def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path):
    d = tmp_path / "deploy"
    d.mkdir()
    (d / "README.txt").write_text("line 3")
    (d / "reference.png").write_bytes(b"png")
    before = _tree(tmp_path)
    with pytest.raises(UserError, match=r"holds files this suite did not write \(README.txt, reference.png\)"):
        claim(str(d), "export", "--save_dir")
    assert _tree(tmp_path) == before


def test_a_folder_of_another_kind_is_refused(tmp_path):
    d = tmp_path / "brick"
    claim(str(d), "category", "--output_dir")
    (d / "model.pdparams").write_bytes(b"x")
    with pytest.raises(UserError, match="is a training folder, not an exported model"):
        claim(str(d), "export", "--save_dir")
    legacy = tmp_path / "old" / "brick"   # written by an earlier version: no marker, known by its files
    legacy.mkdir(parents=True)
    for name in ("model.pdparams", "args.yml", "train.log"):
        (legacy / name).write_text("x")
    with pytest.raises(UserError, match="is a training folder, not an exported model"):
        claim(str(legacy), "export", "--save_dir")
    assert claim(str(legacy), "category", "--output_dir") == (False, True)   # adopted, and marked now


def test_another_tools_files_under_our_names_are_not_adopted(tmp_path):
    """A PaddleX export also holds inference.yml / inference.json / inference.pdiparams: not ours."""
    d = tmp_path / "paddlex_export"
    d.mkdir()
    (d / "inference.yml").write_text("Global:\n  model_name: PP-LCNet\n")
    (d / "inference.json").write_text("{}")
    with pytest.raises(UserError, match="did not write"):
        claim(str(d), "export", "--save_dir")
    lonely = tmp_path / "models" / "brick"   # someone's own model.pdparams, no log of ours beside it
    lonely.mkdir(parents=True)
    (lonely / "model.pdparams").write_bytes(b"x")
    with pytest.raises(UserError, match="did not write"):
        claim(str(lonely), "category", "--output_dir")


@pytest.mark.parametrize("sub, ours", [("vis", "good+000.png_vis.png"),   # val.py's pictures
                                        ("vdl", "vdlrecords.1796674146.log")])   # train.py --use_vdl's records
def test_a_subfolder_of_ours_with_other_files_is_refused(tmp_path, sub, ours):
    d = tmp_path / "brick"
    claim(str(d), "category", "--output_dir")
    (d / sub).mkdir()
    (d / sub / ours).write_bytes(b"p")
    claim(str(d), "category", "--output_dir")
    (d / sub / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=rf"did not write \({sub}\)"):
        claim(str(d), "category", "--output_dir")


@pytest.mark.parametrize("out, src, words", [
    ("imgs", "imgs", "is the input folder"),
    ("imgs/results", "imgs", "lies inside the input folder"),
    (".", "imgs", "contains the input folder"),
])
def test_an_output_folder_apart_from_the_inputs(tmp_path, out, src, words):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(UserError, match=words):
        check_apart(str(tmp_path / out), [str(tmp_path / src)], "--save_dir")
    check_apart(str(tmp_path / "elsewhere"), [str(tmp_path / "imgs")], "--save_dir")


def test_a_link_to_the_input_folder_is_the_input_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    os.symlink(tmp_path / "imgs", tmp_path / "link")
    with pytest.raises(UserError, match="is the input folder"):
        check_apart(str(tmp_path / "link"), [str(tmp_path / "imgs")], "--save_dir")


def test_an_output_name_that_is_not_utf8_is_refused(tmp_path):
    odd = os.path.join(str(tmp_path), os.fsdecode(b"out\xff"))
    with pytest.raises(UserError, match=r"out\\xff: the name is not valid UTF-8"):
        claim(odd, "results", "--save_dir")
    assert os.listdir(tmp_path) == []


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    folder = tmp_path / "new" / "a" / "b"
    with pytest.raises(RuntimeError):
        with output_folder(str(folder), "results", "--save_dir"):
            raise RuntimeError("boom")
    remove_created_dirs()   # run_cli does this: the parents this run made, now empty
    assert os.listdir(tmp_path) == []
    keep = tmp_path / "empty_before"
    keep.mkdir()
    with pytest.raises(RuntimeError):
        with output_folder(str(keep), "results", "--save_dir"):
            raise RuntimeError("boom")
    assert keep.is_dir() and os.listdir(keep) == []   # the user's empty folder stays, without our marker


def test_make_dirs_cleanup_keeps_what_holds_something(tmp_path):
    make_dirs(tmp_path / "x" / "y")
    make_dirs(tmp_path / "x" / "z")
    (tmp_path / "x" / "z" / "f").write_text("1")
    remove_created_dirs()
    assert sorted(os.listdir(tmp_path / "x")) == ["z"]


def test_a_second_writer_of_a_folder_is_refused_by_its_holder_name(tmp_path):
    folder = str(tmp_path / "res")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, time; sys.path.insert(0, {root!r}); from adcommon.outputs import output_folder\n"
            "with output_folder({folder!r}, 'results', '--save_dir'):\n    print('in', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code.format(root=root, folder=folder)], stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "in"
        with pytest.raises(UserError, match=f"is in use by .*pid {p.pid}"):
            with output_folder(folder, "results", "--save_dir"):
                pass
    finally:
        p.kill()
        p.wait()
    with output_folder(folder, "results", "--save_dir"):   # killed: the kernel dropped its lock
        pass


def test_a_stop_while_the_lock_is_taken_leaves_no_lock_file(tmp_path, monkeypatch):
    """Ctrl-C arriving between making .lock and entering the block that removes it once left the file
    behind: the signal is held back while the lock is taken and raised inside the block."""
    import signal

    from adcommon import outputs
    real = outputs._acquire

    def acquire_then_ctrl_c(folder):
        fd = real(folder)
        signal.raise_signal(signal.SIGINT)   # the handler runs now: during the acquisition
        return fd
    monkeypatch.setattr(outputs, "_acquire", acquire_then_ctrl_c)
    folder = tmp_path / "out"
    entered = []
    with pytest.raises(KeyboardInterrupt):
        with outputs.folder_lock(str(folder)):
            entered.append(True)
    assert not entered and not (folder / outputs.LOCK).exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
