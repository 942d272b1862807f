"""The console's Chinese catalogue is complete: every message the console's code and
templates mark has a translation, no template shows English text outside ``_()``, and no
two catalogue files translate one message differently."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from admin.i18n import CHINESE, catalogue_files, read_catalogue

ADMIN = Path(__file__).resolve().parents[2] / "admin"
TEMPLATES = ADMIN / "templates" / "jifen"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "_n": (1, 2)}
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
# Words that stay as they are in Chinese: names, codes and formats.
KEPT = {
    "Jifen", "CSV", "JSON", "API", "SDK", "ID", "SKU", "URL", "HTTP", "HTTPS", "SMTP", "TLS",
    "STARTTLS", "HMAC", "Stripe", "CNY", "UTC", "PNG", "SVG", "Standard", "Webhooks", "whsec",
    "POS", "RQ", "Redis", "PostgreSQL", "SQLite", "OK", "QR", "zh", "en", "English",
}  # fmt: skip
# Templates whose texts are not yet all marked for translation; the list only shrinks.
NOT_YET: set[str] = set()


def extracted() -> Iterator[tuple[str, str, int]]:
    """``(message, file, line)`` for every message marked in the console's code."""
    options = {"templates/**.html": {"extensions": "jinja2.ext.do"}}
    for filename, line, message, _comments, _context in extract_from_dir(
        ADMIN, METHODS, options_map=options, keywords=KEYWORDS
    ):
        for text in message if isinstance(message, tuple) else (message,):
            if text:
                yield text, filename, line


def test_every_marked_message_has_a_chinese_translation() -> None:
    catalogue = read_catalogue(CHINESE)
    missing = sorted(
        f"{filename}:{line}: {text!r}"
        for text, filename, line in extracted()
        if not (catalogue.get(text) and catalogue.get(text).string)  # type: ignore[union-attr]
    )
    assert not missing, "add these to a .po file under admin/translations:\n" + "\n".join(missing)


def test_no_two_catalogue_files_disagree() -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in catalogue_files(CHINESE):
        with path.open("rb") as handle:
            for message in read_po(handle, locale=CHINESE):
                if not message.id:
                    continue
                key = message.id if isinstance(message.id, str) else message.id[0]
                string = message.string if isinstance(message.string, str) else message.string[0]
                earlier = seen.setdefault(key, (path.name, string))
                if earlier[1] != string:
                    clashes.append(f"{key!r}: {earlier[0]} {earlier[1]!r}, {path.name} {string!r}")
    assert not clashes, "\n".join(clashes)


_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)
_SKIPPED = re.compile(r"<(script|style)\b.*?</\1>|<!--.*?-->", re.S | re.I)
_TAG = re.compile(r"<[^>]*>", re.S)
_SHOWN_ATTRIBUTES = re.compile(
    r"""\b(?:title|placeholder|aria-label|alt|data-confirm)\s*=\s*("[^"]*"|'[^']*')""", re.I
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_ENTITY = re.compile(r"&#?\w+;")


def untranslated(source: str) -> list[str]:
    """English words a template shows outside ``_()``: in its text and in the attributes a
    person reads (title, placeholder, aria-label, alt)."""
    source = _SKIPPED.sub(" ", source)
    attributes = [m.group(1)[1:-1] for m in _SHOWN_ATTRIBUTES.finditer(source)]
    text = _TAG.sub(" ", source)
    found = []
    for chunk in [*attributes, text]:
        plain = _ENTITY.sub(" ", _JINJA.sub(" ", chunk))
        found += [w for w in _WORD.findall(plain) if w not in KEPT]
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_show_no_text_outside_translation(name: str) -> None:
    if name in NOT_YET:
        pytest.skip("not yet translated")
    words = untranslated((TEMPLATES / name).read_text(encoding="utf-8"))
    assert not words, f"{name}: wrap these in _() or {{% trans %}}: {sorted(set(words))}"


def test_the_detector_finds_text_and_attributes() -> None:
    source = '<p title="Save it">Points {{ _("earned") }} &larr; <b>{{ n }}</b></p>{# note #}'
    assert untranslated(source) == ["Save", "it", "Points"]
