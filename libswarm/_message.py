"""The message model ``{verb, args, ret, att}`` and its encoding on libchan.

On a libchan channel a message is the map::

    {"Verb": <int 0-12>, "Args": [<str|bytes>, ...], "Ret": <Sender|null>, "Att": <byte stream|null>}

(the field names and numeric verb of the August 2014 Go libswarm, so the same
bytes work in both libchan profiles: no tags beyond libchan's own references).
See spec/LIBSWARM.md section 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import trio

from ._errors import MessageError
from ._identity import Identity
from ._verbs import Verb

__all__ = ["Message", "Arg"]

Arg = str | bytes

_STREAM_TYPES = (trio.abc.ReceiveStream, trio.abc.SendStream)


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One libswarm message.

    * ``verb`` -- a :class:`Verb`;
    * ``args`` -- a tuple of ``str`` or ``bytes`` (bytes carry binary stdio chunks);
    * ``ret`` -- a libchan Sender for replies, or None for a one-way message;
    * ``att`` -- an attached byte stream (a ``trio`` stream), or None;
    * ``identity`` -- who is asking (:class:`~libswarm.Identity`), set by the stage where the
      request entered the chain (spec/LIBSWARM.md 9.6), or None.

    ``Message(Verb.Ls)``, ``Message(Verb.Log, ("stdout", b"hi\\n"))``. Construction
    validates the fields (:class:`MessageError`). :meth:`to_wire` and
    :meth:`from_wire` convert to and from the map sent on libchan channels.
    """

    verb: Verb
    args: tuple[Arg, ...] = ()
    ret: Any = None
    att: Any = None
    identity: Identity | None = None

    def __post_init__(self) -> None:
        if type(self.verb) is not Verb:  # (a Verb already is one: every message made here)
            try:
                verb = Verb.parse(self.verb)
            except ValueError as exc:
                raise MessageError(str(exc)) from None
            object.__setattr__(self, "verb", verb)
        args = self.args
        plain = type(args) is tuple  # the usual case, a tuple of str and bytes, is kept as it is
        if plain:
            for a in args:
                if type(a) is not str and type(a) is not bytes:
                    plain = False
                    break
        if not plain:
            if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
                raise MessageError(f"args must be a list of str or bytes, not {type(args).__name__}")
            args = tuple(bytes(a) if isinstance(a, (bytearray, memoryview)) else a for a in args)
            for a in args:
                if not isinstance(a, (str, bytes)):
                    raise MessageError(f"every arg must be str or bytes, not {type(a).__name__}")
            object.__setattr__(self, "args", args)
        if self.ret is not None and not isinstance(self.ret, trio.abc.SendChannel):
            raise MessageError(f"ret must be a Sender or None, not {type(self.ret).__name__}")
        if self.att is not None and not isinstance(self.att, _STREAM_TYPES):
            raise MessageError(f"att must be a byte stream or None, not {type(self.att).__name__}")
        if self.identity is not None and not isinstance(self.identity, Identity):
            try:
                object.__setattr__(self, "identity", Identity.from_wire(self.identity))
            except ValueError as exc:
                raise MessageError(f"bad identity: {exc}") from None

    @property
    def text(self) -> str:
        """``args[0]`` as text ("" if there is none); the text of an Error."""
        if not self.args:
            return ""
        a = self.args[0]
        return a.decode("utf-8", "replace") if isinstance(a, bytes) else a

    def replace(self, **changes: Any) -> "Message":
        """A copy with some fields changed (``msg.replace(ret=None)``)."""
        return dataclasses.replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        """The map sent on a libchan channel (``Identity`` only when there is one)."""
        wire = {"Verb": int(self.verb), "Args": list(self.args), "Ret": self.ret, "Att": self.att}
        if self.identity is not None:
            wire["Identity"] = self.identity.to_wire()
        return wire

    @classmethod
    def from_wire(cls, value: Any) -> "Message":
        """Decode a received map (a :class:`Message` passes through unchanged).

        Accepts ``Verb`` as a number or a verb name in any case, a missing or null
        ``Args``/``Ret``/``Att``/``Identity``, and ignores other keys. Raises :class:`MessageError`.
        """
        if isinstance(value, Message):
            return value
        if not isinstance(value, dict):
            raise MessageError(f"a libswarm message is a map, not {type(value).__name__}")
        if "Verb" not in value:
            raise MessageError("message has no 'Verb'")
        args: Any = value.get("Args")  # wire data, checked by __post_init__ (MessageError)
        return cls(value["Verb"], tuple(args) if isinstance(args, (list, tuple)) else (args if args is not None else ()),
                   value.get("Ret"), value.get("Att"), value.get("Identity"))

    def __repr__(self) -> str:
        extra = ""
        if self.ret is not None:
            extra += ", ret=..."
        if self.att is not None:
            extra += ", att=..."
        if self.identity is not None:
            extra += f", identity={self.identity.name}"
        return f"Message({self.verb.name}, {list(self.args)!r}{extra})"


def reply_sender_of(value: Any) -> Any:
    """Best effort: the ``Ret`` of a value that failed to decode (to answer it)."""
    if isinstance(value, dict):
        ret = value.get("Ret")
        if isinstance(ret, trio.abc.SendChannel):
            return ret
    return None
