"""STFPM: Student-Teacher Feature Pyramid Matching for Anomaly Detection (Wang et al., BMVC 2021),
in PaddlePaddle."""
from .loss import layer_distance, stfpm_loss
from .model import LAYERS, STFPM

__all__ = ["STFPM", "LAYERS", "layer_distance", "stfpm_loss"]
