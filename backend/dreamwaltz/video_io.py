"""Video in and out with PyAV (FFmpeg): every frame as RGB, the exact frame rate, and the audio
stream carried over untouched (remuxed; re-encoded to AAC only when the output container cannot
hold the original codec)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .core.errors import InvalidFileError

MAX_PIXELS = 8192 * 8192


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    num_frames: int
    has_audio: bool
    pix_fmt: str = "yuv420p"


def _open(path):
    import av

    path = Path(path)
    if not path.is_file():
        raise InvalidFileError(f"'{path}' does not exist.", "Check the path to the video.")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise InvalidFileError(
            f"'{path.name}' is not a video FFmpeg can read ({err}).", "Give an .mp4/.mov/.mkv file."
        ) from None


def _video_stream(container, path: Path):
    """The first video stream of an open container and its frame rate, or the one-line error."""
    if not container.streams.video:
        raise InvalidFileError(f"'{path.name}' has no video stream.", "Give a video file.")
    stream = container.streams.video[0]
    return stream, stream.average_rate or stream.guessed_rate or Fraction(30)


def read_video(path) -> tuple[np.ndarray, VideoInfo]:
    """All frames (T,H,W,3) uint8 RGB and the video's facts."""
    import av

    path = Path(path)
    with _open(path) as container:
        stream, fps = _video_stream(container, path)
        if stream.codec_context.width * stream.codec_context.height > MAX_PIXELS:
            raise InvalidFileError(f"'{path.name}' is larger than 8192x8192.", "Scale the video down first.")
        frames = []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as err:
            raise InvalidFileError(
                f"'{path.name}' cannot be decoded ({err}).", "The video is damaged; export it again."
            ) from None
        has_audio = bool(container.streams.audio)
        pix_fmt = stream.codec_context.pix_fmt or "yuv420p"
    if not frames:
        raise InvalidFileError(f"'{path.name}' has no frames.", "Give a video with frames.")
    video = np.stack(frames)
    return video, VideoInfo(path, video.shape[2], video.shape[1], Fraction(fps), len(frames), has_audio, pix_fmt)


def write_video(
    path,
    frames,
    fps: Fraction,
    width: int,
    height: int,
    audio_from: Path | None = None,
    crf: int = 17,
    pix_fmt: str = "yuv420p",
    audio: str = "auto",
) -> Path:
    """H.264 at ``fps`` (MPEG-4 part 2 for odd sizes, which H.264's 4:2:0 cannot hold), one output
    frame per input frame (``frames``: an array or any iterable, consumed once), with the audio of
    ``audio_from`` when it has any. ``pix_fmt``: yuv420p, or yuv444p to keep a 4:4:4 source's colour
    resolution. ``audio``: "copy" remuxes the packets untouched, "aac" re-encodes, "auto" copies
    when the output container can hold the codec (tried on a few packets first), else re-encodes."""
    import av

    if audio == "auto":
        audio = "copy" if audio_from is None or _audio_copy_ok(Path(audio_from), Path(path).suffix) else "aac"
    try:
        return _write(path, frames, fps, width, height, audio_from, crf, pix_fmt, audio)
    except av.error.FFmpegError as err:
        raise InvalidFileError(
            f"'{Path(path).name}' could not be written ({err}).", "Check the output path and format."
        ) from None


def _audio_copy_ok(source: Path, suffix: str) -> bool:
    import tempfile

    import av

    with _open(source) as src:
        if not src.streams.audio:
            return True
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with av.open(str(Path(tmp) / f"probe{suffix or '.mp4'}"), "w") as out:
                    a_in = src.streams.audio[0]
                    a_out = out.add_stream_from_template(a_in)
                    for n, packet in enumerate(src.demux(a_in)):
                        if packet.dts is None:
                            continue
                        packet.stream = a_out
                        out.mux(packet)
                        if n >= 4:
                            break
                return True
            except (av.error.FFmpegError, ValueError):
                return False


def _write(path, frames, fps, width, height, audio_from, crf, pix_fmt, audio) -> Path:
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps).limit_denominator(1_000_000)
    even = width % 2 == 0 and height % 2 == 0
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264" if even else "mpeg4", rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = pix_fmt if even and pix_fmt in ("yuv420p", "yuv444p") else "yuv420p"
        video.time_base = 1 / fps
        video.options = {"crf": str(crf), "preset": "medium"} if even else {"qscale": "2"}
        src = _open(audio_from) if audio_from is not None else None
        a_in = a_out = None
        try:
            if src is not None and src.streams.audio:
                a_in = src.streams.audio[0]
                if audio == "copy":
                    a_out = out.add_stream_from_template(a_in)
                else:
                    a_out = out.add_stream("aac", rate=a_in.codec_context.sample_rate or 48000)
                    a_out.layout = a_in.codec_context.layout.name if a_in.codec_context.layout else "stereo"
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
                frame.pts = i
                frame.time_base = 1 / fps
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
            if a_in is not None and audio == "copy":
                for packet in src.demux(a_in):
                    if packet.dts is None:
                        continue
                    packet.stream = a_out
                    out.mux(packet)
            elif a_in is not None:
                resampler = av.AudioResampler(format="fltp", layout=a_out.layout.name, rate=a_out.rate)
                for decoded in src.decode(a_in):
                    for chunk in resampler.resample(decoded):
                        for packet in a_out.encode(chunk):
                            out.mux(packet)
                for chunk in resampler.resample(None):
                    for packet in a_out.encode(chunk):
                        out.mux(packet)
                for packet in a_out.encode():
                    out.mux(packet)
        finally:
            if src is not None:
                src.close()
    return path


def video_info(path) -> VideoInfo:
    """Facts of a video without decoding it: size and rate from the stream, frames counted from
    its packets (one per frame for every common codec; ``read_video`` is the authority)."""
    path = Path(path)
    with _open(path) as container:
        stream, fps = _video_stream(container, path)
        ctx = stream.codec_context
        count = sum(1 for packet in container.demux(stream) if packet.size)
        return VideoInfo(
            path, ctx.width, ctx.height, Fraction(fps), count, bool(container.streams.audio), ctx.pix_fmt or "yuv420p"
        )


def audio_summary(path) -> tuple[str, int, int, float] | None:
    """(codec, sample rate, channels, seconds) of the first audio stream, or None."""
    with _open(path) as container:
        if not container.streams.audio:
            return None
        a = container.streams.audio[0]
        seconds = float(a.duration * a.time_base) if a.duration else 0.0
        if not seconds:
            last = 0
            for packet in container.demux(a):
                if packet.pts is not None:
                    last = max(last, packet.pts + (packet.duration or 0))
            seconds = float(last * a.time_base)
        return a.codec_context.name, a.codec_context.sample_rate, a.codec_context.channels, seconds
