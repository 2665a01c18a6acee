"""benchmarks/critic_architectures.py: every candidate scores the same kind of batch (its views tiled), side by
side, with its ratio to the shipped architecture, and the table names the command that made it."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def test_every_candidate_is_timed_beside_the_shipped_one(load_script, tmp_path, capsys):
    bench = load_script("benchmarks/critic_architectures.py")
    assert bench.main(["--rounds", "1", "--repeats", "1", "--batch", "2", "--render-size", "64",
                       "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "critic_architectures.json").read_text())
    rows = {r["candidate"]: r for r in result["rows"]}
    assert list(rows) == list(bench.CANDIDATES)
    assert rows["shipped (conv stem, 24-48-64-96), 1 view"]["ratio_to_shipped"] == 1.0
    assert all(r["ms_per_query"] > 0 and r["p25"] <= r["ms_per_query"] <= r["p75"] for r in rows.values())
    assert rows["patch stem, 24-48-64, 2 views"]["config"] == {"views": ["agentview", "robot0_eye_in_hand"],
                                                               "stem": "patch", "channels": [24, 48, 64]}
    md = (tmp_path / "critic_architectures.md").read_text()
    assert "benchmarks/critic_architectures.py --rounds 1" in md and md.count("| patch stem") == 4
    capsys.readouterr()
