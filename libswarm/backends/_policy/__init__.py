"""The ``policy`` backend in pieces (private: use :mod:`libswarm.backends.policy`).

* :mod:`.facts` -- a container's settings that matter, from a create body or inspect JSON;
* :mod:`.conditions` -- the match keys: parsing, testing, generality (for warnings);
* :mod:`.rules` -- the rules file (TOML), its errors and warnings, and the decision;
* :mod:`.audit` -- one JSON line per decision.

The language is written down in spec/LIBSWARM.md section 9.
"""
