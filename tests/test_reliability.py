"""The reliability matrix (scripts/reliability.py): every case in every folder it applies to ends as its
row says: a mistake in one `error:` line, exit code 2 and nothing written; a signal, a second writer, an
unreadable image, a collision as documented; a hang fails after the runner's timeout. Cases marked
``trained`` start from a small model of that folder trained once per module."""
import os

import pytest

from adcommon.tools.testing import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rel = load_script(os.path.join(ROOT, "scripts", "reliability.py"))
PAIRS = [(f, k) for k, c in enumerate(rel.CASES) for f in rel.COLUMNS if rel.applies(c, f)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return rel.make_data(str(tmp_path_factory.mktemp("reliability_data")))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """folder -> the output folder of its small trained model (trained on first use)."""
    made = {}

    def get(folder):
        if folder not in made:
            made[folder] = rel.train_small(folder, data, str(tmp_path_factory.mktemp(f"trained-{folder}")))
        return made[folder]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("folder, k", PAIRS, ids=[f"{f}-{rel.CASES[k].script}: {rel.CASES[k].name}" for f, k in PAIRS])
def test_bad_input(data, trained, tmp_path, folder, k):
    case = rel.CASES[k]
    res = rel.run_case(folder, case, data, str(tmp_path), timeout=240,
                       trained=trained(folder) if case.trained else None)
    assert res["ok"], f"{res['outcome']}\n{res['stderr']}"
