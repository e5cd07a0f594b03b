# SPDX-License-Identifier: GPL-3.0-or-later
"""Talking to the DreamWaltz backend: HTTP client, local process, installer (no bpy in client.py)."""
