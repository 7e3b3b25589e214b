"""The live room's settings: defaults per language, the admin's form, saving, blocked words."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from babel.messages.extract import extract_python
from babel.messages.pofile import read_po

from app.models import AuditEvent, Role, Webinar
from app.services import room_settings
from app.services.room_settings import RoomSettings
from app.settings import ROOT, Settings
from tests.conftest import make_user

EN_NOTICE = (
    "This presentation is recorded. Our team is here live to answer your questions in the chat."
)
EN_AUTO = (
    "Thanks for your question! Our team will answer here, or by email if you have left by then."
)


def webinar(language: str = "en", **fields: object) -> Webinar:
    """An unsaved webinar: reading its settings needs no database."""
    return Webinar(slug="growth", title="Growth Basics", language=language, **fields)


def full_form(**changes: str) -> dict[str, str]:
    """A valid form as the admin page sends it, with `changes` applied."""
    form = {
        "chat_mode": "moderated",
        "chat_enabled": "on",
        "notice": "Recorded earlier; we answer live.",
        "show_notice": "on",
        "welcome": "Hi there!",
        "auto_response": "We will get back to you.",
        "slow_mode_seconds": "15",
        "banned_words": "spam\nscam, Casino",
        "end_title": "See you soon",
        "end_text": "Book a call with us.",
        "end_button": "Book a call",
        "end_url": "https://example.com/book",
    }
    form.update(changes)
    return form


def with_words(*words: str) -> RoomSettings:
    return replace(room_settings.default_settings("en"), banned_words=words)


# --- defaults ----------------------------------------------------------------------------------


def test_english_defaults() -> None:
    settings = room_settings.room_settings(webinar("en"))
    assert settings.chat_mode == "private"
    assert settings.notice == EN_NOTICE
    assert settings.show_notice is True
    assert settings.auto_response == EN_AUTO
    assert settings.welcome.startswith("Welcome")
    assert settings.slow_mode_seconds == 0
    assert settings.banned_words == ()
    assert (settings.end_title, settings.end_text, settings.end_button, settings.end_url) == (
        "Thanks for watching",
        "",
        "",
        "",
    )
    assert settings.chat_enabled is True


def test_german_defaults() -> None:
    settings = room_settings.room_settings(webinar("de"))
    assert settings.notice == (
        "Diese Präsentation ist eine Aufzeichnung. "
        "Unser Team ist live im Chat und beantwortet Ihre Fragen."
    )
    assert settings.welcome.startswith("Willkommen")
    assert settings.auto_response.startswith("Danke für Ihre Frage!")
    assert "E-Mail" in settings.auto_response
    assert settings.end_title == "Danke fürs Zuschauen"
    # An unknown language gets English, never an empty text.
    assert room_settings.room_settings(webinar("fr")).notice == EN_NOTICE


def test_every_default_text_has_a_german_translation() -> None:
    source = ROOT / "app" / "services" / "room_settings.py"
    keywords = {"_": None, "gettext": (2,), "ngettext": (2, 3)}
    messages: list[str] = []
    with source.open("rb") as handle:
        for _line, _function, found, _comments in extract_python(handle, keywords, [], {}):
            # A call passing a variable (the helper around gettext) has no literal to translate.
            literals = [found] if isinstance(found, str) else [p for p in found if p]
            messages += literals[:1]
    assert len(messages) == 4
    with Path(ROOT / "app" / "translations" / "de" / "room_settings.po").open("rb") as handle:
        catalogue = read_po(handle, locale="de")
    untranslated = [
        message
        for message in messages
        if (entry := catalogue.get(message)) is None
        or entry.fuzzy
        or not all(entry.string if isinstance(entry.string, tuple) else (entry.string,))
    ]
    assert untranslated == []


def test_stored_values_replace_defaults_and_odd_values_fall_back() -> None:
    stored = webinar(
        "de",
        chat_mode="open",
        room={
            "welcome": "",
            "slow_mode_seconds": 20,
            "banned_words": ["spam", 7, ""],
            "notice": ["not", "text"],
            "show_notice": "yes",
            "end_url": "https://example.com",
            "end_button": "Los",
        },
    )
    settings = room_settings.room_settings(stored)
    assert settings.chat_mode == "open"
    assert settings.welcome == ""  # empty on purpose: no welcome message
    assert settings.slow_mode_seconds == 20
    assert settings.banned_words == ("spam",)
    assert settings.notice.startswith("Diese Präsentation")  # not text: the default
    assert settings.show_notice is True  # not a boolean: the default
    assert (settings.end_button, settings.end_url) == ("Los", "https://example.com")
    odd = room_settings.room_settings(
        webinar(chat_mode="shouting", room={"slow_mode_seconds": 10_000})
    )
    assert (odd.chat_mode, odd.slow_mode_seconds) == ("private", room_settings.SLOW_MODE_MAX)


def test_public_settings_leave_out_the_blocked_words() -> None:
    settings = room_settings.room_settings(
        webinar(room={"banned_words": ["secret"], "end_button": "Buy"})
    )
    public = room_settings.public_settings(settings)
    assert "banned_words" not in public
    assert "secret" not in repr(public)
    assert public["notice"] == EN_NOTICE
    assert public["chat_mode"] == "private"
    assert public["chat_enabled"] is True
    assert set(public) == {
        "chat_mode",
        "notice",
        "show_notice",
        "welcome",
        "auto_response",
        "slow_mode_seconds",
        "end_title",
        "end_text",
        "end_button",
        "end_url",
        "chat_enabled",
    }
    # A button without an address leads nowhere, so the page does not get one.
    assert public["end_button"] == ""


# --- the form ----------------------------------------------------------------------------------


def test_a_valid_form_gives_typed_values() -> None:
    values, errors = room_settings.check_form(full_form())
    assert errors == {}
    assert values == {
        "chat_mode": "moderated",
        "chat_enabled": True,
        "notice": "Recorded earlier; we answer live.",
        "show_notice": True,
        "welcome": "Hi there!",
        "auto_response": "We will get back to you.",
        "slow_mode_seconds": 15,
        "banned_words": ("spam", "scam", "Casino"),
        "end_title": "See you soon",
        "end_text": "Book a call with us.",
        "end_button": "Book a call",
        "end_url": "https://example.com/book",
    }


def test_unticked_boxes_and_empty_fields() -> None:
    form = full_form(
        show_notice="", chat_enabled="", notice="", slow_mode_seconds="", banned_words=""
    )
    del form["show_notice"], form["chat_enabled"]  # a browser sends no unticked checkbox
    values, errors = room_settings.check_form({**form, "end_button": "", "end_url": ""})
    assert errors == {}
    assert values["show_notice"] is False
    assert values["chat_enabled"] is False
    assert values["notice"] == ""
    assert values["slow_mode_seconds"] == 0
    assert values["banned_words"] == ()


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://example.com/offer?a=1", True),
        ("http://example.com", True),
        ("javascript:alert(1)", False),
        ("ftp://example.com/file", False),
        ("example.com/offer", False),
        ("https://", False),
        ("https://exa mple.com", False),
        ("https://[::1", False),
    ],
)
def test_the_end_button_leads_to_a_web_address(url: str, accepted: bool) -> None:
    values, errors = room_settings.check_form(full_form(end_url=url))
    if accepted:
        assert errors == {}
        assert values["end_url"] == url
    else:
        assert errors == {"end_url": "Enter a full web address starting with https:// or http://."}
        assert "end_url" not in values


def test_a_button_needs_both_its_text_and_its_address() -> None:
    _, errors = room_settings.check_form(full_form(end_url=""))
    assert set(errors) == {"end_url"}
    _, errors = room_settings.check_form(full_form(end_button=""))
    assert set(errors) == {"end_button"}


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("notice", 500),
        ("welcome", 500),
        ("auto_response", 500),
        ("end_title", room_settings.END_TITLE_MAX),
        ("end_text", room_settings.END_TEXT_MAX),
        ("end_button", room_settings.END_BUTTON_MAX),
    ],
)
def test_texts_have_limits(field: str, limit: int) -> None:
    values, errors = room_settings.check_form(full_form(**{field: "x" * limit}))
    assert errors == {}
    assert values[field] == "x" * limit
    values, errors = room_settings.check_form(full_form(**{field: "x" * (limit + 1)}))
    assert set(errors) == {field}
    assert f"under {limit:,} characters" in errors[field]
    assert field not in values


def test_a_shown_notice_must_say_something() -> None:
    _, errors = room_settings.check_form(full_form(notice="   "))
    assert errors == {"notice": "Write the notice, or choose not to show it."}


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("-1", "between 0 (off) and 300 seconds"),
        ("301", "between 0 (off) and 300 seconds"),
        ("ten", "whole number of seconds"),
        ("2.5", "whole number of seconds"),
    ],
)
def test_slow_mode_is_between_0_and_300_seconds(typed: str, error: str) -> None:
    values, errors = room_settings.check_form(full_form(slow_mode_seconds=typed))
    assert error in errors["slow_mode_seconds"]
    assert "slow_mode_seconds" not in values
    values, errors = room_settings.check_form(full_form(slow_mode_seconds=" 300 "))
    assert (errors, values["slow_mode_seconds"]) == ({}, 300)


def test_blocked_words_one_per_line_or_comma_separated_each_once() -> None:
    values, errors = room_settings.check_form(
        full_form(banned_words="Spam\r\n  free   money ,spam,\n\n,SPAM, Straße,STRASSE")
    )
    assert errors == {}
    assert values["banned_words"] == ("Spam", "free money", "Straße")


def test_too_many_or_too_long_blocked_words_are_refused() -> None:
    two_hundred = "\n".join(f"word{number}" for number in range(200))
    values, errors = room_settings.check_form(full_form(banned_words=two_hundred))
    assert errors == {}
    assert len(values["banned_words"]) == 200
    values, errors = room_settings.check_form(full_form(banned_words=two_hundred + "\nmore"))
    assert errors == {"banned_words": "List at most 200 words; this list has 201."}
    assert "banned_words" not in values
    _, errors = room_settings.check_form(full_form(banned_words="ok\n" + "x" * 41))
    assert "at most 40 characters" in errors["banned_words"]
    _, errors = room_settings.check_form(full_form(banned_words="fine, !!!"))
    assert "“!!!” has no letters or digits" in errors["banned_words"]
    _, errors = room_settings.check_form(full_form(banned_words=" " * 20_001))
    assert "too long" in errors["banned_words"]


def test_an_unknown_chat_mode_is_refused() -> None:
    values, errors = room_settings.check_form(full_form(chat_mode="everyone"))
    assert errors == {"chat_mode": "Choose who sees attendees' messages."}
    assert "chat_mode" not in values
    assert set(room_settings.CHAT_MODE_DESCRIPTIONS) == set(room_settings.CHAT_MODES)


def test_the_form_shows_stored_settings() -> None:
    settings = with_words("spam", "free money")
    form = room_settings.form_of(settings)
    assert form["banned_words"] == "spam\nfree money"
    assert form["show_notice"] == "on"
    assert form["slow_mode_seconds"] == "0"
    values, errors = room_settings.check_form(form)
    assert errors == {}
    assert room_settings.with_values(settings, values) == settings


# --- blocked words -----------------------------------------------------------------------------


def test_blocked_words_match_whole_words_in_any_case() -> None:
    settings = with_words("sale", "free money")
    assert room_settings.find_banned_word(settings, "Big SALE today!") == "sale"
    assert room_settings.find_banned_word(settings, "sale") == "sale"
    assert room_settings.find_banned_word(settings, "(Sale)") == "sale"
    assert room_settings.find_banned_word(settings, "Wholesale prices") is None
    assert room_settings.find_banned_word(settings, "salesman") is None
    assert room_settings.find_banned_word(settings, "get FREE\n  money now") == "free money"
    assert room_settings.find_banned_word(settings, "free moneys") is None
    assert room_settings.find_banned_word(settings, "a harmless question") is None
    assert room_settings.find_banned_word(with_words(), "anything") is None


def test_blocked_words_are_unicode_aware() -> None:
    settings = with_words("Straße", "Müll", "café")
    assert room_settings.find_banned_word(settings, "Die STRASSE ist gesperrt") == "Straße"
    assert room_settings.find_banned_word(settings, "die straße") == "Straße"
    assert room_settings.find_banned_word(settings, "Straßenbahn") is None
    assert room_settings.find_banned_word(settings, "Hauptstraße") is None
    assert room_settings.find_banned_word(settings, "MÜLL!") == "Müll"
    assert room_settings.find_banned_word(settings, "Müller") is None
    # An accent typed as a separate combining mark is the same letter.
    assert room_settings.find_banned_word(settings, "un cafe\u0301 noir") == "café"
    assert room_settings.find_banned_word(settings, "cafes") is None
    # Letters of other scripts are letters too: no match inside a word.
    assert room_settings.find_banned_word(with_words("кот"), "котик") is None
    assert room_settings.find_banned_word(with_words("кот"), "Мой КОТ спит") == "кот"  # noqa: RUF001


# --- saving ------------------------------------------------------------------------------------


async def test_save_keeps_only_what_differs_from_the_defaults(database: Settings) -> None:
    owner = await make_user(Role.OWNER)
    stored = await Webinar.create(slug="growth", title="Growth Basics", language="de")
    values, errors = room_settings.check_form(
        {
            **room_settings.form_of(room_settings.room_settings(stored)),
            "chat_mode": "open",
            "slow_mode_seconds": "30",
            "banned_words": "Spam",
        }
    )
    assert errors == {}
    await room_settings.save(webinar=stored, values=values, actor=owner, ip="203.0.113.9")

    again = await Webinar.get(id=stored.id)
    assert again.chat_mode == "open"
    assert again.room == {"slow_mode_seconds": 30, "banned_words": ["Spam"]}
    settings = room_settings.room_settings(again)
    assert settings.banned_words == ("Spam",)
    assert settings.notice.startswith("Diese Präsentation")
    event = await AuditEvent.get(action="room.settings_saved")
    assert event.target == f"webinar {stored.id} (growth)"
    assert event.actor_email == owner.email
    assert event.ip == "203.0.113.9"
    assert event.details == {"changed": ["chat_mode", "slow_mode_seconds", "banned_words"]}

    # Texts left as defaults follow the webinar's language.
    await Webinar.filter(id=stored.id).update(language="en")
    assert room_settings.room_settings(await Webinar.get(id=stored.id)).notice == EN_NOTICE


async def test_save_changes_only_the_settings_given(database: Settings) -> None:
    stored = await Webinar.create(
        slug="growth", title="Growth Basics", room={"welcome": "Hello!", "slow_mode_seconds": 5}
    )
    await room_settings.save(webinar=stored, values={"slow_mode_seconds": 0}, actor=None)
    again = await Webinar.get(id=stored.id)
    assert again.room == {"welcome": "Hello!"}
    assert again.title == "Growth Basics"
    assert room_settings.room_settings(again) == room_settings.room_settings(stored)


async def test_reset_puts_everything_back(database: Settings) -> None:
    owner = await make_user(Role.OWNER)
    stored = await Webinar.create(
        slug="growth",
        title="Growth Basics",
        chat_mode="open",
        room={"welcome": "", "banned_words": ["spam"], "chat_enabled": False},
    )
    await room_settings.reset(webinar=stored, actor=owner)
    again = await Webinar.get(id=stored.id)
    assert (again.chat_mode, again.room) == ("private", {})
    assert room_settings.room_settings(again) == room_settings.default_settings("en")
    assert await AuditEvent.filter(action="room.settings_reset").count() == 1
