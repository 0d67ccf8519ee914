"""The trio engine: sessions, connections and streams driven by trio tasks.

* :mod:`.core` -- :class:`~.core.SessionCore`, what a :class:`libchan.Session` does;
* :mod:`.link` -- one connection: a multiplexer fed from a trio stream;
* :mod:`.netstream` -- one stream's state and the Sender/Receiver/byte-stream facades;
* :mod:`.sockio` -- direct socket (and TLS) reads and writes;
* :mod:`.outbox` -- the queue of bytes a stream has to send;
* :mod:`.profiles` -- what differs between the HTTP/2 and the Go (SPDY) profile;
* :mod:`.kinds` -- what an object in a message is sent as.
"""
