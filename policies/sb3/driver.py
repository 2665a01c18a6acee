"""The training driver: one readable path from an :class:`AgentConfig` to a trained agent (:func:`train`)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from policies.sb3.config import CRITIC_REWARDS, AgentConfig, algo_class
from policies.sb3.run_folder import (
    CHECKPOINT_PREFIX,
    check_resume_config,
    load_latest,
    prepare_out,
    read_eval,
    refresh_state_path,
    remove_failed_start,
    truncate_eval,
)
from policies.sb3.vec_envs import find_critic_wrapper, make_eval_env, make_vec_env
from primo_loop.errors import ConfigError

log = logging.getLogger(__name__)


def _refresher(cfg: AgentConfig, venv: Any, model: Any, resumed: bool):
    """The online critic refresher of a run, restored from the checkpoint the model was loaded from."""
    from primo_loop.critics.cascade import CascadeCritic
    from primo_loop.training.online import CriticRefresher
    from primo_loop.training.teacher_refresh import TeacherRefresher

    wrapper = find_critic_wrapper(venv)
    rb = model.replay_buffer
    # a cascade's student learns from its teacher's labels, any other critic from privileged state
    kind = TeacherRefresher if isinstance(wrapper.critic, CascadeCritic) else CriticRefresher
    refresher = kind(wrapper.critic, wrapper.trackers[0].config, cfg.refresh_config(),
                     buffer_size=rb.buffer_size, n_envs=rb.n_envs)
    if resumed:
        path = refresh_state_path(Path(cfg.out) / "checkpoints", model.num_timesteps)
        try:
            refresher.load(path)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a truncated torch file raises many kinds
            raise ConfigError(f"--resume: {path} does not load ({type(exc).__name__}: {exc}); it is truncated: "
                              "remove it with its checkpoint, or use --overwrite") from exc
        truncate_eval(Path(cfg.out) / "refresh.csv", model.num_timesteps)
        log.info("critic refresh state restored from %s (%d refreshes, %d episodes)", path.name,
                 refresher.refreshes, len(refresher.episodes))
    else:
        (Path(cfg.out) / "refresh.csv").unlink(missing_ok=True)
    wrapper.next_episode_id = max(wrapper.next_episode_id, refresher.next_episode_id)
    wrapper.episode_sink = refresher.add_episode
    return refresher


def _finished(out: Path, cfg: AgentConfig) -> dict[str, Any] | None:
    """The summary of a resumed run that already reached ``cfg.steps`` (None: there is training to do)."""
    done_path = out / "done.json"
    if not done_path.exists():
        return None
    try:
        summary = json.loads(done_path.read_text())
    except ValueError:
        summary = {}  # half-written: the run goes on and writes it again
    if summary.get("timesteps", 0) >= cfg.steps:
        log.info("%s already finished %d steps; nothing to do", out, summary["timesteps"])
        return summary
    # going on past an earlier budget: the file means "ended here", so it goes until this run ends
    done_path.unlink()
    return None


def _callbacks(cfg: AgentConfig, out: Path, venv: Any, model: Any, eval_env: Any, eval_t0: float) -> list:
    from policies.sb3.callbacks import (
        CriticRefreshCallback,
        CriticStatsCallback,
        EvalLog,
        PrunedCheckpoints,
        ResumableEval,
    )

    start = model.num_timesteps
    ckpt_dir = out / "checkpoints"
    callbacks = [CriticStatsCallback()]
    if cfg.tracker.async_critic and cfg.reward in CRITIC_REWARDS:
        from policies.sb3.deferred import DeferredRewardsCallback, check_model_buffers

        check_model_buffers(model)
        # first: a step's pending rewards are noted before any other callback runs
        callbacks.insert(0, DeferredRewardsCallback(find_critic_wrapper(venv)))
    if cfg.refresh.every:
        refresher = _refresher(cfg, venv, model, resumed=start > 0)
        callbacks.append(CriticRefreshCallback(
            refresher, out / "refresh.csv",
            max(1, cfg.checkpoint_every // cfg.workers) if cfg.checkpoint_every else 0, ckpt_dir))
    if cfg.checkpoint_every:
        callbacks.append(PrunedCheckpoints(save_freq=max(1, cfg.checkpoint_every // cfg.workers),
                                           save_path=str(ckpt_dir), name_prefix=CHECKPOINT_PREFIX,
                                           save_replay_buffer=cfg.algo == "sac", keep=cfg.keep_checkpoints))
    if eval_env is not None:
        eval_csv = out / "eval.csv"
        eval_freq = max(1, cfg.eval_every // cfg.workers)
        lost = (start > 0 and start % (eval_freq * cfg.workers) == 0
                and all(row["timesteps"] != start for row in read_eval(eval_csv)))
        callbacks.append(ResumableEval(eval_env, n_eval_episodes=cfg.eval_episodes, eval_freq=eval_freq,
                                       deterministic=True, callback_after_eval=EvalLog(eval_csv, eval_t0),
                                       verbose=0, evaluate_at_start=lost, seed=cfg.seed))  # only if learn() runs
    return callbacks


def _summary(model: Any, venv: Any, start: int, t0: float, t_learn: float, eval_csv: Path) -> dict[str, Any]:
    wrapper = find_critic_wrapper(venv)
    return {
        "timesteps": int(model.num_timesteps),
        "resumed_from": int(start),
        "wall_s": round(time.time() - t0, 1),
        "steps_per_s": (round((model.num_timesteps - start) / (time.time() - t_learn), 1)  # learning only
                        if model.num_timesteps > start else None),
        "eval": read_eval(eval_csv)[-1:] or None,
        "critic": None if wrapper is None else {
            "queries": sum(t.stats.queries for t in wrapper.trackers),
            "unreadable": sum(t.stats.unreadable for t in wrapper.trackers),
            "errors": sum(t.stats.errors for t in wrapper.trackers),
            "raised_batches": wrapper.raised_batches,
            "terminations": sum(t.stats.terminations for t in wrapper.trackers),
        },
    }


def train(cfg: AgentConfig, critic: Any | None = None) -> dict[str, Any]:
    """Train (or resume) an agent; returns the run summary also written to ``OUT/done.json``.

    An existing non-empty ``cfg.out`` is refused unless ``cfg.resume`` or ``cfg.overwrite``; a run that fails
    before its first checkpoint removes the folder it created.

    Args:
        cfg: the run's config.
        critic: a critic instance to use instead of building one by name (tests inject fakes).
    """
    import torch

    torch.set_num_threads(1)
    if cfg.resume and Path(cfg.out).is_dir():
        check_resume_config(Path(cfg.out), cfg)
        summary = _finished(Path(cfg.out), cfg)
        if summary is not None:
            return summary
    out, created = prepare_out(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite)
    try:
        return _train(cfg, critic, out)
    except BaseException:
        if created:
            remove_failed_start(out)
        raise


def _train(cfg: AgentConfig, critic: Any, out: Path) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.utils import set_random_seed

    from primo_loop.outputs import write_text_atomic

    eval_csv = out / "eval.csv"
    set_random_seed(cfg.seed)
    venv = make_vec_env(cfg, critic)
    eval_env = None
    try:
        eval_env = make_eval_env(cfg) if cfg.eval_every else None
        model = load_latest(cfg, venv, algo_class(cfg.algo)) if cfg.resume else None
        t0 = eval_t0 = time.time()
        if model is None:
            if cfg.resume:
                log.info("no checkpoint in %s; starting from scratch", out / "checkpoints")
            eval_csv.unlink(missing_ok=True)
            model = algo_class(cfg.algo)("MlpPolicy", venv, seed=cfg.seed, device=cfg.device,
                                         tensorboard_log=str(out / "tb"), verbose=0, **cfg.hyperparameters())
        else:
            truncate_eval(eval_csv, model.num_timesteps)
            # wall_s in eval.csv goes on from where the kept rows left it, not from zero at every resume
            eval_t0 -= max((row.get("wall_s", 0.0) for row in read_eval(eval_csv)), default=0.0)
            if cfg.demo_episodes and model.num_timesteps > 0:  # the buffer already holds the demonstrations
                venv.env_method("end_warmup")
        # written once the run can start: a refused resume leaves the run's record as it was
        write_text_atomic(out / "config.json", json.dumps(cfg.as_dict(), indent=2, default=str))
        start = model.num_timesteps
        callbacks = _callbacks(cfg, out, venv, model, eval_env, eval_t0)
        remaining = cfg.steps - start
        t_learn = time.time()
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=CallbackList(callbacks), reset_num_timesteps=start == 0,
                        tb_log_name=f"{cfg.algo}_{cfg.reward}", progress_bar=cfg.progress_bar)
        model.save(out / "final_model.zip")
        if cfg.algo == "sac":
            model.save_replay_buffer(out / "final_replay_buffer.pkl")
        summary = _summary(model, venv, start, t0, t_learn, eval_csv)
        write_text_atomic(out / "done.json", json.dumps(summary, indent=2))
        return summary
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()
