"""No file over 400 lines (DESIGN.md §2), kept true for every Python file of the packages, scripts, benchmarks and
tests: one that grows past the limit is split by concern (as ``policies/scripted/`` and
``primo_loop/critics/compact_model.py`` were)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 400
#: The folders whose ``.py`` files are held to the limit, at any depth.
CHECKED = ("primo_loop", "envs", "policies", "scripts", "benchmarks", "tests")


def long_files(root: Path, limit: int = LIMIT) -> list[str]:
    """``"path: N lines"`` for every ``.py`` file under the checked folders of ``root`` with more than ``limit``."""
    found = []
    for folder in CHECKED:
        for path in sorted((root / folder).rglob("*.py")):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > limit:
                found.append(f"{path.relative_to(root).as_posix()}: {n} lines")
    return found


def test_no_python_file_is_over_the_line_limit():
    long = long_files(ROOT)
    assert long == [], f"over {LIMIT} lines, split by concern (DESIGN.md §2): {long}"


def test_the_walk_sees_every_checked_folder_and_nested_files():
    seen = {p.relative_to(ROOT).parts[0] for folder in CHECKED for p in (ROOT / folder).rglob("*.py")}
    assert seen == set(CHECKED)
    assert (ROOT / "policies" / "scripted" / "policy.py").is_file()  # a nested module is walked like any other


def test_a_planted_long_file_is_found(tmp_path):
    def write(rel: str, lines: int) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n" * lines)

    write("primo_loop/core.py", LIMIT)  # at the limit: allowed
    write("policies/deep/down/plan.py", LIMIT + 1)
    write("tests/scripts/test_big.py", 2 * LIMIT)
    write("benchmarks/notes.md", 5 * LIMIT)  # not Python
    write("docs/example.py", 5 * LIMIT)  # not a checked folder
    assert long_files(tmp_path) == [f"policies/deep/down/plan.py: {LIMIT + 1} lines",
                                    f"tests/scripts/test_big.py: {2 * LIMIT} lines"]
