"""Transcode benchmark: Encore's HLS pipeline against a bare ffmpeg command, and time-to-playable.

Generates 60 s 1080p30 sources (a high-motion test pattern and a slide-like one whose picture
changes every 10 s), then measures in the same run:

- the full ladder (1080p, 720p, 480p, 360p) with `media.hls.transcode`, ladder only and with
  poster and thumbnails, against one hand-written ffmpeg command producing the same ladder
  (same split filter, encoder settings and HLS muxer): real-time factor and wall-time ratio;
- time to first playable: the remux of an H.264/AAC upload and the 360p first pass of a VP9
  upload, bare (`media.hls`) and through the transcode service on SQLite and local storage
  (claim, probe, encode, publish, until the row says playable).

Run: `.venv/bin/python bench/transcode.py` (about 10 minutes on two cores); `--help` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media import hls  # noqa: E402
from media.ffmpeg import ffmpeg_binary, version  # noqa: E402
from media.ladder import Rendition, renditions_for  # noqa: E402
from media.probe import ProbeResult, probe  # noqa: E402

SEGMENT = 4.0
PRESET = "veryfast"


def run(args: list[str], *, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - started


def ffmpeg(*args: str, cwd: Path | None = None) -> float:
    return run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], cwd=cwd)


def generate(folder: Path, seconds: float) -> dict[str, Path]:
    """The sources: H.264/AAC motion and slides (copyable as they are), and VP9/Opus motion."""
    tone = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    h264 = [
        *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-profile:v", "high"),
        *("-b:v", "4M", "-maxrate", "5M", "-bufsize", "8M", "-g", "60", "-keyint_min", "60"),
        *("-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart"),
    ]
    sources = {
        "motion": folder / "motion-1080p.mp4",
        "slides": folder / "slides-1080p.mp4",
        "vp9": folder / "motion-1080p.webm",
    }
    motion = f"testsrc2=size=1920x1080:rate=30:duration={seconds}"
    # A new "slide" every 10 s, held still in between, as in a screen-shared deck.
    slides = f"testsrc2=size=1920x1080:rate=0.1:duration={seconds},fps=30"
    for name, graph in (("motion", motion), ("slides", slides)):
        if not sources[name].exists():
            print(f"  generating {sources[name].name} ...", flush=True)
            ffmpeg("-f", "lavfi", "-i", graph, *tone, *h264, str(sources[name]))
    if not sources["vp9"].exists():
        print(f"  generating {sources['vp9'].name} ...", flush=True)
        ffmpeg(
            "-i", str(sources["motion"]),
            *("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"),
            *("-b:v", "3M", "-c:a", "libopus", "-b:a", "96k", str(sources["vp9"])),
        )  # fmt: skip
    return sources


def bare_command(source: Path, ladder: list[Rendition], fps: float) -> list[str]:
    """The ladder as a person would write it by hand: one split, one x264 per rung, HLS out."""
    n = len(ladder)
    chains = [f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))]
    for i, r in enumerate(ladder):
        chains.append(f"[s{i}]scale={r.width}:{r.height},setsar=1,format=yuv420p[v{i}]")
    args = [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
        "-i", str(source), "-filter_complex", ";".join(chains),
    ]  # fmt: skip
    gop = round(fps * SEGMENT)
    for i in range(n):
        args += ["-map", f"[v{i}]", "-map", "0:a:0"]
    for i, r in enumerate(ladder):
        args += [
            f"-c:v:{i}", "libx264", f"-preset:v:{i}", PRESET, f"-profile:v:{i}", r.profile,
            f"-b:v:{i}", str(r.video_bitrate), f"-maxrate:v:{i}", str(r.max_bitrate),
            f"-bufsize:v:{i}", str(r.buffer_size), f"-g:v:{i}", str(gop),
            f"-sc_threshold:v:{i}", "0",
            f"-force_key_frames:v:{i}", f"expr:gte(t,n_forced*{SEGMENT:g})",
            f"-c:a:{i}", "aac", f"-b:a:{i}", str(r.audio_bitrate),
        ]  # fmt: skip
    stream_map = " ".join(f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(ladder))
    args += [
        "-f", "hls", "-hls_time", f"{SEGMENT:g}", "-hls_playlist_type", "vod",
        "-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
        "-hls_segment_filename", "%v/seg_%05d.ts", "-master_pl_name", "master.m3u8",
        "-var_stream_map", stream_map, "%v/index.m3u8",
    ]  # fmt: skip
    return args


@dataclass
class Measure:
    """Wall time, and CPU time of the ffmpeg processes (insensitive to other load)."""

    wall: float
    cpu: float


@dataclass
class LadderRun:
    name: str
    duration: float
    bare: Measure
    encore_ladder: Measure
    encore_full: Measure | None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(work: Callable[[], object]) -> Measure:
    cpu, started = children_cpu(), time.perf_counter()
    work()
    return Measure(time.perf_counter() - started, children_cpu() - cpu)


def fastest(values: list[Measure]) -> Measure:
    return Measure(min(m.wall for m in values), min(m.cpu for m in values))


def bench_ladder(
    name: str, source: ProbeResult, work: Path, *, full: bool, repeat: int
) -> LadderRun:
    """Time each variant `repeat` times, interleaved, and keep the fastest of each.

    The minimum is what the code costs; anything else on the machine only ever adds to it.
    """
    ladder = renditions_for(source, allow_passthrough=False)
    assert source.video is not None
    fps = min(source.video.fps or 30.0, 30.0)
    print(f"  {name}: ladder {', '.join(r.name for r in ladder)}", flush=True)
    times: dict[str, list[Measure]] = {"bare": [], "ladder": [], "full": []}
    for round_ in range(repeat):
        bare_dir = work / f"{name}-bare-{round_}"
        bare_dir.mkdir()
        command = bare_command(source.path, ladder, fps)
        times["bare"].append(measure(partial(run, command, cwd=bare_dir)))
        dest = work / f"{name}-encore-{round_}"
        ladder_only = partial(hls.transcode, source, dest, renditions=ladder, poster=False)
        times["ladder"].append(measure(partial(ladder_only, thumbnails=False)))
        if full:
            dest_full = work / f"{name}-encore-full-{round_}"
            times["full"].append(
                measure(partial(hls.transcode, source, dest_full, renditions=ladder))
            )
        measured = ", ".join(
            f"{kind} {values[-1].wall:.1f} s (cpu {values[-1].cpu:.1f} s)"
            for kind, values in times.items()
            if values
        )
        print(f"    round {round_ + 1}: {measured}", flush=True)
    return LadderRun(
        name,
        source.duration,
        fastest(times["bare"]),
        fastest(times["ladder"]),
        fastest(times["full"]) if times["full"] else None,
    )


async def service_time_to_playable(source_file: Path, work: Path) -> float:
    """Claim to `playable` through the transcode service (SQLite, local storage), then stop."""
    from app import db
    from app.models import Video
    from app.services import transcoding, videos
    from app.settings import load_settings, use_settings
    from media.storage import LocalStorage

    var = work / f"service-{source_file.stem}-{source_file.suffix[1:]}"
    settings = load_settings(
        var_dir=var, database_url=f"sqlite://{var / 'db.sqlite3'}", secret_key="b" * 48
    )
    use_settings(settings)
    await db.migrate(settings)
    await db.init_db(settings)
    storage = LocalStorage(root=settings.resolved_media_dir)
    try:
        storage.put_file("uploads/1/source", source_file, content_type="video/mp4")
        video = await Video.create(title="bench", source_key="uploads/1/source")
        shutdown = threading.Event()
        started = time.perf_counter()
        claimed = await videos.claim_next(
            videos.utcnow(), stale_after=timedelta(hours=1), max_attempts=1
        )
        assert claimed is not None
        job = asyncio.create_task(
            transcoding.run_transcode(
                video.id,
                storage=storage,
                workdir=var / "work",
                beat_interval=0.05,
                shutdown=shutdown,
            )
        )
        while not (await Video.get(id=video.id)).playable:
            assert not job.done(), (await job).error
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        shutdown.set()  # the rest of the ladder is not what is measured here
        await job
        return elapsed
    finally:
        await db.close_db()


def verdict(value: float, goal: float) -> str:
    return f"{'ok' if value <= goal else 'over'} (goal <= {goal:g})"


def report(
    runs: list[LadderRun],
    *,
    duration: float,
    remux: float,
    first: float,
    service: dict[str, float],
) -> None:
    print()
    print("ladder, fastest of the runs: wall time (ffmpeg CPU time) and Encore / bare ffmpeg")
    for r in runs:
        wall = r.encore_ladder.wall / r.bare.wall
        cpu = r.encore_ladder.cpu / r.bare.cpu
        print(
            f"  {r.name:7} {r.duration:3.0f} s source: bare {r.bare.wall:6.1f} s"
            f" ({r.bare.cpu:6.1f} s), Encore {r.encore_ladder.wall:6.1f} s"
            f" ({r.encore_ladder.cpu:6.1f} s): ratio {wall:.3f} wall, {cpu:.3f} cpu"
            f"  {verdict(wall, 1.05)};"
            f" {r.encore_ladder.wall / r.duration:.2f} x real time"
        )
        if r.encore_full is not None:
            print(
                f"  {'':7} with poster and thumbnails: {r.encore_full.wall:6.1f} s"
                f" ({r.encore_full.cpu:6.1f} s): ratio {r.encore_full.wall / r.bare.wall:.3f} wall,"
                f" {r.encore_full.cpu / r.bare.cpu:.3f} cpu"
            )
    print()
    print(f"time to first playable, {duration:.0f} s of 1080p30 (x duration):")
    print(f"  H.264/AAC remux (media.hls)      {remux:6.2f} s  {remux / duration:.3f}")
    print(
        f"  VP9 360p first pass (media.hls)  {first:6.2f} s  {first / duration:.3f}"
        f"   {verdict(first / duration, 0.3)}"
    )
    if service:
        fast, slow = service["remux"], service["first"]
        print(f"  H.264/AAC through the service    {fast:6.2f} s  {fast / duration:.3f}")
        print(
            f"  VP9 through the service          {slow:6.2f} s  {slow / duration:.3f}"
            f"   {verdict(slow / duration, 0.3)}"
        )
        print("  (service: claim, fetch, probe, encode, publish, until the row says playable)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length (60)")
    parser.add_argument("--keep", type=Path, help="keep sources and outputs in this folder")
    parser.add_argument("--no-full", action="store_true", help="skip the run with poster+sprites")
    parser.add_argument("--no-service", action="store_true", help="skip the service TTFP runs")
    parser.add_argument("--repeat", type=int, default=1, help="ladder runs each, fastest kept")
    parser.add_argument("--no-ladder", action="store_true", help="time to playable only")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="encore-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    work = base / f"run-{int(time.time())}"
    work.mkdir()
    print(f"{version()}; {os.cpu_count()} CPUs; sources in {base}", flush=True)
    try:
        sources = generate(base, args.seconds)
        limits = {"max_duration": 24 * 3600.0, "max_size": 1 << 40}
        probed = {name: probe(path, **limits) for name, path in sources.items()}

        print("ladder (1080p source, every rung encoded):", flush=True)
        runs = [
            bench_ladder(name, probed[name], work, full=not args.no_full, repeat=args.repeat)
            for name in ("motion", "slides")
            if not args.no_ladder
        ]

        print("time to first playable:", flush=True)
        mp4, webm = probed["motion"], probed["vp9"]
        assert hls.passthrough_rendition(mp4) is not None, "the H.264 source should be copyable"
        remux = hls.remux(mp4, work / "ttfp-remux").elapsed
        first = hls.transcode_first_pass(webm, work / "ttfp-first-pass").elapsed
        service: dict[str, float] = {}
        if not args.no_service:
            service["remux"] = asyncio.run(service_time_to_playable(sources["motion"], work))
            service["first"] = asyncio.run(service_time_to_playable(sources["vp9"], work))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)

    report(runs, duration=mp4.duration, remux=remux, first=first, service=service)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
