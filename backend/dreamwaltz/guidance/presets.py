"""Guidance settings per quality preset, in one place (paper values for 'paper')."""

PRESETS = {
    # Tiny random models on a CPU: checks the machinery end to end in minutes.
    "tiny": {"resolution": 64, "guidance_scale": 7.5, "t_range": (0.02, 0.98), "conditioning_scale": 1.0},
    "preview": {"resolution": 512, "guidance_scale": 50.0, "t_range": (0.02, 0.98), "conditioning_scale": 1.0},
    "paper": {"resolution": 512, "guidance_scale": 50.0, "t_range": (0.02, 0.98), "conditioning_scale": 1.0},
}
NEGATIVE_PROMPT = ("lowres, blurry, deformed, extra limbs, missing fingers, bad hands, bad anatomy, "
                   "cropped, out of frame, text, watermark")
