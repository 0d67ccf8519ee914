"""Print the architecture figures of issue 12: longest module and class, widest public
class surface, import cycles between modules (TYPE_CHECKING and function-level imports
count too), and which sans-IO modules import trio.

    .venv/bin/python scripts/arch_metrics.py [libchan libswarm]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages whose modules must not import trio (the sans-IO cores).
SANS_IO = ("libchan.spdy_like", "libchan.messages")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(mod: str, is_pkg: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, known: set[str]) -> set[str]:
    mod = module_name(path)
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(mod, is_pkg, node.level, node.module)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            # the deepest known module the name lies in
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != mod:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> None:
    packages = sys.argv[1:] or ["libchan", "libswarm"]
    files = [p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))]
    known = {module_name(p) for p in files}
    graph = {module_name(p): imports_of(p, known) for p in files}
    longest = max(files, key=lambda p: len(p.read_text().splitlines()))
    classes = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                public = [m for m in methods if not m.startswith("_")]
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                classes.append((size, len(methods), len(public), f"{module_name(p)}.{node.name}"))
    print(f"modules: {len(files)}")
    print(f"longest module: {module_name(longest)} ({len(longest.read_text().splitlines())} lines)")
    for size, n, pub, name in sorted(classes, reverse=True)[:5]:
        print(f"class {name}: {size} lines, {n} methods, {pub} public")
    widest = max(classes, key=lambda c: c[2])
    print(f"widest public surface: {widest[3]} ({widest[2]} public methods)")
    comps = cycles(graph)
    print(f"modules in import cycles: {sum(len(c) for c in comps)} in {len(comps)} cycle(s)")
    for comp in comps:
        print("  cycle:", ", ".join(comp))
    # the same between subpackages (libchan.engine, libchan.spdy_like, ...); the top
    # packages hold the modules every layer uses (errors, config), so they are left out
    def subpackage(mod: str) -> str | None:
        parts = mod.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else None

    packages_graph: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        src = subpackage(mod)
        if src is None:
            continue
        targets = {subpackage(d) for d in deps}
        packages_graph.setdefault(src, set()).update(t for t in targets if t is not None and t != src)
    pcomps = cycles(packages_graph)
    print(f"subpackages in import cycles: {sum(len(c) for c in pcomps)} in {len(pcomps)} cycle(s)")
    for comp in pcomps:
        print("  cycle:", ", ".join(comp))
    trio_users = [m for m, deps in sorted(graph.items()) if m.startswith(SANS_IO) and "trio" in _external(m, files)]
    print(f"sans-IO modules importing trio: {trio_users or 'none'}")


def _external(mod: str, files: list[Path]) -> set[str]:
    for p in files:
        if module_name(p) == mod:
            tops = set()
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Import):
                    tops |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops.add(node.module.split(".")[0])
            return tops
    return set()


if __name__ == "__main__":
    main()
