"""Captions played by hls.js in Chromium: the subtitle track is offered, its cues land on time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import EncoreServer, open_page

pytestmark = pytest.mark.browser

# Publishes a remux of a tiny clip as the server's first video and adds SRT captions to it,
# with the same services the transcoder and the admin use.
_PUBLISH_SCRIPT = """
import asyncio, json, tempfile
from pathlib import Path
from app import db
from app.models import Video
from app.services import captions
from app.services.videos import version_for
from app.settings import load_or_exit
from media import hls
from media.probe import probe
from media.storage import LocalStorage
from tests.media.clips import h264_mp4

SRT = (
    b"1\\r\\n00:00:01,000 --> 00:00:02,000\\r\\nFirst words\\r\\n\\r\\n"
    b"2\\r\\n00:00:02,500 --> 00:00:03,500\\r\\nSecond <i>words</i>\\r\\n"
)

async def main() -> None:
    settings = load_or_exit()
    await db.init_db(settings)
    try:
        storage = LocalStorage(root=settings.resolved_media_dir)
        with tempfile.TemporaryDirectory() as work:
            clip = h264_mp4(Path(work) / "clip.mp4", seconds=4, extra=("-bf", "2"))
            out = hls.remux(probe(clip, max_duration=60, max_size=10**8), Path(work) / "hls")
            video = await Video.create(
                title="Captioned", source_key="uploads/x/clip.mp4", duration_seconds=out.duration
            )
            version = version_for(video.id, 1)
            storage.put_tree(version.prefix, out.folder)
        video.hls_key = version.master_key
        await video.save()
        await captions.add_caption(
            video=video, language="de", label="Deutsch", data=SRT, storage=storage
        )
        print(json.dumps({"master": version.master_key}))
    finally:
        await db.close_db()

asyncio.run(main())
"""

# Plays the master with hls.js, turns the German track on and collects its cues.
_PLAY = """
async (src) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.appendChild(video);
  const hls = new Hls({ subtitleDisplay: true, enableWorker: false });
  const parsed = new Promise((resolve, reject) => {
    hls.on(Hls.Events.MANIFEST_PARSED, resolve);
    hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) reject(new Error(data.details)); });
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  await parsed;
  const offered = hls.subtitleTracks.map((t) => ({ lang: t.lang, name: t.name }));
  hls.subtitleTrack = 0;
  await video.play();
  const deadline = Date.now() + 15000;
  let cues = [];
  while (Date.now() < deadline) {
    const track = Array.from(video.textTracks).find((t) => t.mode === "showing");
    cues = track && track.cues ? Array.from(track.cues) : [];
    if (cues.length >= 2 && video.currentTime > 0.5) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    offered,
    cues: cues.map((c) => [c.startTime, c.endTime, c.text]),
    playing: video.currentTime,
  };
}
"""


async def test_hls_js_shows_the_captions_on_time(server: EncoreServer, browser: Browser) -> None:
    published = json.loads(server.run("-c", _PUBLISH_SCRIPT).strip().splitlines()[-1])
    page, watch = await open_page(browser)
    await page.goto(f"{server.base_url}/login")
    await page.add_script_tag(url="/static/vendor/hls.min.js")
    result: dict[str, Any] = await page.evaluate(_PLAY, f"/media/{published['master']}")

    assert result["offered"] == [{"lang": "de", "name": "Deutsch"}]
    assert result["playing"] > 0.5, "the video did not play"
    cues = sorted(result["cues"])
    assert [text for _, _, text in cues] == ["First words", "Second <i>words</i>"]
    # On the media timeline the captions start when the SRT says (within a frame or two),
    # not 1.4 s early as they would without the X-TIMESTAMP-MAP.
    (start_1, end_1, _), (start_2, end_2, _) = cues
    assert start_1 == pytest.approx(1.0, abs=0.1)
    assert end_1 == pytest.approx(2.0, abs=0.1)
    assert start_2 == pytest.approx(2.5, abs=0.1)
    assert end_2 == pytest.approx(3.5, abs=0.1)
    assert watch.errors == []
