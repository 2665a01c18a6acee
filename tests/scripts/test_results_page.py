"""A benchmark's results page keeps the hand-written notes under its marker when the benchmark rewrites it."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.results_page import notes_mark, write_results_page  # noqa: E402


def test_notes_under_the_marker_survive_a_rewrite_and_the_table_is_replaced(tmp_path):
    page = tmp_path / "docs" / "bench.md"
    write_results_page(page, "# run 1\n| a | 1 |\n", "bench.py")
    assert page.read_text() == "# run 1\n| a | 1 |\n"
    page.write_text(page.read_text() + "\n" + notes_mark("bench.py") + "\nwhy the numbers moved\n")
    write_results_page(page, "# run 2\n| a | 2 |\n", "bench.py")
    text = page.read_text()
    assert text.startswith("# run 2\n| a | 2 |\n") and "run 1" not in text
    assert text.endswith(notes_mark("bench.py") + "\nwhy the numbers moved\n")
    write_results_page(page, "# run 3\n", "other.py")  # another script's marker is not this page's
    assert page.read_text() == "# run 3\n"
