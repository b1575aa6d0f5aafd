"""`sequentially_select`: primary code first, secondary conditioned on it, on a small random checkpoint."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

import edge
from edge.runtime.package import load_package
from export.checkpoint import load_checkpoint
from export.families.vqbet import build_policy
from tests.vqbet.conftest import IMAGE, SEQUENTIAL_CONFIG, STATE

STEPS = 7


def observations(seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    image_shape = SEQUENTIAL_CONFIG["input_features"][IMAGE]["shape"]
    return [{STATE: rng.uniform(-2, 2, 4).astype(np.float32),
             IMAGE: rng.integers(0, 256, (image_shape[1], image_shape[2], 3), dtype=np.uint8)} for _ in range(STEPS)]


def greedy_chunk(policy, state: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """LeRobot's sequential head with arg-max codes, written out from the module's weights."""
    model, cfg = policy.vqbet, policy.config
    head = model.action_head
    x = model.query_features(state[None], model.rgb_encoder(image)[None])[0, cfg.n_obs_steps - 1]
    primary = int(head.map_to_cbet_preds_primary_bin(x).argmax())
    secondary_in = torch.cat([x, F.one_hot(torch.tensor(primary), cfg.vqvae_n_embed).float()])
    secondary = int(head.map_to_cbet_preds_secondary_bin(secondary_in).argmax())
    books = [layer._codebook.embed[0] for layer in head.vqvae_model.vq_layer.layers]
    offsets = head.map_to_cbet_preds_offset(x).view(2, cfg.vqvae_n_embed, cfg.action_chunk_size, cfg.action_dim)
    decoded = head.vqvae_model.decoder(books[0][primary] + books[1][secondary]).view(cfg.action_chunk_size, -1)
    return decoded + offsets[0, primary] + offsets[1, secondary]


def reference_chunks(checkpoint, obs: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Unnormalised greedy chunk at every step, each from the last n_obs_steps observations (first repeated)."""
    ckpt = load_checkpoint(checkpoint)
    _, policy = build_policy(ckpt)
    lo_s, hi_s = (np.array(ckpt.normalization[STATE].stats[k], np.float32) for k in ("min", "max"))
    lo_a, hi_a = (np.array(ckpt.normalization["action"].stats[k], np.float32) for k in ("min", "max"))
    states = [2 * (o[STATE] - lo_s) / (hi_s - lo_s) - 1 for o in obs]
    images = [o[IMAGE].transpose(2, 0, 1).astype(np.float32) / 255 for o in obs]
    n, chunks = policy.config.n_obs_steps, []
    for t in range(len(obs)):
        window = [max(0, s) for s in range(t - n + 1, t + 1)]
        with torch.no_grad():
            state, image = (torch.from_numpy(np.stack([seq[s] for s in window])) for seq in (states, images))
            chunk = greedy_chunk(policy, state, image).numpy()
            np.testing.assert_allclose(chunk, policy.predict_action_chunk(state[None], image[None], greedy=True)[0],
                                       atol=1e-6, rtol=0)
        chunks.append((chunk + 1) / 2 * (hi_a - lo_a) + lo_a)
    return chunks


def test_sequential_package_layout(sequential_package):
    m = load_package(sequential_package).manifest
    assert set(m.graphs) == {"encoder", "policy", "secondary", "decode"}
    assert [t.name for t in m.graphs["policy"].outputs] == ["primary_logits", "features", "offsets"]
    assert m.policy.sequentially_select is True and m.chunking.n_action_steps == 4


def test_sequential_greedy_matches_pytorch(sequential_checkpoint, sequential_package):
    obs = observations()
    expected = reference_chunks(sequential_checkpoint, obs)
    chunker = edge.load_policy(sequential_package, greedy=True)
    stepper = edge.load_policy(sequential_package, greedy=True)
    codes = set()
    for t, o in enumerate(obs):
        np.testing.assert_allclose(chunker.predict_action_chunk(o), expected[t], atol=1e-4, rtol=0)
        codes.add(tuple(chunker.last_codes))
        chunk_start = t - t % 4  # the queue of 4 actions is refilled at steps 0 and 4
        np.testing.assert_allclose(stepper.select_action(o), expected[chunk_start][t % 4], atol=1e-4, rtol=0)
    assert len(codes) > 1  # the observations do steer the code choice


def test_sequential_sampling_is_seeded(sequential_package):
    obs = observations(1)

    def codes(seed: int) -> list[tuple[int, ...]]:
        policy = edge.load_policy(sequential_package, seed=seed, temperature=5.0)
        out = []
        for o in obs:
            policy.predict_action_chunk(o)
            out.append(tuple(policy.last_codes))
        return out

    assert codes(3) == codes(3)
    assert len({tuple(codes(seed)) for seed in range(4)}) > 1
