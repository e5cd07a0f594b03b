"""SMPL-X skeleton facts: the 55 articulated joints, their order, names and parents.

Source: shared reference facts (smplx 0.1.28 joint names, SMPL-X kintree table), copied into
``data/smplx_openpose_facts.json`` beside this file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FACTS_PATH = Path(__file__).with_name("data") / "smplx_openpose_facts.json"


@lru_cache(maxsize=1)
def facts() -> dict:
    """The whole reference file (OpenPose orders, ControlNet colours, SMPL-X mappings)."""
    return json.loads(FACTS_PATH.read_text(encoding="utf-8"))


_JOINTS = facts()["smplx_55_joints"]
JOINT_NAMES: tuple[str, ...] = tuple(j["name"] for j in _JOINTS)
PARENTS: tuple[int, ...] = tuple(int(j["parent"]) for j in _JOINTS)
NUM_JOINTS = len(JOINT_NAMES)  # 55
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Slices into the (55, 3) full pose, in smplx full-pose order.
GLOBAL = slice(0, 1)
BODY = slice(1, 22)
JAW = 22
LEFT_EYE = 23
RIGHT_EYE = 24
LEFT_HAND = slice(25, 40)
RIGHT_HAND = slice(40, 55)

assert NUM_JOINTS == 55 and PARENTS[0] == -1
assert all(p < i for i, p in enumerate(PARENTS) if i > 0), "parents must precede children"
