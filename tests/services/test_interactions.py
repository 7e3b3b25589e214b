"""Timed interactions: the form check, answers, tallies by hand, storage and the room's timeline."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.i18n import translations
from app.models import AuditEvent, Interaction, Webinar, WebinarSession
from app.services import downloads, interactions
from app.services.interactions import InteractionError, check, clock, parse_answer, parse_time
from app.settings import Settings
from media.storage import LocalStorage


def item(kind: str, config: dict[str, Any], **fields: Any) -> Interaction:
    """An unsaved interaction, as the room would load it."""
    values: dict[str, Any] = {
        "id": 7,
        "kind": kind,
        "title": "T",
        "config": config,
        "opens_at_seconds": 60.0,
        "closes_at_seconds": None,
        "required": False,
    }
    values.update(fields)
    return Interaction(**values)


POLL = item("poll", {"options": ["Red", "Green", "Blue"], "multiple": False})
POLL_MANY = item("poll", {"options": ["Red", "Green", "Blue"], "multiple": True})
QUIZ = item(
    "quiz",
    {"options": ["Paris", "Rome", "Oslo"], "correct": [0], "multiple": False, "explanation": "E"},
)
QUIZ_MANY = item(
    "quiz",
    {"options": ["2", "3", "4", "5"], "correct": [1, 3], "multiple": True, "explanation": ""},
)
NPS = item("nps", {})
RATING_5 = item("rating", {"scale": 5})
RATING_10 = item("rating", {"scale": 10})
QUESTION = item("question", {"prompt": "", "placeholder": ""})
OFFER = item(
    "offer", {"text": "", "button": "Buy", "url": "https://example.com", "countdown_seconds": 0}
)


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("75", 75.0),
        (" 7 ", 7.0),
        ("0:05", 5.0),
        ("12:30", 750.0),
        ("90:00", 5400.0),
        ("1:02:03", 3723.0),
        ("1:2:03", 3723.0),
        ("12:30.5", 750.5),
        ("12:30,5", 750.5),
        ("2.25", 2.25),
        ("", None),
        ("   ", None),
        (None, None),
        (42, 42.0),
        (1.5, 1.5),
    ],
)
def test_times_people_type(text: Any, seconds: float | None) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["1:75", "1:60:00", "0:100", "1:2:3:4", "12:", ":30", "-5", "abc", "1::2", "١٢", True, -1],
)
def test_times_that_are_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="Enter a time like 12:30"):
        parse_time(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (5, "0:05"),
        (75, "1:15"),
        (750.5, "12:30.5"),
        (3723, "1:02:03"),
        (3600, "1:00:00"),
    ],
)
def test_clock(seconds: float, text: str) -> None:
    assert clock(seconds) == text


# --- check -------------------------------------------------------------------------------------


def base(**fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"title": "  Which   colour? ", "opens_at": "1:30", "closes_at": ""}
    form.update(fields)
    return form


@pytest.mark.parametrize(
    ("kind", "form", "config"),
    [
        (
            "poll",
            base(option_1=" Red ", option_2="", option_3="Green", multiple="on"),
            {"options": ["Red", "Green"], "multiple": True},
        ),
        (
            "poll",
            base(options="Red\n\nGreen\r\nBlue\n"),
            {"options": ["Red", "Green", "Blue"], "multiple": False},
        ),
        (
            "quiz",
            base(option_1="Paris", option_2="", option_3="Rome", correct_3="on", explanation="Hi"),
            {"options": ["Paris", "Rome"], "correct": [1], "multiple": False, "explanation": "Hi"},
        ),
        (
            "quiz",
            base(options=["2", "", "3", "4"], correct=[0, 3], multiple=True),
            {"options": ["2", "3", "4"], "correct": [0, 2], "multiple": True, "explanation": ""},
        ),
        ("nps", base(), {}),
        ("nps", base(question=" Be honest "), {"question": "Be honest"}),
        ("rating", base(scale="10"), {"scale": 10}),
        ("rating", base(scale=5), {"scale": 5}),
        (
            "question",
            base(prompt="Ask\r\naway\x07", placeholder="Type"),
            {"prompt": "Ask\naway", "placeholder": "Type"},
        ),
        (
            "offer",
            base(button="Buy", url="https://shop.example.com/x?a=1", countdown_seconds="15:00"),
            {
                "text": "",
                "button": "Buy",
                "url": "https://shop.example.com/x?a=1",
                "countdown_seconds": 900,
            },
        ),
        (
            "offer",
            base(text="Half price", button="Buy", url="http://example.com", countdown_seconds=""),
            {
                "text": "Half price",
                "button": "Buy",
                "url": "http://example.com",
                "countdown_seconds": 0,
            },
        ),
        (
            "link",
            base(button="Read", url="https://example.com/blog"),
            {"text": "", "button": "Read", "url": "https://example.com/blog"},
        ),
        (
            "download",
            base(
                file_key="downloads/abc/slides.pdf",
                file_name="Slides.pdf",
                size=1234,
                content_type="application/pdf",
                text="Take them",
            ),
            {
                "file_key": "downloads/abc/slides.pdf",
                "file_name": "Slides.pdf",
                "size": 1234,
                "content_type": "application/pdf",
                "text": "Take them",
            },
        ),
    ],
)
def test_each_kind_stores_exactly_its_keys(
    kind: str, form: dict[str, Any], config: dict[str, Any]
) -> None:
    checked = check(kind, form, duration=600.0)
    assert checked.kind == kind
    assert checked.title == "Which colour?"
    assert checked.config == config
    assert set(checked.config) <= set(interactions.CONFIG_KEYS[kind])
    assert (checked.opens_at_seconds, checked.closes_at_seconds) == (90.0, None)
    assert checked.required is False


POLL_FORM = base(option_1="Red", option_2="Green")
LINK_FORM = base(button="Go", url="https://example.com")


@pytest.mark.parametrize(
    ("kind", "form", "field", "message"),
    [
        ("poll", {**POLL_FORM, "title": " "}, "title", "Enter a title"),
        ("poll", {**POLL_FORM, "title": "x" * 201}, "title", "at most 200 characters"),
        ("poll", {**POLL_FORM, "opens_at": ""}, "opens_at", "Enter when it appears"),
        ("poll", {**POLL_FORM, "opens_at": "7:99"}, "opens_at", "Enter a time like 12:30"),
        ("poll", {**POLL_FORM, "opens_at": "10:00"}, "opens_at", "The video is 10:00 long"),
        (
            "poll",
            {**POLL_FORM, "closes_at": "1:30"},
            "closes_at",
            "close after it appears (at 1:30)",
        ),
        ("poll", {**POLL_FORM, "closes_at": "10:02"}, "closes_at", "The video ends at 10:00"),
        ("poll", {**POLL_FORM, "closes_at": "soon"}, "closes_at", "Leave it empty"),
        ("poll", base(option_1="Red"), "options", "at least 2 options"),
        ("poll", base(option_1="Red", option_2="red"), "options", "“red” is there twice"),
        ("poll", base(options=[f"o{n}" for n in range(11)]), "options", "at most 10 options"),
        ("poll", base(options=["a", 3]), "options", "must be text"),
        ("poll", base(option_1="Red", option_2="x" * 201), "options", "Option 2 is longer"),
        ("quiz", POLL_FORM, "correct", "Mark at least one option as correct"),
        ("quiz", {**POLL_FORM, "correct_1": "on", "correct_2": "on"}, "correct", "Only one option"),
        ("quiz", {**POLL_FORM, "correct_4": "on"}, "correct", "Option 4 is marked correct"),
        ("quiz", {**POLL_FORM, "correct": ["0"]}, "correct", "by their number"),
        ("rating", base(scale="7"), "scale", "Choose 5 or 10"),
        ("rating", base(), "scale", "Choose 5 or 10"),
        ("nps", base(question="q" * 301), "question", "at most 300"),
        ("question", base(prompt="p" * 501), "prompt", "at most 500"),
        ("link", {**LINK_FORM, "button": ""}, "button", "Enter the words on the button"),
        ("link", {**LINK_FORM, "url": ""}, "url", "Enter the web address"),
        ("link", {**LINK_FORM, "url": "javascript:alert(1)"}, "url", "starting with https://"),
        ("link", {**LINK_FORM, "url": "example.com"}, "url", "starting with https://"),
        ("link", {**LINK_FORM, "url": "https://exa mple.com"}, "url", "starting with https://"),
        ("link", {**LINK_FORM, "required": "on"}, "required", "Only a poll, quiz"),
        ("offer", {**LINK_FORM, "countdown_seconds": "ten"}, "countdown_seconds", "or leave it"),
        ("offer", {**LINK_FORM, "countdown_seconds": "25:00:00"}, "countdown_seconds", "24 hours"),
        ("download", base(), "file", "Choose the file"),
        ("download", base(file_key="uploads/abc/talk.mp4", size=3), "file", "Choose the file"),
        ("download", base(file_key="downloads/../x", size=3), "file", "Choose the file"),
        ("download", base(file_key="downloads/a/b.pdf", size=0), "file", "hold something"),
        (
            "download",
            base(file_key="downloads/a/b.pdf", size=25_000_001),
            "file",
            "at most 25.0 MB",
        ),
        ("teleport", POLL_FORM, "kind", "Choose what kind"),
    ],
)
def test_bad_input_names_the_field(
    kind: str, form: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InteractionError) as caught:
        check(kind, form, duration=600.0)
    assert field in caught.value.errors, caught.value.errors
    assert message in caught.value.errors[field]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InteractionError) as caught:
        check("offer", {"title": "", "opens_at": "x", "url": "ftp://a"}, duration=None)
    assert set(caught.value.errors) == {"title", "opens_at", "button", "url"}


def test_without_a_known_duration_any_moment_goes() -> None:
    checked = check(
        "poll", {**POLL_FORM, "opens_at": "2:00:00", "closes_at": "2:10:00"}, duration=None
    )
    assert (checked.opens_at_seconds, checked.closes_at_seconds) == (7200.0, 7800.0)


def test_a_closing_moment_rounded_up_to_the_whole_second_is_fine() -> None:
    checked = check("poll", {**POLL_FORM, "closes_at": "10:00"}, duration=599.96)
    assert checked.closes_at_seconds == 600.0


def test_required_is_kept_for_kinds_that_take_answers() -> None:
    assert check("nps", base(required="on"), duration=None).required is True
    assert check("poll", {**POLL_FORM, "required": True}, duration=None).required is True


def test_a_stored_interaction_comes_back_as_the_form_shows_it() -> None:
    stored = item(
        "quiz",
        {"options": ["A", "B", "C"], "correct": [1, 2], "multiple": True, "explanation": "X"},
        opens_at_seconds=750.0,
        closes_at_seconds=3723.0,
        required=True,
        title="Q",
    )
    form = interactions.form_of(stored)
    assert form["opens_at"] == "12:30"
    assert form["closes_at"] == "1:02:03"
    assert (form["option_2"], form["correct_2"], form["correct_3"]) == ("B", "on", "on")
    assert "correct_1" not in form
    again = check("quiz", form, duration=None)
    assert again.config == stored.config
    assert again.required is True


# --- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interaction", "raw", "stored"),
    [
        (POLL, 0, 0),
        (POLL, 2, 2),
        (POLL_MANY, [2, 0], [0, 2]),
        (POLL_MANY, [1], [1]),
        (QUIZ, 1, 1),
        (QUIZ_MANY, [3, 1, 0], [0, 1, 3]),
        (NPS, 0, 0),
        (NPS, 10, 10),
        (RATING_5, 1, 1),
        (RATING_5, 5, 5),
        (RATING_10, 10, 10),
        (QUESTION, "  What about\x00 pricing?\r\nThanks ", "What about pricing?\nThanks"),
        (QUESTION, "x" * 1000, "x" * 1000),
    ],
)
def test_answers_taken(interaction: Interaction, raw: Any, stored: Any) -> None:
    assert parse_answer(interaction, raw) == stored


@pytest.mark.parametrize(
    ("interaction", "raw", "message"),
    [
        (POLL, 3, "That option does not exist."),
        (POLL, -1, "That option does not exist."),
        (POLL, "0", "Choose one of the options."),
        (POLL, True, "Choose one of the options."),
        (POLL, 1.0, "Choose one of the options."),
        (POLL, [0], "Choose one of the options."),
        (POLL, None, "Choose one of the options."),
        (POLL_MANY, 0, "Choose one or more of the options."),
        (POLL_MANY, ["0"], "Choose one or more of the options."),
        (POLL_MANY, [], "Choose at least one option."),
        (POLL_MANY, [0, 0], "Choose each option only once."),
        (POLL_MANY, [0, 1, 2, 0], "Choose at most 3 options."),
        (POLL_MANY, [0, 3], "That option does not exist."),
        (QUIZ, 3, "That option does not exist."),
        (NPS, 11, "Choose a score from 0 to 10."),
        (NPS, -1, "Choose a score from 0 to 10."),
        (NPS, "7", "Choose a score from 0 to 10."),
        (RATING_5, 0, "Choose a rating from 1 to 5."),
        (RATING_5, 6, "Choose a rating from 1 to 5."),
        (RATING_10, 11, "Choose a rating from 1 to 10."),
        (QUESTION, "", "Write your question first."),
        (QUESTION, " \x00\n ", "Write your question first."),
        (QUESTION, 5, "Write your question first."),
        (QUESTION, "x" * 1001, "Please use at most 1000 characters."),
        (OFFER, 0, "This takes no answer."),
        (item("download", {}), None, "This takes no answer."),
        (item("link", {}), "x", "This takes no answer."),
    ],
)
def test_answers_refused_with_a_clear_message(
    interaction: Interaction, raw: Any, message: str
) -> None:
    with pytest.raises(InteractionError) as caught:
        parse_answer(interaction, raw)
    assert caught.value.errors == {"answer": message}
    assert str(caught.value) == message


def test_attendees_read_why_in_their_language() -> None:
    with pytest.raises(InteractionError, match="Bewertung von 1 bis 5"):
        parse_answer(RATING_5, 9, language="de")
    with pytest.raises(InteractionError, match="höchstens 1000 Zeichen"):
        parse_answer(QUESTION, "x" * 1001, language="de")


def _refused_messages() -> set[str]:
    tree = ast.parse(Path(interactions.__file__).read_text(encoding="utf-8"))
    return {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_refuse"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    }


def test_every_answer_message_has_a_german_translation() -> None:
    german = translations("de")
    messages = _refused_messages()
    assert len(messages) >= 10
    assert sorted(m for m in messages if german.gettext(m) == m) == []
    for message in messages:
        placeholders = set(re.findall(r"\{(\w+)\}", message))
        assert set(re.findall(r"\{(\w+)\}", german.gettext(message))) == placeholders


@pytest.mark.parametrize(
    ("closes", "moment", "open_"),
    [
        (120.0, 57.9, False),
        (120.0, 58.0, True),
        (120.0, 60.0, True),
        (120.0, 130.0, True),
        (120.0, 130.1, False),
        (None, 57.9, False),
        (None, 99_999.0, True),
    ],
)
def test_answers_are_taken_from_two_seconds_early_to_ten_seconds_late(
    closes: float | None, moment: float, open_: bool
) -> None:
    assert interactions.is_open(item("poll", {}, closes_at_seconds=closes), moment) is open_


# --- tallies, checked by hand ------------------------------------------------------------------


def test_poll_tally() -> None:
    # "x" and 5 no longer fit (options changed after answering): left out.
    assert interactions.tally(POLL, [0, 1, 1, 2, "x", 5]) == {"counts": [1, 2, 1], "total": 4}
    assert interactions.tally(POLL_MANY, [[0, 1], [1], [1, 2]]) == {
        "counts": [1, 3, 1],
        "total": 3,
    }
    assert interactions.tally(POLL, []) == {"counts": [0, 0, 0], "total": 0}


def test_quiz_tally() -> None:
    assert interactions.tally(QUIZ, [0, 0, 1, 2]) == {
        "counts": [2, 1, 1],
        "total": 4,
        "correct": [0],
        "correct_share": 0.5,
        "explanation": "E",
    }
    # Right only when exactly the correct options are chosen: 2 of 3.
    assert interactions.tally(QUIZ_MANY, [[1, 3], [3, 1], [1]]) == {
        "counts": [0, 3, 0, 2],
        "total": 3,
        "correct": [1, 3],
        "correct_share": 0.6667,
        "explanation": "",
    }
    assert interactions.tally(QUIZ, [])["correct_share"] == 0.0


@pytest.mark.parametrize(
    ("answers", "promoters", "passives", "detractors", "score"),
    [
        # 4 promoters (10, 9, 9, 10), 2 passives (8, 7), 4 detractors (6, 0, 3, 5): 0.
        ([10, 9, 9, 8, 7, 6, 0, 3, 10, 5], 4, 2, 4, 0),
        # (4 - 2) / 8 = 25 %.
        ([10, 10, 9, 8, 6, 2, 10, 7], 4, 2, 2, 25),
        # (2 - 1) / 8 = 12.5 % rounds up to 13; the mirror image to -13.
        ([10, 9, 0, 8, 8, 8, 8, 8], 2, 5, 1, 13),
        ([0, 0, 10, 8, 8, 8, 8, 8], 1, 5, 2, -13),
        # (1 - 2) / 3 = -33.3 %.
        ([9, 6, 5], 1, 0, 2, -33),
        ([0, 6], 0, 0, 2, -100),
        ([9, 10, 10], 3, 0, 0, 100),
        ([7, 8], 0, 2, 0, 0),
    ],
)
def test_nps_tally(
    answers: list[int], promoters: int, passives: int, detractors: int, score: int
) -> None:
    result = interactions.tally(NPS, answers)
    counts = [answers.count(n) for n in range(11)]
    assert result == {
        "counts": counts,
        "total": len(answers),
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "score": score,
    }


def test_nps_without_answers_has_no_score() -> None:
    assert interactions.tally(NPS, [11, "9"]) == {
        "counts": [0] * 11,
        "total": 0,
        "promoters": 0,
        "passives": 0,
        "detractors": 0,
        "score": None,
    }


@pytest.mark.parametrize(
    ("interaction", "answers", "counts", "average"),
    [
        (RATING_5, [5, 4, 4, 3], [0, 0, 1, 2, 1], 4.0),
        (RATING_5, [5, 4], [0, 0, 0, 1, 1], 4.5),
        (RATING_5, [5, 5, 4], [0, 0, 0, 1, 2], 4.7),  # 4.666...
        (RATING_5, [4, 4, 4, 5], [0, 0, 0, 3, 1], 4.3),  # 4.25 rounds up
        (RATING_5, [1, 1, 2], [2, 1, 0, 0, 0], 1.3),  # 1.333...
        (RATING_5, [6, 0], [0, 0, 0, 0, 0], None),
        (RATING_10, [10, 1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 1], 5.5),
    ],
)
def test_rating_tally(
    interaction: Interaction, answers: list[Any], counts: list[int], average: float | None
) -> None:
    total = sum(counts)
    assert interactions.tally(interaction, answers) == {
        "counts": counts,
        "total": total,
        "average": average,
    }


def test_question_and_click_tallies() -> None:
    assert interactions.tally(QUESTION, ["Why?", "", "How?"]) == {"total": 2}
    assert interactions.tally(OFFER, [{}, {}, {}]) == {"total": 3}


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("poll", True),
        ("quiz", True),
        ("nps", True),
        ("rating", True),
        ("question", False),
        ("offer", False),
        ("download", False),
        ("link", False),
    ],
)
def test_who_sees_results(kind: str, shown: bool) -> None:
    assert interactions.shows_results(kind) is shown


# --- what attendees receive --------------------------------------------------------------------


def test_a_quiz_card_keeps_the_answers_secret() -> None:
    card = interactions.public_item(QUIZ)
    assert card == {
        "id": 7,
        "kind": "quiz",
        "title": "T",
        "opens_at": 60.0,
        "closes_at": None,
        "required": False,
        "config": {"options": ["Paris", "Rome", "Oslo"], "multiple": False},
    }


def test_a_download_card_names_the_attendees_url_not_the_storage_key() -> None:
    download = item(
        "download",
        {
            "file_key": "downloads/secret/slides.pdf",
            "file_name": "Slides.pdf",
            "size": 2048,
            "content_type": "application/pdf",
            "text": "For later",
        },
        closes_at_seconds=90.0,
        required=False,
    )
    card = interactions.public_item(download, download_url="/j/tok/files/7")
    assert card["config"] == {
        "text": "For later",
        "file_name": "Slides.pdf",
        "size": 2048,
        "url": "/j/tok/files/7",
    }
    assert card["closes_at"] == 90.0
    assert "secret" not in repr(card)
    assert interactions.download_path("tok", 7) == "/j/tok/files/7"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Slides.pdf", "Slides.pdf"),
        ("Präsentation März.PDF", "Prasentation-Marz.PDF"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\a\\deck.key", "deck.key"),
        (".hidden", "file.hidden"),
        ("notes.tar.gz", "notes.tar.gz"),
        ("日本.pdf", "file.pdf"),
        ("", "file"),
        ("a" * 300 + ".pdf", "a" * 90 + ".pdf"),
    ],
)
def test_storage_names(name: str, safe: str) -> None:
    assert downloads.safe_file_name(name) == safe


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("application/pdf", "application/pdf"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("TEXT/HTML; charset=utf-8", "application/octet-stream"),
        ("", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("image/png", "image/png"),
    ],
)
def test_served_types(given: str, served: str) -> None:
    assert downloads.served_type(given) == served


def test_a_new_file_gets_a_fresh_key() -> None:
    first = downloads.file_fields('My "deck".pdf', 10)
    second = downloads.file_fields('My "deck".pdf', 10)
    assert first["file_key"] != second["file_key"]
    assert re.fullmatch(r"downloads/[A-Za-z0-9_-]{16}/My-deck\.pdf", first["file_key"])
    assert first["file_name"] == "My 'deck'.pdf"
    assert (first["size"], first["content_type"]) == (10, "application/pdf")
    assert downloads.file_fields("page.html", 1)["content_type"] == "application/octet-stream"


# --- stored ------------------------------------------------------------------------------------


async def test_save_creates_changes_and_audits(database: Settings) -> None:
    webinar = await Webinar.create(slug="w", title="W")
    checked = check("poll", POLL_FORM, duration=None)
    saved = await interactions.save(
        webinar=webinar, checked=checked, interaction_id=None, actor=None
    )
    assert (saved.kind, saved.title, saved.position) == ("poll", "Which colour?", 0)
    second = await interactions.save(
        webinar=webinar, checked=checked, interaction_id=None, actor=None
    )
    assert second.position == 1

    changed = check("poll", {**POLL_FORM, "title": "Now", "closes_at": "3:00"}, duration=None)
    again = await interactions.save(
        webinar=webinar, checked=changed, interaction_id=saved.id, actor=None, ip="10.0.0.1"
    )
    assert again.id == saved.id
    stored = await Interaction.get(id=saved.id)
    assert (stored.title, stored.closes_at_seconds) == ("Now", 180.0)
    events = await AuditEvent.filter(target=f"webinar:{webinar.id}").order_by("id")
    assert [event.action for event in events] == [
        "interaction.created",
        "interaction.created",
        "interaction.updated",
    ]
    assert events[2].ip == "10.0.0.1"
    assert events[2].details == {"interaction": saved.id, "kind": "poll", "title": "Now"}

    with pytest.raises(InteractionError) as caught:
        await interactions.save(
            webinar=webinar,
            checked=check("nps", base(), duration=None),
            interaction_id=saved.id,
            actor=None,
        )
    assert "keeps its kind" in caught.value.errors["kind"]
    other = await Webinar.create(slug="other", title="Other")
    with pytest.raises(InteractionError, match="no longer exists"):
        await interactions.save(webinar=other, checked=changed, interaction_id=saved.id, actor=None)
    assert (await Interaction.get(id=saved.id)).title == "Now"


async def test_the_timeline_of_a_session(database: Settings) -> None:
    webinar = await Webinar.create(slug="w", title="W")
    other = await Webinar.create(slug="o", title="O")
    start = datetime(2030, 1, 1, tzinfo=UTC)
    session = await WebinarSession.create(webinar=webinar, starts_at=start)
    elsewhere = await WebinarSession.create(webinar=webinar, starts_at=start + timedelta(days=1))

    async def add(title: str, at: str, target: Webinar = webinar) -> Interaction:
        checked = check("poll", {**POLL_FORM, "title": title, "opens_at": at}, duration=None)
        return await interactions.save(
            webinar=target, checked=checked, interaction_id=None, actor=None
        )

    late = await add("late", "5:00")
    early = await add("early", "1:00")
    tied = await add("tied with late", "5:00")
    await add("another webinar", "0:10", other)
    pushed = await interactions.create_pushed(
        session=session,
        kind="poll",
        title="Pushed",
        config={"options": ["Yes", "No"], "multiple": False},
        opens_at=200.0,
        actor=None,
    )
    await interactions.create_pushed(
        session=elsewhere,
        kind="offer",
        title="Elsewhere",
        config={"button": "Buy", "url": "https://example.com", "text": "", "countdown_seconds": 60},
        opens_at=10.0,
        actor=None,
    )
    found = await interactions.timeline(webinar.id, session.id)
    assert [row.id for row in found] == [early.id, pushed.id, late.id, tied.id]
    assert [row.title for row in await interactions.timeline(webinar.id, None)] == [
        "early",
        "late",
        "tied with late",
    ]
    assert pushed.config == {"options": ["Yes", "No"], "multiple": False}
    assert (pushed.required, pushed.closes_at_seconds) == (False, None)
    assert await AuditEvent.filter(action="interaction.pushed").count() == 2
    # A pushed interaction is not one of the webinar's own: the editor cannot change it.
    assert await interactions.editable(webinar, pushed.id) is None


async def test_only_valid_polls_and_offers_are_pushed(database: Settings) -> None:
    webinar = await Webinar.create(slug="w", title="W")
    session = await WebinarSession.create(
        webinar=webinar, starts_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(InteractionError, match="Only a poll or an offer"):
        await interactions.create_pushed(
            session=session, kind="quiz", title="Q", config={}, opens_at=1.0, actor=None
        )
    with pytest.raises(InteractionError) as caught:
        await interactions.create_pushed(
            session=session,
            kind="offer",
            title="",
            config={"button": "Buy", "url": "mailto:a@example.com", "required": True},
            opens_at=-3.0,
            actor=None,
        )
    assert set(caught.value.errors) == {"title", "opens_at", "url"}
    assert await Interaction.all().count() == 0


async def test_delete_and_duplicate_keep_shared_files(database: Settings, tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "store")
    webinar = await Webinar.create(slug="w", title="W")
    fields = downloads.file_fields("slides.pdf", 5)
    source = tmp_path / "slides.pdf"
    source.write_bytes(b"%PDF-")
    await downloads.store_file(storage, fields["file_key"], source, content_type="application/pdf")
    checked = check("download", {**base(), **fields}, duration=None)
    first = await interactions.save(
        webinar=webinar, checked=checked, interaction_id=None, actor=None
    )
    copy = await interactions.duplicate(webinar=webinar, interaction_id=first.id, actor=None)
    assert copy is not None
    assert copy.title == "Which colour? (copy)"
    assert copy.config == first.config

    assert await interactions.delete(
        webinar=webinar, interaction_id=first.id, actor=None, storage=storage
    )
    assert storage.exists(fields["file_key"]), "the copy still offers the file"
    assert await interactions.delete(
        webinar=webinar, interaction_id=copy.id, actor=None, storage=storage
    )
    assert not storage.exists(fields["file_key"])
    assert (
        await interactions.delete(
            webinar=webinar, interaction_id=copy.id, actor=None, storage=storage
        )
        is None
    )
    actions = [event.action for event in await AuditEvent.all().order_by("id")]
    assert actions == [
        "interaction.created",
        "interaction.duplicated",
        "interaction.deleted",
        "interaction.deleted",
    ]


async def test_a_replaced_file_is_removed(database: Settings, tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path / "store")
    webinar = await Webinar.create(slug="w", title="W")
    source = tmp_path / "a.pdf"
    source.write_bytes(b"one")
    old = downloads.file_fields("a.pdf", 3)
    new = downloads.file_fields("b.pdf", 3)
    for fields in (old, new):
        await downloads.store_file(storage, fields["file_key"], source, content_type="x/y")
    saved = await interactions.save(
        webinar=webinar,
        checked=check("download", {**base(), **old}, duration=None),
        interaction_id=None,
        actor=None,
        storage=storage,
    )
    await interactions.save(
        webinar=webinar,
        checked=check("download", {**base(), **new}, duration=None),
        interaction_id=saved.id,
        actor=None,
        storage=storage,
    )
    assert not storage.exists(old["file_key"])
    assert storage.exists(new["file_key"])
