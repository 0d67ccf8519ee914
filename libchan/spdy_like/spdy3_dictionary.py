"""The SPDY/3 zlib header-compression dictionary.

Reconstructed from the SPDY Protocol draft 3 (section 2.6.10.1, "Compression"):
the dictionary is a run of length-prefixed words (a 32-bit big-endian length,
then the word) followed by a run of plain concatenated strings. It is 1423
bytes long and its Adler-32 (the ``DICTID`` in the zlib header of the first
header block of each direction, ``78 f9 e3 c6 a7 c2``) is ``0xe3c6a7c2``.

Both values are checked at import time, so a typo here cannot go unnoticed.
"""

from __future__ import annotations

import zlib

__all__ = ["SPDY3_DICTIONARY", "SPDY3_DICTIONARY_ADLER32"]

SPDY3_DICTIONARY_ADLER32 = 0xE3C6A7C2

# Each of these is written as a 32-bit big-endian length followed by the word.
_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept",
    "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
    "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length",
    "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
    "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
    "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get",
    "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
)

# ... followed by these bytes, with no length prefixes or separators.
_TAIL = (
    b"100101201202205206300302303304305306307402405406407408409410411412413414"
    b"415416417502504505"
    b"203 Non-Authoritative Information"
    b"204 No Content"
    b"301 Moved Permanently"
    b"400 Bad Request"
    b"401 Unauthorized"
    b"403 Forbidden"
    b"404 Not Found"
    b"500 Internal Server Error"
    b"501 Not Implemented"
    b"503 Service Unavailable"
    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    b"00:00:00 "
    b"Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    b"application/xhtml+xml,text/plain,text/javascript,"
    b"publicprivatemax-age=gzip,deflate,sdch"
    b"charset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)

SPDY3_DICTIONARY: bytes = (
    b"".join(len(w).to_bytes(4, "big") + w.encode("ascii") for w in _WORDS) + _TAIL
)

if len(SPDY3_DICTIONARY) != 1423 or zlib.adler32(SPDY3_DICTIONARY) != SPDY3_DICTIONARY_ADLER32:
    raise AssertionError(  # pragma: no cover - guards against editing mistakes
        "SPDY/3 dictionary is corrupt: "
        f"{len(SPDY3_DICTIONARY)} bytes, adler32 {zlib.adler32(SPDY3_DICTIONARY):#010x}"
    )

del _WORDS, _TAIL
