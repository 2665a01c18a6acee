"""Output folders are never clobbered, and a failed run leaves nothing behind (primo_loop.outputs)."""
from __future__ import annotations

import pytest

from primo_loop.errors import ConfigError
from primo_loop.outputs import output_folder, removed_on_failure, write_text_atomic


def _fill(folder, name="old.txt", text="old"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_a_new_folder_is_made_and_a_failed_run_removes_it_and_its_parents(tmp_path):
    with output_folder(tmp_path / "a" / "b") as out:
        (out / "x.txt").write_text("x")
    assert (tmp_path / "a" / "b" / "x.txt").read_text() == "x"
    with pytest.raises(RuntimeError):
        with output_folder(tmp_path / "new" / "deep" / "run") as out:
            (out / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


def test_a_non_empty_folder_is_refused_without_a_flag(tmp_path):
    _fill(tmp_path / "run")
    with pytest.raises(ConfigError, match="exists and is not empty; pass --overwrite to replace it, or a new --out"):
        with output_folder(tmp_path / "run"):
            pass
    with pytest.raises(ConfigError, match="--resume to continue it"):
        with output_folder(tmp_path / "run", can_resume=True):
            pass
    with pytest.raises(ConfigError, match="no meaning"):
        with output_folder(tmp_path / "run", resume=True):
            pass
    with pytest.raises(ConfigError, match="at most one"):
        with output_folder(tmp_path / "run", resume=True, overwrite=True, can_resume=True):
            pass
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        with output_folder(tmp_path / "file"):
            pass
    assert (tmp_path / "run" / "old.txt").read_text() == "old"


def test_overwrite_replaces_on_success_and_restores_on_failure(tmp_path):
    run = tmp_path / "run"
    _fill(run)
    with pytest.raises(RuntimeError):
        with output_folder(run, overwrite=True) as out:
            assert not (out / "old.txt").exists()  # the run starts from an empty folder
            (out / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in run.iterdir()] == ["old.txt"]
    with output_folder(run, overwrite=True) as out:
        (out / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and [p.name for p in run.iterdir()] == ["new.txt"]


def test_resume_keeps_the_folder_even_when_the_run_fails(tmp_path):
    run = tmp_path / "run"
    _fill(run)
    with pytest.raises(RuntimeError):
        with output_folder(run, resume=True, can_resume=True) as out:
            (out / "more.txt").write_text("more")
            raise RuntimeError("boom")
    assert sorted(p.name for p in run.iterdir()) == ["more.txt", "old.txt"]


def test_an_empty_folder_is_used_and_emptied_again_on_failure_and_ctrl_c_keeps_what_was_saved(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(RuntimeError):
        with output_folder(run) as out:
            (out / "sub").mkdir()
            (out / "sub" / "f").write_text("")
            raise RuntimeError("boom")
    assert run.is_dir() and not any(run.iterdir())
    with pytest.raises(KeyboardInterrupt):
        with output_folder(run) as out:
            (out / "saved.txt").write_text("saved")
            raise KeyboardInterrupt
    assert (run / "saved.txt").is_file()


def test_overwrite_refuses_the_working_folder(tmp_path, monkeypatch):
    _fill(tmp_path / "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ConfigError, match="working folder"):
        with output_folder(".", overwrite=True):
            pass
    assert (tmp_path / "cwd" / "old.txt").is_file()


def test_removed_on_failure_removes_only_new_paths(tmp_path):
    _fill(tmp_path / "media" / "ep0")
    new_ep, out = tmp_path / "media" / "ep1", tmp_path / "records.jsonl"
    with pytest.raises(RuntimeError):
        with removed_on_failure([tmp_path / "media", tmp_path / "media" / "ep0", new_ep, out]):
            _fill(new_ep)
            write_text_atomic(out, "{}\n")
            raise RuntimeError("boom")
    assert not new_ep.exists() and not out.exists() and (tmp_path / "media" / "ep0" / "old.txt").is_file()


def test_replaced_outputs_are_set_aside_and_restored_on_failure(tmp_path):
    _fill(tmp_path / "media" / "ep0", "t0010.mp4", "old clip")
    (tmp_path / "records.jsonl").write_text("old\n")
    outputs = [tmp_path / "records.jsonl", tmp_path / "media" / "ep0"]
    with pytest.raises(RuntimeError):
        with removed_on_failure([tmp_path / "media"], replace=outputs):
            assert not (tmp_path / "media" / "ep0").exists()  # the run writes into a clean place
            _fill(tmp_path / "media" / "ep0", "t0005.mp4", "new clip")
            raise RuntimeError("boom")
    assert [p.name for p in (tmp_path / "media" / "ep0").iterdir()] == ["t0010.mp4"]
    assert (tmp_path / "records.jsonl").read_text() == "old\n"
    with removed_on_failure([tmp_path / "media"], replace=outputs):
        _fill(tmp_path / "media" / "ep0", "t0005.mp4", "new clip")
        write_text_atomic(tmp_path / "records.jsonl", "new\n")
    assert [p.name for p in (tmp_path / "media" / "ep0").iterdir()] == ["t0005.mp4"]  # no stale old clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["media", "records.jsonl"]
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["ep0"]
