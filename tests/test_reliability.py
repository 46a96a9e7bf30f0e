"""The bad-input matrix (scripts/reliability.py): every case in every paper folder it applies to ends in
one `error:` line, exit code 2 and nothing written; a hang fails after the runner's timeout."""
import os

import pytest

from adcommon.testing import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rel = load_script(os.path.join(ROOT, "scripts", "reliability.py"))
PAIRS = [(f, k) for k, c in enumerate(rel.CASES) for f in rel.FOLDERS if rel.applies(c, f)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return rel.make_data(str(tmp_path_factory.mktemp("reliability_data")))


@pytest.mark.slow
@pytest.mark.parametrize("folder, k", PAIRS, ids=[f"{f}-{rel.CASES[k][1]}: {rel.CASES[k][0]}" for f, k in PAIRS])
def test_bad_input(data, tmp_path, folder, k):
    res = rel.run_case(folder, rel.CASES[k], data, str(tmp_path), timeout=240)
    assert res["ok"], f"{res['outcome']}\n{res['stderr']}"
