"""go-shlex rules for swarmd specs (spec/LIBSWARM.md §8.4), and where they differ from Python's shlex."""

from __future__ import annotations

import shlex

import pytest

from libswarm.goshlex import ShlexError, split
from libswarm.swarmd import SwarmdError, parse_spec


@pytest.mark.parametrize("text, words", [
    ("simulator", ["simulator"]),
    ("  exec   /bin/echo\thi\r\nthere ", ["exec", "/bin/echo", "hi", "there"]),
    ("listen tls://0.0.0.0:4000 --cert=/a/b.pem", ["listen", "tls://0.0.0.0:4000", "--cert=/a/b.pem"]),
    ("''", [""]),
    ('""', [""]),
    ("a '' b", ["a", "", "b"]),
    ("'it''s'", ["its"]),
    ("'a \\n \"b\"'", ['a \\n "b"']),            # single quotes: literal
    ('"a \\" b"', ['a " b']),
    ('"a\\nb"', ["anb"]),                        # \ escapes ANY char in double quotes
    ('"a\\\\b"', ["a\\b"]),
    ("a\\ b", ["a b"]),                          # unquoted escape
    ("a\\'b", ["a'b"]),
    ('a"b c"d', ["ab cd"]),                      # quoted and unquoted parts glue
    ("a#b", ["a#b"]),                            # '#' inside a word is literal
    ("a #comment\nb", ["a", "b"]),               # '#' starting a word: comment to end of line
    ("#only a comment", []),
    ("", []),
    ("x=1,y=[2]{3}(4)+5%6~7|8!9?&^;<>@$*", ["x=1,y=[2]{3}(4)+5%6~7|8!9?&^;<>@$*"]),
    ('"é `x` \\u"', ["é `x` u"]),               # anything goes inside quotes
    ('{"Cmd": ["echo", "hi"]}', None),          # see below: braces are fine, the quotes group
])
def test_split(text, words):
    if words is None:
        assert split(text) == ["{Cmd:", "[echo,", "hi]}"]
    else:
        assert split(text) == words


@pytest.mark.parametrize("text, error", [
    ("'abc", "EOF found when expecting closing quote."),
    ('"abc', "EOF found when expecting closing quote."),
    ('"abc\\', "EOF found after escape character"),
    ("abc\\", "EOF found after escape character"),
    ("a`b`", "Unknown rune: '`'"),
    ("café", "Unknown rune: 'é'"),
    ("\x01", "Unknown rune: '\\x01'"),
])
def test_errors(text, error):
    with pytest.raises(ShlexError) as info:
        split(text)
    assert str(info.value) == error


def test_nested_aggregate_quoting():
    """Three levels: shell -> swarmd spec -> aggregate's child specs."""
    name, args = parse_spec('aggregate "simulator web" "exec /bin/cat" \'connect tls://10.0.0.2:4000 --ca "/my ca.pem"\'')
    assert name == "aggregate"
    assert args == ["simulator web", "exec /bin/cat", 'connect tls://10.0.0.2:4000 --ca "/my ca.pem"']
    assert shlex.split(args[2]) == ["connect", "tls://10.0.0.2:4000", "--ca", "/my ca.pem"]


def test_parse_spec_errors():
    with pytest.raises(SwarmdError, match="parse error: empty command"):
        parse_spec("   ")
    with pytest.raises(SwarmdError, match="^parse: EOF found when expecting closing quote.$"):
        parse_spec("exec 'x")


# Documented differences from Python's POSIX shlex.split (libswarm/goshlex.py docstring)
@pytest.mark.parametrize("text, go, py", [
    ('"a\\nb"', ["anb"], ["a\\nb"]),                 # backslash in double quotes
    ('"a\\$b"', ["a$b"], ["a\\$b"]),
    ("a #c", ["a"], ["a", "#c"]),                    # comments
    ("#c", [], ["#c"]),
    ("`x`", ShlexError, ["`x`"]),                    # characters outside the word set
    ("é", ShlexError, ["é"]),
])
def test_differences_from_python_shlex(text, go, py):
    assert shlex.split(text) == py
    if go is ShlexError:
        with pytest.raises(ShlexError):
            split(text)
    else:
        assert split(text) == go


@pytest.mark.parametrize("text", [
    "exec /bin/echo 'hello world'", 'aggregate "simulator" "exec /bin/cat"', "a'b'c", 'x"y"z', "a\\ b c",
    "simulator web db", "listen --cert /a.pem tls://0.0.0.0:4000",
])
def test_same_as_python_shlex_for_ordinary_specs(text):
    assert split(text) == shlex.split(text)


def test_error_texts_differ_from_python():
    with pytest.raises(ValueError, match="No closing quotation"):
        shlex.split('"a')
    with pytest.raises(ShlexError, match="EOF found when expecting closing quote"):
        split('"a')
