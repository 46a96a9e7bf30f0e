"""PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization
(Defard et al., ICPR workshops 2020), in PaddlePaddle."""
from .model import PaDiM, PAPER_DIMS

__all__ = ["PaDiM", "PAPER_DIMS"]
