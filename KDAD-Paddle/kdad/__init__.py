"""KDAD: Multiresolution Knowledge Distillation for Anomaly Detection (Salehi et al., CVPR 2021),
in PaddlePaddle."""
from .model import KDAD, Cloner, Expert, cloner_cfg

__all__ = ["KDAD", "Cloner", "Expert", "cloner_cfg"]
