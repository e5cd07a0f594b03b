"""Stage-2 settings (one preset's numbers live in ``dreamwaltz.presets``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .densify import DensifyConfig


@dataclass
class Stage2Config:
    steps: int = 60
    resolution: int = 64
    batch: int = 1
    num_free: int = 3000
    num_bound: int = 1000
    # Free means decay exponentially from lr_means to lr_means_final over the run (3DGS's schedule:
    # 1.6e-4 -> 1.6e-6 times the scene extent; an avatar is about 2 m, scaled up for the shorter
    # score-distillation runs).
    lr_means: float = 1.6e-4 * 5
    lr_means_final: float = 1.6e-6 * 5
    lr_scales: float = 5e-3
    lr_rotations: float = 1e-3
    lr_opacity: float = 5e-2
    lr_colors: float = 1e-2
    lr_bound: float = 1e-3
    lr_deformation: float = 1e-3
    # The pose-dependent deformation network is trained until this share of the steps; the rest
    # fine-tunes without it, so the exported avatar (which Blender poses with an armature, where
    # the network cannot run) is exactly what the optimiser saw last.
    deform_until: float = 0.8
    checkpoint_every: int = 20
    preview_every: int = 20
    log_every: int = 1  # progress (and the host sync it needs) every this many steps
    # Threads making the next steps' conditions (poses, cameras, keypoints, skeleton images) while
    # the current step trains; 0 makes them inline.
    condition_workers: int | None = None  # None: half the CPU cores, 2 to 8
    face_prob: float = 0.2
    hand_prob: float = 0.1
    # Densification and pruning of the free Gaussians (gsplat's DefaultStrategy); None = off.
    densify: DensifyConfig | None = field(default=None)

    def deforming(self, step: int) -> bool:
        return step < self.deform_until * self.steps

    def lr_means_at(self, step: int) -> float:
        t = min(1.0, step / max(1, self.steps - 1))
        return self.lr_means * (self.lr_means_final / self.lr_means) ** t
