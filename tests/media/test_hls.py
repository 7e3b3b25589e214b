"""The HLS pipeline on real tiny clips: ladder, keyframe alignment, poster, sprites, fast paths."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import pytest

from media import commands, hls
from media.ffmpeg import FfmpegError
from media.ladder import Rendition, renditions_for
from media.probe import ProbeResult, probe
from media.progress import FfmpegTimeout
from media.thumbnails import plan_sprites
from tests.media.clips import aac_m4a, ffmpeg, h264_mp4, vp9_webm

SEGMENT = 4.0
FPS = 25
SECONDS = 9.0
ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) --> (\d\d):(\d\d):(\d\d\.\d{3})$")


def accept(path: Path) -> ProbeResult:
    return probe(path, max_duration=3600, max_size=10**9)


@dataclass
class Run:
    """A finished job and the progress reports it made."""

    output: hls.HlsOutput
    progress: list[tuple[float, float | None]] = field(default_factory=list)


def run(job: str, source: ProbeResult, dest: Path, **kw: Any) -> Run:
    seen: list[tuple[float, float | None]] = []
    functions = {
        "transcode": hls.transcode,
        "first_pass": hls.transcode_first_pass,
        "remux": hls.remux,
    }
    output = functions[job](source, dest, on_progress=lambda p, eta: seen.append((p, eta)), **kw)
    return Run(output, seen)


def master_variants(folder: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) for each variant in the master playlist."""
    lines = (folder / commands.MASTER).read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    variants = []
    for line, uri in itertools.pairwise(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = {k: v.strip('"') for k, v in ATTRIBUTE.findall(line.split(":", 1)[1])}
            variants.append((attrs, uri))
    return variants


def segments(playlist: Path) -> list[tuple[float, str]]:
    """(duration, file) for each segment of a variant playlist."""
    lines = playlist.read_text().splitlines()
    assert "#EXT-X-ENDLIST" in lines
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    return [
        (float(line.split(":")[1].rstrip(",")), uri)
        for line, uri in itertools.pairwise(lines)
        if line.startswith("#EXTINF:")
    ]


def first_video_packet_is_keyframe(segment: Path) -> bool:
    with av.open(str(segment)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                return bool(packet.is_keyframe)
    return False


def decoded_video(playlist: Path) -> tuple[int, int, int]:
    """(frames, width, height) of the video when the playlist is played through."""
    frames, size = 0, (0, 0)
    with av.open(str(playlist)) as container:
        assert container.streams.audio, "every variant carries the sound"
        for frame in container.decode(video=0):
            frames += 1
            size = (frame.width, frame.height)
    return frames, *size


def picture_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def picture_hashes(path: Path) -> list[str]:
    """A digest of every decoded picture, in order: equal only for the very same pictures."""
    digests = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest = hashlib.sha256()
            for plane in frame.planes:
                digest.update(bytes(plane))
            digests.append(digest.hexdigest())
    return digests


def no_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hls-clips")
    # Keyframes every 3 s: the ladder must place its own at every 4 s boundary regardless.
    h264_mp4(folder / "ladder.mp4", size="854x480", seconds=SECONDS, rate=FPS, gop=3 * FPS)
    # Keyframes every 2 s, as screen recorders are usually set up: good for passthrough.
    h264_mp4(
        folder / "copyable.mp4",
        size="854x480",
        seconds=SECONDS,
        rate=FPS,
        gop=2 * FPS,
        extra=("-b:v", "900k", "-maxrate", "1M", "-bufsize", "1M"),
    )
    vp9_webm(folder / "browser.webm", size="320x180", seconds=3)
    aac_m4a(folder / "voice.m4a", seconds=3)
    h264_mp4(folder / "phone.mp4", seconds=3)
    ffmpeg("-display_rotation", "90", "-i", str(folder / "phone.mp4"), "-c", "copy",
           str(folder / "rotated.mp4"))  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def ladder_run(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    source = accept(clips / "ladder.mp4")
    renditions = renditions_for(source, allow_passthrough=False)
    dest = tmp_path_factory.mktemp("published") / "ladder"
    return run("transcode", source, dest, renditions=renditions, segment_seconds=SEGMENT)


def test_ladder_command_is_one_safe_ffmpeg_run(clips: Path) -> None:
    source = accept(clips / "ladder.mp4")
    sprites = plan_sprites(source.duration, 854, 480)
    args = commands.build_command(
        source, renditions_for(source, allow_passthrough=False), sprites=sprites
    )
    i = args.index("-i")
    before = args[:i]
    assert before[before.index("-protocol_whitelist") + 1] == "file"
    assert before[before.index("-f") + 1] == "mov"
    assert args[i + 1] == f"file:{(clips / 'ladder.mp4').resolve()}"
    assert args.count("-i") == 1
    assert args.count("-filter_complex") == 1
    graph = args[args.index("-filter_complex") + 1]
    assert graph.count("split=4") == 1  # two renditions, the poster and the thumbnails
    assert args[args.index("-var_stream_map") + 1] == "v:0,a:0,name:480p v:1,a:1,name:360p"
    assert args[args.index("-force_key_frames:v:0") + 1] == "expr:gte(t,n_forced*4)"
    assert args[args.index("-sc_threshold:v:1") + 1] == "0"
    assert args[args.index("-progress") + 1] == "pipe:1"


def test_master_playlist_describes_every_rendition(ladder_run: Run) -> None:
    out = ladder_run.output
    variants = master_variants(out.folder)
    assert [uri for _, uri in variants] == ["480p/index.m3u8", "360p/index.m3u8"]
    for (attrs, _), rendition in zip(variants, out.renditions, strict=True):
        assert int(attrs["BANDWIDTH"]) > 0
        assert attrs["RESOLUTION"] == f"{rendition.width}x{rendition.height}"
        video_codec, audio_codec = attrs["CODECS"].split(",")
        assert video_codec.startswith("avc1.")
        assert audio_codec == "mp4a.40.2"
    assert [r.name for r in out.renditions] == ["480p", "360p"]


def test_segments_have_the_target_length_and_align_across_renditions(ladder_run: Run) -> None:
    folder = ladder_run.output.folder
    lists = {
        r.name: segments(folder / ladder_run.output.playlist(r))
        for r in ladder_run.output.renditions
    }
    durations = {name: [d for d, _ in entries] for name, entries in lists.items()}
    assert durations["480p"] == durations["360p"]
    assert len(durations["480p"]) == 3
    for duration in durations["480p"][:-1]:
        assert abs(duration - SEGMENT) <= 1.0
    assert sum(durations["480p"]) == pytest.approx(SECONDS, abs=0.2)
    for name, entries in lists.items():
        for _, uri in entries:
            assert first_video_packet_is_keyframe(folder / name / uri), (name, uri)


def test_every_rendition_plays_through(ladder_run: Run) -> None:
    out = ladder_run.output
    for rendition in out.renditions:
        frames, width, height = decoded_video(out.folder / out.playlist(rendition))
        assert (width, height) == (rendition.width, rendition.height)
        assert abs(frames - SECONDS * FPS) <= 2


def test_poster_is_a_jpeg_at_the_top_size(ladder_run: Run) -> None:
    out = ladder_run.output
    assert out.poster == "poster.jpg"
    poster = out.folder / out.poster
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    top = out.renditions[0]
    assert picture_size(poster) == (top.width, top.height)


def test_sprite_sheets_and_vtt_cover_the_video(ladder_run: Run) -> None:
    out = ladder_run.output
    assert out.thumbnails == "thumbnails.vtt"
    assert out.sprite_sheets == ("sprite-001.jpg",)
    sheet = out.folder / "sprite-001.jpg"
    assert sheet.read_bytes()[:3] == b"\xff\xd8\xff"
    sheet_width, sheet_height = picture_size(sheet)
    lines = (out.folder / out.thumbnails).read_text().splitlines()
    assert lines[0] == "WEBVTT"
    cues = []
    for line, target in itertools.pairwise(lines):
        match = CUE.match(line)
        if match:
            h1, m1, s1, h2, m2, s2 = match.groups()
            start = int(h1) * 3600 + int(m1) * 60 + float(s1)
            end = int(h2) * 3600 + int(m2) * 60 + float(s2)
            cues.append((start, end, target))
    assert cues[0][0] == 0.0
    assert cues[-1][1] == pytest.approx(SECONDS, abs=0.05)
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert end == start
    for _, _, target in cues:
        name, region = target.split("#xywh=")
        assert (out.folder / name).is_file()
        x, y, w, h = (int(v) for v in region.split(","))
        assert x + w <= sheet_width
        assert y + h <= sheet_height
    assert not list(out.folder.glob("thumb-*.jpg")), "single thumbnails are cleaned up"


def test_progress_rises_to_100(ladder_run: Run) -> None:
    percents = [p for p, _ in ladder_run.progress]
    assert percents, "progress was reported"
    assert percents == sorted(set(percents))
    assert percents[-1] == 100.0
    assert ladder_run.progress[-1][1] == 0.0
    assert all(eta is not None and eta >= 0 for _, eta in ladder_run.progress)


def test_the_result_is_published_whole(ladder_run: Run) -> None:
    folder = ladder_run.output.folder
    assert no_leftovers(folder.parent)
    assert sorted(p.name for p in folder.iterdir()) == [
        "360p",
        "480p",
        "master.m3u8",
        "poster.jpg",
        "sprite-001.jpg",
        "thumbnails.vtt",
    ]


def test_a_second_run_replaces_the_first(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "browser.webm")
    dest = tmp_path / "video"
    run("first_pass", source, dest)
    second = run("transcode", source, dest, thumbnails=False).output
    assert second.folder == dest
    assert [uri for _, uri in master_variants(dest)] == ["180p/index.m3u8"]
    assert no_leftovers(tmp_path)


def test_timeout_kills_the_run_and_leaves_nothing(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "ladder.mp4")
    dest = tmp_path / "video"
    with pytest.raises(FfmpegTimeout, match=r"longer than 0\.2 s"):
        hls.transcode(source, dest, timeout=0.2)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_cancelling_callback_leaves_nothing(clips: Path, tmp_path: Path) -> None:
    def cancel(percent: float, eta: float | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hls.transcode(accept(clips / "ladder.mp4"), tmp_path / "video", on_progress=cancel)
    assert list(tmp_path.iterdir()) == []


def test_failure_raises_with_ffmpeg_s_reason(clips: Path, tmp_path: Path) -> None:
    source = replace(accept(clips / "browser.webm"), path=tmp_path / "gone.webm")
    with pytest.raises(FfmpegError, match="No such file or directory"):
        hls.transcode(source, tmp_path / "video")
    assert list(tmp_path.iterdir()) == []


def test_passthrough_ladder_copies_the_top_and_aligns_the_rest(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "copyable.mp4")
    out = run("transcode", source, tmp_path / "video", thumbnails=False).output
    assert [(r.name, r.passthrough) for r in out.renditions] == [("480p", True), ("360p", False)]
    top, low = (segments(out.folder / out.playlist(r)) for r in out.renditions)
    assert [d for d, _ in top] == [d for d, _ in low]
    for rendition, entries in zip(out.renditions, (top, low), strict=True):
        for _, uri in entries:
            assert first_video_packet_is_keyframe(out.folder / rendition.name / uri)
    # The copied rendition shows the source's own pictures, bit for bit.
    top_playlist = out.folder / out.playlist(out.renditions[0])
    assert picture_hashes(top_playlist) == picture_hashes(clips / "copyable.mp4")


def test_remux_serves_h264_aac_without_reencoding(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "copyable.mp4")
    job = run("remux", source, tmp_path / "quick")
    out = job.output
    ((attrs, uri),) = master_variants(out.folder)
    assert attrs["RESOLUTION"] == "854x480"
    assert attrs["CODECS"].startswith("avc1.")
    playlist = out.folder / uri
    durations = [d for d, _ in segments(playlist)]
    assert sum(durations) == pytest.approx(SECONDS, abs=0.2)
    assert all(abs(d - SEGMENT) <= 1.0 for d in durations[:-1])
    # Copied, not encoded: any encoder, however good, would change the decoded pictures.
    assert picture_hashes(playlist) == picture_hashes(clips / "copyable.mp4")
    frames, width, height = decoded_video(playlist)
    assert (frames, width, height) == (SECONDS * FPS, 854, 480)
    assert job.progress[-1] == (100.0, 0.0)
    assert out.poster is None


def test_remux_refuses_what_it_cannot_copy(clips: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be served without re-encoding"):
        hls.remux(accept(clips / "browser.webm"), tmp_path / "quick")


def test_first_pass_is_one_small_rendition(clips: Path, tmp_path: Path) -> None:
    out = run("first_pass", accept(clips / "ladder.mp4"), tmp_path / "quick").output
    assert [(r.name, r.width, r.height) for r in out.renditions] == [("360p", 640, 360)]
    ((attrs, _),) = master_variants(out.folder)
    assert attrs["RESOLUTION"] == "640x360"
    assert out.poster == "poster.jpg"
    assert out.thumbnails is None
    assert not list(out.folder.glob("sprite-*.jpg"))


def test_audio_only_gets_a_waveform_picture(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "voice.m4a")
    out = run("transcode", source, tmp_path / "voice").output
    ((attrs, uri),) = master_variants(out.folder)
    assert attrs["RESOLUTION"] == "640x360"
    assert attrs["CODECS"].endswith("mp4a.40.2")
    frames, width, height = decoded_video(out.folder / uri)
    assert (width, height) == (640, 360)
    assert frames >= 3 * commands.WAVEFORM_FPS - 2
    assert picture_size(out.folder / "poster.jpg") == (640, 360)


def test_a_rotated_phone_video_is_encoded_upright(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "rotated.mp4")
    out = run("transcode", source, tmp_path / "phone", thumbnails=False).output
    assert [(r.width, r.height, r.passthrough) for r in out.renditions] == [(180, 320, False)]
    ((attrs, uri),) = master_variants(out.folder)
    assert attrs["RESOLUTION"] == "180x320"
    assert decoded_video(out.folder / uri)[1:] == (180, 320)


def test_explicit_renditions_are_used_as_given(clips: Path, tmp_path: Path) -> None:
    source = accept(clips / "browser.webm")
    tiny = Rendition("90p", 160, 90, 150_000, 64_000, "main")
    out = run("transcode", source, tmp_path / "v", renditions=[tiny], thumbnails=False).output
    assert [uri for _, uri in master_variants(out.folder)] == ["90p/index.m3u8"]


def test_discard_partials_removes_only_leftovers(tmp_path: Path) -> None:
    kept = [tmp_path / "video", tmp_path / ".hidden"]
    gone = [tmp_path / ".video.partial-1a2b3c4d", tmp_path / ".quick.partial-00000000"]
    for folder in kept + gone:
        folder.mkdir()
        (folder / "seg_00000.ts").write_bytes(b"x")
    assert sorted(hls.discard_partials(tmp_path)) == sorted(gone)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert hls.discard_partials(tmp_path / "missing") == []


def test_an_odd_sized_source_gets_even_dimensions_and_plays(tmp_path: Path) -> None:
    # Screen recordings of a resized window have odd sizes, which H.264 in 4:2:0 cannot encode.
    path = tmp_path / "odd.webm"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=322x242:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        "-vf", "format=rgb24,crop=321:241,format=yuv444p",
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
        "-c:a", "libopus", "-shortest", str(path),
    )  # fmt: skip
    source = accept(path)
    assert source.video is not None
    assert (source.video.width, source.video.height) == (321, 241)
    out = run("transcode", source, tmp_path / "odd-out", thumbnails=False).output
    for attrs, uri in master_variants(out.folder):
        width, height = (int(n) for n in attrs["RESOLUTION"].split("x"))
        assert width % 2 == 0
        assert height % 2 == 0
        frames, decoded_w, decoded_h = decoded_video(out.folder / uri)
        assert (decoded_w, decoded_h) == (width, height)
        assert frames >= 3 * FPS - 2


def test_a_variable_frame_rate_source_becomes_constant_and_keeps_its_length(
    tmp_path: Path,
) -> None:
    # Phones and screen recorders drop frames when idle: timestamps are irregular.
    path = tmp_path / "vfr.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
        "-vf", r"select=lt(mod(n\,10)\,6)", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    with av.open(str(path)) as container:
        stamps = [float(f.time) for f in container.decode(video=0) if f.time is not None]
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(stamps)}
    assert len(gaps) > 1, "the source really has a variable frame rate"
    source = accept(path)
    # Re-encoded renditions are constant-rate (a copied passthrough rung keeps the source's times).
    renditions = renditions_for(source, allow_passthrough=False)
    out = run(
        "transcode", source, tmp_path / "vfr-out", renditions=renditions, thumbnails=False
    ).output
    ((_, uri), *_) = master_variants(out.folder)
    with av.open(str(out.folder / uri)) as container:
        times = [float(f.time) for f in container.decode(video=0) if f.time is not None]
    steps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
    assert len(steps) == 1, f"constant frame rate expected, got steps {sorted(steps)}"
    assert times[-1] - times[0] == pytest.approx(4.0, abs=0.3)
