"""configs/config.yaml (the reference's keys) and command-line overrides."""
import os

import pytest
import yaml
from kdad_testutil import load_script

from adbase import UserError
from kdad.config import DEFAULT_CONFIG, KEYS, apply_config, load_config


@pytest.mark.smoke
def test_shipped_config_is_safe_yaml_with_the_paper_values():
    with open(DEFAULT_CONFIG) as f:
        raw = yaml.safe_load(f)
    assert set(raw) == set(KEYS)                       # exactly the reference's keys
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg["epochs"] == 601 and cfg["batch_size"] == 64 and cfg["image_size"] == 128
    assert cfg["lr"] == pytest.approx(1e-3) and isinstance(cfg["lr"], float)
    assert cfg["lamda"] == 0.5 and cfg["pretrained"] == "imagenet" and cfg["use_bias"] is False
    assert cfg["equal_network_size"] is False and cfg["direction_loss_only"] is False
    assert cfg["localization_method"] == "gradients" and cfg["category"] == "capsule"


def test_command_line_beats_config_beats_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    # YAML 1.1 reads 1e-3 as a string: it must still become a float
    cfg.write_text("num_epochs: 10\nbatch_size: 2\nlearning_rate: 1e-3\npretrain: False\nnormal_class: 'tablet'\n"
                   "continue_train: True\n")
    train = load_script("train")
    args = train.build_parser().parse_args(["--config", str(cfg), "--epochs", "3", "--dataset_root", "D",
                                            "--save_dir", "O", "--lamda", "0.01"])
    apply_config(args)
    assert args.epochs == 3                               # command line
    assert args.batch_size == 2 and args.lr == pytest.approx(1e-3)   # config file
    assert args.pretrained == "none" and args.category == "tablet" and args.resume is True
    assert args.lamda == 0.01 and args.image_size == 128             # flag / paper default
    assert args.data_dir == "D" and args.output_dir == "O"           # seed aliases
    args = train.build_parser().parse_args(["--config", str(cfg), "--normal_class", "brick", "--resume", "False"])
    apply_config(args)
    assert args.category == "brick" and args.resume is False


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_epoch: 3\n")
    with pytest.raises(UserError, match="unknown config key"):
        load_config(str(bad))
    bad.write_text("dataset_name: cifar10\n")
    with pytest.raises(UserError, match="not supported"):
        load_config(str(bad))
    bad.write_text("batch_size: many\n")
    with pytest.raises(UserError, match="batch_size"):
        load_config(str(bad))
    with pytest.raises(UserError, match="not found"):
        load_config(os.path.join(str(tmp_path), "missing.yaml"))
