"""Stage-1 oracle reconstruction: held-out-view PSNR of the canonical field against a reference
avatar (open body + procedural outfit), trained with oracle guidance, no diffusion weights."""

from ..stage1.oracle import run_oracle_stage1


def main():
    final, initial, seconds = run_oracle_stage1(steps=400, size=64)
    print(f"held-out view PSNR after body initialisation {initial:.2f} dB")
    print(f"stage1_psnr_db={final:.2f} seconds={seconds:.1f}")
