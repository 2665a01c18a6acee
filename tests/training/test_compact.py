"""Compact-critic training: a tiny run lowers the validation loss, is deterministic, and resumes exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from primo_loop.critics.compact import CompactConfig  # noqa: E402
from primo_loop.data.synthetic import make_dataset  # noqa: E402
from primo_loop.errors import CheckpointError, ConfigError, DatasetError  # noqa: E402
from primo_loop.training.compact import (  # noqa: E402
    STATE_FILE,
    Batcher,
    TrainConfig,
    kept_frames,
    load_episodes,
    main,
    train,
)

MODEL = CompactConfig(image_size=32, channels=(8, 16, 32), dim=32, layers=1, heads=2, vocab_buckets=64, dropout=0.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, n_episodes=24, seed=0, image_size=32, n_steps=40, frame_every=5)
    return root


def _cfg(data, out, epochs, **kw):
    return TrainConfig(data=[str(data)], out=str(out), epochs=epochs, seed=1, batch_episodes=4, lr=3e-3,
                       val_fraction=0.25, augment=False, model=MODEL, **kw)


def _weights(out):
    return torch.load(out / STATE_FILE, weights_only=False)["model"]


def test_tiny_run_lowers_val_loss(data, tmp_path):
    summary = train(_cfg(data, tmp_path / "a", 8), progress_bar=False)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 8 and summary["val_episodes"] == 6
    assert log[-1]["val_mae"] < log[0]["val_mae"] - 10
    assert min(r["val_score"] for r in log) == summary["best"]["val_score"]
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["train_info"]["tasks"] == ["SynthLift"] and cfg["image_size"] == 32


def test_deterministic_and_resume_matches_uninterrupted(data, tmp_path):
    train(_cfg(data, tmp_path / "full", 3), progress_bar=False)
    train(_cfg(data, tmp_path / "again", 3), progress_bar=False)
    train(_cfg(data, tmp_path / "cut", 3), progress_bar=False, stop_after=2)  # "interrupted" after epoch 2
    train(_cfg(data, tmp_path / "cut", 3), resume=True, progress_bar=False)
    full, again, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "again"), _weights(tmp_path / "cut")
    for k in full:
        assert torch.equal(full[k], again[k]), k
        assert torch.equal(full[k], resumed[k]), k


def test_resume_with_other_options_says_what_differs(data, tmp_path):
    train(_cfg(data, tmp_path / "r", 1), progress_bar=False)
    other = _cfg(data, tmp_path / "r", 2)
    other.lr = 0.01
    with pytest.raises(CheckpointError, match=r"lr: saved 0.003, now 0.01"):
        train(other, resume=True, progress_bar=False)


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_fine_tuning_starts_from_the_checkpoint(data, tmp_path, capsys):
    """``init`` loads the checkpoint's weights: epoch 0 scores them exactly as the run that made them did, and
    one fine-tuning epoch ends far below one epoch from scratch. The CLI takes the architecture from the
    checkpoint and refuses flags that contradict it."""
    base = train(_cfg(data, tmp_path / "base", 6), progress_bar=False)
    ft = train(_cfg(data, tmp_path / "ft", 1, init=str(tmp_path / "base")), progress_bar=False)
    scratch = train(_cfg(data, tmp_path / "scratch", 1), progress_bar=False)
    log = _log(tmp_path / "ft")
    assert [r["epoch"] for r in log] == [0, 1] and ft["epochs_run"] == 1
    assert log[0]["val_mae"] == pytest.approx(base["best"]["val_mae"], abs=1e-4)
    assert ft["best"]["val_mae"] <= log[0]["val_mae"] and ft["best"]["val_mae"] < scratch["best"]["val_mae"] - 10
    info = json.loads((tmp_path / "ft" / "config.json").read_text())["train_info"]
    assert info["init"] == str(tmp_path / "base")

    other = CompactConfig(image_size=32, channels=(8, 16, 32), dim=64, layers=1, heads=2, vocab_buckets=64)
    with pytest.raises(CheckpointError, match="dim: requested 64, checkpoint 32"):
        train(TrainConfig(data=[str(data)], out=str(tmp_path / "bad"), epochs=1, init=str(tmp_path / "base"),
                          model=other), progress_bar=False)
    assert main(["--data", str(data), "--out", str(tmp_path / "cli_ft"), "--epochs", "1", "--init",
                 str(tmp_path / "base"), "--no-progress"]) == 0  # no architecture flags: the checkpoint's
    assert json.loads((tmp_path / "cli_ft" / "config.json").read_text())["dim"] == 32
    with pytest.raises(ConfigError, match="dim: flag 64, checkpoint 32"):
        main(["--data", str(data), "--out", str(tmp_path / "x"), "--init", str(tmp_path / "base"), "--dim", "64"])
    with pytest.raises(CheckpointError, match="no compact-critic checkpoint"):
        main(["--data", str(data), "--out", str(tmp_path / "x"), "--init", str(tmp_path / "nothing")])
    with pytest.raises(CheckpointError, match="image_size: requested 32, checkpoint 64"):  # a shipped name
        train(_cfg(data, tmp_path / "y", 1, init="default"), progress_bar=False)


def test_cli_entry(data, tmp_path, capsys):
    assert main(["--data", str(data), "--out", str(tmp_path / "cli"), "--epochs", "1", "--image-size", "32",
                 "--channels", "8", "16", "32", "--dim", "32", "--layers", "1", "--heads", "2", "--no-progress"]) == 0
    assert (tmp_path / "cli" / "weights.pt").is_file() and '"epochs_run": 1' in capsys.readouterr().out


def test_batches_follow_the_tracker(data):
    eps, skipped = load_episodes([data], 32)
    assert skipped == 0 and eps[0].frames.shape[1:] == (32, 32, 3)
    cfg = _cfg(data, "unused", 1)
    b = Batcher(cfg, eps).build([0, 1], None, train=False)
    # validation queries: one per kept frame at the in-loop stride (frame_every=10 over frames stored every 5)
    n = sum(len(kept_frames(e.frame_steps, 10)) for e in eps[:2])
    assert len(b["progress"]) == n and b["gather"].shape == (n, 10)
    assert b["gather"].max() < len(b["frames"])


def test_no_data(tmp_path):
    with pytest.raises(DatasetError, match="holds no episodes"):
        train(_cfg(tmp_path, tmp_path / "o", 1), progress_bar=False)


def test_training_batches_use_each_episodes_stride(data):
    """Stride jitter and phase shifts pick frames the episode has (the off-grid last frame never breaks it)."""
    eps, _ = load_episodes([data], 32)
    assert all(e.frame_every == 5 for e in eps)
    batcher = Batcher(_cfg(data, "unused", 1), eps)
    assert batcher.strides(5) == [5, 10, 20] and batcher.strides(10) == [10, 20]
    rng = np.random.default_rng(0)
    sizes = {len(batcher.build([0], rng, train=True)["progress"]) for _ in range(30)}
    assert min(sizes) >= 3 and len(sizes) > 1


def test_an_episode_id_in_two_datasets_is_recorded_by_folder(data, tmp_path):
    import shutil

    other = tmp_path / "copy"
    shutil.copytree(data, other)
    eps, _ = load_episodes([data, other], 32)
    ids = [e.episode_id for e in eps]
    assert len(ids) == 48 and len(set(ids)) == 48
    assert ids[24:] == [f"copy/{i}" for i in ids[:24]]


# ------------------------------------------------------------------------------------- bad inputs, safe outputs

def _copy_data(data, dest):
    import shutil

    shutil.copytree(data, dest)
    return dest


def test_non_finite_labels_are_refused_naming_the_episode(data, tmp_path):
    bad = _copy_data(data, tmp_path / "bad")
    eid = sorted(p.name for p in (bad / "episodes").iterdir())[3]
    steps = bad / "episodes" / eid / "steps.npz"
    table = dict(np.load(steps))
    table["progress"] = table["progress"].copy()
    table["progress"][7] = np.nan
    np.savez_compressed(steps, **table)
    with pytest.raises(DatasetError, match=f"{eid}/steps.npz: expected finite progress labels, actually: nan at "
                                           "step 7"):
        train(_cfg(bad, tmp_path / "out", 1), progress_bar=False)


def test_a_non_finite_loss_stops_the_run_without_saving_it(data, tmp_path, monkeypatch):
    from primo_loop.errors import TrainingError
    from primo_loop.training import compact as training

    out = tmp_path / "run"
    train(_cfg(data, out, 1), progress_bar=False)
    weights = (out / "weights.pt").read_bytes()
    real = training.losses

    def nan_losses(*args, **kw):
        loss, l_prog, l_fail, pred = real(*args, **kw)
        return loss * float("nan"), l_prog, l_fail, pred

    monkeypatch.setattr(training, "losses", nan_losses)
    with pytest.raises(TrainingError, match="Training loss became nan at epoch 2, batch 1"):
        train(_cfg(data, out, 3), resume=True, progress_bar=False)
    assert (out / "weights.pt").read_bytes() == weights  # the NaN epoch is not the best
    state = torch.load(out / STATE_FILE, weights_only=False)
    assert state["epoch"] == 1 and len(_log(out)) == 1
    # from the command line: exit status 1 after one line, and a fresh --out it made is gone again
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from primo_loop.training import compact as t; real = t.losses; "
            "t.losses = lambda *a, **k: (lambda r: (r[0] * float('nan'),) + r[1:])(real(*a, **k)); "
            "from primo_loop.cli import run; run(lambda: t.main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "--data", str(data), "--out", str(tmp_path / "fresh" / "x"),
                        "--epochs", "1", "--image-size", "32", "--channels", "8", "16", "32", "--dim", "32",
                        "--layers", "1", "--heads", "2", "--no-progress"], capture_output=True, text=True,
                       cwd=root, timeout=300)
    assert r.returncode == 1 and "error: Training loss became nan" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "fresh").exists()


def test_a_truncated_train_state_is_one_error_naming_the_file(data, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data, out, 1), progress_bar=False)
    state = out / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"Cannot resume from {state}: the file is truncated or corrupt"):
        train(_cfg(data, out, 2), resume=True, progress_bar=False)


def test_cli_refuses_a_used_out_folder_unless_resume_or_overwrite(data, tmp_path):
    args = ["--data", str(data), "--epochs", "1", "--image-size", "32", "--channels", "8", "16", "32", "--dim",
            "32", "--layers", "1", "--heads", "2", "--no-progress"]
    out = tmp_path / "cli"
    assert main([*args, "--out", str(out)]) == 0
    weights = (out / "weights.pt").read_bytes()
    with pytest.raises(ConfigError, match="exists and is not empty; pass --resume to continue it, --overwrite"):
        main([*args, "--out", str(out), "--seed", "5"])
    assert (out / "weights.pt").read_bytes() == weights
    assert main([*args, "--out", str(out), "--epochs", "2", "--resume"]) == 0
    assert [r["epoch"] for r in _log(out)] == [1, 2]
    assert main([*args, "--out", str(out), "--seed", "5", "--overwrite"]) == 0
    assert [r["epoch"] for r in _log(out)] == [1] and (out / "weights.pt").read_bytes() != weights


def test_a_fine_tune_on_added_data_validates_on_what_its_start_never_trained_on(data, tmp_path):
    """The split of a fine-tune with new data mixed in: the start's own pairs keep its validation episodes (a
    fresh split would put episodes the start trained on into validation, where it scores best and wins), the
    new pair is split as usual."""
    from primo_loop.training.compact_batches import split_episodes

    extra = tmp_path / "other_robot"
    make_dataset(extra, n_episodes=8, seed=500, image_size=32, n_steps=40, frame_every=5, robot="OtherBot")
    train(_cfg(data, tmp_path / "base", 1), progress_bar=False)
    base_val = set(json.loads((tmp_path / "base" / "config.json").read_text())["train_info"]["val_episode_ids"])
    cfg = _cfg(data, tmp_path / "ft", 1, init=str(tmp_path / "base"))
    cfg.data = [str(extra), str(data)]  # another order and another pair: a fresh split would differ
    train(cfg, progress_bar=False)
    val = set(json.loads((tmp_path / "ft" / "config.json").read_text())["train_info"]["val_episode_ids"])
    episodes, _ = load_episodes(cfg.data, 32)
    fresh = {episodes[i].episode_id for i in split_episodes(episodes, 0.25, 1)[1]}
    assert {v for v in val if "OtherBot" not in v} == base_val != {v for v in fresh if "OtherBot" not in v}
    assert sum("OtherBot" in v for v in val) == 2  # a quarter of the new pair's 8
