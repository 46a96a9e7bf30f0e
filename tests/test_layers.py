"""adcommon's layers: imports run one way, from a sub-package down to the ones below it, never up.

    core (adcommon/*.py)  <  nets  <  evaluate  <  deploy  <  method  <  tools

core: flags, files, output folders, checkpoints, processes; nets: backbones and their weights;
evaluate: maps, scores, metrics, pictures, result files; deploy: export, runtimes, infer.py and
serve.py; method: the engine contract and the train/val/predict/export mains, script entries; tools:
benchmarks, TIPC, test helpers. Every import counts, also one inside a function. shared_data is data
only and imports nothing of adcommon.
"""
import ast
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ["core", "nets", "evaluate", "deploy", "method", "tools"]


def layer_of(module):
    """'adcommon.evaluate.maps' -> 'evaluate'; a top-level module (or the package) -> 'core'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "core"


def _imports(path, module):
    """The adcommon modules that the file of ``module`` (a package: its __init__.py) imports, relative
    ones resolved."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "adcommon")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            if base.split(".")[0] != "adcommon":
                continue
            for a in node.names:  # `from adcommon import maps` names a module; `from x import f` a thing in x
                sub = f"{base}.{a.name}"
                yield sub if os.path.exists(_file(sub)) or os.path.isdir(_file(sub)[:-3]) else base


def _file(module, root=ROOT):
    return os.path.join(root, *module.split(".")) + ".py"


def upward_imports(root=ROOT):
    """'a -> b' for every import of a module in a higher layer than the importer's."""
    bad = []
    for folder, _, files in os.walk(os.path.join(root, "adcommon")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(folder, f)
            rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
            module = rel[:-len(".__init__")] if f == "__init__.py" else rel
            mine = LAYERS.index(layer_of(module + ".__init__" if f == "__init__.py" else module))
            for dep in _imports(path, module):
                if LAYERS.index(layer_of(dep)) > mine:
                    bad.append(f"{module} -> {dep}")
    return sorted(set(bad))


def test_imports_run_down_the_layers():
    assert upward_imports() == []


def test_a_planted_upward_import_fails(tmp_path):
    shutil.copytree(os.path.join(ROOT, "adcommon"), tmp_path / "adcommon",
                    ignore=shutil.ignore_patterns("__pycache__"))
    maps = tmp_path / "adcommon" / "evaluate" / "maps.py"
    late = "\n\ndef _late():\n    from adcommon.method import pipeline\n    return pipeline\n"
    maps.write_text(maps.read_text() + late)
    cli = tmp_path / "adcommon" / "cli.py"
    cli.write_text(cli.read_text() + "\nfrom .deploy.serve import serve_main  # noqa\n")
    assert upward_imports(str(tmp_path)) == ["adcommon.cli -> adcommon.deploy.serve",
                                             "adcommon.evaluate.maps -> adcommon.method.pipeline"]


def test_the_top_level_is_small_and_each_sub_package_says_what_it_holds():
    top = [f for f in os.listdir(os.path.join(ROOT, "adcommon")) if f.endswith(".py") and f != "__init__.py"]
    assert len(top) <= 12, sorted(top)
    for layer in LAYERS[1:]:
        init = os.path.join(ROOT, "adcommon", layer, "__init__.py")
        doc = ast.get_docstring(ast.parse(open(init, encoding="utf-8").read()))
        assert doc and len(doc) > 20, layer


def test_shared_data_imports_nothing_of_adcommon():
    folder = os.path.join(ROOT, "shared_data")
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py"):
            assert not list(_imports(os.path.join(folder, f), f"shared_data.{f[:-3]}")), f


def _packages_imported(path):
    """The top-level packages a file imports (also inside functions)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def test_adbase_is_the_bottom_and_shared_data_holds_data_only():
    """adbase (errors, runner, safe files, parser) imports neither shared_data nor adcommon; shared_data
    defines no argument parser or command-line runner of its own (it uses adbase's)."""
    for f in sorted(os.listdir(os.path.join(ROOT, "adbase"))):
        if f.endswith(".py"):
            found = set(_packages_imported(os.path.join(ROOT, "adbase", f))) & {"shared_data", "adcommon"}
            assert not found, (f, found)
    for f in sorted(os.listdir(os.path.join(ROOT, "shared_data"))):
        if f.endswith(".py"):
            tree = ast.parse(open(os.path.join(ROOT, "shared_data", f), encoding="utf-8").read())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            assert not defined & {"run_cli", "ArgumentParser", "UserError", "atomic_path"}, f
