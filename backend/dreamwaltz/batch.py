"""``dreamwaltz batch``: every prompt x seed as a generation job, then a contact sheet to choose from.

The jobs are ordinary job-server jobs (the one schema, ``core.job.GenerateSpec``) in
``OUT/jobs/<id>/``, run by the same engines as ``dreamwaltz serve`` (``local``, or ``ray`` on a
cluster). A job's id comes from its prompt, seed and settings, so a rerun finds its jobs again: a
finished avatar is skipped, an interrupted or failed one resumes from its checkpoints, and changed
settings make new jobs. At the end every finished avatar is rendered from the front and the back
(the project's own renderer, from the .h3ga) for ``OUT/contact_sheet.png`` and ``OUT/index.html``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.errors import DreamWaltzError
from .core.job import GenerateSpec
from .server.jobs import ACTIVE, FINISHED, EngineFactory, Job, JobStore, Runner

MAX_PROMPTS = 10_000


@dataclass
class Entry:
    spec: GenerateSpec
    job: Job
    skipped: bool = False  # finished by an earlier run

    @property
    def front(self) -> Path:
        return self.job.folder / "front.png"

    @property
    def back(self) -> Path:
        return self.job.folder / "back.png"


def read_prompts(path: Path) -> list[str]:
    """One prompt a line; blank lines and lines starting with # are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DreamWaltzError(
            f"Cannot read the prompts file {path}: {type(err).__name__}.",
            "Give a UTF-8 text file with one prompt a line.",
        ) from None
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not prompts:
        raise DreamWaltzError(
            f"The prompts file {path} has no prompts.", "Write one prompt a line (# starts a comment)."
        )
    if len(prompts) > MAX_PROMPTS:
        raise DreamWaltzError(
            f"The prompts file {path} has {len(prompts)} prompts, over the {MAX_PROMPTS} limit.",
            "Split it into several batches.",
        )
    return prompts


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise DreamWaltzError(
            f"--seeds {text!r} is not a list of whole numbers.", "Write e.g. --seeds 0,1,2."
        ) from None
    if not seeds:
        raise DreamWaltzError("--seeds is empty.", "Write e.g. --seeds 0,1,2.")
    return list(dict.fromkeys(seeds))


def job_id(spec: GenerateSpec) -> str:
    """Readable and stable: the prompt's first words, the seed, and a hash of every setting."""
    digest = hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", spec.prompt.lower()).strip("-")[:40].strip("-") or "prompt"
    return f"{slug}-s{spec.seed}-{digest}"


def plan(store: JobStore, specs: list[GenerateSpec]) -> list[Entry]:
    """The batch's jobs in the store: new ones queued; failed or cancelled ones queued again (they
    resume from their checkpoints); finished ones marked skipped; interrupted ones left to resume."""
    entries = []
    for spec in specs:
        jid = job_id(spec)
        job = store.get(jid)
        if job is None:
            entries.append(Entry(spec, store.create(spec.to_dict(), job_id=jid)))
            continue
        status = job.state["status"]
        if status == "done" and job.result_path.exists():
            entries.append(Entry(spec, job, skipped=True))
            continue
        if status not in ACTIVE:
            job.set_state(status="queued", error=None)
        entries.append(Entry(spec, job))
    return entries


def run_jobs(
    store: JobStore,
    entries: list[Entry],
    engine: EngineFactory,
    runner: Runner,
    say: Callable[[str], None] = print,
    poll_s: float = 0.5,
) -> None:
    """Run the entries that are not skipped on ``engine`` until every one has finished."""
    todo = {e.job.id: e for e in entries if not e.skipped}
    if not todo:
        return
    worker = engine(store, runner)
    worker.start()
    seen: dict[str, str] = {}
    try:
        while True:
            for jid, entry in todo.items():
                state = entry.job.state
                if state["status"] != seen.get(jid):
                    seen[jid] = state["status"]
                    note = (
                        f": {state['error']['message']}" if state["status"] == "failed" and state.get("error") else ""
                    )
                    say(f"{state['status']:9s} {entry.spec.prompt!r} seed {entry.spec.seed}{note}")
            if all(s in FINISHED for s in seen.values()) and len(seen) == len(todo):
                return
            worker.ensure_alive()
            time.sleep(poll_s)
    finally:
        worker.stop()


VIEWS = (("front.png", 0.0), ("back.png", 180.0))  # orbit_camera's azimuths: 0 faces the body's front


def write_views(avatar_path: Path, folder: Path, size: int, device: str = "auto") -> None:
    """``folder/front.png`` and ``folder/back.png``: the avatar rendered by the project's own
    renderer from its .h3ga, in the rest pose."""
    from PIL import Image

    from .core.h3ga import read_h3ga
    from .core.posing import pose_avatar
    from .pipeline import pick_device
    from .render.views import avatar_view

    avatar = read_h3ga(avatar_path)
    posed, device = pose_avatar(avatar), pick_device(device)
    for name, azimuth in VIEWS:
        tmp = Path(folder) / f".{name}.tmp.png"
        Image.fromarray(avatar_view(avatar, posed, azimuth, size, device)).save(tmp)
        tmp.replace(Path(folder) / name)


def generate_with_views(spec: dict, reporter, workdir: Path, view_size: int = 256) -> Path:
    """The batch's runner: the job server's job, then its contact-sheet views, rendered where the job
    ran (on a Ray worker: with its GPU) into the job folder (``workdir``'s parent, in both engines)."""
    from .server.runner import run_generate_job

    path = run_generate_job(spec, reporter, workdir)
    try:
        write_views(path, Path(workdir).parent, view_size, spec.get("device") or "auto")
    except Exception as err:  # noqa: BLE001 - the avatar is made; the batch renders missing views at the end
        reporter.info(
            "export", f"The contact-sheet views were not rendered here ({type(err).__name__}: {str(err)[:200]})."
        )
    return path


def render_previews(entries: list[Entry], size: int, device: str) -> int:
    """Front and back views of every finished avatar that has none yet (e.g. its job ran before a
    crash); returns how many were made."""
    made = 0
    for entry in entries:
        if entry.job.state["status"] == "done" and not (entry.front.exists() and entry.back.exists()):
            write_views(entry.job.result_path, entry.job.folder, size, device)
            made += 1
    return made


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (needs FreeType)
    except (TypeError, ValueError, OSError):
        return ImageFont.load_default()


def _wrap(draw, text: str, font, width: int, max_lines: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".") + "..."
    return lines


def contact_sheet(entries: list[Entry], path: Path, size: int) -> Path:
    """A grid of each avatar's front and back views, labelled with its prompt and seed (a failed
    job's cell says why)."""
    from PIL import Image, ImageDraw

    cols = min(len(entries), 4)
    rows = math.ceil(len(entries) / cols)
    pad, font_px = 8, max(10, size // 14)
    font = _font(font_px)
    label_h = 4 * (font_px + 3) + pad
    cell_w, cell_h = 2 * size + 3 * pad, size + label_h + 2 * pad
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, entry in enumerate(entries):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        state = entry.job.state
        if state["status"] == "done" and entry.front.exists() and entry.back.exists():
            for k, view in enumerate((entry.front, entry.back)):
                with Image.open(view) as im:
                    sheet.paste(im.convert("RGB").resize((size, size)), (x + pad + k * (size + pad), y + pad))
        else:
            draw.rectangle((x + pad, y + pad, x + 2 * size + 2 * pad, y + pad + size), fill=(225, 225, 225))
            error = (state.get("error") or {}).get("message") or ""
            for j, line in enumerate(_wrap(draw, f"{state['status']}: {error}".strip(": "), font, 2 * size, 4)):
                draw.text((x + 2 * pad, y + 2 * pad + j * (font_px + 3)), line, fill=(160, 0, 0), font=font)
        lines = _wrap(draw, entry.spec.prompt, font, 2 * size + pad, 3) + [f"seed {entry.spec.seed}"]
        for j, line in enumerate(lines):
            draw.text((x + pad, y + 2 * pad + size + j * (font_px + 3)), line, fill=(0, 0, 0), font=font)
    tmp = path.with_suffix(".tmp.png")
    sheet.save(tmp)
    tmp.replace(path)
    return path


def _relative(path: Path, out: Path) -> str:
    """``path`` seen from ``out`` (with ``..`` when the jobs live elsewhere, e.g. on --storage)."""
    return Path(os.path.relpath(path, out)).as_posix()


def index_html(entries: list[Entry], out: Path) -> Path:
    """A static page beside the sheet: every avatar's views, prompt, seed and file (relative links)."""
    cards = []
    for entry in entries:
        state = entry.job.state
        rel = _relative(entry.job.folder, out)
        prompt = html.escape(entry.spec.prompt)
        if state["status"] == "done":
            views = "".join(
                f'<img src="{rel}/{name}" alt="{name[:-4]} of {prompt}" width="192" height="192">'
                for name in ("front.png", "back.png")
            )
            link = f'<a href="{rel}/result.h3ga" download>avatar.h3ga</a>'
        else:
            error = html.escape((state.get("error") or {}).get("message") or "")
            views, link = f'<p class="failed">{html.escape(state["status"])}: {error}</p>', ""
        cards.append(
            f"<figure>{views}<figcaption><b>{prompt}</b><br>seed {entry.spec.seed} &middot; "
            f"{html.escape(entry.spec.preset)} &middot; {link}</figcaption></figure>"
        )
    page = (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>DreamWaltz batch</title>\n'
        "<style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:.5em;vertical-align:top;"
        "max-width:400px}img{background:#888;margin-right:4px}.failed{color:#a00;width:388px}</style></head>\n"
        f"<body><h1>DreamWaltz batch: {len(entries)} avatars</h1>\n"
        '<p><a href="contact_sheet.png">contact sheet</a></p>\n' + "\n".join(cards) + "\n</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def run_batch(
    prompts: list[str],
    seeds: list[int],
    make_spec: Callable[[str, int], GenerateSpec],
    out: Path,
    engine: EngineFactory,
    runner: Runner,
    view_size: int = 256,
    device: str = "auto",
    say: Callable[[str], None] = print,
    jobs_dir: Path | None = None,
) -> dict:
    """The whole batch; returns the summary also written to ``OUT/batch.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = JobStore(jobs_dir or out / "jobs")
    entries = plan(store, [make_spec(p, s) for p in prompts for s in seeds])
    skipped = sum(e.skipped for e in entries)
    say(
        f"batch: {len(entries)} avatars ({len(prompts)} prompts x {len(seeds)} seeds), "
        f"{len(entries) - skipped} to run, skipped {skipped} finished before"
    )
    run_jobs(store, entries, engine, runner, say)
    rendered = render_previews(entries, view_size, device)
    contact_sheet(entries, out / "contact_sheet.png", view_size)
    index_html(entries, out)
    states = [e.job.state for e in entries]
    summary = {
        "avatars": len(entries),
        "skipped": skipped,
        "ran": len(entries) - skipped,
        "previews_rendered": rendered,
        "done": sum(s["status"] == "done" for s in states),
        "failed": sum(s["status"] != "done" for s in states),
        "jobs": [
            {
                "id": e.job.id,
                "prompt": e.spec.prompt,
                "seed": e.spec.seed,
                "status": s["status"],
                "avatar": _relative(e.job.result_path, out) if s["status"] == "done" else None,
            }
            for e, s in zip(entries, states)
        ],
    }
    (out / "batch.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    say(
        f"batch: {summary['done']} of {len(entries)} avatars done ({summary['failed']} failed); "
        f"contact sheet {out / 'contact_sheet.png'}, page {out / 'index.html'}"
    )
    return summary
