"""Uploading from the media page in a real browser (tus-js-client against the real web process)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, expect

from tests.browser.conftest import DESKTOP, EncoreServer, open_page
from tests.media.clips import h264_mp4

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"
NAME = "Olivia Owner"
PASSWORD = "violet staple orbit lantern"
JOURNEY_TIMEOUT_S = 120
MTIME = 1_700_000_000  # whole seconds: the browser's File.lastModified is exact

# Keeps every percentage the page shows, in sessionStorage so it survives the reload at the end.
_WATCH_PROGRESS = """
() => {
  const node = document.querySelector("[data-upload-percent]");
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("seen-percent") || "[]");
    seen.push(node.textContent);
    sessionStorage.setItem("seen-percent", JSON.stringify(seen));
  }).observe(node, { childList: true, characterData: true, subtree: true });
}
"""


def _clip(folder: Path, name: str, seconds: float = 4) -> Path:
    path = h264_mp4(folder / name, size="320x180", seconds=seconds)
    os.utime(path, (MTIME, MTIME))
    return path


async def _sign_in(page: Page, server: EncoreServer) -> None:
    await asyncio.to_thread(server.create_owner, email=EMAIL, name=NAME, password=PASSWORD)
    await page.goto(f"{server.base_url}/login")
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base_url}/admin")


def _stored(server: EncoreServer) -> list[Path]:
    root = server.workdir / "var" / "media" / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_a_recording_from_the_media_page(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        clip = _clip(tmp_path, "Product demo.mp4")
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        await page.goto(f"{server.base_url}/admin/media")
        await expect(page.get_by_role("heading", name="Upload a recording")).to_be_visible()
        await expect(page.get_by_role("heading", name="No recordings yet")).to_be_visible()
        await page.evaluate(_WATCH_PROGRESS)

        await page.get_by_label("Choose a file…").set_input_files(clip)

        # Once the server has accepted it, the page reloads with the recording in the list.
        done = page.get_by_role("status").filter(has_text="is uploaded")
        await expect(done).to_contain_text("“Product demo” is uploaded")
        link = done.get_by_role("link", name="Open it")
        await expect(link).to_have_attribute("href", re.compile(r"^/admin/media/\d+$"))
        await expect(page.get_by_role("cell", name=re.compile("Product demo"))).to_be_visible()
        seen = json.loads(await page.evaluate("sessionStorage.getItem('seen-percent') || '[]'"))
        assert "100%" in seen, seen

        stored = _stored(server)
        assert len(stored) == 1
        assert (
            hashlib.sha256(stored[0].read_bytes()).digest()
            == hashlib.sha256(clip.read_bytes()).digest()
        )
        # Nothing of the upload is left for a later visit to resume.
        assert await page.evaluate("Object.keys(localStorage).length") == 0
        assert console.errors == []
        await page.context.close()


async def test_a_refused_file_shows_the_reason(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        fake = tmp_path / "notes.mp4"
        fake.write_text("Not a video at all, just some notes.\n" * 100)
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        await page.goto(f"{server.base_url}/admin/media")
        finish = re.compile(r"/admin/uploads/[0-9a-f]{32}/finish$")
        console.errors.clear()

        await page.get_by_label("Choose a file…").set_input_files(fake)

        await expect(page.get_by_role("alert")).to_contain_text(
            "This is not a video or audio file we recognise"
        )
        await expect(page.get_by_label("Choose a file…")).to_be_enabled()
        await expect(page.get_by_role("heading", name="No recordings yet")).to_be_visible()
        assert _stored(server) == []
        assert not list((server.workdir / "var" / "uploads").glob("*"))
        # The refusal (422) is the only console message, and it is the one announced.
        assert all(finish.search(e) or "422" in e for e in console.errors), console.errors
        await page.context.close()


async def test_an_upload_started_earlier_continues_where_it_stopped(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        clip = _clip(tmp_path, "Webinar.mp4")
        data = clip.read_bytes()
        half = len(data) // 2
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        await page.goto(f"{server.base_url}/admin/media")
        token = await page.locator("[data-upload]").get_attribute("data-csrf")
        assert token

        # An earlier visit sent the first half, then the tab was closed: the server has half
        # the file, and the browser remembers the upload as tus-js-client stored it.
        tus = {"Tus-Resumable": "1.0.0", "X-CSRF-Token": token}
        created = await page.request.post(
            f"{server.base_url}/admin/uploads/tus",
            headers={
                **tus,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": "filename "
                + base64.b64encode(b"Webinar.mp4").decode()
                + ",filetype "
                + base64.b64encode(b"video/mp4").decode(),
            },
        )
        assert created.status == 201
        upload_url = f"{server.base_url}{created.headers['location']}"
        patched = await page.request.patch(
            upload_url,
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            data=data[:half],
        )
        assert patched.status == 204
        fingerprint = f"encore/Webinar.mp4/video/mp4/{len(data)}/{MTIME * 1000}"
        entry = {
            "size": len(data),
            "metadata": {"filename": "Webinar.mp4", "filetype": "video/mp4"},
            "creationTime": "earlier",
            "uploadUrl": upload_url,
        }
        await page.evaluate(
            "([key, value]) => localStorage.setItem(key, value)",
            [f"tus::{fingerprint}::1", json.dumps(entry)],
        )
        await page.reload()
        pending = page.get_by_text("Unfinished uploads")
        await expect(pending).to_be_visible()
        await expect(page.locator("[data-upload-pending-list]")).to_contain_text("Webinar.mp4")

        requests: list[Request] = []

        def keep(request: Request) -> None:
            requests.append(request)

        page.on("request", keep)
        await page.get_by_label("Choose a file…").set_input_files(clip)
        done = page.get_by_role("status").filter(has_text="is uploaded")
        await expect(done).to_contain_text("“Webinar” is uploaded")

        sent = [(r.method, r.url, await r.all_headers()) for r in requests]
        tus_calls = [(m, u, h) for m, u, h in sent if "/admin/uploads/tus" in u]
        assert not [m for m, _, _ in tus_calls if m == "POST"], "a new upload was created"
        assert ("HEAD", upload_url) in [(m, u) for m, u, _ in tus_calls]
        patches = [h for m, u, h in tus_calls if m == "PATCH"]
        assert [h["upload-offset"] for h in patches] == [str(half)]

        stored = _stored(server)
        assert len(stored) == 1
        assert hashlib.sha256(stored[0].read_bytes()).digest() == hashlib.sha256(data).digest()
        assert console.errors == []
        await page.context.close()


async def test_pause_resume_and_a_dropped_connection(
    browser: Browser, server: EncoreServer, tmp_path: Path
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        clip = h264_mp4(tmp_path / "Long talk.mp4", size="640x360", seconds=30, extra=("-qp", "8"))
        page, console = await open_page(browser, viewport=DESKTOP)
        await _sign_in(page, server)
        await page.goto(f"{server.base_url}/admin/media")
        # A slow line (about 400 KB/s up), so there is time to pause and to cut it.
        cdp = await page.context.new_cdp_session(page)
        line = {"latency": 20, "downloadThroughput": -1, "uploadThroughput": 400_000}
        await cdp.send("Network.emulateNetworkConditions", {"offline": False, **line})

        await page.get_by_label("Choose a file…").set_input_files(clip)
        percent = page.locator("[data-upload-percent]")
        await expect(percent).to_have_text(re.compile(r"^([1-9]\d)%$"), timeout=20_000)
        await expect(page.locator("[data-upload-stats]")).to_contain_text(
            re.compile(r"MB of [\d.]+ MB · [\d.]+ MB/s · about \d+ (s|min) left")
        )

        await page.get_by_role("button", name="Pause").click()
        await expect(page.get_by_role("button", name="Resume")).to_be_visible()
        await expect(page.locator("[data-upload-phase]")).to_have_text("Paused")
        paused_at = await percent.text_content()
        await asyncio.sleep(1)
        assert await percent.text_content() == paused_at
        # The connection is gone when the upload resumes (set while paused, so the timing of a
        # fast local transfer cannot win the race): the client retries and continues by itself.
        await cdp.send("Network.emulateNetworkConditions", {"offline": True, **line})
        await page.get_by_role("button", name="Resume").click()
        await expect(page.get_by_role("button", name="Pause")).to_be_visible()
        await expect(page.locator("[data-upload-phase]")).to_have_text(
            "Connection lost, retrying…", timeout=20_000
        )
        await cdp.send("Network.emulateNetworkConditions", {"offline": False, **line})

        done = page.get_by_role("status").filter(has_text="is uploaded")
        await expect(done).to_contain_text("“Long talk” is uploaded", timeout=60_000)
        stored = _stored(server)
        assert len(stored) == 1
        assert (
            hashlib.sha256(stored[0].read_bytes()).digest()
            == hashlib.sha256(clip.read_bytes()).digest()
        )
        # Requests cut by the emulated outage are the only console errors.
        assert all("ERR_INTERNET_DISCONNECTED" in e for e in console.errors), console.errors
        await page.context.close()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_cut_connection_keeps_what_arrived_on_the_real_server(
    server: EncoreServer, tmp_path: Path
) -> None:
    # No browser: a raw socket sends half a PATCH body and closes, as a dropped line does.
    server.create_owner(email=EMAIL, name=NAME, password=PASSWORD)
    data = _clip(tmp_path, "cut.mp4").read_bytes()
    half = len(data) // 2
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        login_token = _CSRF.search(http.get("/login").text)
        assert login_token
        signed_in = http.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": login_token.group(1)},
        )
        assert signed_in.status_code == 303
        page_token = _CSRF.search(http.get("/admin/media").text)
        assert page_token
        tus = {"Tus-Resumable": "1.0.0", "X-CSRF-Token": page_token.group(1)}
        created = http.post("/admin/uploads/tus", headers={**tus, "Upload-Length": str(len(data))})
        assert created.status_code == 201
        path = created.headers["location"]

        cookies = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\n"
            f"Tus-Resumable: 1.0.0\r\nX-CSRF-Token: {tus['X-CSRF-Token']}\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(head.encode() + data[:half])
        offset = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            offset = int(http.head(path, headers=tus).headers["upload-offset"])
            if offset == half:
                break
            time.sleep(0.1)
        assert offset == half

        rest = http.patch(
            path,
            content=data[half:],
            headers={
                **tus,
                "Upload-Offset": str(half),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert rest.status_code == 204
        finished = http.post(path.replace("/tus/", "/") + "/finish", headers=tus)
        assert finished.status_code == 200, finished.text
    stored = _stored(server)
    assert len(stored) == 1
    assert hashlib.sha256(stored[0].read_bytes()).digest() == hashlib.sha256(data).digest()
