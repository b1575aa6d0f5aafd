"""VQ-BeT trainer: a seconds-long smoke run of both phases → export → edge runner, and the loss pieces
checked against formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from export.train import vqbet
from export.train.dataset import generate

TINY = {
    "n_obs_steps": 2,
    "n_action_pred_token": 2,
    "action_chunk_size": 4,
    "spatial_softmax_num_keypoints": 8,
    "vqvae_n_embed": 8,
    "vqvae_embedding_dim": 8,
    "vqvae_enc_hidden_dim": 32,
    "gpt_block_size": 16,
    "gpt_input_dim": 32,
    "gpt_output_dim": 32,
    "gpt_n_layer": 1,
    "gpt_n_head": 2,
    "gpt_hidden_dim": 32,
    "scheduler_warmup_steps": 2,
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _first_last(losses: list[float], n: int = 5) -> tuple[float, float]:
    return float(np.mean(losses[:n])), float(np.mean(losses[-n:]))


def test_smoke_train_export_run(tmp_path):
    from edge import load_policy
    from edge.sim import ReachEnv, sample_scene
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    data = generate(8, seed=0, images=True)
    history: dict = {}
    ckpt = vqbet.train_policy(data, tmp_path / "pretrained_model", seed=0, steps=24, vqvae_steps=40,
                              batch_size=8, config=vqbet.make_config(**TINY), history=history)
    for phase in ("vqvae", "bet"):
        assert all(math.isfinite(x) for x in history[phase]), phase
        first, last = _first_last(history[phase])
        assert last < first, (phase, first, last)

    pkg = tmp_path / "pkg"
    export_package(ckpt, pkg, ExportOptions(samples=2), force=True)
    env = ReachEnv()
    for greedy in (False, True):
        runner = load_policy(pkg, greedy=greedy, seed=0)
        runner.reset()
        env.reset(sample_scene(np.random.default_rng(3)))
        for _ in range(6):  # more than one chunk
            action = np.asarray(runner.select_action(env.observation(with_image=True)))
            assert action.shape == (6,) and np.all(np.isfinite(action))
            env.step(action)


def test_vqvae_phase_freezes_codebooks(tmp_path):
    config = vqbet.make_config(**TINY)
    data = generate(4, seed=1, images=False)
    policy = vqbet.build_model(config)
    stats = {k: v for k, v in vqbet.statistics(data).items() if k in ("observation.state", "action")}
    vqvae = policy.vqbet.action_head.vqvae_model
    before = vqvae.vq_layer.codebooks.clone()
    vqbet.train_vqvae(policy, config, data, stats, steps=5, batch_size=8)
    assert not torch.equal(before, vqvae.vq_layer.codebooks)  # EMA updates happened
    assert bool(vqvae.discretized) and bool(vqvae.vq_layer.freeze_codebook)


def test_focal_loss_matches_formula():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((13, 7)) * 3
    target = rng.integers(0, 7, 13)
    for gamma in (0.0, 2.0):
        expected = 0.0
        for row, y in zip(logits, target):
            p = math.exp(row[y]) / sum(math.exp(v) for v in row)
            expected += -((1 - p) ** gamma) * math.log(p)
        expected /= len(target)
        got = vqbet.focal_loss(torch.tensor(logits), torch.tensor(target), gamma=gamma)
        assert float(got) == pytest.approx(expected, rel=1e-9)


def test_rvq_codes_are_nearest_residual_codes():
    torch.manual_seed(0)
    policy = vqbet.build_model(vqbet.make_config(**TINY))
    vq = policy.vqbet.action_head.vqvae_model.vq_layer
    x = torch.randn(20, TINY["vqvae_embedding_dim"])
    quantized, codes, commit = vqbet.rvq(vq, x, update=False)
    books = vq.codebooks.numpy().astype(np.float64)
    residual = x.numpy().astype(np.float64)
    total = np.zeros_like(residual)
    for layer in range(books.shape[0]):
        nearest = np.argmin(((residual[:, None, :] - books[layer][None]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(codes[:, layer].numpy(), nearest)
        chosen = books[layer][nearest]
        assert float(commit[layer]) == pytest.approx(((chosen - residual) ** 2).mean(), rel=1e-5)
        total += chosen
        residual = residual - chosen
    np.testing.assert_allclose(quantized.detach().numpy(), total, atol=1e-5)  # straight-through value = codes
