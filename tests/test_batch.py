"""Issue 22: ``dreamwaltz batch`` runs every prompt x seed as a job, resumes, and ends with a
contact sheet and an index page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli  # noqa: E402
from PIL import Image

from dreamwaltz.core.h3ga import read_h3ga

PROMPTS = ["a knight in armor", "a dancer in a red dress", "an astronaut", "a wizard with a long beard"]
# As short as the tiny preset allows: two stage-2 steps, stage 1 skipped (tests/test_stage2.py's knobs).
TINY = ["--preset", "tiny", "--device", "cpu", "--steps", "2", "--stage1-steps", "0", "--view-size", "64"]


def batch(*args):
    return cli("batch", *args, timeout=900)


def snapshot(jobs: Path) -> dict:
    return {
        p.relative_to(jobs).as_posix(): p.stat().st_mtime_ns
        for p in jobs.rglob("*")
        if p.is_file() and p.name != "state.json"
    }


@pytest.mark.slow
def test_batch_writes_every_avatar_a_contact_sheet_and_an_index_and_a_rerun_does_no_work(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# four avatars\n" + "\n\n".join(PROMPTS) + "\n")
    out = tmp_path / "out"
    first = batch(prompts, *TINY, "--out", out)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / "batch.json").read_text())
    assert (summary["avatars"], summary["done"], summary["skipped"]) == (4, 4, 0)
    assert summary["previews_rendered"] == 0, "each job rendered its own views where it ran"
    assert sorted(j["prompt"] for j in summary["jobs"]) == sorted(PROMPTS) and {j["seed"] for j in summary["jobs"]} == {
        0
    }
    avatars = {j["prompt"]: read_h3ga(out / j["avatar"]) for j in summary["jobs"]}
    assert all(a.manifest["prompt"] == p for p, a in avatars.items()), "each file is its prompt's avatar"

    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width >= 4 * 2 * 64 and sheet.height >= 64, "four cells of front + back views"
    cell = np.asarray(sheet.convert("RGB"))[8 : 8 + 64, 8 : 8 + 128].astype(float)
    assert cell.std() > 5, "the first cell shows rendered views, not a blank"
    page = (out / "index.html").read_text()
    for job in summary["jobs"]:
        for name in ("front.png", "back.png", "result.h3ga"):
            rel = f"{Path(job['avatar']).parent.as_posix()}/{name}"
            assert f'"{rel}"' in page and (out / rel).is_file(), rel
        front = np.asarray(Image.open(out / Path(job["avatar"]).parent / "front.png"))
        back = np.asarray(Image.open(out / Path(job["avatar"]).parent / "back.png"))
        assert front.shape == (64, 64, 3) and not np.array_equal(front, back), "front and back are different views"
    assert "a wizard with a long beard" in page and "/tmp" not in page, "labels, and links relative to the page"

    before = snapshot(out / "jobs")
    again = batch(prompts, *TINY, "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped 4" in again.stdout and "running" not in again.stdout
    assert snapshot(out / "jobs") == before, "a rerun trains, exports and renders nothing"
    assert json.loads((out / "batch.json").read_text())["ran"] == 0

    # Views lost (or never made, e.g. a job finished by an older version): the batch renders them.
    lost = out / Path(summary["jobs"][0]["avatar"]).parent / "back.png"
    lost.unlink()
    again = batch(prompts, *TINY, "--out", out)
    assert again.returncode == 0 and "skipped 4" in again.stdout, again.stderr[-3000:]
    assert lost.exists() and json.loads((out / "batch.json").read_text())["previews_rendered"] == 1

    # A job interrupted after its last checkpoint (state "running", no result yet) resumes from it.
    job = out / summary["jobs"][1]["avatar"]
    reference = read_h3ga(job)
    state = json.loads((job.parent / "state.json").read_text())
    (job.parent / "state.json").write_text(json.dumps(dict(state, status="running")))
    job.unlink()
    (job.parent / "front.png").unlink()
    resumed = batch(prompts, *TINY, "--out", out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipped 3" in resumed.stdout
    events = [json.loads(line) for line in (job.parent / "events.jsonl").read_text().splitlines()]
    assert any("Resumed from step 2" in (e.get("message") or "") for e in events[-6:]), events[-6:]
    again = read_h3ga(job)
    for name in ("free/means", "free/colors", "free/opacity_logits"):
        assert np.array_equal(again[name], reference[name]), name
    assert (job.parent / "front.png").exists()


def test_bad_batch_input_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    result = batch(empty, "--out", tmp_path / "o")
    assert result.returncode != 0 and "has no prompts" in result.stderr and "Traceback" not in result.stderr
    prompts = tmp_path / "p.txt"
    prompts.write_text("a knight\n")
    result = batch(prompts, "--seeds", "0,x", "--out", tmp_path / "o")
    assert result.returncode != 0 and "--seeds" in result.stderr and "Traceback" not in result.stderr
    result = batch(prompts, "--preset", "tiny", "--steps", "-1", "--out", tmp_path / "o")
    assert result.returncode != 0 and "steps" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o" / "jobs").exists() or not any((tmp_path / "o" / "jobs").iterdir()), "nothing queued"


@pytest.mark.slow
def test_an_interrupted_batch_resumes_from_the_checkpoint_on_a_rerun(tmp_path):
    import signal
    import time

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a runner\n")
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "dreamwaltz",
        "batch",
        str(prompts),
        *TINY[:4],
        "--steps",
        "40",
        "--stage1-steps",
        "0",
        "--view-size",
        "32",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("jobs/*/work/stage2.pt")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl+C
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "rerun the same command to resume" in output, output[-2000:]
    folder = next(out.glob("jobs/*"))
    assert (
        json.loads((folder / "state.json").read_text())["status"] == "running" and not (folder / "result.h3ga").exists()
    )
    again = batch(prompts, *TINY[:4], "--steps", "40", "--stage1-steps", "0", "--view-size", "32", "--out", out)
    assert again.returncode == 0, again.stderr[-2000:]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    resumed = next(e for e in events if "Resumed from step" in (e.get("message") or ""))
    step = int(resumed["message"].split("step ")[1].rstrip("."))
    after = [e["step"] for e in events[events.index(resumed) :] if e["stage"] == "stage2" and e.get("total")]
    assert step > 0 and after[0] == step + 1 and after[-1] == 40, "continued from the checkpoint, not from step 0"
    assert (folder / "result.h3ga").exists() and (out / "contact_sheet.png").exists()
