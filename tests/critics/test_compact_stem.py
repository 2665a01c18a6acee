"""The compact critic's first conv layer (``CompactConfig.stem``): the 5x5 stride-2 layer of every checkpoint made
before the field existed, or 4x4 patches at stride 4 (about a third of the cost per frame, so two views fit the
3 ms budget at batch 8: benchmarks/compact_critic.py --stem)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from primo_loop.critics import make_critic  # noqa: E402
from primo_loop.critics.compact import (  # noqa: E402
    SHIPPED,
    CompactConfig,
    build_model,
    inference_encoder,
    save_checkpoint,
)
from primo_loop.errors import ConfigError  # noqa: E402
from primo_loop.types import CriticQuery  # noqa: E402

TWO = ("agentview", "robot0_eye_in_hand")


def test_a_checkpoint_without_the_field_keeps_its_5x5_stride_2_layer():
    saved = json.loads((SHIPPED["hardened"] / "config.json").read_text())
    assert "stem" not in saved  # made before the field existed
    critic = make_critic("compact", checkpoint="hardened")
    assert critic.config.stem == "conv"
    conv = critic.model.encoder.convs[0]
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2)


@pytest.mark.parametrize("views", [(), TWO])
def test_patch_stem_maps_each_view_to_a_quarter_side_in_one_layer(views, tmp_path):
    cfg = CompactConfig(image_size=32, channels=(8, 16), stem="patch", dim=32, layers=1, heads=2, vocab_buckets=64,
                        views=views)
    assert cfg.downsample == 8
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    conv = model.encoder.convs[0]
    assert conv.kernel_size == (4, 4) and conv.stride == (4, 4) and conv.padding == (0, 0)
    # the flattened last map is 16 channels of 4 x 4
    assert model.encoder.proj[1].in_features == 16 * 4 * 4
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 32, 32 * max(1, len(views)), 3), np.uint8))
    with torch.inference_mode():
        assert torch.allclose(inference_encoder(model)(x), model.encoder(x), atol=1e-5)  # BatchNorm folds
    folder = save_checkpoint(tmp_path / "ckpt", cfg, model.state_dict())
    assert json.loads((folder / "config.json").read_text())["stem"] == "patch"
    critic = make_critic("compact", checkpoint=str(folder))
    assert critic.config.stem == "patch" and critic.config.views == views
    frames = np.random.default_rng(1).integers(0, 255, (5, 64, 64 * max(1, len(views)), 3), np.uint8)
    (v,) = critic.assess([CriticQuery("lift the cube", frames[0], frames, frames[-1], step=4, views=views)])
    assert 0.0 <= v.progress <= 1.0 and 0.0 <= v.failure_prob <= 1.0


def test_bad_stems_and_sizes_are_refused_with_the_stride():
    with pytest.raises(ConfigError, match="stem.*'conv', 'patch'.*'pool'"):
        CompactConfig(stem="pool")
    # 4 layers after a patch stem divide the side by 32: 48 px does not divide
    with pytest.raises(ConfigError, match="divisible by 32.*stem 'patch'.*48"):
        CompactConfig(image_size=48, stem="patch")
    assert CompactConfig(image_size=48).downsample == 16  # the conv stem divides by 16 with 4 layers


def test_train_critic_flag_sets_the_stem(tmp_path, capsys):
    from primo_loop.data.synthetic import make_dataset
    from primo_loop.training.compact import main

    make_dataset(tmp_path / "d", n_episodes=6, seed=0, image_size=32, n_steps=20, frame_every=5)
    assert main(["--data", str(tmp_path / "d"), "--out", str(tmp_path / "c"), "--epochs", "1", "--image-size", "32",
                 "--channels", "8", "16", "--stem", "patch", "--dim", "32", "--layers", "1", "--heads", "2",
                 "--val-fraction", "0.34", "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "c" / "config.json").read_text())["stem"] == "patch"
