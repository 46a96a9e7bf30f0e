"""The four notebooks (notebooks/<method>.ipynb, written by scripts/make_notebooks.py) run headless on
tiny settings; any failing cell fails the test."""
import os

import pytest

from adcommon.tools.testing import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
make = load_script(os.path.join(ROOT, "scripts", "make_notebooks.py"))


def test_the_notebooks_are_what_the_generator_writes():
    assert make.main(["--check"]) == 0, "run: python scripts/make_notebooks.py"


@pytest.mark.slow
@pytest.mark.parametrize("method", list(make.METHODS))
def test_notebook_runs(monkeypatch, method):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("NB_TINY", "1")
    nb = nbformat.read(make.path_of(method), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3    # the panels, shown inline
    assert any("<iframe" in o.get("data", {}).get("text/html", "") for o in outputs)   # the report
    assert os.path.isfile(os.path.join(ROOT, "output", "notebook_tiny", method, "brick", "report.html"))
