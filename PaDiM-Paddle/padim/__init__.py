"""PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization
(Defard et al., ICPR workshops 2020), in PaddlePaddle."""
from .model import PAPER_DIMS, PaDiM

__all__ = ["PaDiM", "PAPER_DIMS"]
