"""What a person does in a real browser: first setup, two-factor sign-in, and the mobile menu."""

from __future__ import annotations

import asyncio
import re
import time

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, MOBILE, EncoreServer, open_page

pytestmark = pytest.mark.browser

EMAIL = "olivia@example.com"
NAME = "Olivia Owner"
PASSWORD = "violet staple orbit lantern"
# The whole journey includes waiting up to one 30 s TOTP step; anything beyond this is a hang.
JOURNEY_TIMEOUT_S = 120


def _step(at: float) -> int:
    return int(at) // 30


def _wrong_code(secret: str) -> str:
    """A well-formed code that matches none of the steps the server accepts right now."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    accepted = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in accepted)


async def _fresh_code(secret: str, *, after_step: int) -> str:
    """A code of a time step later than `after_step` (the server accepts each step only once)."""
    wait = (after_step + 1) * 30 - time.time()
    if wait > 0:
        await asyncio.sleep(wait + 0.1)
    assert _step(time.time()) > after_step
    return str(pyotp.TOTP(secret).now())


async def _sign_in_with_password(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/login")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Email address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_owner_sets_up_two_factor_and_signs_in_with_a_code(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        link = await asyncio.to_thread(server.setup_link)
        page, console = await open_page(browser, viewport=DESKTOP)

        # The one-time setup link creates the owner and goes straight to 2FA enrolment.
        await page.goto(link)
        await expect(page.get_by_role("heading", name="Create the owner account")).to_be_visible()
        await page.get_by_label("Your name").fill(NAME)
        await page.get_by_label("Email address").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page).to_have_url(f"{server.base_url}/account/2fa")
        await expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()

        # The QR code renders at a size a phone camera can read.
        qr = page.get_by_role("img", name="QR code for your authenticator app")
        await expect(qr).to_be_visible()
        box = await qr.locator("svg").bounding_box()
        assert box is not None
        assert box["width"] >= 160, box
        assert box["height"] >= 160, box

        # The key for typing in by hand sits behind "Can't scan it?".
        secret_field = page.get_by_test_id("totp-secret")
        await expect(secret_field).to_be_hidden()
        await page.get_by_text("Can't scan it?").click()
        await expect(secret_field).to_be_visible()
        secret = "".join((await secret_field.inner_text()).split())
        assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret

        # A wrong code is refused and the page stays put, keeping the same key.
        console.expect_status(400, f"{server.base_url}/account/2fa")
        await page.get_by_role("textbox", name="Code", exact=True).fill(_wrong_code(secret))
        await page.get_by_role("button", name="Turn on").click()
        await expect(page.get_by_role("alert")).to_contain_text("That code did not match")
        await expect(page).to_have_url(f"{server.base_url}/account/2fa")
        await page.get_by_text("Can't scan it?").click()
        assert "".join((await secret_field.inner_text()).split()) == secret

        # The right code turns 2FA on and shows ten recovery codes once.
        enabled_at = time.time()
        await page.get_by_role("textbox", name="Code", exact=True).fill(
            pyotp.TOTP(secret).at(enabled_at)
        )
        await page.get_by_role("button", name="Turn on").click()
        await expect(page.get_by_role("heading", name="Two-factor sign-in is on")).to_be_visible()
        codes = page.get_by_test_id("recovery-codes").get_by_role("listitem")
        await expect(codes).to_have_count(10)
        for text in await codes.all_inner_texts():
            assert re.fullmatch(r"[a-z0-9]{4,}(-[a-z0-9]{4,})+", text.strip(), re.I), text

        await page.get_by_role("link", name="I have saved them").click()
        await expect(page).to_have_url(f"{server.base_url}/admin")
        await expect(page.get_by_role("heading", name="Welcome back, Olivia")).to_be_visible()
        await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        await expect(page.get_by_role("button", name="Menu")).to_be_hidden()

        # Sign out, then back in: the password alone is no longer enough.
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(f"{server.base_url}/login")
        await page.goto(f"{server.base_url}/admin")
        await expect(page).to_have_url(re.compile(r"/login\?next=/admin$"))
        await _sign_in_with_password(page, server.base_url)
        await expect(page).to_have_url(re.compile(r"/login/2fa"))
        await expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()

        # A wrong code shows the error and stays on the second-factor page.
        console.expect_status(401, f"{server.base_url}/login/2fa")
        await page.get_by_role("textbox", name="Code", exact=True).fill(_wrong_code(secret))
        await page.get_by_role("button", name="Verify").click()
        await expect(page.get_by_role("alert")).to_contain_text("That code is not valid")
        await expect(page).to_have_url(re.compile(r"/login/2fa"))
        await page.goto(f"{server.base_url}/admin")
        await expect(page).to_have_url(re.compile(r"/login/2fa"))

        # A fresh code (a later step than the one used to switch 2FA on) signs in.
        code = await _fresh_code(secret, after_step=_step(enabled_at))
        await page.get_by_role("textbox", name="Code", exact=True).fill(code)
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(f"{server.base_url}/admin")
        await expect(page.get_by_role("heading", name="Welcome back, Olivia")).to_be_visible()

        assert console.errors == []
        await page.context.close()


ADMIN_PAGES = ["Dashboard", "Webinars", "Media", "Sessions", "Analytics", "Contacts", "Outbox"]
ADMIN_PAGES += ["Team", "Settings", "Audit log"]


async def test_mobile_menu_opens_and_no_page_overflows(
    browser: Browser, server: EncoreServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT_S):
        await asyncio.to_thread(server.create_owner, email=EMAIL, name=NAME, password=PASSWORD)
        page, console = await open_page(browser, viewport=MOBILE)
        await _sign_in_with_password(page, server.base_url)
        await expect(page).to_have_url(f"{server.base_url}/admin")

        toggle = page.get_by_role("button", name="Menu")
        nav = page.get_by_role("navigation", name="Main")
        # Escape, or a tap beside the menu, closes it again.
        await toggle.click()
        await expect(nav).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(nav).to_be_hidden()
        await expect(toggle).to_be_focused()
        await toggle.click()
        await expect(nav).to_be_visible()
        await page.mouse.click(MOBILE["width"] - 20, MOBILE["height"] - 20)
        await expect(nav).to_be_hidden()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        for label in ADMIN_PAGES:
            await expect(toggle).to_be_visible()
            await expect(toggle).to_have_attribute("aria-expanded", "false")
            await expect(nav).to_be_hidden()
            await toggle.click()
            await expect(toggle).to_have_attribute("aria-expanded", "true")
            await expect(nav).to_be_visible()
            await nav.get_by_role("link", name=label, exact=True).click()
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            # The menu closes on the new page and marks where we are.
            await expect(page.locator("#sidebar [aria-current=page]")).to_have_text(label)
            # Nothing wider than the phone: wide tables scroll inside their own box.
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{label} is {overflow}px wider than the screen"

        await page.goto(f"{server.base_url}/account/2fa")
        await expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"2FA setup is {overflow}px wider than the screen"

        assert console.errors == []
        await page.context.close()
