"""What a collected episode's meta records about the look it was shown in, beyond the collection settings: the
appearance's name and the episode's drawn look (the library versions: :mod:`primo_loop.data.versions`).

The library knows no simulator: a look is whatever the env reports. An env built for an appearance other than
``"nominal"`` exposes ``appearance`` (the name) and ``look`` (an object with ``to_dict()``, set at each reset);
``envs.adapter.RobosuiteEnv`` does (``envs/appearance.py``).
"""
from __future__ import annotations

from typing import Any

from primo_loop.errors import ConfigError, check_choice

#: Collection appearances: robosuite's own look, or a look per episode from the training or the held-out split.
APPEARANCES: tuple[str, ...] = ("nominal", "train", "heldout")


def check_appearance(appearance: str | None, synthetic: bool = False) -> str:
    """``appearance`` checked (None: "nominal"); the synthetic scene has only the nominal look.

    Raises:
        UnknownNameError: not one of ``APPEARANCES`` (lists them and the closest).
        ConfigError: a randomised appearance asked of the synthetic scene.
    """
    if appearance is None:
        return "nominal"
    if not isinstance(appearance, str):
        raise ConfigError(f"Expected `appearance` to be one of {list(APPEARANCES)} or None, actually: {appearance!r}")
    appearance = check_choice("appearance", appearance, APPEARANCES)
    if synthetic and appearance != "nominal":
        raise ConfigError(f"Expected appearance 'nominal' in the synthetic scene (it has no looks), actually: "
                          f"{appearance!r}; collect from robosuite, or drop the appearance")
    return appearance


def appearance_meta(env: Any, appearance: str) -> dict[str, Any]:
    """``{"appearance": ..., "look": ...}`` for an episode just rolled out in ``env``, collected for ``appearance``.

    Raises:
        ConfigError: the env shows another appearance than the one asked for (an env factory that ignored it).
    """
    shown = getattr(env, "appearance", None) or "nominal"
    if shown != appearance:
        raise ConfigError(f"Expected the env to show appearance {appearance!r}, actually: {shown!r}; the env "
                          f"factory must pass CollectConfig.appearance to the env (policies.specs.collect_env does)")
    look = getattr(env, "look", None)
    return {"appearance": appearance, "look": None if look is None else look.to_dict()}
