"""Stage-1 settings (each preset's numbers live in ``dreamwaltz.presets``, which hands them down;
the defaults here are the tiny preset's).

Paper: 10k SkelSD iterations with the render resolution growing 64 -> 128 -> 256, then 5k at 512."""

from __future__ import annotations

from dataclasses import dataclass, field

from .field import FieldConfig


@dataclass
class Stage1Config:
    steps: int = 40
    schedule: tuple = ((0.0, 32), (0.5, 48))  # (fraction of steps where it starts, render size)
    samples: int = 32  # samples per ray inside the body's box
    # Rays per gradient-checkpointed chunk of a training render: peak memory grows with this,
    # not with the image (see field.render_image).
    render_chunk: int = 4096
    batch: int = 1
    lr_encoding: float = 1e-2
    lr_mlp: float = 1e-3
    condition_workers: int | None = None  # threads making the next steps' conditions (None: half the cores, 2-8)
    face_prob: float = 0.2
    hand_prob: float = 0.1
    density_weight: float = 1.0  # hand/face density guidance (0 turns it off)
    density_points: int = 2048  # hand/face points per step
    density_offset: float = 0.005  # metres off the surface that must stay empty
    log_density_in: float = 4.0  # margins on the raw (log) density, as in the paper's margin loss
    log_density_out: float = -1.0
    occupancy_every: int = 8
    checkpoint_every: int = 20
    log_every: int = 1  # progress (and the host sync it needs) every this many steps
    preview_every: int = 20
    preview_size: int = 128
    export_threshold: float = 20.0  # density (1/m) above which a grid point becomes a stage-2 point
    export_resolution: int = 96
    export_shell: float = 0.03  # metres: stage 2 gets the outer 3 cm of the avatar, no specks
    # Body-shape initialisation (silhouette + depth of the body mesh, no diffusion; cached).
    init_steps: int = 200
    init_views: int = 24
    init_size: int = 64
    init_rays: int = 1024
    init_lr: float = 2e-2
    field: FieldConfig = field(default_factory=FieldConfig)

    def size_at(self, step: int) -> int:
        size = self.schedule[0][1]
        for start, s in self.schedule:
            if step >= start * self.steps:
                size = s
        return size
