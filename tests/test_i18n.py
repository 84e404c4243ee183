"""Languages: every string of the donor page, the widget and the console is in the catalogs, Bengali is
complete, the compiled catalogs match their sources, and the language is chosen as documented (the widget's
data-locale, else Accept-Language) for pages only: the API keeps English."""

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatservice.config import BASE_DIR

LOCALE_DIR = BASE_DIR / "locale"
DOMAINS = ("django", "djangojs")
PLACEHOLDER = re.compile(r"%\(\w+\)s")
# What `make messages` passes (Makefile), so the check sees the strings the catalogs are made from.
IGNORE = [".venv", "var", "tests", "bench", "locale", "node_modules"]
COPY_IGNORE = (
    ".venv",
    "var",
    ".git",
    "node_modules",
    "docs",
    "__pycache__",
    ".hypothesis",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
)


def entries(po: Path) -> dict[str, list[str]]:
    """msgid -> its translations (one, or one per plural form), from a .po file; fuzzy entries are flagged."""
    found: dict[str, list[str]] = {}
    for block in po.read_text(encoding="utf-8").split("\n\n"):
        if "#, fuzzy" in block and 'msgid ""\nmsgstr ""' not in block:
            found.setdefault("<fuzzy>", []).append(block)
            continue
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?) "(.*)"$', line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2)
            elif line.startswith('"') and key:
                fields[key] += line[1:-1]
        msgid = fields.get("msgid", "").replace('\\"', '"')
        if msgid:
            found[msgid] = [v.replace('\\"', '"') for k, v in sorted(fields.items()) if k.startswith("msgstr")]
    return found


@pytest.mark.parametrize("domain", DOMAINS)
def test_bengali_is_complete_and_keeps_every_placeholder(domain):
    catalog = entries(LOCALE_DIR / "bn" / "LC_MESSAGES" / f"{domain}.po")
    assert "<fuzzy>" not in catalog, catalog.get("<fuzzy>")
    assert len(catalog) > 50
    for msgid, translations in catalog.items():
        for translation in translations:
            assert translation, f"no Bengali for {msgid!r}"
            assert sorted(PLACEHOLDER.findall(translation)) == sorted(PLACEHOLDER.findall(msgid)), msgid
            assert re.search("[\u0980-\u09ff]", translation), f"{msgid!r} is not in Bengali: {translation!r}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_compiled_catalogs_match_their_sources(domain):
    directory = LOCALE_DIR / "bn" / "LC_MESSAGES"
    with (directory / f"{domain}.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for msgid, translations in entries(directory / f"{domain}.po").items():
        assert compiled.gettext(msgid) == translations[0], f"{domain}.mo is stale: run `make messages`"


def test_every_marked_string_is_in_the_catalogs(tmp_path):
    """`make messages` run on a copy of the sources adds no string to the catalogs: each marked string of the
    templates and scripts is there, translated."""
    copy = tmp_path / "src"
    shutil.copytree(BASE_DIR, copy, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatservice.settings"}
    for domain in DOMAINS:
        command = [sys.executable, "manage.py", "makemessages", "-l", "bn", "-d", domain, "--no-location"]
        subprocess.run(
            [*command, *(f"--ignore={p}" for p in IGNORE)], cwd=copy, env=env, check=True, capture_output=True
        )
        after = entries(copy / "locale" / "bn" / "LC_MESSAGES" / f"{domain}.po")
        new = sorted(set(after) - set(entries(LOCALE_DIR / "bn" / "LC_MESSAGES" / f"{domain}.po")))
        assert not new, f"run `make messages` and translate: {new}"


@pytest.mark.parametrize(
    ("query", "accept", "language"),
    [
        ("", "", "en"),
        ("", "bn-BD,bn;q=0.9,en;q=0.5", "bn"),
        ("?locale=bn", "en-GB", "bn"),  # the widget's data-locale wins over the browser
        ("?locale=en", "bn", "en"),
        ("?locale=xx", "bn", "bn"),  # an unknown locale is ignored
    ],
)
def test_the_donor_page_speaks_the_readers_language(client, query, accept, language):
    response = client.get(f"/chat/embed{query}", HTTP_ACCEPT_LANGUAGE=accept)
    body = response.content.decode()
    assert f'<html lang="{language}">' in body
    assert f'src="/jsi18n/{language}.js"' in body
    assert response["Content-Language"] == language
    assert "Accept-Language" in response["Vary"]
    assert ("সহায়তার সাথে সংযোগ হচ্ছে" in body) is (language == "bn")


def test_the_javascript_catalog_is_served_per_language(client):
    bengali = client.get("/jsi18n/bn.js")
    assert bengali.status_code == 200
    assert json.dumps("সহায়তা টাইপ করছে…")[1:-1] in bengali.content.decode()  # as the catalog's JSON holds it
    assert "interpolate" in bengali.content.decode()
    assert client.get("/jsi18n/en.js").status_code == 200
    assert client.get("/jsi18n/xx.js").status_code == 404


@pytest.mark.django_db
def test_the_api_keeps_english_whatever_the_accept_language(client):
    response = client.get("/api/conversations", HTTP_ACCEPT_LANGUAGE="bn")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert "Content-Language" not in response
