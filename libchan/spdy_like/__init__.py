"""The sans-IO stream multiplexers: bytes in, events out, no sockets and no trio.

* :mod:`.mux` -- the :class:`~.mux.Multiplexer` interface the engine is written
  against, and its events;
* :mod:`.h2mux` -- HTTP/2, on the ``h2`` library; :mod:`.h2fast` is its optional
  fast lane for plain DATA frames;
* :mod:`.spdy3` (framing, with :mod:`.spdy3_dictionary`) and :mod:`.spdymux` --
  SPDY/3.1, what Go libchan speaks.
"""
