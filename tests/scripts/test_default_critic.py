"""benchmarks/default_critic.py: every target of issue 33 item 5 read from fixture eval reports, met or missed;
the latency measurement."""
from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is imported from the repository root


@pytest.fixture(scope="module")
def dc():
    return importlib.import_module("benchmarks.default_critic")


def _split(mae=None, voc=None, f1=None, delay=None):
    return {"progress": {"mae": math.nan if mae is None else mae},
            "voc_successful": math.nan if voc is None else voc,
            "failure_detection": None if f1 is None else {"f1": f1, "median_delay": delay}}


def _write(folder, splits):
    folder.mkdir(parents=True)
    # eval_critic writes NaN for a metric without data: json.dumps does too
    (folder / "report.json").write_text(json.dumps({"splits": splits}))


@pytest.fixture
def build(tmp_path):
    b = tmp_path / "build"
    ev = b / "eval"
    _write(ev / "model/in_domain", {"all": _split(2.9, 0.995, 0.94, 1.0)})
    _write(ev / "model/in_domain_by_look", {"eval_in_domain_nominal": _split(2.5),
                                            "eval_in_domain_train_look": _split(3.3)})
    _write(ev / "model/unseen_robots", {"Sawyer": _split(4.0), "UR5e": _split(5.5)})
    _write(ev / "model/humanoid", {"all": _split(15.0, 0.8)})
    _write(ev / "model_humanoid/humanoid", {"all": _split(7.9, 0.97)})
    _write(ev / "model_humanoid/in_domain", {"all": _split(3.0)})
    _write(ev / "shipped/in_domain", {"all": _split(5.4, 0.99, 0.92, 0.0)})
    _write(ev / "shipped/in_domain_by_task", {"Door": _split(30.0)})
    _write(ev / "shipped/unseen_robots", {"Sawyer": _split(6.3)})
    _write(ev / "loto/Door", {"Door": _split(11.0), "Lift": _split(2.0)})
    _write(ev / "loto/NutAssemblySquare", {"NutAssemblySquare": _split(13.0)})
    (b / "build.json").write_text(json.dumps({"quick": False, "cameras": ["agentview", "robot0_eye_in_hand"],
                                              "epochs": 40, "loto_epochs": 15}))
    return b


def _rows(dc, build, latency=None):
    rows = dc.target_rows(dc.read_build(build), latency or {"model": 2.5, "shipped": 3.1})
    return {(r.group, r.target): r for r in rows}


def test_every_target_is_a_row_met_or_missed_by_its_bound(dc, build):
    rows = _rows(dc, build)
    met = {k: r.met for k, r in rows.items()}
    assert met[("in-domain", "MAE")] is True  # 2.9 <= 3
    assert met[("in-domain", "VOC (successful episodes)")] is True  # 0.995 >= 0.99
    assert met[("in-domain", "failure F1")] is False  # 0.94 < 0.95
    assert met[("in-domain", "median detection delay (queries)")] is True  # 1.0 <= 1
    assert met[("unseen robots", "MAE, Sawyer")] is True and met[("unseen robots", "MAE, UR5e")] is False
    assert met[("leave one task out", "MAE, Door held out")] is True  # 11 <= 12; the Lift split is not its row
    assert met[("leave one task out", "MAE, NutAssemblySquare held out")] is False
    assert met[("inference", "ms per query, batch 8, 1 thread")] is True
    assert met[("humanoid", "few-shot MAE (humanoid variant)")] is True  # 7.9 <= 8
    assert met[("humanoid", "zero-shot MAE")] is None  # reported, no target
    # the humanoid variant costs the arms 0.1 MAE: not "nothing"
    assert met[("humanoid", "humanoid variant's in-domain MAE (costs the arms nothing: <= the main model's)")] is False
    assert rows[("leave one task out", "MAE, Door held out")].figure == 11.0
    assert "15 epochs" in rows[("leave one task out", "MAE, Door held out")].note
    # per-look in-domain figures are reported beside the pooled one
    assert rows[("in-domain", "MAE, look eval_in_domain_train_look")].figure == 3.3


def test_shipped_figures_come_from_the_same_held_out_sets(dc, build):
    rows = _rows(dc, build)
    assert rows[("in-domain", "MAE")].shipped == 5.4
    assert rows[("unseen robots", "MAE, Sawyer")].shipped == 6.3
    assert rows[("unseen robots", "MAE, UR5e")].shipped is None  # not in the shipped report: n/a, not 0
    assert rows[("leave one task out", "MAE, Door held out")].shipped == 30.0
    assert rows[("inference", "ms per query, batch 8, 1 thread")].shipped == 3.1


def test_a_figure_not_measured_is_null_and_never_met(dc, build):
    (build / "eval/model/in_domain/report.json").write_text(json.dumps({"splits": {"all": _split(None, None)}}))
    rows = _rows(dc, build, {"model": None, "shipped": None})
    r = rows[("in-domain", "MAE")]
    assert r.figure is None and r.met is False
    assert rows[("in-domain", "VOC (successful episodes)")].figure is None
    assert rows[("inference", "ms per query, batch 8, 1 thread")].met is False
    app = rows[("unseen appearance", "MAE")]  # the set was not collected in this build
    assert app.figure is None and app.met is False and "not collected" in app.note


def test_report_files(dc, build, tmp_path):
    out = tmp_path / "report"
    assert dc.main(["--build", str(build), "--out", str(out), "--no-latency"]) == 0
    rep = json.loads((out / "report.json").read_text())
    by = {(r["group"], r["target"]): r for r in rep["rows"]}
    assert by[("in-domain", "MAE")]["met"] is True and by[("in-domain", "failure F1")]["met"] is False
    assert by[("inference", "ms per query, batch 8, 1 thread")]["figure"] is None  # --no-latency: not measured
    assert rep["targets"] == sum(r["met"] is not None for r in rep["rows"])
    md = (out / "report.md").read_text()
    assert "| in-domain | failure F1 | 0.940 | >= 0.950 | missed | 0.920 |" in md
    assert "| inference | ms per query, batch 8, 1 thread | n/a | <= 3.00 | not measured |" in md
    assert "multi-view" in md and "metrics.voc" in md


class _FakeCritic:
    def __init__(self):
        self.calls, self.threads = [], []

    def assess(self, queries):
        import torch

        self.calls.append(len(queries))
        self.threads.append(torch.get_num_threads())
        return [None] * len(queries)


def test_latency_is_the_median_per_query_after_warmup_on_one_thread(dc):
    import torch

    ticks = iter([0.0, 0.008, 1.0, 1.016, 2.0, 2.080])  # 8, 16 and 80 ms for a batch of 8 in the timed calls
    critic = _FakeCritic()
    before = torch.get_num_threads()
    r = dc.measure_latency(critic, ["q"] * 3, batch=8, warmup=2, repeats=3, clock=lambda: next(ticks))
    assert critic.calls == [8] * 5  # 2 warm-up + 3 timed, each on a full batch (3 queries repeated to 8)
    assert set(critic.threads) == {1} and torch.get_num_threads() == before
    assert r["ms_per_query"] == pytest.approx(2.0)  # median 16 ms / 8 queries
    assert r["max_ms"] == pytest.approx(10.0)


def test_latency_of_a_real_compact_critic(dc):
    from primo_loop.critics import make_critic

    critic = make_critic("compact")
    r = dc.measure_latency(critic, dc.sample_queries(None, size=64, views=critic.views), repeats=3, warmup=1)
    assert 0 < r["min_ms"] <= r["ms_per_query"] <= r["max_ms"] < 1000


def test_the_first_view_side_model_is_reported_beside_the_main_one(dc, build):
    assert not any(g == "views" for g, _ in _rows(dc, build))  # no side model: no row
    _write(build / "eval/model_first_view/in_domain", {"all": _split(3.8, 0.99, 0.9, 1.0)})
    rows = _rows(dc, build)
    mae = rows[("views", "in-domain MAE, agentview only (side model; main: agentview + robot0_eye_in_hand)")]
    f1 = rows[("views", "in-domain failure F1, agentview only (side model; main: agentview + robot0_eye_in_hand)")]
    assert (mae.figure, mae.shipped, mae.met) == (3.8, 5.4, None) and mae.note == "main model: 2.90"
    assert (f1.figure, f1.note) == (0.9, "main model: 0.940")


def test_latency_queries_come_from_the_data_when_the_critic_can_read_its_views(dc, tmp_path):
    from primo_loop.data.synthetic import make_dataset

    make_dataset(tmp_path / "one_view", n_episodes=1, seed=0, image_size=32, n_steps=40, frame_every=10)
    from_data = dc.sample_queries(tmp_path / "one_view", size=16)
    assert from_data[-1].current.shape == (32, 32, 3) and from_data[-1].views == ()
    two = ("agentview", "robot0_eye_in_hand")  # a two-view critic cannot read one-view data: random frames
    tiled = dc.sample_queries(tmp_path / "one_view", size=16, views=two)
    assert tiled[0].current.shape == (16, 32, 3) and tiled[0].views == two
