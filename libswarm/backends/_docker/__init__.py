"""The Docker Engine API on libswarm, in pieces (private: import the backends instead).

The ``dockerserver`` backend (:mod:`libswarm.backends.dockerserver`) is assembled from:

* :mod:`.address` -- daemon URLs and the docker CLI's TLS options (shared with ``dockerclient``);
* :mod:`.versions` -- the engine and API versions this server claims, and their comparison;
* :mod:`.sockio` -- reads and writes on a plain socket without trio's extra scheduler pass
  (shared with ``dockerclient``);
* :mod:`.http` -- the h11 server side: one connection's request loop, responses (whole,
  streamed, or the hijacked raw stream of attach) and :class:`~.http.HTTPError`;
* :mod:`.routes` -- request parsing (target, query, API version prefix), the route table and
  the mapping of failures to Docker's error responses;
* :mod:`.engine` -- the next stage of the chain as the Docker API needs it (container lookup,
  inspect data, listings) and the HTTP status of an engine's error text;
* :mod:`.formats` -- Docker JSON built from libswarm data (``ps`` entries, ``info``,
  ``version``, inspect defaults, times and durations), pure functions;
* :mod:`.endpoints` -- the endpoints that answer with one body (create, start, stop, ps...);
* :mod:`.streams` -- the endpoints that stream: ``wait``, ``logs`` and ``attach`` (the
  hijacked connection, stdin in, stdout/stderr multiplexed out).

The mapping itself is written down in spec/DOCKER.md.
"""
