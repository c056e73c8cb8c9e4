"""Personal data and secrets never reach a training file; ordinary text is left alone."""

from __future__ import annotations

import secrets

import pytest

from distill.dataset.pii import PiiScrubber

SCRUB = PiiScrubber(phone_region="US")


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("Write to jane.doe+work@example.co.uk today", "Write to [EMAIL] today", "email"),
        ("Call +1 650-253-0000 now", "Call [PHONE] now", "phone"),
        ("Call (212) 555-0100 or 415-555-0134", "Call [PHONE] or [PHONE]", "phone"),
        ("In London: +44 20 7946 0958", "In London: [PHONE]", "phone"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456 here", "key [SECRET] here", "secret"),
        ("AWS AKIAIOSFODNN7EXAMPLE", "AWS [SECRET]", "secret"),
        ("gh token ghp_" + "a1B2" * 9, "gh token [SECRET]", "secret"),
        ("password: hunter2hunter", "password: [SECRET]", "secret"),
        ("the password is hunter22", "the password is [SECRET]", "secret"),
        ('{"api_key": "abc123def"}', '{"api_key": "[SECRET]"}', "secret"),
        ("OPENAI_API_KEY=abcdefgh", "OPENAI_API_KEY=[SECRET]", "secret"),
        (
            "postgresql://admin:s3cr3t@db.example.com/app",
            "postgresql://[SECRET]@db.example.com/app",
            "secret",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----",
            "[SECRET]",
            "secret",
        ),
    ],
)
def test_each_kind_is_replaced_and_counted(text: str, expected: str, kind: str) -> None:
    scrubbed = SCRUB.scrub(text)
    assert scrubbed.text == expected
    assert scrubbed.found[kind] == expected.count(f"[{kind.upper()}]")


def test_random_keys_of_unknown_formats_are_caught_by_their_entropy() -> None:
    bearer = "Authorization: Bearer " + secrets.token_urlsafe(24)
    assert SCRUB.scrub(bearer).text == "Authorization: Bearer [SECRET]"
    assert SCRUB.scrub("token " + secrets.token_urlsafe(32)).text == "token [SECRET]"
    assert SCRUB.scrub("us-" + secrets.token_urlsafe(32)).text == "[SECRET]"  # our API keys


@pytest.mark.parametrize(
    "text",
    [
        "What is 17 * 24? And 1,234,567.89 / 3?",
        "Invoice 88812345 is due on 2024-03-15 (15.03.2024, 03/15/2024).",
        "the token is invalid; the password is correct",
        "def function_with_a_very_long_name_for_testing_things(x): return x",
        "/usr/local/lib/python3.11/site-packages/foo/bar/baz.py",
        "commit f18fc9c1849f91e42bb7f8ee381b6ae8d545d934",  # a hex digest is not a key
        "Email me about it tomorrow at the office.",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    scrubbed = SCRUB.scrub(text)
    assert scrubbed.text == text and not scrubbed.found


def test_the_phone_region_decides_how_national_numbers_are_read() -> None:
    assert SCRUB.scrub("ring 020 7946 0958").text == "ring 020 7946 0958"
    assert PiiScrubber(phone_region="gb").scrub("ring 020 7946 0958").text == "ring [PHONE]"
