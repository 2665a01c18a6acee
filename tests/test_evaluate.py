"""The evaluator: in-loop replay of dataset episodes, PRIMO records, splits, report files, the script."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from primo_loop.critics.oracle import OracleCritic
from primo_loop.data.synthetic import make_dataset
from primo_loop.evaluate import EvalConfig, evaluate, report_markdown
from primo_loop.types import CriticVerdict

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "primo"


class ConstantCritic:
    """Always 50 %, no failure opinion, unreadable every ``bad_every``-th query; counts what it sees."""

    name = "constant"

    def __init__(self, bad_every: int = 0):
        self.bad_every, self.seen = bad_every, []

    def assess(self, queries):
        out = []
        for q in queries:
            self.seen.append(q)
            bad = self.bad_every and len(self.seen) % self.bad_every == 0
            out.append(CriticVerdict(progress=None if bad else 0.5, latency_s=0.002, output_tokens=10))
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, n_episodes=6, seed=0, image_size=32, n_steps=40, frame_every=5)
    return root


def test_oracle_is_perfect_and_report_is_written(data, tmp_path):
    report = evaluate(OracleCritic(), [data], tmp_path / "rep", EvalConfig(critic_every=10))
    s = report["splits"]["all"]
    assert s["progress"]["mae"] == 0 and s["unreadable_rate"] == 0
    assert s["failure_detection"]["f1"] == 1.0 and s["failure_detection"]["median_delay"] == 0
    assert s["voc_successful"] == pytest.approx(1.0)
    for name in ("report.json", "report.md", "curves_all.png", "error_by_bin.png"):
        assert (tmp_path / "rep" / name).is_file(), name
    back = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert back["splits"]["all"]["episodes"] == 6


def test_queries_follow_the_tracker(data):
    critic = ConstantCritic()
    evaluate(critic, [data], None, EvalConfig(critic_every=10, clip_len=4))
    # 6 episodes x 5 queries (steps 0, 10, 20, 30, 40); clips start at reset and end at the query's frame
    assert len(critic.seen) == 30 and [q.step for q in critic.seen[:5]] == [0, 10, 20, 30, 40]
    q = critic.seen[3]
    assert q.clip.shape[0] == 4
    np.testing.assert_array_equal(q.clip[0], q.initial)
    np.testing.assert_array_equal(q.clip[-1], q.current)


def test_unreadable_answers_tokens_and_latency_are_reported(data):
    report = evaluate(ConstantCritic(bad_every=3), [data], None, EvalConfig())
    s = report["splits"]["all"]
    assert s["unreadable_rate"] == pytest.approx(10 / 30)
    assert s["mean_output_tokens"] == 10 and s["latency_ms"] == pytest.approx(2.0)
    assert s["progress"]["n"] == 20 and s["failure_detection"] is None
    assert "constant" in report_markdown(report)


def test_failed_requests_are_counted_apart_from_unreadable_answers(data):
    """A remote request that failed (``FailedVerdict``) is no answer: counted in ``failed_rate``, not as
    unreadable, and like an unreadable one left out of every progress metric."""
    from primo_loop.critics.remote_http import FailedVerdict

    class Flaky(ConstantCritic):
        def assess(self, queries):
            out = super().assess(queries)
            return [FailedVerdict(progress=None, raw="request failed: timeout") if (len(self.seen) - len(out) + i) % 5
                    == 4 else v for i, v in enumerate(out)]

    report = evaluate(Flaky(bad_every=3), [data], None, EvalConfig())
    s = report["splits"]["all"]
    # of 30 queries: every 5th request failed (6); of the others, every 3rd answer was unreadable
    failed = {i for i in range(30) if i % 5 == 4}
    unreadable = {i for i in range(30) if (i + 1) % 3 == 0} - failed
    assert s["failed_rate"] == pytest.approx(len(failed) / 30)
    assert s["unreadable_rate"] == pytest.approx(len(unreadable) / 30)
    assert s["progress"]["n"] == 30 - len(failed) - len(unreadable)
    assert "failed)" in report_markdown(report)


def test_primo_records_fixture_by_hand(tmp_path):
    report = evaluate(ConstantCritic(), [FIXTURE / "records.jsonl"], tmp_path / "r", EvalConfig(nframes=4))
    s = report["splits"]["all"]
    # targets 50, 100, 20 against a constant 50
    assert s["progress"]["mae"] == pytest.approx((0 + 50 + 30) / 3) and s["queries"] == 3


def test_splits_from_training_domain(data):
    cfg = EvalConfig(train_tasks=["SynthLift"], train_robots=["OtherBot"])
    report = evaluate(OracleCritic(), [data], None, cfg)
    assert list(report["splits"]) == ["unseen_robot"]
    cfg = EvalConfig(train_tasks=["SynthLift"], train_robots=["SynthBot"])
    assert list(evaluate(OracleCritic(), [data], None, cfg)["splits"]) == ["in_domain"]


def test_eval_script_with_exported_records(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_primo.py"), str(data), "--out",
                          str(tmp_path / "p" / "recs.jsonl"), "--per-episode", "3", "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--critic", "oracle",
                          "--data", str(data), str(tmp_path / "p" / "recs.jsonl"), "--out", str(tmp_path / "rep"),
                          "--split-by", "source", "--no-progress"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["splits"]) == {data.name, "recs.jsonl"}
    assert report["splits"]["recs.jsonl"]["queries"] == 18
    assert report["splits"]["recs.jsonl"]["progress"]["mae"] < 1  # solutions are rounded to integers
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--critic", "oracle",
                          "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "rep2")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "missing" in bad.stderr


def test_compared_reports_show_where_a_critic_overrates(data, tmp_path):
    """A critic stuck at 50 rates every state the oracle puts below 40 as further along: its signed error there
    equals its MAE there and is large; the oracle's is 0. The script puts saved reports side by side."""
    from primo_loop.eval_report import _low_progress, compare_reports

    oracle = evaluate(OracleCritic(), [data], tmp_path / "oracle", EvalConfig())
    constant = evaluate(ConstantCritic(), [data], tmp_path / "constant", EvalConfig())
    s = constant["splits"]["all"]
    assert _low_progress(oracle["splits"]["all"], "bias") == 0
    assert _low_progress(s, "bias") == pytest.approx(_low_progress(s, "mae")) and _low_progress(s, "bias") > 10
    text = compare_reports({"oracle": oracle, "stuck": constant})
    row = next(line for line in text.splitlines() if line.startswith("| mean signed error"))
    assert row == f"| mean signed error where the oracle says < 40 | 0.00 | {_low_progress(s, 'bias'):.2f} |"

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    script = [sys.executable, str(ROOT / "scripts" / "eval_critic.py"), "--compare", str(tmp_path / "oracle"),
              str(tmp_path / "constant")]
    res = subprocess.run([*script, "--names", "oracle", "stuck", "--out", str(tmp_path / "cmp")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "cmp" / "comparison.md").read_text() == text
    for extra, expect in ((["--names", "a"], "one distinct --names entry"),
                          (["--names", "a", "a"], "one distinct --names entry")):
        res = subprocess.run([*script, *extra, "--out", str(tmp_path / "x")], env=env, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 2 and expect in res.stderr, res.stderr
    res = subprocess.run([*script[:-1], str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "report folders of scripts/eval_critic.py" in res.stderr, res.stderr


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_eval_script_never_clobbers_and_a_failed_run_leaves_no_folder(data, tmp_path):
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text("{}")
    res = _script("eval_critic.py", "--critic", "oracle", "--data", str(data), "--out", str(rep), "--no-progress")
    assert res.returncode == 2 and "exists and is not empty; pass --overwrite" in res.stderr, res.stderr
    assert (rep / "report.json").read_text() == "{}"
    res = _script("eval_critic.py", "--critic", "oracle", "--data", str(data), "--out", str(rep), "--overwrite",
                  "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((rep / "report.json").read_text())["splits"]["all"]["episodes"] == 6
    for bad, expect in ((["--data", str(tmp_path / "missing")], "neither a dataset folder"),
                        (["--data", str(data), "--critic-option", "noise_std=abc"],
                         "critic option `noise_std` to be a number (float), actually: 'abc'"),
                        (["--videos", str(tmp_path), "--size", "7"], "--size between 32 and 1024")):
        res = _script("eval_critic.py", "--critic", "oracle", *bad, "--out", str(tmp_path / "new" / "out"))
        assert res.returncode in (1, 2) and expect in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert not (tmp_path / "new").exists(), bad


def test_export_script_checks_its_outputs_before_encoding_and_cleans_up(data, tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import export_primo as script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from primo_loop.errors import ConfigError

    folder = tmp_path / "p"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder; pass a file in it"):  # used to fail after all the encoding
        script.main([str(data), "--out", str(folder), "--no-progress"])
    assert not any(folder.iterdir())
    assert script.main([str(data), "--out", str(folder / "a.jsonl"), "--per-episode", "2", "--no-progress"]) == 0
    before = (folder / "a.jsonl").read_text()
    with pytest.raises(ConfigError, match="Export outputs exist already .*a.jsonl.*pass --overwrite"):
        script.main([str(data), "--out", str(folder / "a.jsonl"), "--no-progress"])
    with pytest.raises(ConfigError, match="Export outputs exist already .*media"):  # same episodes, other file
        script.main([str(data), "--out", str(folder / "b.jsonl"), "--no-progress"])
    assert (folder / "a.jsonl").read_text() == before and not (folder / "b.jsonl").exists()
    assert script.main([str(data), "--out", str(folder / "a.jsonl"), "--per-episode", "1", "--overwrite",
                        "--no-progress"]) == 0
    clips = {p.name: len(list(p.iterdir())) for p in (folder / "media").iterdir()}
    # one record per episode now: its clip, initial and current frames (3 files); 6 would be a leftover of the first
    assert len(clips) == 6 and set(clips.values()) == {3}  # replaced whole: no clip left from the first export
    assert sorted(p.name for p in folder.iterdir()) == ["a.jsonl", "media"]

    from primo_loop.data import primo_format

    def fail(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(primo_format, "write_text_atomic", fail)  # dies after all the encoding
    with pytest.raises(OSError):
        script.main([str(data), "--out", str(tmp_path / "fresh" / "c.jsonl"), "--no-progress"])
    assert not (tmp_path / "fresh").exists()


def test_export_script_writes_the_problem_type_it_is_given(data, tmp_path):
    res = _script("export_primo.py", str(data), "--out", str(tmp_path / "r.jsonl"), "--per-episode", "1",
                  "--problem-type", "regression", "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert records and {r["problem_type"] for r in records} == {"regression"}
