"""The stream-multiplexed session and its multiplexers (HTTP/2 now, SPDY/3.1 for the Go profile).

Sans-IO cores: :mod:`.framing`, :mod:`.cbor_codec`, :mod:`.refs`, :mod:`.mux`,
:mod:`.h2mux`. Trio drivers: :mod:`.link`, :mod:`.netstream`, :mod:`.session`.
"""
