"""One way to write a method's scripts: shared parsers, and the shared main of each kind. A script
declares only what is its own, its flags and its seed's names:

    main, build_parser = entry("val", "stfpm", __doc__,
                               aliases={"model_path": ["--checkpoint"]},   # more names of a shared flag
                               hidden={"--mvtec_ad": "data_dir"},           # a seed's name, not in --help
                               ignored=["--depth"])                        # a seed's flag without a use here
    if __name__ == "__main__":
        run_cli(main)

``kind`` is train, val, predict, export, infer or serve. ``flags(p)`` adds the script's own flags (a flag
declared again replaces the shared one of that name); ``prepare(args)`` checks them and returns the
run's ``configure(ck)`` step for the shared main (it puts the run's choices into the loaded checkpoint,
adcommon.method.contract), or None. Infer
and serve parse their own command line, so there ``prepare(list)`` translates a seed's command line
first. The method comes from the package (its ``engine`` is imported when main runs; infer and serve
name it by its paper folder).
"""
import argparse
import importlib
import sys

from adbase import ArgumentParser
from adcommon import cli

SUPPRESS = argparse.SUPPRESS


class ScriptParser(ArgumentParser):
    """The suite's ArgumentParser where a later flag replaces an earlier one of the same name (a script
    overriding a shared flag) and ``aliases`` ({dest: [names]}) adds names to the flag of that dest."""

    def __init__(self, *args, aliases=None, **kw):
        self.aliases = dict(aliases or {})
        kw.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kw)

    def add_argument(self, *names, **kw):
        if names and names[0].startswith("--") and kw.get("help") is not SUPPRESS:
            dest = kw.get("dest") or names[0][2:].replace("-", "_")
            more = tuple(n for n in self.aliases.get(dest, ()) if n not in names)
            if more:
                kw["dest"], names = dest, names + more
        return super().add_argument(*names, **kw)


def val_parser(p):
    cli.add_common_args(p)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", type=cli.str2bool, nargs="?", const=True, default=False,
                   help="also write a picture per test image")
    return cli.add_result_args(p, maps=False)


def predict_parser(p):
    cli.add_common_args(p, data=False)
    p.add_argument("--category", default=None, help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", default=None, help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", default=None,
                   help="folder for the results (default <output_dir>/<category>/predict); a picture name "
                        "(.png/.jpg/.bmp) receives the picture of a single image")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--threshold", type=float, default=None, help="image-score threshold instead of the stored one")
    return p


def export_parser(p):
    cli.add_common_args(p, data=False)
    p.add_argument("--category", default=None)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/inference")
    return cli.add_export_args(p)


def train_parser(p):
    return cli.add_common_args(p)


PARSERS = {"train": train_parser, "val": val_parser, "predict": predict_parser, "export": export_parser}


def _mains():
    from adcommon.method import pipeline, training
    return {"train": training.train_main, "val": pipeline.val_main, "predict": pipeline.predict_picture_or_main,
            "export": pipeline.export_main}


def folder_name(package):
    """The paper folder's name without '-Paddle' (STFPM, PaDiM, ...): what infer.py and serve.py call
    the method in their logs (auto_log's model_name)."""
    from adcommon import methods
    for m in methods.table():
        if m.package == package:
            return m.folder[:-len("-Paddle")] if m.folder.endswith("-Paddle") else m.folder
    return package


def entry(kind, package, doc=None, aliases=None, hidden=None, ignored=(), flags=None, prepare=None):
    """``(main(argv=None), build_parser())`` of a method's ``kind`` script (see the module's doc); for
    infer and serve, ``(main, None)``."""
    if kind in ("infer", "serve"):
        return _deployed_main(kind, package, prepare), None

    def build_parser():
        p = PARSERS[kind](ScriptParser(description=doc, aliases=aliases))
        for name, dest in (hidden or {}).items():
            p.add_argument(name, dest=dest, help=SUPPRESS)
        for name in ignored:
            p.add_argument(name, default=None, help=SUPPRESS)
        if flags:
            flags(p)
        return p

    def main(args=None):
        ns = build_parser().parse_args(args)
        configure = prepare(ns) if prepare else None
        engine = importlib.import_module(f"{package}.engine")
        if kind == "train":
            return _mains()["train"](engine, ns)
        return _mains()[kind](engine, ns, configure)
    return main, build_parser


def _deployed_main(kind, package, translate=None):
    """main(argv=None) of an infer or serve script: the command line (after ``translate(list)``, a seed's
    names into the shared ones) to adcommon.deploy's infer_main or serve_main."""
    def main_deployed(args=None):
        if kind == "infer":
            from adcommon.deploy.infer import infer_main as run
        else:
            from adcommon.deploy.serve import serve_main as run
        given = sys.argv[1:] if args is None else list(args)
        return run(translate(given) if translate else given, folder_name(package))
    return main_deployed
