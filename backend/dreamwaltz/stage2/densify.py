"""Densification and pruning of the free Gaussians, by gsplat's ``DefaultStrategy``.

gsplat already implements the 3DGS rules (clone small Gaussians and split large ones whose
screen-space gradient is high, prune transparent or huge ones), including the bookkeeping of the
optimizer state; this module only adapts the H3GA to it:

- the strategy sees the *free* Gaussians as its parameter dict (``means`` = rest-pose means,
  ``scales`` = log-scales, ``quats``, ``opacities`` = logits, ``colors`` = logits) plus their
  binding (triangle, barycentrics, skin joints and weights) as non-trainable entries, so a clone
  or a split child inherits its parent's skinning; the mesh-bound hand/face Gaussians are never
  touched (they live on the triangles);
- each free parameter has its own Adam, as gsplat requires, and the rest of the model one more;
- the screen-space gradients come from the renders of a step (any number of cameras), cut to the
  free Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# strategy key -> H3GA attribute (trainable), then the binding buffers that travel with them.
FREE_PARAMETERS = {
    "means": "free_means",
    "scales": "free_log_scales",
    "quats": "free_quats",
    "opacities": "free_opacity",
    "colors": "free_color_logits",
}
FREE_BUFFERS = {
    "bind_faces": "free_bind",
    "bind_barycentrics": "free_bary",
    "skin_joints": "free_skin_joints",
    "skin_weights": "free_skin_weights",
}


@dataclass
class DensifyConfig:
    """gsplat's DefaultStrategy thresholds; the step counts are set per preset."""

    start: int = 500
    stop: int = 15000
    every: int = 100
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_opacity: float = 0.005
    prune_scale3d: float = 0.1
    max_free: int = 200_000  # growth stops here: a hard memory bound for the user's GPU
    scene_scale: float = 1.0  # metres: an avatar is about 1 m from its centre to the farthest hand


class Optimizers:
    """One Adam per free parameter (gsplat's convention) and one for everything else."""

    def __init__(self, per_free: dict[str, torch.optim.Optimizer], rest: torch.optim.Optimizer):
        self.per_free, self.rest = per_free, rest

    def all(self):
        return list(self.per_free.values()) + [self.rest]

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.all():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self):
        for opt in self.all():
            opt.step()

    def state_dict(self) -> dict:
        return {"free": {k: o.state_dict() for k, o in self.per_free.items()}, "rest": self.rest.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.per_free.items():
            o.load_state_dict(state["free"][k])
        self.rest.load_state_dict(state["rest"])


def free_parameter_dict(model) -> dict:
    params = {key: getattr(model, attr) for key, attr in FREE_PARAMETERS.items()}
    params.update(
        {key: torch.nn.Parameter(getattr(model, attr), requires_grad=False) for key, attr in FREE_BUFFERS.items()}
    )
    return params


def write_back(model, params: dict) -> None:
    """Put the strategy's resized tensors back into the model (parameters stay the same objects
    the per-free-parameter optimizers now hold)."""
    for key, attr in FREE_PARAMETERS.items():
        setattr(model, attr, params[key])
    for key, attr in FREE_BUFFERS.items():
        setattr(model, attr, params[key].data)


def resize_free(model, count: int) -> None:
    """Give the model ``count`` free Gaussians (values to be overwritten by a checkpoint load)."""
    for attr in list(FREE_PARAMETERS.values()) + list(FREE_BUFFERS.values()):
        old = getattr(model, attr)
        new = torch.zeros((count,) + tuple(old.shape[1:]), dtype=old.dtype, device=old.device)
        setattr(model, attr, torch.nn.Parameter(new) if isinstance(old, torch.nn.Parameter) else new)


class FreeGaussianRefiner:
    """Runs gsplat's DefaultStrategy on the free Gaussians of an H3GA after each backward pass."""

    def __init__(self, model, optimizers: Optimizers, cfg: DensifyConfig):
        from gsplat.strategy import DefaultStrategy

        self.model, self.optimizers, self.cfg = model, optimizers, cfg
        self.strategy = DefaultStrategy(
            prune_opa=cfg.prune_opacity,
            grow_grad2d=cfg.grow_grad2d,
            grow_scale3d=cfg.grow_scale3d,
            prune_scale3d=cfg.prune_scale3d,
            refine_start_iter=cfg.start,
            refine_stop_iter=cfg.stop,
            refine_every=cfg.every,
            reset_every=10**9,
        )
        self.state = self.strategy.initialize_state(scene_scale=cfg.scene_scale)

    def after_step(self, step: int, renders) -> dict:
        """Call after the optimizer step. ``renders``: the step's RenderOutputs (their ``means2d``
        had ``retain_grad``). Returns {"before": n, "after": n} on refinement steps, else {}."""
        n = self.model.num_free
        grads = [r.means2d.grad for r in renders]
        if any(g is None for g in grads):
            return {}  # nothing on screen carried a gradient this step
        screen = torch.zeros(len(renders), n, 2, device=grads[0].device)
        screen.grad = torch.stack([g.reshape(-1, 2)[:n] for g in grads])
        info = {
            "means2d": screen,
            "radii": torch.stack([r.radii.reshape(-1, 2)[:n] for r in renders]),
            "width": renders[0].image.shape[1],
            "height": renders[0].image.shape[0],
            "n_cameras": len(renders),
            "gaussian_ids": None,
        }
        params = free_parameter_dict(self.model)
        before = n
        # DefaultStrategy.step_post_backward's own condition, to know when it refines.
        refining = step > self.cfg.start and step % self.cfg.every == 0 and step < self.cfg.stop
        if refining and n >= self.cfg.max_free:
            self.strategy.grow_grad2d = float("inf")  # prune only
        self.strategy.step_post_backward(params, self.optimizers.per_free, self.state, step, info)
        self.strategy.grow_grad2d = self.cfg.grow_grad2d
        write_back(self.model, params)
        return {"before": before, "after": self.model.num_free} if refining else {}

    def state_dict(self) -> dict:
        return {k: v for k, v in self.state.items() if isinstance(v, torch.Tensor) or v is None}

    def load_state_dict(self, state: dict) -> None:
        self.state.update(state)
