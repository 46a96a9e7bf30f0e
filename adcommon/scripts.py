"""Ready-made entry points of a method's scripts, for a method without flags of its own outside
train.py (no seed names to keep): ``val.py``, ``predict.py`` and ``export_model.py`` become

    from adcommon.scripts import entry
    main = entry("predict", "new", __doc__)

and ``train.py`` passes its own parser: ``main = entry("train", "new", build_parser=build_parser)``.
``main(argv)`` parses, imports ``<package>.engine`` and runs the shared main (adcommon.training,
adcommon.pipeline). scripts/new_method.py writes its folder this way; the four paper folders keep their
seeds' flag names in parsers of their own.
"""
import argparse
import importlib

from shared_data.errors import ArgumentParser

from . import cli


def _parser(doc):
    return ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def val_parser(doc=None):
    p = cli.add_common_args(_parser(doc))
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--save_vis", type=cli.str2bool, default=False)
    return cli.add_result_args(p, maps=False)


def predict_parser(doc=None):
    p = cli.add_common_args(_parser(doc), data=False)
    p.add_argument("--category", default=None, help="finds <output_dir>/<category>/model.pdparams")
    p.add_argument("--model_path", default=None, help="checkpoint path (instead of --output_dir/--category)")
    p.add_argument("--img_path", help="an image, a folder (recursive) or a glob")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/predict")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_vis", type=cli.str2bool, default=True)
    cli.add_result_args(p)
    p.add_argument("--threshold", type=float, default=None, help="image-score threshold instead of the stored one")
    return p


def export_parser(doc=None):
    p = cli.add_common_args(_parser(doc), data=False)
    p.add_argument("--category", default=None)
    p.add_argument("--model_path", default=None, help="checkpoint (default <output_dir>/<category>/model.pdparams)")
    p.add_argument("--save_dir", default=None, help="default <output_dir>/<category>/inference")
    return cli.add_export_args(p)


PARSERS = {"val": val_parser, "predict": predict_parser, "export": export_parser}


def entry(kind, package, doc=None, build_parser=None):
    """``main(argv=None)`` of a method's script: ``kind`` is train, val, predict or export; ``package``
    the method's package (its ``engine`` is imported when main runs); ``build_parser`` the script's own
    parser (train.py's flags), else the ready-made one of ``kind``."""
    parser = build_parser or (lambda: PARSERS[kind](doc))

    def main(argv=None):
        args = parser().parse_args(argv)
        engine = importlib.import_module(f"{package}.engine")
        if kind == "train":
            from .training import train_main
            return train_main(engine, args)
        from . import pipeline
        return {"val": pipeline.val_main, "predict": pipeline.predict_main, "export": pipeline.export_main}[kind](
            engine, args)
    return main
