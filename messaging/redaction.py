"""Payment card numbers and IBANs are masked before a message is stored (CHAT_REDACT).

Donors paste card numbers into support chats. What is masked is never written anywhere: the service
stores, indexes, announces, notifies and sends webhooks only from the stored (masked) message, and the
original exists only in the request being handled. The last 4 digits stay, so the sender and staff can
still tell which card was meant.

To keep false positives rare, a number is masked only if its checksum holds: 13 to 19 digits (single spaces
or dashes between them allowed) passing the Luhn check, or an IBAN passing ISO 7064 mod 97. An order or
phone number fails Luhn nine times in ten and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

MASK = "*"
KEEP_DIGITS = 4
CARD_DIGITS = (13, 19)
IBAN_LENGTH = (15, 34)  # Norway's 15 to Saint Lucia's 32, with room; the checksum does the real work

# Runs of at least 13 digits with at most one space or dash between two of them: every candidate card
# number, and whatever digits it is glued to (an expiry date, a phone number), split apart below.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")
# Two letters, two check digits, then 11 to 30 letters or digits in groups that may be separated by single
# spaces. The match may run into following words ("… 3000 THANKS"): shorter group prefixes are tried too.
_IBAN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_SEPARATOR = re.compile(r"[ -]")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """ISO 13616: the first four characters moved to the end, letters as 10 to 35, the number mod 97 is 1."""
    if not IBAN_LENGTH[0] <= len(compact) <= IBAN_LENGTH[1] or not compact.isascii() or not compact.isalnum():
        return False
    rearranged = (compact[4:] + compact[:4]).upper()
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _mask(text: str) -> str:
    """Every letter or digit but the last four becomes MASK; separators stay, so the shape is kept."""
    kept = 0
    out = []
    for char in reversed(text):
        if char.isalnum():
            out.append(char if kept < KEEP_DIGITS else MASK)
            kept += 1
        else:
            out.append(char)
    return "".join(reversed(out))


def _card_spans(run: str) -> list[tuple[int, int]]:
    """Within one run of digits, the spans (start, end) of card numbers: contiguous groups (split at the
    separators) holding 13 to 19 digits in all and passing Luhn, the longest from the earliest group first."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
    spans: list[tuple[int, int]] = []
    first = 0
    while first < len(groups):
        found = None
        digits = ""
        for last in range(first, len(groups)):
            digits += run[groups[last][0] : groups[last][1]]
            if len(digits) > CARD_DIGITS[1]:
                break
            if len(digits) >= CARD_DIGITS[0] and luhn_valid(digits):
                found = last
        if found is None:
            first += 1
            continue
        spans.append((groups[first][0], groups[found][1]))
        first = found + 1
    return spans


def _redact_cards(text: str) -> tuple[str, bool]:
    pieces: list[str] = []
    position = 0
    for run in _DIGIT_RUN.finditer(text):
        for start, end in _card_spans(run.group()):
            start, end = run.start() + start, run.start() + end
            pieces += [text[position:start], _mask(text[start:end])]
            position = end
    if not pieces:
        return text, False
    pieces.append(text[position:])
    return "".join(pieces), True


def _redact_ibans(text: str) -> tuple[str, bool]:
    pieces: list[str] = []
    position = 0
    for run in _IBAN_RUN.finditer(text):
        candidate = run.group()
        # Longest first: drop trailing space-separated groups until the checksum holds (or nothing is left).
        while candidate:
            if iban_valid(candidate.replace(" ", "")):
                start = run.start()
                pieces += [text[position:start], _mask(candidate)]
                position = start + len(candidate)
                break
            cut = candidate.rfind(" ")
            candidate = candidate[:cut] if cut > 0 else ""
    if not pieces:
        return text, False
    pieces.append(text[position:])
    return "".join(pieces), True


# IBANs first: their digits can pass for a card number, and a masked IBAN no longer looks like one.
_REDACTORS = {"iban": _redact_ibans, "card": _redact_cards}


def redact_text(text: str, kinds: Collection[str]) -> tuple[str, set[str]]:
    """`text` with the numbers of `kinds` masked, and the kinds that were found."""
    found: set[str] = set()
    for kind, redactor in _REDACTORS.items():
        if kind not in kinds:
            continue
        text, changed = redactor(text)
        if changed:
            found.add(kind)
    return text, found


def _redact_value(value: Any, kinds: Collection[str], found: set[str]) -> Any:
    if isinstance(value, str):
        text, kinds_found = redact_text(value, kinds)
        found |= kinds_found
        return text
    if isinstance(value, dict):
        return {key: _redact_value(item, kinds, found) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, kinds, found) for item in value]
    return value


REDACTED_KEY = "redacted"  # metadata key naming what was masked; the server's alone


def redact_message(content: str, metadata: dict[str, Any], kinds: Collection[str]) -> tuple[str, dict[str, Any]]:
    """The content and metadata to store. Every string value in the metadata is redacted too (keys are not:
    masking could merge two of them). When anything was masked, `metadata.redacted` names the kinds, in
    order; a client's own `redacted` key is dropped, so the key always means what the server found."""
    if not kinds:
        return content, metadata
    found: set[str] = set()
    content, kinds_found = redact_text(content, kinds)
    found |= kinds_found
    metadata = {key: _redact_value(value, kinds, found) for key, value in metadata.items() if key != REDACTED_KEY}
    if found:
        metadata[REDACTED_KEY] = sorted(found)
    return content, metadata
