"""The console's two languages, Simplified Chinese (``zh_Hans``) and English (``en``), with
flask-babel: which one a request gets, and the catalogue its words come from.

The language is the signed-in person's setting (``?lang=zh|en`` changes it and keeps it in
the session and on their account, ``admin_users.locale``, so it follows them to another
browser), else the first Chinese or English tag of the browser's
``Accept-Language`` read in order of preference with :meth:`babel.Locale.parse` (any Chinese
tag, ``zh-CN``, ``zh-Hans``, ``zh-TW``…, is Chinese: Werkzeug's ``best_match`` would answer
``en`` to a typical Chinese browser's ``zh-CN,zh;q=0.9,en;q=0.5``), else English.

The catalogue is every ``.po`` file under ``admin/translations/zh_Hans/LC_MESSAGES/``, read
and compiled in memory once per process (:class:`PoDomain`), so there is no compile step at
install time and no ``.mo`` file to keep in step with its source; the console's areas keep
their words in separate files. ``tests/unit/test_console_catalogue.py`` fails on a message
without a translation, on a template text outside ``_()``, and on two files translating one
message differently.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, g, request, session
from flask_babel import Babel, Domain, get_locale
from flask_login import current_user  # type: ignore[import-untyped]

from admin.words import init_words

TRANSLATIONS = Path(__file__).parent / "translations"
CHINESE = "zh_Hans"
ENGLISH = "en"
LOCALES = (CHINESE, ENGLISH)
# ``?lang=`` values and the locale each names.
SHORT_NAMES = {"zh": CHINESE, "en": ENGLISH}
SESSION_KEY = "jifen_locale"


def catalogue_files(locale: str = CHINESE) -> list[Path]:
    """The ``.po`` files of ``locale``, in a stable order."""
    return sorted((TRANSLATIONS / locale / "LC_MESSAGES").glob("*.po"))


def read_catalogue(locale: str = CHINESE) -> Catalog:
    """Every ``.po`` file of ``locale`` as one catalogue (later files never override earlier
    ones: the catalogue test refuses two files that disagree)."""
    merged = Catalog(locale=locale, domain="messages")
    for path in catalogue_files(locale):
        with path.open("rb") as handle:
            part = read_po(handle, locale=locale)
        for message in part:
            if message.id and message.string and message.id not in merged:
                merged.add(message.id, message.string, context=message.context)
    return merged


class PoDomain(Domain):  # type: ignore[misc]
    """flask-babel's domain, with translations compiled in memory from the ``.po`` files."""

    _compiled: ClassVar[dict[str, Translations]] = {}
    _lock = threading.Lock()

    def get_translations(self) -> NullTranslations:
        locale = get_locale()
        if locale is None or str(locale) == ENGLISH:
            return NullTranslations()
        name = _supported(str(locale))
        with self._lock:
            found = self._compiled.get(name)
            if found is None:
                found = self._compiled[name] = _compile(read_catalogue(name))
        return found


def _compile(catalogue: Catalog) -> Translations:
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return Translations(fp=buffer, domain="messages")


def _supported(name: str) -> str:
    return CHINESE if name.startswith("zh") else ENGLISH


def init_i18n(app: Flask) -> None:
    """flask-babel on the console: the locale selector, the catalogue, ``lang`` in templates."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", ENGLISH)
    babel = Babel(app, locale_selector=select_locale)
    babel.domain_instance = PoDomain()  # every gettext reads the .po files (see PoDomain)

    @app.before_request
    def remember_choice() -> None:
        chosen = SHORT_NAMES.get(request.args.get("lang", ""))
        if chosen is not None:
            session[SESSION_KEY] = chosen
            g.jifen_locale_changed = chosen
            keep_on_account(chosen)

    app.jinja_env.globals.update(html_lang=html_lang, other_languages=other_languages)
    init_words(app)


def select_locale() -> str:
    """The request's locale: ``?lang=``, else the choice in the session, else the signed-in
    person's account setting, else the browser's, else English."""
    chosen = SHORT_NAMES.get(request.args.get("lang", "")) or session.get(SESSION_KEY)
    if chosen in LOCALES:
        return str(chosen)
    kept = account_locale()
    if kept in LOCALES:
        return str(kept)
    return browser_locale(request.accept_languages)


def account_locale() -> str | None:
    """The language kept on the signed-in person's account, if any."""
    if not current_user or not current_user.is_authenticated:
        return None
    return cast("str | None", current_user.user.locale)


def keep_on_account(locale: str) -> None:
    """Keep ``locale`` on the signed-in person's account (audited), so it follows them to
    every browser; nothing for a visitor who is not signed in or a choice already kept."""
    from admin.context import console
    from loyalty.services import console_users

    if not current_user or not current_user.is_authenticated:
        return
    if current_user.user.locale == locale:
        return
    user = current_user.user
    console_users.set_language(
        console().db, username=user.username, locale=locale, actor=user.username
    )


def browser_locale(accept: Any) -> str:
    """The first Chinese or English language of ``Accept-Language`` (best first)."""
    for tag, quality in sorted(accept, key=lambda pair: -pair[1]):
        if quality <= 0 or tag == "*":
            continue
        language = _language_of(tag)
        if language == "zh":
            return CHINESE
        if language == "en":
            return ENGLISH
    return ENGLISH


def _language_of(tag: str) -> str | None:
    tag = tag.replace("_", "-")
    for candidate in (tag, tag.split("-", 1)[0]):
        try:
            return str(Locale.parse(candidate, sep="-").language)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None


def current_locale() -> str:
    """``zh_Hans`` or ``en`` for the request being served."""
    locale = get_locale()
    return ENGLISH if locale is None else _supported(str(locale))


def html_lang() -> str:
    """The ``<html lang>`` of the request's language."""
    return "zh-CN" if current_locale() == CHINESE else "en"


def other_languages() -> Iterator[tuple[str, str]]:
    """The languages the person can switch to: ``(lang value, its own name)``."""
    if current_locale() == CHINESE:
        yield "en", "English"
    else:
        yield "zh", "简体中文"
