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

A new run into a folder holding an earlier run's results removes those first (they are ours; nothing
else is ever removed), so two runs never mix. A run killed at image 90 000 leaves the lines it wrote;
``--resume`` keeps them and scores only the images without one.
"""
import contextlib
import json
import os
import re
import time

from shared_data.errors import UserError, printable, remove_stale_temps, write_text_atomic

from .files import csv_row
from .outputs import RESULT_NAMES

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
    from .outputs import MARKER
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
        remove_stale_temps(folder)
        previous = os.path.isfile(os.path.join(folder, RUN)) or os.path.isfile(os.path.join(folder, JSONL))
        if resume and previous:
            self._resume(log)
        else:
            if resume:
                log(f"--resume: no earlier run in {printable(folder)}, starting from the beginning")
            self._clear()
            write_text_atomic(os.path.join(folder, RUN), json.dumps(
                {"settings": self.settings, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1) + "\n")
            with open(os.path.join(folder, CSV), "w", encoding="utf-8", newline="") as f:
                f.write(csv_row(("path", "score", "verdict")))
        self._jsonl = open(os.path.join(folder, JSONL), "a", encoding="utf-8")
        self._csv = open(os.path.join(folder, CSV), "a", encoding="utf-8", newline="")

    def _clear(self):
        """Remove an earlier run's files (summary.json first: a half-removed folder is never 'finished')."""
        names = previous_files(self.folder) - {"auto_log.log"}   # the benchmark log appends, as train.log does
        for name in [SUMMARY] + sorted(names - {SUMMARY}):
            p = os.path.join(self.folder, name)
            if os.path.isfile(p) and not os.path.islink(p):
                os.remove(p)

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
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, SUMMARY))
        records = list(_lines(os.path.join(self.folder, JSONL)))
        # rewrite both files from the complete lines: a line cut short, or a CSV row whose JSON line was
        # never written, goes
        write_text_atomic(os.path.join(self.folder, JSONL), "".join(json.dumps(r) + "\n" for r in records))
        write_text_atomic(os.path.join(self.folder, CSV), csv_row(("path", "score", "verdict")) +
                          "".join(csv_row(_csv_values(r)) for r in records))
        for r in records:
            self.done.add(r.get("path"))
            self._count(r)
        log(f"--resume: {len(records)} image(s) already in {printable(self.folder)}; scoring the others")

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
        self._csv.write("".join(csv_row(_csv_values(r)) for r in records))
        self._jsonl.write("".join(json.dumps(r) + "\n" for r in records))
        self._csv.flush()
        self._jsonl.flush()

    def records(self):
        """Every record written so far, read back from predictions.jsonl (for report.html)."""
        self._jsonl.flush()
        return list(_lines(os.path.join(self.folder, JSONL)))

    def close(self):
        for f in (self._jsonl, self._csv):
            if not f.closed:
                f.close()

    def finish(self, extra=None):
        """Close the files and write summary.json, the mark of a finished run. Returns the summary."""
        self.close()
        summary = dict(self.counts, complete=True, finished=time.strftime("%Y-%m-%d %H:%M:%S"), **(extra or {}))
        write_text_atomic(os.path.join(self.folder, SUMMARY), json.dumps(summary, indent=1) + "\n")
        return summary

    def discard(self):
        """Remove everything this run wrote (a --strict run that met an unreadable image writes nothing)."""
        self.close()
        self._clear()


def _csv_values(rec):
    return rec.get("path"), rec.get("score"), rec.get("verdict") or ""
