"""What the job service runs for a submitted request: the generation pipeline."""

from __future__ import annotations

from pathlib import Path

from ..progress import ProgressReporter


def run_generate_job(spec: dict, reporter: ProgressReporter, workdir: Path) -> Path:
    """Run (or resume, from checkpoints in ``workdir``) the pipeline for a request dict."""
    from ..pipeline import generate_from_request  # torch and friends load with the first job

    return generate_from_request(spec, reporter, workdir)
