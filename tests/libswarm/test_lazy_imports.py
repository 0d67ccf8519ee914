"""The packages import their names when first used (PEP 562), and the commands' --help and
--version import neither trio nor h2 nor cbor2: every public name is still there, the same
object as in its defining module, and the help texts are byte for byte what they were
(``golden/``, captured before the imports were made lazy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarmd_support import SWARMCTL_SCRIPT, SWARMD_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
HEAVY = ("trio", "h2", "cbor2", "msgpack")


def python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("package", ["libchan", "libswarm"])
def test_every_name_in_all_is_exported(package):
    out = json.loads(python(f"""
import importlib, json, sys, types
pkg = importlib.import_module({package!r})
light = [m for m in {HEAVY!r} if m in sys.modules]
bad = []
for name in pkg.__all__:
    value = getattr(pkg, name)
    if isinstance(value, types.ModuleType):
        bad.append(name + ": a module")
    home = getattr(value, "__module__", None)
    if home and home.startswith({package!r} + ".") and getattr(sys.modules[home], name, value) is not value:
        bad.append(name + ": not the object of " + home)
star = {{}}
exec("from {package} import *", star)
missing = sorted(set(pkg.__all__) - set(star))
print(json.dumps({{"light": light, "bad": bad, "star_missing": missing,
                  "dir_missing": sorted(set(pkg.__all__) - set(dir(pkg)))}}))
"""))
    assert out["light"] == [], f"import {package} alone imported {out['light']}"
    assert out["bad"] == []
    assert out["star_missing"] == [] and out["dir_missing"] == []


def test_exports_are_the_defining_modules_objects():
    out = python("""
import libchan, libswarm
from libchan.pipe import pipe
from libchan.transport import connect
from libswarm._client import Client
import libchan.pipe as p   # as before: the package attribute, i.e. the function
print(libchan.pipe is pipe, libchan.connect is connect, libswarm.Client is Client, p is pipe)
""")
    assert out.split() == ["True"] * 4


def test_submodule_import_does_not_hide_the_pipe_function():
    out = python("""
import libchan.session, libchan.pipe, libchan
print(callable(libchan.pipe) and not isinstance(libchan.pipe, type(libchan)))
print(libchan.engine.__name__, libswarm_ok := __import__("libswarm").backends.__name__)
""")
    assert out.split() == ["True", "libchan.engine", "libswarm.backends"]


def test_unknown_names_raise_attribute_error():
    out = python("""
import libchan, libswarm
for pkg in (libchan, libswarm):
    try:
        pkg.nosuch
    except AttributeError as exc:
        print(type(exc).__name__)
""")
    assert out.split() == ["AttributeError", "AttributeError"]


@pytest.mark.parametrize(
    "argv, golden",
    [
        ([SWARMD_SCRIPT, "--help"], "swarmd-help.txt"),
        ([SWARMD_SCRIPT, "-h"], "swarmd-help.txt"),
        ([SWARMCTL_SCRIPT, "--help"], "swarmctl-help.txt"),
        ([SWARMCTL_SCRIPT, "-h"], "swarmctl-help.txt"),
    ],
)
def test_help_is_unchanged(argv, golden):
    r = subprocess.run(argv, capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout == (GOLDEN / golden).read_bytes()


@pytest.mark.parametrize(
    "module, args",
    [("libswarm.swarmd", ["--help"]), ("libswarm.swarmd", ["--version"]), ("libswarm.swarmctl", ["--help"])],
)
def test_help_and_version_import_nothing_heavy(module, args):
    out = python(f"""
import contextlib, io, sys
from {module} import main
with contextlib.redirect_stdout(io.StringIO()) as buf:
    assert main({args!r}) == 0
assert buf.getvalue()
print(" ".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
""")
    assert out.strip() == "none"


def test_version_is_still_a_module_attribute():
    out = python("from libswarm import swarmd; from libswarm.swarmd import VERSION; print(swarmd.VERSION == VERSION != '')")
    assert out.strip() == "True"
