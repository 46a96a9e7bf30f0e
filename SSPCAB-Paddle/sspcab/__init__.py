"""CutPaste (3-way) with the SSPCAB block: Li et al., "CutPaste: Self-Supervised Learning for Anomaly
Detection and Localization" (CVPR 2021) + Ristea et al., "Self-Supervised Predictive Convolutional
Attentive Block for Anomaly Detection" (CVPR 2022), in PaddlePaddle."""
from .model import ProjectionNet
from .sspcab import SSPCAB

__all__ = ["ProjectionNet", "SSPCAB"]
