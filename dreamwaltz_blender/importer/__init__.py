# SPDX-License-Identifier: GPL-3.0-or-later
"""Build a DreamWaltz avatar in the scene from a validated .h3ga file."""
