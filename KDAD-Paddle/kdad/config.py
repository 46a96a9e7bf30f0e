"""configs/config.yaml (the reference's keys, MVTec values) and its command-line overrides.

Precedence: a flag given on the command line > the config file > the paper's MVTec defaults below.
Flags that a config key can set have ``default=None`` in the scripts, so "not given" is visible.
"""
import os

import yaml

from adbase import RANGES, UserError, check_number

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "config.yaml")

# config key -> (flag dest, paper MVTec value), docs/reference.md#kdad-config-keys.
KEYS = {
    "experiment_name": ("experiment_name", "local_equal_net"),
    "dataset_name": ("dataset_name", "mvtec"),
    "last_checkpoint": ("last_checkpoint", 601),
    "num_epochs": ("epochs", 601),
    "batch_size": ("batch_size", 64),
    "learning_rate": ("lr", 1e-3),
    "mvtec_img_size": ("image_size", 128),
    "normal_class": ("category", None),
    "lamda": ("lamda", 0.5),
    "pretrain": ("pretrained", "imagenet"),
    "use_bias": ("use_bias", False),
    "equal_network_size": ("equal_network_size", False),
    "direction_loss_only": ("direction_loss_only", False),
    "continue_train": ("resume", False),
    "localization_test": ("localization_test", True),
    "localization_method": ("localization_method", "gradients"),
}
_BOOL_KEYS = ("use_bias", "equal_network_size", "direction_loss_only", "continue_train", "localization_test")


def _as_bool(key, v):
    from adcommon.cli import str2bool
    try:
        return str2bool(v)
    except Exception:
        raise UserError(f"config key {key}: expected true/false, got {v!r}") from None


def load_config(path):
    """Read a config file with yaml.safe_load -> {flag dest: value}, typed and checked.

    ``learning_rate: 1e-3`` is a *string* for YAML 1.1 (no dot), so numbers are converted explicitly;
    ``pretrain: True/False`` becomes ``imagenet``/``none`` (a weights path is also accepted).
    """
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise UserError(f"cannot parse {path}: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping of key: value")
    unknown = sorted(k for k in raw if k not in KEYS)
    if unknown:
        raise UserError(f"{path}: unknown config key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    out = {}
    for key, v in raw.items():
        dest = KEYS[key][0]
        if v is None:
            continue
        try:
            if key in ("num_epochs", "batch_size", "mvtec_img_size", "last_checkpoint"):
                v = check_number(f"{path}: {key} ({dest})", int(v), int, RANGES.get(dest))
            elif key in ("learning_rate", "lamda"):
                v = check_number(f"{path}: {key} ({dest})", float(v), float, RANGES.get(dest))
            elif key == "pretrain":
                v = ("imagenet" if v else "none") if isinstance(v, bool) else str(v)
            elif key in _BOOL_KEYS:
                v = _as_bool(key, v)
            else:
                v = str(v)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"config key {key}: bad value {v!r}") from None
        out[dest] = v
    if out.get("dataset_name", "mvtec").lower() != "mvtec":
        raise UserError(f"{path}: dataset_name {out['dataset_name']!r} is not supported here; "
                        "use 'mvtec' (any folder in MVTec AD layout)")
    return out


def apply_config(args, path=None):
    """Fill every flag the user did not give (None) from the config file, then from the paper defaults.
    Returns the dict of values taken from the file (for args.yml / the log)."""
    path = path or getattr(args, "config", None) or DEFAULT_CONFIG
    cfg = load_config(path)
    for key, (dest, default) in KEYS.items():
        if not hasattr(args, dest):
            continue
        if getattr(args, dest) is None:
            setattr(args, dest, cfg.get(dest, default))
    return cfg
