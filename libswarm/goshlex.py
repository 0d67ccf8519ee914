"""Splitting service specs the way swarmd did: flynn/go-shlex rules (spec/LIBSWARM.md §8.4).

``split("aggregate 'simulator web' \\"exec /bin/cat\\"")`` ->
``["aggregate", "simulator web", "exec /bin/cat"]``. Errors raise :class:`ShlexError`
(a ``ValueError``) with go-shlex's text.

The rules (a small state machine, like go-shlex's ``Lexer.NextWord``):

* whitespace is space, tab, CR and LF; words are separated by runs of it;
* ``'...'`` is literal (no escapes inside);
* ``"..."``: a backslash escapes **any** next character (the backslash is dropped:
  ``"a\\nb"`` -> ``anb``);
* outside quotes, ``\\x`` gives ``x``;
* quoted and unquoted parts glue into one word (``a"b c"d`` -> ``ab cd``); ``''`` and
  ``""`` give an empty word;
* ``#`` at the start of a word begins a comment that runs to the end of the line; inside
  a word it is literal (``a#b``);
* an unquoted word may contain only ASCII letters, digits and
  ``._-,/@$*()+=><:;&^%~|!?[]{}``; any other character outside quotes (a backquote, a
  non-ASCII letter, a control character) is an error: ``Unknown rune: '`'``. Inside
  quotes anything goes;
* errors: ``EOF found when expecting closing quote.`` and ``EOF found after escape character``.

Differences from Python's ``shlex.split`` (POSIX mode), all tested in
``tests/test_swarmd_shlex.py``:

=============================  ==================  ===========================
input                          this module          ``shlex.split``
=============================  ==================  ===========================
``"a\\nb"`` (in double quotes)  ``anb``             ``a\\nb`` (backslash kept unless
                                                    before ``"`` or ``\\``)
``a #c`` / ``#c``              ``[a]`` / ``[]``    ``[a, #c]`` (no comments by default)
``a#b``                        ``a#b``             ``a#b``
```x``` / ``é``                error               accepted
``"a`` / ``a\\``               errors (texts above) ``No closing quotation`` /
                                                    ``No escaped character``
=============================  ==================  ===========================
"""

from __future__ import annotations

__all__ = ["split", "ShlexError", "WORD_CHARS"]

SPACE = " \t\r\n"
WORD_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" "._-,/@$*()+=><:;&^%~|!?[]{}"
)


class ShlexError(ValueError):
    """A spec go-shlex could not lex (the text is go-shlex's)."""


def split(text: str) -> list[str]:
    """Split ``text`` into words with go-shlex's rules (see the module docstring)."""
    words: list[str] = []
    word: list[str] = []
    state = "start"  # start | word | escape | dquote | dquote_escape | squote | comment
    for ch in text:
        if state == "start":
            if ch in SPACE:
                continue
            if ch == "#":
                state = "comment"
            elif ch == "\\":
                state = "escape"
            elif ch == '"':
                state = "dquote"
            elif ch == "'":
                state = "squote"
            elif ch in WORD_CHARS:
                word.append(ch)
                state = "word"
            else:
                raise ShlexError(f"Unknown rune: {ch!r}")
        elif state == "word":
            if ch in SPACE:
                words.append("".join(word))
                word = []
                state = "start"
            elif ch == "\\":
                state = "escape"
            elif ch == '"':
                state = "dquote"
            elif ch == "'":
                state = "squote"
            elif ch in WORD_CHARS or ch == "#":
                word.append(ch)
            else:
                raise ShlexError(f"Unknown rune: {ch!r}")
        elif state == "escape":
            word.append(ch)
            state = "word"
        elif state == "dquote":
            if ch == '"':
                state = "word"
            elif ch == "\\":
                state = "dquote_escape"
            else:
                word.append(ch)
        elif state == "dquote_escape":
            word.append(ch)
            state = "dquote"
        elif state == "squote":
            if ch == "'":
                state = "word"
            else:
                word.append(ch)
        else:  # comment
            if ch == "\n":
                state = "start"
    if state in ("escape", "dquote_escape"):
        raise ShlexError("EOF found after escape character")
    if state in ("dquote", "squote"):
        raise ShlexError("EOF found when expecting closing quote.")
    if state == "word":
        words.append("".join(word))
    return words
