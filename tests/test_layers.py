"""The layer rule, kept true by reading the code (``ast``, imports inside functions included):
``scripts/``, ``benchmarks/`` -> ``policies/`` -> ``envs/`` -> ``primo_loop/``, never back up, and no import
cycle between modules."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Rank of each top-level package: a module may import its own rank or lower, never higher.
LAYERS = {"primo_loop": 0, "envs": 1, "policies": 2, "scripts": 3, "benchmarks": 3}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the layered packages under ``root``, by dotted name."""
    return {module_name(root, p): p for pkg in LAYERS if (root / pkg).is_dir()
            for p in sorted((root / pkg).rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (they never run, so they make no cycle)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a name in one) is, else None (third-party)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, runs)`` for every import of ours in ``path``, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                found.append((resolved, node.lineno, id(node) not in typing_only))
    return found


def backward_imports(root: Path) -> list[str]:
    """Imports from a lower layer up into a higher one, as ``file:line: a imports b``."""
    modules = find_modules(root)
    bad = []
    for name, path in modules.items():
        for target, line, _ in imports_of(name, path, modules):
            if LAYERS[target.split(".")[0]] > LAYERS[name.split(".")[0]]:
                bad.append(f"{path.relative_to(root)}:{line}: {name} imports {target}")
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (strongly connected components)."""
    modules = find_modules(root)
    graph = {name: sorted({t for t, _, runs in imports_of(name, path, modules) if runs})
             for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_points_up_a_layer():
    assert backward_imports(ROOT) == []


def test_no_import_cycles():
    assert import_cycles(ROOT) == []


def test_the_walk_sees_the_packages_and_imports_inside_functions():
    modules = find_modules(ROOT)
    assert {"primo_loop.tracker", "primo_loop.wrappers", "envs.adapter", "policies.specs",
            "scripts.collect", "benchmarks.sim2real"} <= set(modules)
    # policies.specs imports policies.sb3 inside a function only; the walk must see it
    assert "policies.sb3" in {t for t, _, _ in imports_of("policies.specs", modules["policies.specs"], modules)}


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_planted_backward_import_fails(tmp_path):
    root = _tree(tmp_path, {
        "primo_loop/__init__.py": "",
        "primo_loop/core.py": "import numpy\n\ndef run():\n    from policies.specs import resolve_policy\n",
        "envs/__init__.py": "from primo_loop import core\n",
        "policies/__init__.py": "",
        "policies/specs.py": "import envs\nfrom . import other\n",
        "policies/other.py": "from ..policies import specs\n",
        "scripts/go.py": "import policies.specs\nimport benchmarks.study\n",
        "benchmarks/study.py": "from envs import thing\n",
    })
    assert backward_imports(root) == ["primo_loop/core.py:4: primo_loop.core imports policies.specs"]
    # the planted import also closes a loop core -> specs -> envs -> core, beside the relative pair other <-> specs
    assert import_cycles(root) == [["envs", "policies.other", "policies.specs", "primo_loop.core"]]


def test_a_planted_cycle_fails_and_typing_only_imports_do_not_count(tmp_path):
    root = _tree(tmp_path, {
        "primo_loop/__init__.py": "",
        "primo_loop/a.py": "from primo_loop.b import x\n",
        "primo_loop/b.py": "def f():\n    import primo_loop.c\n",
        "primo_loop/c.py": "from primo_loop import a\n",
        "primo_loop/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from primo_loop.e import y\n",
        "primo_loop/e.py": "from primo_loop.d import z\n",
    })
    assert import_cycles(root) == [["primo_loop.a", "primo_loop.b", "primo_loop.c"]]
    assert backward_imports(root) == []
