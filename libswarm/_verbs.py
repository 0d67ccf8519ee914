"""The 13 libswarm verbs, numbered exactly as in the original (``type Verb uint32``, iota)."""

from __future__ import annotations

import enum

__all__ = ["Verb"]


class Verb(enum.IntEnum):
    """A libswarm verb. The numbers are the wire values (0-12) and never change.

    ``Verb.Watch.name == "Watch"`` (the original's ``String()`` returned ``""`` for
    Watch, an off-by-one; fixed here). :meth:`parse` accepts a number or a name.
    """

    Ack = 0
    Attach = 1
    Connect = 2
    Error = 3
    File = 4
    Get = 5
    Log = 6
    Ls = 7
    Set = 8
    Spawn = 9
    Start = 10
    Stop = 11
    Watch = 12

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, value: object) -> "Verb":
        """Return the verb for a wire value: an int 0-12 or a name (any case).

        Raises :class:`ValueError` for anything else (``bool`` is not a number here).
        """
        if type(value) is int and 0 <= value < len(_BY_NUMBER):  # (the wire's form)
            return _BY_NUMBER[value]
        if isinstance(value, bool):
            raise ValueError(f"unrecognised verb: {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"unrecognised verb: {value!r}") from None
        if isinstance(value, str):
            verb = _BY_NAME.get(value.lower())
            if verb is not None:
                return verb
        raise ValueError(f"unrecognised verb: {value!r}")


_BY_NAME = {v.name.lower(): v for v in Verb}
_BY_NUMBER: tuple[Verb, ...] = tuple(Verb(i) for i in range(len(Verb)))
