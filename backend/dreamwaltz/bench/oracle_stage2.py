"""Stage-2 oracle reconstruction: PSNR on held-out views, poses, hand and face close-ups (fingers,
expressions), and the gap between the trained model and its exported file."""

from ..stage2.oracle import run_oracle_stage2


def main():
    s = run_oracle_stage2(steps=150, size=48, num_free=3000)
    print(f"initial held-out view PSNR {s.initial:.2f} dB")
    print(
        f"stage2_psnr_view_db={s.view:.2f} stage2_psnr_pose_db={s.pose:.2f} stage2_psnr_hands_db={s.hands:.2f} "
        f"stage2_psnr_face_db={s.face:.2f} export_gap_db={s.export_gap:.2f} seconds={s.seconds:.1f}"
    )
