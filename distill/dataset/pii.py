"""Scrub personal data and secrets from training text before it is written anywhere.

A distilled adapter can repeat what it was trained on, so emails, phone numbers and keys in
transcripts are replaced by placeholders (``[EMAIL]``, ``[PHONE]``, ``[SECRET]``). Phone numbers
are found by ``phonenumbers`` (Google's libphonenumber rules: a number must be valid for its
country, so dates, amounts and order numbers are left alone); numbers written without a country
code are read as numbers of ``phone_region``. Emails and secrets are found by the patterns below:
the well-known key formats, credentials in URLs and headers, ``password = …`` style assignments,
and long random-looking tokens.

Secrets go first (a URL's ``user:password@host`` would otherwise look like an email), then
emails, then phone numbers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import phonenumbers

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
SECRET = "[SECRET]"

_KEY_FORMATS = re.compile(
    r"""
    -----BEGIN[ A-Z]*PRIVATE\ KEY-----[\s\S]*?-----END[ A-Z]*PRIVATE\ KEY-----
    | \bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}          # OpenAI, Anthropic
    | \b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}     # Stripe
    | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b                     # AWS access key id
    | \bgh[pousr]_[A-Za-z0-9]{30,}                      # GitHub tokens
    | \bgithub_pat_[A-Za-z0-9_]{22,}
    | \bglpat-[A-Za-z0-9_\-]{20,}                       # GitLab
    | \bxox[abprs]-[A-Za-z0-9\-]{10,}                   # Slack
    | \bAIza[0-9A-Za-z_\-]{35}                          # Google API key
    | \bhf_[A-Za-z0-9]{30,}                             # Hugging Face
    | \bus-[A-Za-z0-9_\-]{32,}                          # Understudy API keys
    | \beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}   # JWT
    """,
    re.VERBOSE,
)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s:/@]+:[^\s@/]+(?=@)")
_AUTH_HEADER = re.compile(r"(?i)\b(?:bearer|basic|token)\s+((?=\S*\d)[A-Za-z0-9._~+/=\-]{16,})")
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?<![a-z0-9])
    (?:api[_\-\ ]?key|secret(?:[_\-]key)?|access[_\-]?(?:key|token)|auth[_\-]?token|token
       |password|passwd|pwd|client[_\-]?secret)
    ["']?
    (?: \s*[:=]\s*["']?([^\s"',;]{6,})           # key: value, key = value
      | \s+is\s+["']?((?=\S*\d)[^\s"',;]{6,})   # "the password is hunter2": needs a digit
    )
    """
)
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")

MIN_TOKEN_ENTROPY = 4.2
"""Bits per character above which a long token counts as random (a key), not a word or a path.

Hex digests top out at 4.0 and prose-like identifiers stay well below; base64 keys of 32+
characters land around 4.5 to 5.5."""


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """A text with its personal data replaced, and what was replaced."""

    text: str
    found: Counter[str] = field(default_factory=Counter)
    """How many of each kind (``email``, ``phone``, ``secret``) were replaced."""


class PiiScrubber:
    """Replaces emails, phone numbers and secrets with placeholders.

    Args:
        phone_region: ISO 3166 country code for numbers written without ``+``; ``US`` reads
            ``(415) 555-0134`` as a phone number, ``GB`` reads ``020 7946 0958``.
    """

    def __init__(self, *, phone_region: str = "US") -> None:
        self.phone_region = phone_region.upper()

    def scrub(self, text: str) -> Scrubbed:
        found: Counter[str] = Counter()
        text = self._secrets(text, found)
        text, emails = _EMAIL.subn(EMAIL, text)
        found["email"] += emails
        text = self._phones(text, found)
        return Scrubbed(text, +found)

    def _secrets(self, text: str, found: Counter[str]) -> str:
        def replace_group(match: re.Match[str]) -> str:
            """Replace the value (the one group that matched), keep the label before it."""
            group = next(i for i in range(1, len(match.groups()) + 1) if match.group(i))
            whole, (start, end) = match.group(0), match.span(group)
            found["secret"] += 1
            return whole[: start - match.start()] + SECRET + whole[end - match.start() :]

        text, count = _KEY_FORMATS.subn(SECRET, text)
        found["secret"] += count
        text, count = _URL_CREDENTIALS.subn(SECRET, text)
        found["secret"] += count
        text = _AUTH_HEADER.sub(replace_group, text)
        text = _ASSIGNMENT.sub(replace_group, text)

        def replace_random(match: re.Match[str]) -> str:
            token = match.group(0)
            if not _looks_random(token):
                return token
            found["secret"] += 1
            return SECRET

        return _LONG_TOKEN.sub(replace_random, text)

    def _phones(self, text: str, found: Counter[str]) -> str:
        matches = list(
            phonenumbers.PhoneNumberMatcher(
                text, self.phone_region, leniency=phonenumbers.Leniency.VALID
            )
        )
        for match in reversed(matches):  # from the end, so earlier offsets stay valid
            text = text[: match.start] + PHONE + text[match.end :]
        found["phone"] += len(matches)
        return text


def _looks_random(token: str) -> bool:
    """Mixed letters and digits with high per-character entropy: a key, not a word or path."""
    if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
        return False
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return entropy >= MIN_TOKEN_ENTROPY
