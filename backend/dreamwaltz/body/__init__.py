"""Body models (open body or a user's SMPL-X file), landmarks and poses."""

from .landmarks import LANDMARK_INDEX, LANDMARK_NAMES
from .model import OPEN_BODY_PATH, BodyModel, BodyOutput

__all__ = ["BodyModel", "BodyOutput", "LANDMARK_INDEX", "LANDMARK_NAMES", "OPEN_BODY_PATH"]
