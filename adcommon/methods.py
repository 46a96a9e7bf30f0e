"""The method table (methods.tsv at the repository root), read once: the one list of the suite's methods.

    from adcommon import methods
    methods.names()                 # every method's name, in the table's order
    methods.get("padim").folder     # 'PaDiM-Paddle'
    methods.engine("padim")         # the padim.engine module (its folder put on sys.path)

scripts/methods.sh reads the same file for the shell scripts. A fifth method is one line there plus its
folder (``python scripts/new_method.py`` writes both from a template; CONTRIBUTING.md). $ADSUITE_METHODS
names another table (its folders relative to it), as tests/test_contract.py does for a method made in a
temporary folder.
"""
import functools
import importlib
import os
import sys
from typing import List, NamedTuple

from adbase import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "methods.tsv")
ENV = "ADSUITE_METHODS"


def table_path():
    """The method table in use: $ADSUITE_METHODS, else the repository's methods.tsv."""
    return os.environ.get(ENV) or TABLE
TRAINING = ("epochs", "fit")


class Entry(NamedTuple):
    """One row of the method table."""
    name: str          # in checkpoints, metrics.json, output folders and --methods
    folder: str        # the paper folder, relative to the repository root
    package: str       # the package in that folder holding ``engine``
    training: str      # 'epochs' (trained over epochs or steps, --resume) or 'fit' (one pass)
    quickstart: str    # scripts/quickstart.sh's train.py flags
    tiny: str          # train.py flags of a seconds-long check run (random weights, small size)
    real: str = ""     # train.py flags for real images on a 2-core CPU (run_all_mvtec.sh --recipe real)

    @property
    def path(self):
        """The paper folder's absolute path (relative to the table's folder)."""
        return os.path.join(os.path.dirname(os.path.abspath(table_path())), self.folder)

    @property
    def resumable(self):
        return self.training == "epochs"


def parse(text, where="methods.tsv"):
    """The methods of a table's text: tab-separated lines, '#' comments and blank lines skipped."""
    rows, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.rstrip("\n").split("\t")
        if len(cells) < 4:
            raise UserError(f"{where}:{n}: expected name, folder, package, training, quick-start, tiny and real flags "
                            f"separated by tabs, got {line!r}")
        name, folder, package, training = (c.strip() for c in cells[:4])
        if training not in TRAINING:
            raise UserError(f"{where}:{n}: training must be one of {', '.join(TRAINING)}, got {training!r}")
        if name in seen:
            raise UserError(f"{where}:{n}: method {name!r} listed twice")
        seen.add(name)
        flags = [c.strip() for c in cells[4:7]] + [""] * (7 - len(cells))
        rows.append(Entry(name, folder, package, training, *flags))
    return rows


def table() -> List[Entry]:
    return _read(table_path())


@functools.lru_cache(maxsize=4)
def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            rows = parse(f.read(), path)
    except FileNotFoundError:
        raise UserError(f"the method table {path} is missing: adcommon runs from its repository "
                        "(pip install -e .)") from None
    except UnicodeDecodeError as e:
        raise UserError(f"the method table {path} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    missing = [m for m in rows if not os.path.isdir(m.path)]
    if missing:
        raise UserError(f"{path}: method {missing[0].name!r} names the folder {missing[0].folder!r}, which does "
                        f"not exist beside the table")
    return rows


def names():
    return [m.name for m in table()]


def get(name):
    for m in table():
        if m.name == name:
            return m
    raise UserError(f"unknown method {name!r}: one of {', '.join(names())} (methods.tsv)")


def of_folder(folder):
    """The method whose paper folder is ``folder`` (a name like 'PaDiM-Paddle' or a path ending in it)."""
    base = os.path.basename(os.path.normpath(folder))
    for m in table():
        if m.folder == base:
            return m
    raise UserError(f"{folder} is not a paper folder of methods.tsv")




def engine(name):
    """The engine module of a method (``<package>.engine``), its paper folder first on sys.path."""
    m = get(name)
    if m.path not in sys.path:
        sys.path.insert(0, m.path)
    return importlib.import_module(f"{m.package}.engine")
