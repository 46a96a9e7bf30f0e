"""KDAD's own script flags beyond the shared ones (adcommon.method.scripts), and what they become."""
from adbase import UserError
from adcommon.cli import str2bool

LOCALIZATION = ["gradients", "smooth_grad", "gbp", "discrepancy"]


def add_localization_flags(p):
    p.set_defaults(seed=0)
    p.add_argument("--localization_method", default=None, choices=LOCALIZATION,
                   help="the anomaly map (default: the one chosen at training, stored in the checkpoint)")
    p.add_argument("--smooth_grad_n", type=int, default=50, help="noisy copies per image for smooth_grad")


def add_val_flags(p):
    add_localization_flags(p)
    p.set_defaults(batch_size=16)
    p.add_argument("--config", default=None, help="YAML with the reference's keys (default configs/config.yaml)")
    p.add_argument("--save_dir", default=None,
                   help="where metrics.json etc. go (default <output_dir>/<category>[/<method>])")
    p.add_argument("--localization_test", type=str2bool, default=None,
                   help="also compute anomaly maps and pixel metrics (config: localization_test)")


def add_predict_flags(p):
    add_localization_flags(p)
    p.add_argument("--map_threshold", "--threshold", dest="map_threshold", type=float, default=None,
                   help="display threshold on the anomaly map (default: stored in the checkpoint)")


def add_export_flags(p):
    p.add_argument("--map", default="auto", choices=["auto", "gradients", "discrepancy"],
                   help="localization map in the graph (auto: the checkpoint's localization_method)")


def val_options(args):
    """The run's configure step (kdad.engine.LocalizationRun): the localization method of the flag, else
    the checkpoint's (then the config's); the config file's values fill what the command line left out."""
    from kdad.config import apply_config
    from kdad.engine import LocalizationRun
    given = args.localization_method
    apply_config(args)
    if args.batch_size < 1:
        raise UserError("--batch_size must be >= 1")
    return LocalizationRun(given, args.localization_method, bool(args.localization_test), args.smooth_grad_n,
                           args.seed).configure


def predict_options(args):
    from kdad.engine import LocalizationRun
    return LocalizationRun(args.localization_method, smooth_grad_n=args.smooth_grad_n, seed=args.seed).configure


def default_map(ck):
    """The checkpoint's localization map; gradients need Paddle >= 3 (2.6's predictor cannot run them)."""
    import paddle

    from kdad import engine
    kind = engine.map_kind(engine.localization_of(ck))
    major = int(paddle.__version__.split(".")[0])
    return kind if major >= 3 or paddle.__version__.startswith("0.0") else "discrepancy"


def export_options(args):
    """The configure step of export: the map of --map, or with auto the checkpoint's (default_map)."""
    from kdad.engine import LocalizationRun

    def configure(ck):
        LocalizationRun(default_map(ck) if args.map == "auto" else args.map).configure(ck)
    return configure
