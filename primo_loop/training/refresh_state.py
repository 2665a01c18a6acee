"""Saving and restoring online critic refresh (:class:`~primo_loop.training.online.CriticRefresher`): its state
next to each checkpoint of a run, and the refreshed critic as a compact-critic checkpoint folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class RefresherState:
    """Mixin of :class:`~primo_loop.training.online.CriticRefresher`: ``state_dict``/``save``/``load``/``export``.
    It reads the refresher's attributes (config, episodes, the buffer map, counters, critic, optimizer)."""

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config.as_dict(), "episodes": self.episodes, "slot_episode": self.slot_episode,
                "slot_step": self.slot_step, "slot_shaping": self.slot_shaping, "refreshes": self.refreshes,
                "next_refresh": self.next_refresh, "relabelled": self.relabelled, "history": self.history,
                "stale_running": self._stale_running, "pending": self._pending,
                "critic": {k: v.detach().clone() for k, v in self.critic.model.state_dict().items()},
                "optimizer": None if self._optimizer is None else self._optimizer.state_dict()}

    def save(self, path: str | Path) -> None:
        """Write the state atomically (a kill while saving leaves the previous file)."""
        import torch

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)

    def load(self, path: str | Path) -> None:
        """Restore a saved state: the stored episodes, the buffer map and the refreshed critic's weights."""
        import torch

        s = torch.load(path, map_location="cpu", weights_only=False)
        n = min(len(s["slot_episode"]), len(self.slot_episode))  # a resumed run may have a larger buffer
        self.episodes = s["episodes"]
        self.slot_episode[:n], self.slot_step[:n], self.slot_shaping[:n] = (
            s["slot_episode"][:n], s["slot_step"][:n], s["slot_shaping"][:n])
        self.refreshes, self.next_refresh, self.relabelled = s["refreshes"], s["next_refresh"], s["relabelled"]
        self.history = list(s["history"])
        # episodes running when the state was saved will never finish: nothing waits for them
        self._pending = set(s["pending"]) & set(self.episodes)
        self._stale_running = set()
        self.critic.model.load_state_dict(s["critic"])
        self.critic.weights_changed()
        if s.get("optimizer") is not None:
            self._optimizer = torch.optim.AdamW(self.critic.model.parameters(), lr=self.config.lr,
                                                weight_decay=self.config.weight_decay)
            self._optimizer.load_state_dict(s["optimizer"])

    def export(self, folder: str | Path, **provenance: Any) -> Path:
        """Save the refreshed critic as a compact-critic checkpoint folder (``make_critic("compact",
        checkpoint=folder)``, ``scripts/eval_critic.py --checkpoint folder``)."""
        import dataclasses

        from primo_loop.critics.compact import save_checkpoint

        info = {**self.critic.config.train_info, "online_refresh": {
            "refreshes": self.refreshes, "episodes": len(self.episodes), "config": self.config.as_dict(),
            **provenance}}
        config = dataclasses.replace(self.critic.config, train_info=info)
        return save_checkpoint(folder, config, self.critic.model.state_dict())
