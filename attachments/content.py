"""What an upload is, decided from its bytes: never from its name or the type the client declared."""

from __future__ import annotations

import os
import re

import filetype

from attachments.models import NAME_MAX_LENGTH
from chatservice.validation import VISIBLE_CHAR, clean_text

# The extensions a download's name may end with, per type; the first is added when the name has none of them,
# so that a PNG called "receipt.pdf" is saved by the browser as "receipt.pdf.png", not opened as a PDF.
EXTENSIONS = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "image/gif": (".gif",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".text", ".log", ".csv", ".md"),
}
# Text is what has no magic number and decodes as UTF-8 without control characters other than these
# (tab, newline, form feed, carriage return).
TEXT_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Bidirectional overrides and isolates: "gpj.exe" shown as "exe.jpg" is how a name lies to the eye.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
FALLBACK_NAME = "attachment"


def detect(data: bytes) -> str | None:
    """The MIME type of `data` as its content says, among the types this service knows; None: unknown."""
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return kind.mime if kind.mime in EXTENSIONS else None
    return "text/plain" if _is_text(data) else None


def _is_text(data: bytes) -> bool:
    if not data or TEXT_CONTROLS.search(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def clean_name(raw: str, content_type: str) -> str:
    """A file name safe to show and to offer as a download name: the last path component, printable, no
    bidirectional tricks, no leading dots, at most NAME_MAX_LENGTH characters, ending with an extension of
    its real type."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = BIDI_CONTROLS.sub("", clean_text(name)).replace("\n", " ").replace("\t", " ").strip().lstrip(".")
    if not VISIBLE_CHAR.search(name):
        name = FALLBACK_NAME
    extensions = EXTENSIONS[content_type]
    stem, extension = os.path.splitext(name)
    if extension.lower() not in extensions:
        stem, extension = name, extensions[0]
    return stem[: NAME_MAX_LENGTH - len(extension)] + extension
