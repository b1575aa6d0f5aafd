"""ACT and Diffusion trainers: short smoke runs (loss falls, checkpoint exports and runs), ACT's padding mask."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import edge
from edge.sim import ReachEnv, TaskConfig, sample_scene
from export.families.base import ExportOptions
from export.models.act import ACTConfig, ACTPolicy
from export.pipeline import export_package
from export.train import act, diffusion
from export.train.common import normalize_batch
from export.train.dataset import ACTION, generate, statistics, windows

STEPS = 30


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return generate(20, seed=3)


def logged_losses(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"loss ([0-9.]+)", text)]


@pytest.mark.parametrize("family", [act, diffusion], ids=["act", "diffusion"])
def test_smoke_train_export_run(family, data, tmp_path, capsys):
    torch.set_num_threads(1)
    ckpt = family.train_policy(data, tmp_path / "pretrained_model", seed=0, steps=STEPS)
    losses = logged_losses(capsys.readouterr().err)
    assert len(losses) >= 4 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses

    pkg = tmp_path / "pkg"
    export_package(ckpt, pkg, ExportOptions(samples=1), force=True, progress=lambda _msg: None)
    policy = edge.load_policy(pkg)
    env = ReachEnv(TaskConfig())
    env.reset(sample_scene(np.random.default_rng(0)))
    policy.reset()
    for _ in range(12):  # past the first chunk: a refill from the queue's second chunk too
        action = policy.select_action(env.observation())
        assert action.shape == (6,) and np.all(np.isfinite(action))
        env.step(action)


def act_batch(data, config, seed=0):
    rng = np.random.default_rng(seed)
    episode_ends = np.flatnonzero(np.diff(data["episode_index"])) + 1
    frames = np.concatenate([episode_ends[:4] - 3, rng.integers(0, len(data[ACTION]), 4)])  # near the ends: padding
    raw = windows(data, frames, range(0, 1), range(0, config["chunk_size"]))
    return raw, act.squeeze_obs(normalize_batch(raw, statistics(data), config["normalization_mapping"]))


def test_act_l1_ignores_padded_actions(data):
    config = act.config_dict()
    torch.manual_seed(0)
    policy = ACTPolicy(ACTConfig.from_dict(config)).train()
    _, batch = act_batch(data, config)
    pad = batch["action_is_pad"]
    assert pad.any() and (~pad).any()

    def loss(b):
        torch.manual_seed(1)  # same dropout masks and latent sample for every call
        return act.act_loss(policy, b)

    base, info = loss(batch)
    changed = dict(batch, action=torch.where(pad.unsqueeze(-1), batch[ACTION] + 50.0, batch[ACTION]))
    moved, _ = loss(changed)
    assert torch.allclose(base, moved, rtol=0, atol=1e-5)  # neither the L1 nor the VAE encoder sees pads
    real = dict(batch, action=torch.where(pad.unsqueeze(-1), batch[ACTION], batch[ACTION] + 0.5))
    assert not torch.allclose(base, loss(real)[0])

    # The L1 term by hand: mean over all (B, T, D) entries of |a - â| with padded steps zeroed.
    torch.manual_seed(1)
    actions_hat, (mu, log_sigma_x2) = policy.model(batch)
    a, p = batch[ACTION].numpy(), pad.numpy()
    diff = np.abs(a - actions_hat.detach().numpy()) * ~p[..., None]
    assert info["l1_loss"] == pytest.approx(diff.sum() / a.size, rel=1e-5)
    kld = 0.5 * (mu.pow(2) + log_sigma_x2.exp() - 1 - log_sigma_x2).sum(-1).mean()
    assert base.item() == pytest.approx(info["l1_loss"] + 10.0 * kld.item(), rel=1e-5)


def test_diffusion_noising_matches_the_schedule():
    config = diffusion.config_dict()
    from export.models.diffusion import DiffusionConfig

    acp = diffusion.schedule_alphas_cumprod(DiffusionConfig.from_dict(config))
    assert acp.shape == (100,) and acp[0] > 0.99 and acp[-1] < 1e-3 and torch.all(acp[1:] < acp[:-1])
    x, eps = torch.ones(2, 16, 6), torch.zeros(2, 16, 6)
    noisy = diffusion.add_noise(acp, x, eps, torch.tensor([0, 99]))
    assert torch.allclose(noisy[0], acp[0].sqrt() * x[0]) and torch.allclose(noisy[1], acp[99].sqrt() * x[1])
