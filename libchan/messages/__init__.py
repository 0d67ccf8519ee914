"""The sans-IO message layer: what travels inside a stream.

* :mod:`.framing` -- the HTTP/2 profile's item framing (length-prefixed items);
* :mod:`.bodies` -- a stream body's decoder, per profile and kind;
* :mod:`.cbor_codec` / :mod:`.msgpack_codec` -- messages as CBOR (default) or as
  Go libchan's msgpack, with channels and byte streams as references;
* :mod:`.refs` -- the reference table: which stream a reference names.
"""
