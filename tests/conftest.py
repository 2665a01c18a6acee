"""Shared test setup: CPU rendering and single-threaded math (tiny models are 15x slower with 2 threads)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def load_script():
    """Import a script or benchmark (``"scripts/inspect_q.py"``) by its path from the repository root."""
    root = Path(__file__).resolve().parents[1]

    def load(relpath: str):
        path = root / relpath
        spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def lift_agent(tmp_path_factory):
    """A tiny SAC run on real Lift with position actions (40 steps; checkpoints at 20 and 40): a run folder of
    ``scripts/train_agent.py`` for the tests that load trained agents."""
    from policies.sb3 import AgentConfig, train

    run = tmp_path_factory.mktemp("agents") / "lift_sac"
    train(AgentConfig(env="Lift", algo="sac", reward="sparse", action="position", steps=40, workers=1, horizon=20,
                      eval_every=0, checkpoint_every=20, out=str(run), progress_bar=False,
                      algo_kwargs={"learning_starts": 30, "batch_size": 8, "policy_kwargs": {"net_arch": [8]}}))
    return run


#: Architecture of the tiny random compact critic the tests build (scores in milliseconds, learns in seconds).
TINY_COMPACT = dict(image_size=32, channels=(8, 16), dim=32, layers=1, heads=2, vocab_buckets=64)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A tiny random compact-critic checkpoint folder (seeded, built in under a second)."""
    import torch

    from primo_loop.critics.compact import CompactConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(CompactConfig(**TINY_COMPACT))
    model.eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), CompactConfig(**TINY_COMPACT), model.state_dict())


@pytest.fixture
def local_ray():
    """A local Ray with 2 CPUs for the tests of the Ray executor, started by the first test that needs it (a few
    seconds) and kept for the session (started again only after a test shut it down, as the simulated-cluster
    test does); returns the :class:`~primo_loop.executors.RayOptions` that reach it."""
    ray = pytest.importorskip("ray")
    from primo_loop.executors import RayOptions

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    return RayOptions("auto", max_retries=2)
