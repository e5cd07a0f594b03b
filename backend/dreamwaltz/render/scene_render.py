"""Rendering a scene description (``core.scene``): every avatar posed for the frame, every static
splat, concatenated into ONE depth-sorted rasterization, so avatars and the scene hide each other
correctly (nearer in front, seen through semi-transparent edges). Frames to PNG, optionally an mp4.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..core.camera import Camera
from ..core.errors import DreamWaltzError
from ..core.scene import Gaussians, Scene, SceneAssets, frame_gaussians, load_assets


def rasterize_gaussians(g: Gaussians, camera: Camera, device="cpu", background=(0.0, 0.0, 0.0)):
    """The one rasterizer call of scene rendering: avatars and scene splats together, colours and
    background as display (sRGB) values. It goes through ``rasterize_posed`` so scenes render as
    ``dreamwaltz render`` renders avatars; where that applies ``render.AVATAR_RENDER`` (linear-light
    compositing, antialiased) scenes follow, otherwise ``rasterize``'s defaults. Change it here only."""
    import torch

    from ..core.posing import PosedSplats
    from .rasterizer import rasterize_posed

    if len(g) == 0:  # nothing to draw (the rasterizer's sort and tiling expect at least one)
        image = torch.as_tensor(
            np.broadcast_to(np.asarray(background, dtype=np.float32), (camera.height, camera.width, 3)).copy()
        )
        return image.to(device)
    posed = PosedSplats(g.means, g.covariances, g.colors, g.opacities)
    return rasterize_posed(posed, camera, device, background=tuple(float(c) for c in background)).image


def to_uint8(image) -> np.ndarray:
    return (image.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def render_frame(
    scene: Scene, assets: SceneAssets, frame: int, device="cpu", avatars=None, splats: bool = True
) -> np.ndarray:
    """Scene ``frame`` as an (H, W, 3) uint8 image (``avatars``/``splats`` pick a subset, for comparisons)."""
    import torch

    with torch.no_grad():
        g = frame_gaussians(scene, assets, frame, avatars=avatars, splats=splats)
        return to_uint8(rasterize_gaussians(g, scene.camera_at(frame), device, scene.background))


class Mp4Writer:
    """H.264 (MPEG-4 part 2 for odd sizes, which 4:2:0 H.264 cannot hold) through PyAV, a frame at a time."""

    def __init__(self, path, width: int, height: int, fps: float, crf: int = 17):
        try:
            import av
        except ImportError:
            raise DreamWaltzError(
                "--mp4 needs PyAV, which is not installed.",
                "pip install av==18.1.0 (or the backend's 'video' extra), or leave out --mp4.",
            ) from None
        self._av = av
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1_000_000)
        even = width % 2 == 0 and height % 2 == 0
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream("libx264" if even else "mpeg4", rate=self.rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.time_base = 1 / self.rate
        self.stream.options = {"crf": str(crf), "preset": "medium"} if even else {"qscale": "2"}
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts, frame.time_base = self.count, 1 / self.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def render_scene(
    scene: Scene, out_dir, mp4=None, device="cpu", on_frame: Callable[[int, Path], None] | None = None
) -> list[Path]:
    """Render every frame of ``scene`` to ``out_dir/frame_NNNN.png`` (NNNN: the scene frame number)
    and, with ``mp4``, to a video at the scene's fps. Returns the PNG paths."""
    from PIL import Image

    assets = load_assets(scene)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = Mp4Writer(mp4, scene.width, scene.height, scene.fps) if mp4 is not None else None
    paths = []
    try:
        for frame in scene.frames:
            image = render_frame(scene, assets, frame, device)
            path = out_dir / f"frame_{frame:04d}.png"
            Image.fromarray(image).save(path)
            paths.append(path)
            if writer is not None:
                writer.write(image)
            if on_frame is not None:
                on_frame(frame, path)
    finally:
        if writer is not None:
            writer.close()
    return paths
