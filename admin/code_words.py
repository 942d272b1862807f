"""Words for codes whose English is the code itself (a job's name, a ledger bucket, a query
argument): English pages show the code, as the CLI, the API and the URLs spell it; a page in
another language shows what the code means.

The catalogue's message for such a code says what it means (``pending points``, not
``pending``), so it never has to share a translation with the same English word used in
another sense elsewhere in the console.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import LazyString

from admin.i18n import ENGLISH, current_locale


def code_word(words: Mapping[str, LazyString], code: str, english: str | None = None) -> str:
    """``code``'s word in the request's language: ``english`` (default: the code itself) in
    English, its translation in ``words`` otherwise; an unknown code as it is."""
    found = words.get(code)
    if found is None or current_locale() == ENGLISH:
        return code if english is None else english
    return str(found)


def code_words(words: Mapping[str, LazyString]) -> dict[str, LazyString]:
    """``words`` as a table a template reads: each code to its word, in the language of the
    request the table is read in."""
    return {code: LazyString(code_word, words, code) for code in words}
