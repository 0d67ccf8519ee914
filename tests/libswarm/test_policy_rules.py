"""The policy rule language: parsing, errors with file and line, load-time warnings, the
decision and rewrites (pure, no I/O), and a fuzz of the parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libswarm import Identity, Verb
from libswarm.backends._policy.conditions import Query
from libswarm.backends._policy.facts import facts_of_create, facts_of_inspect
from libswarm.backends._policy.rules import RulesError, load_rules, parse_rules

POLICIES = Path(__file__).resolve().parents[2] / "policies"

ALICE = Identity(transport="tls", subject="CN=alice,O=Example", cn="alice", san=("DNS:alice.example",))
BOB = Identity(transport="tls", subject="CN=bob", cn="bob")
UNIX = Identity(transport="unix", uid=1000, gid=100, pid=42)
NOBODY = Identity()


def spawn(body: dict, who: Identity = ALICE) -> Query:
    return Query(Verb.Spawn, "engine", (json.dumps(body),), who, facts=facts_of_create(body), body=body,
                 target=body.get("name", ""))


def err(text: str) -> RulesError:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules.toml")
    return info.value


# -- errors: file, line, reason ------------------------------------------------------


@pytest.mark.parametrize("text, line, needle", [
    ('default = "maybe"\n', 1, 'default must be "allow" or "deny"'),
    ('x = [\n', 1, "invalid TOML"),
    ('default = "deny"\n[[rule]]\nname = "a"\naction = "deny"\nmatch = { privilegd = true }\n', 5,
     "unknown match key 'privilegd' (did you mean 'privileged'?)"),
    ('[[rule]]\nname = "a"\naction = "deny"\n\n[rule.match]\ncap_add = 3\n', 6,
     "match key 'cap_add': must be true (any), false (none) or a list"),
    ('[[rule]]\nname = "a"\naction = "permit"\n', 3, "action must be one of allow, deny, hide, rewrite"),
    ('[[rule]]\naction = "deny"\n', 1, "every rule needs a name"),
    ('[[rule]]\nname = "a"\naction = "deny"\n[[rule]]\nname = "a"\naction = "allow"\n', 5,
     "already used by the rule at line 1"),
    ('[[rule]]\nname = "a"\naction = "rewrite"\n', 1, "needs a rewrite table"),
    ('[[rule]]\nname = "a"\naction = "rewrite"\nrewrite = { usr = "1" }\n', 4, "unknown rewrite key 'usr'"),
    ('[[rule]]\nname = "a"\naction = "deny"\nmatch = { verb = "Frobnicate" }\n', 4, "unrecognised verb"),
    ('[[rule]]\nname = "a"\naction = "deny"\nmatch = { host_path = ["etc"] }\n', 4, "not an absolute path"),
    ('[[rule]]\nname = "a"\naction = "deny"\nmatch = { labels = { owner = "{who}" } }\n', 4,
     "unknown placeholder {who}"),
    ('rules = []\n', 1, "unknown key 'rules' (did you mean 'rule'?)"),
    ('[[rule]]\nname = "a"\naction = "allow"\nreason = "x"\n', 4, "only for deny and hide"),
])
def test_errors_name_file_line_and_reason(text, line, needle):
    e = err(text)
    assert (e.path, e.line) == ("rules.toml", line), str(e)
    assert needle in str(e) and str(e).startswith(f"rules.toml:{line}: ")


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(RulesError, match="cannot read the rules"):
        load_rules(str(tmp_path / "missing.toml"))
    p = tmp_path / "bad.toml"
    p.write_bytes(b'default = "deny"\n# \xff\n')
    with pytest.raises(RulesError, match=r"bad.toml:2: invalid TOML: not UTF-8"):
        load_rules(str(p))


# -- warnings --------------------------------------------------------------------------


def test_warnings_for_unsatisfiable_and_shadowed_rules():
    rs = parse_rules("""
default = "allow"
[[rule]]
name = "no-privileged"
action = "deny"
match = { verb = "Spawn", privileged = true }

[[rule]]
name = "no-privileged-busybox"
action = "deny"
match = { verb = "Spawn", on = "engine", privileged = true, image = "busybox*" }

[[rule]]
name = "ls-privileged"
action = "deny"
match = { verb = "Ls", on = "engine", privileged = true }

[[rule]]
name = "empty"
action = "deny"
match = { verb = [] }

[[rule]]
name = "anon-alice"
action = "deny"
match = { anonymous = true, cn = "alice" }

[[rule]]
name = "self-exempt"
action = "deny"
match = { verb = "Spawn", user_root = true }
unless = { user_root = true }

[[rule]]
name = "labels-on-get"
action = "rewrite"
match = { verb = "Get" }
rewrite = { readonly_rootfs = true }

[[rule]]
name = "hide-ls"
action = "hide"
match = { verb = "Ls", on = "engine" }

[[rule]]
name = "catch-all"
action = "allow"

[[rule]]
name = "after-all"
action = "deny"
match = { cap_add = ["SYS_ADMIN"] }
""", "r.toml")
    w = "\n".join(rs.warnings)
    assert 'r.toml:8: rule "no-privileged-busybox" is shadowed by rule "no-privileged" (line 3)' in w
    assert 'rule "ls-privileged" can never match: it looks at a container\'s settings (privileged)' in w
    assert 'rule "empty" can never match: match key \'verb\' is an empty list' in w
    assert 'rule "anon-alice" can never match: anonymous = true contradicts' in w
    assert 'rule "self-exempt" can never match: its unless table holds whenever its match does' in w
    assert 'rule "labels-on-get" never rewrites anything' in w
    assert 'rule "after-all" is shadowed by rule "catch-all"' in w
    assert 'rule "hide-ls" can never match: a hide rule applies only to container lookups' in w
    assert len(rs.warnings) == 8, rs.warnings


def test_no_warnings_for_the_shipped_rules_files():
    for name in ("socket-proxy.toml", "container-safe.toml"):
        rs = load_rules(str(POLICIES / name))
        assert rs.warnings == [], (name, rs.warnings)


# -- decisions ------------------------------------------------------------------------

RULES = """
default = "allow"

[[rule]]
name = "no-privileged"
action = "deny"
reason = "privileged containers are not allowed"
match = { verb = "Spawn", on = "engine", privileged = true }

[[rule]]
name = "no-docker-socket"
action = "deny"
reason = "the Docker socket is not for containers"
match = { verb = "Spawn", on = "engine", host_path = ["/var/run/docker.sock"] }

[[rule]]
name = "no-host-root"
action = "deny"
reason = "bind mounts outside /srv are not allowed"
match = { verb = "Spawn", on = "engine", host_path_outside = ["/srv"] }

[[rule]]
name = "no-sys-admin"
action = "deny"
reason = "SYS_ADMIN is not allowed"
match = { verb = "Spawn", cap_add = ["SYS_ADMIN", "SYS_MODULE"] }

[[rule]]
name = "no-host-ns"
action = "deny"
reason = "host namespaces are not allowed"
match = { verb = "Spawn", host_namespace = true }

[[rule]]
name = "no-devices"
action = "deny"
reason = "devices are not allowed"
match = { verb = "Spawn", devices = true }

[[rule]]
name = "no-root-exec"
action = "deny"
reason = "exec as root is not allowed"
match = { verb = "Spawn", on = "container", user_root = true }

[[rule]]
name = "tag"
action = "rewrite"
match = { verb = "Spawn", on = "engine" }
rewrite = { add_labels = { owner = "{name}" }, name_prefix = "{name}-", readonly_rootfs = true, drop_caps = ["NET_RAW"], user = "1000:1000", security_opt = ["no-new-privileges"] }

[[rule]]
name = "root-after-rewrite"
action = "deny"
reason = "root"
match = { verb = "Spawn", on = "engine", user_root = true }

[[rule]]
name = "mine"
action = "hide"
unless = { labels = { owner = "{name}" } }
"""


@pytest.fixture(scope="module")
def rules():
    rs = parse_rules(RULES, "r.toml")
    assert rs.warnings == []
    return rs


@pytest.mark.parametrize("body, rule", [
    ({"Image": "busybox", "HostConfig": {"Privileged": True}}, "no-privileged"),
    ({"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}}, "no-host-root"),
    ({"Image": "busybox", "HostConfig": {"Binds": ["/srv/../etc:/x"]}}, "no-host-root"),
    ({"Image": "busybox", "HostConfig": {"Binds": ["//srv/../etc:/x"]}}, "no-host-root"),
    ({"Image": "busybox", "HostConfig": {"Binds": ["//var/run/docker.sock:/s"]}}, "no-docker-socket"),
    ({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "///var/run/./docker.sock", "Target": "/s"}]}},
     "no-docker-socket"),
    ({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]}}, "no-host-root"),
    ({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "volume", "Target": "/h", "VolumeOptions": {
        "DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]}},
     "no-host-root"),
    ({"Image": "busybox", "HostConfig": {"CapAdd": ["cap_sys_admin"]}}, "no-sys-admin"),
    ({"Image": "busybox", "HostConfig": {"CapAdd": ["ALL"]}}, "no-sys-admin"),
    ({"Image": "busybox", "HostConfig": {"PidMode": "host"}}, "no-host-ns"),
    ({"Image": "busybox", "HostConfig": {"NetworkMode": "host"}}, "no-host-ns"),
    ({"Image": "busybox", "HostConfig": {"UsernsMode": "host"}}, "no-host-ns"),
    ({"Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}},
     "no-devices"),
])
def test_refusals_name_their_rule(rules, body, rule):
    d = rules.decide(spawn(body))
    assert (d.action, d.rule) == ("deny", rule)
    assert d.text.startswith("policy: ") and d.text.endswith(f"(rule {rule})")


def test_plain_create_is_rewritten(rules):
    q = spawn({"Image": "busybox", "name": "web", "Labels": {"owner": "bob"},
               "HostConfig": {"Binds": ["/srv/data:/data"], "CapAdd": ["NET_RAW", "CHOWN"]}})
    d = rules.decide(q)
    assert (d.action, d.rule, d.rewrites) == ("allow", None, ["tag"])
    body = q.body
    assert body["name"] == "alice-web" and body["Labels"] == {"owner": "alice"}  # a forged owner is overwritten
    assert body["User"] == "1000:1000"
    h = body["HostConfig"]
    assert h["ReadonlyRootfs"] is True and h["CapAdd"] == ["CHOWN"] and h["CapDrop"] == ["NET_RAW"]
    assert h["SecurityOpt"] == ["no-new-privileges"]
    assert q.target == "alice-web"


def test_name_prefix_keeps_a_good_name_and_invents_a_missing_one(rules):
    q = spawn({"Image": "x", "name": "alice-db"})
    rules.decide(q)
    assert q.body["name"] == "alice-db"
    q = spawn({"Image": "x"}, UNIX)
    rules.decide(q)
    assert q.body["name"].startswith("uid-1000-") and q.body["Labels"] == {"owner": "uid-1000"}


def test_hide_rules_leave_other_requests_alone(rules):
    assert rules.decide(Query(Verb.Ls, "engine", (), BOB)).action == "allow"
    assert rules.decide(Query(Verb.Get, "engine", ("images",), BOB)).action == "allow"


def test_visibility_and_exec_as_root(rules):
    mine = facts_of_inspect({"Name": "/alice-web", "Config": {"Labels": {"owner": "alice"}, "User": "1000"}})
    look = Query(Verb.Attach, "engine", ("alice-web",), ALICE, facts=mine, target="alice-web")
    assert rules.decide(look).action == "allow"
    look.identity = BOB
    assert rules.decide(look).action == "hide"
    # exec: the exec body's User, else the container's
    as_root = Query(Verb.Spawn, "container", ("{}",), ALICE, facts=mine.__class__(**{**mine.__dict__, "user": "root"}))
    assert rules.decide(as_root).rule == "no-root-exec"
    as_user = Query(Verb.Spawn, "container", ("{}",), ALICE, facts=mine)
    assert rules.decide(as_user).action == "allow"


def test_identity_conditions_and_escaped_templates():
    rs = parse_rules("""
default = "deny"
default_reason = "who are you?"
[[rule]]
name = "ops"
action = "allow"
match = { san = ["DNS:*.example"], transport = "tls" }
[[rule]]
name = "uid"
action = "allow"
match = { uid = [0, 1000], gid = 100 }
[[rule]]
name = "own-name"
action = "allow"
match = { verb = "Attach", name = "{cn}-*" }
""", "r.toml")
    q = Query(Verb.Ls, "engine", (), ALICE)
    assert rs.decide(q).rule == "ops"
    assert rs.decide(Query(Verb.Ls, "engine", (), UNIX)).rule == "uid"
    d = rs.decide(Query(Verb.Ls, "engine", (), NOBODY))
    assert (d.action, d.rule, d.text) == ("deny", None, "policy: who are you? (default)")
    star = Identity(transport="tls", cn="*")
    facts = facts_of_inspect({"Name": "/bob-web"})
    assert rs.decide(Query(Verb.Attach, "engine", ("bob-web",), star, facts=facts)).action == "deny"
    assert rs.decide(Query(Verb.Attach, "engine", ("bob-web",), BOB, facts=facts)).rule == "own-name"


def test_image_globs_and_args():
    rs = parse_rules("""
[[rule]]
name = "busybox-only"
action = "allow"
match = { verb = "Spawn", image = ["busybox:*", "local/busybox:*"] }
[[rule]]
name = "images"
action = "allow"
match = { verb = "Get", args = ["image*"] }
""", "r.toml")
    assert rs.decide(spawn({"Image": "busybox"})).action == "allow"
    assert rs.decide(spawn({"Image": "local/busybox:1.36"})).action == "allow"
    assert rs.decide(spawn({"Image": "alpine"})).action == "deny"
    assert rs.decide(Query(Verb.Get, "engine", ("images",), ALICE)).action == "allow"
    assert rs.decide(Query(Verb.Get, "engine", (), ALICE)).action == "deny"


# -- fuzz ---------------------------------------------------------------------------

_KEYS = ["verb", "on", "privileged", "cap_add", "host_path", "host_path_outside", "labels", "image", "uid",
         "cn", "san", "user_root", "pid_mode", "args", "nonsense", "devices"]
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
        ["Spawn", "ls", "engine", "host", "/", "/srv", "*", "{name}", "{bad}", "SYS_ADMIN", "", "etc"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["owner", "a"]), children,
                                                                         max_size=2),
    max_leaves=6,
)


def _toml(v) -> str:
    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + " }"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["allow", "deny", "hide", "rewrite", "x"]),
                          st.dictionaries(st.sampled_from(_KEYS), _values, max_size=4),
                          st.booleans()), max_size=5),
       st.sampled_from(["allow", "deny", "nope"]))
def test_fuzz_structured_rules(rules, default):
    """Random rule files made of real keys and wrong values: each either loads (and decides
    any request without raising) or is refused with a RulesError naming a line of the file."""
    parts = [f"default = {json.dumps(default)}"]
    for i, (action, match, with_rewrite) in enumerate(rules):
        parts.append(f'[[rule]]\nname = "r{i}"\naction = "{action}"\nmatch = {_toml(match)}')
        if with_rewrite:
            parts.append('rewrite = { user = "1000", add_labels = { owner = "{name}" } }')
    text = "\n".join(parts) + "\n"
    try:
        rs = parse_rules(text, "f.toml")
    except RulesError as e:
        assert 1 <= e.line <= text.count("\n") + 1 and str(e).startswith(f"f.toml:{e.line}: ")
        return
    for who in (ALICE, UNIX, NOBODY):
        for q in (spawn({"Image": "busybox", "HostConfig": {"Binds": ["/:/h"], "CapAdd": ["ALL"]}}, who),
                  Query(Verb.Ls, "engine", (), who),
                  Query(Verb.Stop, "container", ("rm",), who, facts=facts_of_inspect({"Name": "/x"}))):
            assert rs.decide(q).action in ("allow", "deny", "hide")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('[]{}="\n #.,=abcdefrulnmtio_-0123456789\'')), max_size=200))
def test_fuzz_arbitrary_text(text):
    """Arbitrary text never raises anything but RulesError, and an error names a line."""
    try:
        parse_rules(text, "t.toml")
    except RulesError as e:
        assert 1 <= e.line <= text.count("\n") + 1, (e.line, text)
