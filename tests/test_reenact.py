"""`dreamwaltz reenact` on a synthetic shot with known truth (tests/reenact_shot.py): the video's
facts kept, the clean plate close to the true background, the avatar where the tracked body is."""

from __future__ import annotations

import numpy as np
import pytest

from dreamwaltz.core.color import linear_to_srgb

# Backend tests: Blender 5.1+ runs the Blender tests in its own Python 3.13, which has no torch.
pytest.importorskip("torch")
import torch
from reenact_shot import FPS, H, T, W, flat_avatar, make_shot, write_gvhmr

from dreamwaltz.body import BodyModel
from dreamwaltz.cli import main
from dreamwaltz.core.h3ga import write_h3ga

pytest.importorskip("av")
pytest.importorskip("cv2")


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    d = a.astype(np.float64)[where] - b.astype(np.float64)[where]
    return float(10 * np.log10(255.0**2 / max(float(np.mean(d**2)), 1e-12)))


@pytest.fixture(scope="module")
def body():
    return BodyModel.load("open", dtype=torch.float64)


def test_reenact_static_shot(tmp_path, body, capsys):
    from dreamwaltz.reenact import dilate, silhouettes
    from dreamwaltz.video_io import audio_summary, read_video

    shot = make_shot(tmp_path, body, panning=False)
    track = write_gvhmr(tmp_path / "hmr4d_results.pt", shot.track)
    avatar = write_h3ga(tmp_path / "avatar.h3ga", flat_avatar(BodyModel.load("open")))
    out, plate, matte = tmp_path / "out.mp4", tmp_path / "plate.mp4", tmp_path / "matte.mp4"
    assert (
        main(
            [
                "reenact",
                str(shot.video),
                "--track",
                str(track),
                "--avatar",
                str(avatar),
                "--person",
                "0",
                "--out",
                str(out),
                "--plate-out",
                str(plate),
                "--matte-out",
                str(matte),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "camera still" in capsys.readouterr().out

    frames, info = read_video(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (T, W, H, FPS)
    assert audio_summary(out) == audio_summary(shot.video) is not None  # codec, rate, channels, length

    # The clean plate inside the (dilated) mask of the person against the true background.
    truth_sil = silhouettes(shot.track, [0], body, W, H)
    assert (truth_sil == shot.person).mean() > 0.999  # the track's silhouette is the person drawn in the shot
    mask = dilate(truth_sil, 2)
    plate_frames, _ = read_video(plate)
    assert psnr(plate_frames, shot.background, mask) >= 25.0
    assert psnr(shot.frames, shot.background, mask) < 12.0  # the person really was there

    # The avatar's coverage against the projected track silhouette, every frame.
    matte_frames, _ = read_video(matte)
    covered = matte_frames[..., 0] > 127
    iou = [(covered[t] & truth_sil[t]).sum() / (covered[t] | truth_sil[t]).sum() for t in range(T)]
    assert min(iou) >= 0.85, np.round(iou, 3)
    # Where the avatar is, the output shows it, not the plate; and a shadow darkens the ground at the feet.
    inside = covered & truth_sil
    assert psnr(frames, plate_frames, inside) < 20.0
    feet = np.zeros_like(covered)
    lowest = max(np.nonzero(truth_sil[t].any(1))[0].max() for t in range(T))
    feet[:, lowest + 1 : lowest + 4] = True
    feet &= ~dilate(covered, 1)
    assert frames[feet].mean() < plate_frames[feet].mean() - 2.0


def test_panning_camera(tmp_path, body):
    from dreamwaltz.reenact import AvatarLayer, clean_plate, default_dilation, dilate, frame_homographies, silhouettes
    from dreamwaltz.video_io import read_video

    shot = make_shot(tmp_path, body, panning=True)
    frames, _ = read_video(shot.video)
    masks = dilate(silhouettes(shot.track, [0], body, W, H), default_dilation(W, H))
    homographies, still = frame_homographies(frames, masks)
    assert not still
    plate = clean_plate(frames, masks, homographies)
    assert psnr(plate, shot.background, masks) >= 22.0
    # Without the alignment the same fill is worse: the homographies are what makes it work.
    assert psnr(clean_plate(frames, masks, None), shot.background, masks) < psnr(plate, shot.background, masks) - 3.0
    # The avatar follows the rotating camera: its coverage against the projected track, every frame.
    layer = AvatarLayer(flat_avatar(BodyModel.load("open")), shot.track, 0, body, W, H)
    iou = []
    for t in range(T):
        covered = layer.render(t)[1] > 0.5
        iou.append((covered & shot.person[t]).sum() / (covered | shot.person[t]).sum())
    assert min(iou) >= 0.85, np.round(iou, 3)


def test_reenact_refuses_a_track_for_another_video(tmp_path, body, capsys):
    from dataclasses import replace

    from dreamwaltz.core.tracks import make_camera

    shot = make_shot(tmp_path, body, panning=False)
    short = replace(shot.track, camera=make_camera(shot.track.camera.K[:5], W, H))
    short.persons[0] = replace(
        short.persons[0],
        frames=short.persons[0].frames[:5],
        full_pose=short.persons[0].full_pose[:5],
        transl=short.persons[0].transl[:5],
        betas=short.persons[0].betas[:5],
    )
    from dreamwaltz.core.tracks import write_track

    track = write_track(tmp_path / "short.track.npz", short)
    avatar = write_h3ga(tmp_path / "avatar.h3ga", flat_avatar(BodyModel.load("open"), num_free=500))
    assert main(["reenact", str(shot.video), "--track", str(track), "--avatar", str(avatar)]) == 2
    assert "covers 5 frames but the video has 12" in capsys.readouterr().err
    assert main(["reenact", str(shot.video), "--track", str(tmp_path / "static.mp4"), "--avatar", str(avatar)]) == 2
    assert "unknown track format '.mp4'" in capsys.readouterr().err
    full = write_track(tmp_path / "full.track.npz", shot.track)
    assert main(["reenact", str(shot.video), "--track", str(full), "--avatar", str(avatar), "--person", "1"]) == 2
    assert "has no person 1; it has people 0 to 0" in capsys.readouterr().err


def test_people_in_some_frames_and_layering(tmp_path, body):
    """A second person present only in frames 3-7, nearer the camera: masked and replaced only
    there, and drawn over the first where they overlap."""
    from dataclasses import replace

    from dreamwaltz.core.tracks import make_person
    from dreamwaltz.reenact import composite, render_person, silhouettes

    shot = make_shot(tmp_path, body, panning=False)
    first = shot.track.persons[0]
    rows = slice(3, 8)
    second = make_person(
        first.frames[rows],
        first.full_pose[rows][:, :, :] * 1.0,
        first.transl[rows] + [0.1, 0.0, -0.8],
        first.betas[rows],
    )
    track = replace(shot.track, persons=[first, second])
    masks = silhouettes(track, [1], body, W, H)
    present = np.zeros(T, bool)
    present[3:8] = True
    assert masks[present].any(axis=(1, 2)).all() and not masks[~present].any()
    from dreamwaltz.stage2.oracle import reference_avatar

    avatar = reference_avatar(BodyModel.load("open"), 1500).export()
    green = reference_avatar(BodyModel.load("open"), 1500).export()
    for key in ("free/colors", "bound/colors"):
        green.arrays[key][:] = (0.0, 1.0, 0.0)
    near = render_person(avatar, track, 1, body, W, H, supersample=1)
    far = render_person(green, track, 0, body, W, H, supersample=1)
    assert (near[1][~present] == 0).all() and (near[1][present] > 0.5).any(axis=(1, 2)).all()
    assert (near[3][present] < far[3][present]).all() and np.isinf(near[3][~present]).all()
    out, alpha = composite(shot.background, [near, far])
    both = (near[1] > 0.99) & (far[1] > 0.5)
    assert both.sum() > 20
    # render_person gives premultiplied linear light; where the nearer avatar covers, the output is it, encoded.
    np.testing.assert_allclose(out[both] / 255.0, linear_to_srgb(near[0][both]), atol=0.04)  # the nearer avatar shows,
    assert (out[both][:, 1] < 200).mean() > 0.9  # not the green one behind it


def test_audio_reencoded_when_asked(tmp_path, body):
    from dreamwaltz.video_io import audio_summary, read_video, write_video

    shot = make_shot(tmp_path, body, panning=False)
    frames, info = read_video(shot.video)
    out = write_video(tmp_path / "aac.mp4", frames, info.fps, W, H, audio_from=shot.video, audio="aac")
    codec, rate, channels, seconds = audio_summary(out)
    assert (codec, rate, channels) == ("aac", 44100, 1) and abs(seconds - float(T / FPS)) < 1 / FPS
    assert read_video(out)[1].num_frames == T


def test_world_and_camera_frames_agree(tmp_path, body):
    """The same shot as a camera-frame track and as a y-up world track with per-frame extrinsics
    (a panning camera): the same masks, the same avatar coverage and the same shadow."""
    from dreamwaltz.reenact import AvatarLayer, silhouettes
    from dreamwaltz.stage2.oracle import reference_avatar

    shot = make_shot(tmp_path, body, panning=True)
    cam, world = silhouettes(shot.track, [0], body, W, H), silhouettes(shot.world_track, [0], body, W, H)
    assert (cam == world).mean() > 0.999 and (cam == shot.person).mean() > 0.999
    avatar = reference_avatar(BodyModel.load("open"), 1500).export()
    a = AvatarLayer(avatar, shot.track, 0, body, W, H, supersample=1)
    b = AvatarLayer(avatar, shot.world_track, 0, body, W, H, supersample=1)
    for t in (0, 6, 11):
        ra, rb = a.render(t), b.render(t)
        assert np.abs(ra[1] - rb[1]).max() < 0.02 and np.abs(ra[2] - rb[2]).max() < 0.02 and ra[2].max() > 0.3
        assert abs(ra[3] - rb[3]) < 1e-6
