"""Writing a benchmark's markdown results page so the hand-written notes under its marker survive a new run."""
from __future__ import annotations

from pathlib import Path


def notes_mark(script: str) -> str:
    """The marker line under which a results page keeps hand-written notes.

    >>> notes_mark("throughput.py")
    '<!-- notes below are written by hand and kept when benchmarks/throughput.py rewrites this file -->'
    """
    return f"<!-- notes below are written by hand and kept when benchmarks/{script} rewrites this file -->"


def write_results_page(path: str | Path, text: str, script: str) -> None:
    """Write ``text`` to ``path`` (atomically), followed by the notes found under the old page's marker."""
    from primo_loop.outputs import write_text_atomic

    path, mark = Path(path), notes_mark(script)
    old = path.read_text() if path.is_file() else ""
    if mark in old:
        text += "\n" + old[old.index(mark):]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
