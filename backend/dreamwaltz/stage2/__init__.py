"""Stage 2 of DreamWaltz-G: the Hybrid 3D Gaussian Avatar (H3GA), its training and export."""

from .config import Stage2Config
from .model import H3GA
from .train import train_stage2

__all__ = ["H3GA", "Stage2Config", "train_stage2"]
