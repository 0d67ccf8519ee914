"""Policy rules the tests share (spec/LIBSWARM.md 9)."""

from __future__ import annotations

#: Each identity's containers carry its name as a label and a name prefix, and it sees
#: only those (the rules of the issue's "see and control only their own containers").
OWNER_RULES = """
[[rule]]
name = "owner"
action = "rewrite"
match = { verb = "Spawn", on = "engine" }
rewrite = { add_labels = { owner = "{name}" }, name_prefix = "{name}-" }

[[rule]]
name = "own-only"
action = "hide"
unless = { labels = { owner = "{name}" } }
"""
