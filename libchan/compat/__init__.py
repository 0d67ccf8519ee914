"""Every use of another library's internals, one module each, with its probe.

* :mod:`.h2` -- h2's stream, window and settings internals (the DATA fast path);
* :mod:`.hyperframe` -- a cheaper frame ``repr`` that h2 builds on every frame;
* :mod:`.trio_ssl` -- driving a ``trio.SSLStream``'s own ``SSLObject`` directly;
* :mod:`.trio_traps` -- the object a waiting task yields to trio's run loop, made once
  per lot, and waking such tasks without a new outcome each (decided at import:
  ``LIBCHAN_FAST_PATHS=0`` turns it off, ``Config`` does not);
* :mod:`.trio_cancel` -- "is the calling task cancelled?" as a plain function, for the
  cancellation point of every send and receive (decided at import, as trio_traps; without
  it every send and receive is a full checkpoint);
* :mod:`.trio_run` -- the probe of trio's Task and Runner fields those two share.

A probe that fails makes its user fall back to the library's public API. One
switch turns all of them off, with every other fast path: ``Config(fast_paths=False)``
or the environment variable ``LIBCHAN_FAST_PATHS=0`` (see :mod:`libchan.config`).
"""
