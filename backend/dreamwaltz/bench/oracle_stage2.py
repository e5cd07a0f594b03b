"""Stage-2 oracle reconstruction: PSNR on held-out views and held-out poses (fingers, expressions)."""

from ..stage2.oracle import run_oracle_stage2


def main():
    view, pose, initial, seconds = run_oracle_stage2(steps=150, size=48, num_free=3000)
    print(f"initial held-out view PSNR {initial:.2f} dB")
    print(f"stage2_psnr_view_db={view:.2f} stage2_psnr_pose_db={pose:.2f} seconds={seconds:.1f}")
