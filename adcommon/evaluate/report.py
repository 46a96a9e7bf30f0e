"""report.html: one page to browse a test split or a day of production (val.py / predict.py / infer.py
``--report``). Plain HTML, CSS and a few lines of JavaScript, no framework and nothing fetched: the
panels are the PNG files next to the page (relative links), the score histogram is inlined.

The grid sorts by score or name and filters by verdict, label and a name search. A histogram shows the
scores of normal and defective images (by ground-truth label where known) with the threshold drawn, and
the metrics table sits on top when the test labels are known (val.py).
"""
import base64
import html
import io
import os
import time

import numpy as np

from adbase import write_text_atomic

__all__ = ["write_report", "label_from_path"]

METRIC_ROWS = [("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO (FPR <= 0.3)"),
               ("f1_max", "F1-max (oracle threshold)"), ("f1_at_threshold", "F1 at the stored threshold"),
               ("precision_at_threshold", "precision at the stored threshold"),
               ("recall_at_threshold", "recall at the stored threshold"),
               ("fpr_at_threshold", "false-positive rate at the stored threshold")]

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em} table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 8px}
#controls{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd;z-index:1}
#controls label{margin-right:1em}
#grid{display:flex;flex-wrap:wrap;gap:10px;margin-top:.6em}
.card{border:2px solid #ccc;border-radius:4px;padding:4px;width:420px;font-size:.85em}
.card.anomalous{border-color:#d33}.card.normal{border-color:#3a3}
.card img{width:100%;display:block}.card .cap{display:flex;justify-content:space-between;gap:6px}
.card .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
"""

SCRIPT = """
const grid = document.getElementById('grid');
const cards = Array.from(grid.children);
function apply() {
  const key = document.getElementById('sort').value;
  const verdict = document.getElementById('verdict').value;
  const label = document.getElementById('label').value;
  const text = document.getElementById('search').value.toLowerCase();
  const sorted = cards.slice().sort((a, b) => {
    if (key === 'name') return a.dataset.name.localeCompare(b.dataset.name);
    const d = parseFloat(a.dataset.score) - parseFloat(b.dataset.score);
    return key === 'score-asc' ? d : -d;
  });
  let shown = 0;
  for (const c of sorted) {
    const ok = (verdict === 'all' || c.dataset.verdict === verdict) &&
               (label === 'all' || c.dataset.label === label) &&
               (!text || c.dataset.name.toLowerCase().includes(text));
    c.style.display = ok ? '' : 'none';
    shown += ok ? 1 : 0;
    grid.appendChild(c);
  }
  document.getElementById('shown').textContent = shown + ' of ' + cards.length + ' shown';
}
for (const id of ['sort', 'verdict', 'label', 'search']) {
  document.getElementById(id).addEventListener('input', apply);
}
const wanted = new URLSearchParams(location.hash.slice(1)).get('sort');
if (wanted) document.getElementById('sort').value = wanted;
apply();
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.dataset.order = Array.from(grid.children).map(c => c.dataset.name).join('|');
});
"""


def label_from_path(path):
    """'good' / the defect type when ``path`` lies in an MVTec-layout test/<type>/ folder (or any good/
    folder), else None: the ground truth where the folder layout tells it."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if parent == "good":
        return "good"
    if os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path)))) == "test":
        return parent
    return None


def _histogram_png(scores, labels, threshold):
    """PNG bytes: score histogram of normal and defective images (or all, labels unknown), threshold line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    scores = np.asarray(scores, np.float64)
    fig = Figure(figsize=(6.4, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    finite = scores[np.isfinite(scores)]
    bins = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=30)
    known = [lab is not None for lab in labels]
    if any(known):
        normal = [s for s, lab in zip(scores, labels) if lab == "good"]
        defect = [s for s, lab in zip(scores, labels) if lab not in (None, "good")]
        ax.hist(normal, bins=bins, alpha=0.6, color="tab:green", label=f"normal ({len(normal)})")
        ax.hist(defect, bins=bins, alpha=0.6, color="tab:red", label=f"defective ({len(defect)})")
        unknown = [s for s, lab in zip(scores, labels) if lab is None]
        if unknown:
            ax.hist(unknown, bins=bins, alpha=0.5, color="tab:gray", label=f"no label ({len(unknown)})")
    else:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.7, label=f"images ({len(scores)})")
    if threshold is not None:
        ax.axvline(float(threshold), color="k", ls="--", lw=1.5, label=f"threshold {float(threshold):.4g}")
    ax.set(xlabel="image score", ylabel="images")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _options(values, names=None):
    return "".join(f'<option value="{html.escape(v)}">{html.escape((names or {}).get(v, v))}</option>'
                   for v in values)


def write_report(folder, records, threshold=None, metrics=None, title="anomaly detection results", note=None):
    """Write ``folder``/report.html. ``records``: one dict per image with "path", "score", "verdict"
    (or None without a threshold), optional "label" ("good", a defect type, or None) and optional
    "picture" (its panel's path relative to ``folder``). ``metrics``: a metrics.json dict or None.
    Returns the report's path."""
    labels = [r.get("label") for r in records]
    scores = [float(r["score"]) for r in records]
    hist = base64.b64encode(_histogram_png(scores, labels, threshold)).decode("ascii")
    cards = []
    for r in records:
        name = os.path.basename(r["path"])
        label, verdict = r.get("label"), r.get("verdict") or "none"
        img = (f'<img src="{html.escape(r["picture"])}" alt="{html.escape(name)}" loading="eager">'
               if r.get("picture") else "")
        cards.append(
            f'<div class="card {html.escape(verdict)}" data-score="{float(r["score"]):.6g}" '
            f'data-name="{html.escape(r["path"])}" data-verdict="{html.escape(verdict)}" '
            f'data-label="{html.escape("unknown" if label is None else "good" if label == "good" else "defective")}">'
            f'{img}<div class="cap"><span class="name" title="{html.escape(r["path"])}">{html.escape(name)}</span>'
            f'<span>{html.escape(label or "")}</span><b>{float(r["score"]):.4f} {html.escape(verdict)}</b></div></div>')
    rows = ""
    if metrics:
        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{metrics[k]:.4f}</td></tr>" for k, n in METRIC_ROWS
                       if isinstance(metrics.get(k), (int, float)) and metrics[k] == metrics[k])
    n_anom = sum(r.get("verdict") == "anomalous" for r in records)
    thr = "none stored" if threshold is None else f"{float(threshold):.6g}"
    summary = (f"{len(records)} images, {n_anom} anomalous at the threshold ({thr}). "
               f"Written {time.strftime('%Y-%m-%d %H:%M')}.")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}{(' ' + html.escape(note)) if note else ''}</p>
{'<table><tr><th>metric</th><th>value</th></tr>' + rows + '</table>' if rows else ''}
<img id="histogram" alt="score histogram" src="data:image/png;base64,{hist}">
<div id="controls">
<label>sort <select id="sort">{_options(["score-desc", "score-asc", "name"],
                                        {"score-desc": "score, highest first", "score-asc": "score, lowest first"})}
</select></label>
<label>verdict <select id="verdict">{_options(["all", "anomalous", "normal"])}</select></label>
<label>label <select id="label">{_options(["all", "good", "defective", "unknown"])}</select></label>
<label>name <input id="search" type="search" placeholder="filter by path"></label>
<span id="shown"></span>
</div>
<div id="grid">
{chr(10).join(cards)}
</div>
<script>{SCRIPT}</script>
</body></html>
"""
    path = os.path.join(folder, "report.html")
    write_text_atomic(path, page)
    return path
