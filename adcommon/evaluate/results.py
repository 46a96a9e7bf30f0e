"""The results folder of predict.py / infer.py, written as the images are scored (memory does not grow
with their number) and continued after a stop (``resume``).

    <save_dir>/run.json           the run's settings (written first; --resume must match them)
               predictions.jsonl  one line per image, appended batch by batch: score, verdict, regions, files
                                  (an unreadable image: "error" and verdict "unreadable")
               scores.csv         path, score, verdict, appended the same way
               <name>_mask.png    per image (adcommon.outputs.result_name): the mask, with --save_maps the
               <name>_map.npy|png map at the image's own size, with --save_vis the panel <name>_vis.png
               report.html        with --report, at the end
               summary.json       written last: its presence means the run finished

A new run into a folder holding an earlier run's results sets those aside first (they are ours; nothing
else is ever touched), so two runs never mix; they are removed when the new run ends or stops, and put
back when it is refused (``discard``: a --strict run that meets an unreadable image). A run killed at
image 90 000 leaves the lines it wrote; ``--resume`` keeps them and scores only the images without one;
a refused --strict resume leaves the folder as it found it.
"""
import contextlib
import json
import os
import re
import shutil
import time

from adbase import UserError, make_temp_dir, printable, remove_stale_temps, write_text_atomic
from adcommon.files import csv_row
from adcommon.outputs import RESULT_NAMES

SUFFIX = {"mask": "_mask.png", "picture": "_vis.png", "npy": "_map.npy", "png16": "_map.png"}
PER_IMAGE = re.compile(r".+(_mask\.png|_vis\.png|_map\.npy|_map\.png)$")
JSONL, CSV, RUN, SUMMARY = "predictions.jsonl", "scores.csv", "run.json", "summary.json"


def _lines(path):
    """The complete JSON lines of a predictions.jsonl (a last line cut short by a kill is left out)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                if not line.endswith("\n"):
                    return
                try:
                    rec = json.loads(line)
                except ValueError:
                    return
                if isinstance(rec, dict):
                    yield rec
    except FileNotFoundError:
        return


def previous_files(folder):
    """Names in ``folder`` that an earlier run of ours wrote there: its fixed files, the files its
    predictions.jsonl lists, and, in a folder marked as ours, per-image files a killed run wrote before
    their line."""
    from adcommon.outputs import MARKER
    names = set(RESULT_NAMES)
    for rec in _lines(os.path.join(folder, JSONL)):
        names.update(str(v) for v in (rec.get("files") or {}).values())
    if os.path.isfile(os.path.join(folder, MARKER)):
        try:
            names.update(n for n in os.listdir(folder) if PER_IMAGE.match(n))
        except OSError:
            pass
    return names


class ResultsFolder:
    """Append records of scored images to a claimed results folder (adcommon.outputs.claim).

    ``settings``: what decides the results (model, thresholds, which files); a resumed run must have the
    same. ``resume``: keep the lines of an unfinished (or finished) earlier run with these settings and
    say which paths they cover (``done``); otherwise an earlier run's files are removed first."""

    def __init__(self, folder, settings, resume=False, log=print):
        self.folder, self.settings = folder, dict(settings)
        self.done, self.counts = set(), {"images": 0, "scored": 0, "unreadable": 0, "anomalous": 0}
        self._aside, self._start, self._written = None, None, set()
        remove_stale_temps(folder)
        previous = os.path.isfile(os.path.join(folder, RUN)) or os.path.isfile(os.path.join(folder, JSONL))
        if resume and previous:
            self._resume(log)
        else:
            if resume:
                log(f"--resume: no earlier run in {printable(folder)}, starting from the beginning")
            self._set_aside()
            write_text_atomic(os.path.join(folder, RUN), json.dumps(
                {"settings": self.settings, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1) + "\n")
            with open(os.path.join(folder, CSV), "w", encoding="utf-8", newline="") as f:
                f.write(csv_row(("path", "score", "verdict")))
        self._jsonl = open(os.path.join(folder, JSONL), "a", encoding="utf-8")
        self._csv = open(os.path.join(folder, CSV), "a", encoding="utf-8", newline="")

    def _previous(self):
        """An earlier run's files in the folder, summary.json first (a half-moved folder is never 'finished')."""
        names = previous_files(self.folder) - {"auto_log.log"}   # the benchmark log appends, as train.log does
        return [n for n in [SUMMARY] + sorted(names - {SUMMARY})
                if os.path.isfile(os.path.join(self.folder, n)) and not os.path.islink(os.path.join(self.folder, n))]

    def _set_aside(self):
        """Move an earlier run's files into a hidden folder (same disk: renames), to put back if this run is
        refused before it begins for good, and removed once it has (_drop_aside)."""
        names = self._previous()
        if not names:
            return
        self._aside = make_temp_dir("previous-results", self.folder)
        for name in names:
            os.replace(os.path.join(self.folder, name), os.path.join(self._aside, name))

    def _drop_aside(self):
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None

    def _resume(self, log):
        try:
            with open(os.path.join(self.folder, RUN), encoding="utf-8") as f:
                saved = json.load(f).get("settings", {})
        except (OSError, ValueError, AttributeError):
            raise UserError(f"--resume: {printable(self.folder)} has no readable run.json (written by an earlier "
                            "version?): run without --resume to start again") from None
        for k in sorted(set(saved) | set(self.settings)):
            if saved.get(k) != self.settings.get(k):
                raise UserError(f"--resume: the run in {printable(self.folder)} was made with {k}={saved.get(k)!r}, "
                                f"this one has {self.settings.get(k)!r} (same flags and model, or run without "
                                "--resume to start again)")
        with contextlib.suppress(OSError):
            with open(os.path.join(self.folder, SUMMARY), encoding="utf-8") as f:
                self._start = {"summary": f.read()}
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, SUMMARY))
        records = list(_lines(os.path.join(self.folder, JSONL)))
        self._start = dict(self._start or {}, records=records)
        # rewrite both files from the complete lines: a line cut short, or a CSV row whose JSON line was
        # never written, goes
        self._write_lines(records)
        for r in records:
            self.done.add(r.get("path"))
            self._count(r)
        log(f"--resume: {len(records)} image(s) already in {printable(self.folder)}; scoring the others")

    def _write_lines(self, records):
        write_text_atomic(os.path.join(self.folder, JSONL), "".join(json.dumps(r) + "\n" for r in records))
        write_text_atomic(os.path.join(self.folder, CSV), csv_row(("path", "score", "verdict")) +
                          "".join(csv_row(_csv_values(r)) for r in records))

    def _count(self, rec):
        self.counts["images"] += 1
        if rec.get("error"):
            self.counts["unreadable"] += 1
        else:
            self.counts["scored"] += 1
            self.counts["anomalous"] += rec.get("verdict") == "anomalous"

    def add(self, records):
        """Append one batch's records (JSON lines and CSV rows), flushed: what a kill leaves is whole lines."""
        for r in records:
            self._count(r)
            self._written.update(str(v) for v in (r.get("files") or {}).values())
        self._csv.write("".join(csv_row(_csv_values(r)) for r in records))
        self._jsonl.write("".join(json.dumps(r) + "\n" for r in records))
        self._csv.flush()
        self._jsonl.flush()

    def records(self):
        """Every record written so far, read back from predictions.jsonl (for report.html)."""
        self._jsonl.flush()
        return list(_lines(os.path.join(self.folder, JSONL)))

    def close(self, keep_aside=False):
        """Close the files. An earlier run's results set aside are removed (a stopped run keeps its own lines
        for --resume), unless ``keep_aside`` (discard puts them back)."""
        for f in (self._jsonl, self._csv):
            if not f.closed:
                f.close()
        if not keep_aside:
            self._drop_aside()

    def finish(self, extra=None):
        """Close the files and write summary.json, the mark of a finished run. Returns the summary."""
        self.close()
        summary = dict(self.counts, complete=True, finished=time.strftime("%Y-%m-%d %H:%M:%S"), **(extra or {}))
        write_text_atomic(os.path.join(self.folder, SUMMARY), json.dumps(summary, indent=1) + "\n")
        return summary

    def discard(self):
        """Undo this run (a --strict run that met an unreadable image): remove what it wrote and leave the
        folder as the run found it, an earlier run's results put back, a resumed run's lines as they were."""
        self.close(keep_aside=True)
        for name in sorted(self._written) + ([] if self._start else [RUN, JSONL, CSV, SUMMARY]):
            p = os.path.join(self.folder, name)
            if os.path.basename(name) == name and os.path.isfile(p) and not os.path.islink(p):
                os.remove(p)
        if self._start is not None:   # a resumed run: its lines back as they were, and its summary.json
            self._write_lines(self._start["records"])
            if "summary" in self._start:
                write_text_atomic(os.path.join(self.folder, SUMMARY), self._start["summary"])
        if self._aside is not None:
            names = os.listdir(self._aside)
            for name in [n for n in names if n != SUMMARY] + [n for n in names if n == SUMMARY]:
                os.replace(os.path.join(self._aside, name), os.path.join(self.folder, name))
            self._drop_aside()


def _csv_values(rec):
    return rec.get("path"), rec.get("score"), rec.get("verdict") or ""
