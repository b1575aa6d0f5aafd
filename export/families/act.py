"""ACT family: one graph, normalised observations in, normalised (1, chunk_size, action_dim) chunk out."""

from __future__ import annotations

from torch import Tensor, nn

from edge.runtime.package import ACTSection, Chunking
from export.checkpoint import Checkpoint, load_strict
from export.config_fields import build_within_memory
from export.families.base import ExportOptions, FamilyExport, GraphExport, random_inputs
from export.models.act import ACTConfig, ACTPolicy


class ACTGraph(nn.Module):
    """Positional tensors in the manifest's input order → the chunk; latent z = 0, VAE encoder unused."""

    def __init__(self, policy: ACTPolicy, input_names: list[str]):
        super().__init__()
        self.policy = policy
        self.input_names = input_names

    def forward(self, *tensors: Tensor) -> Tensor:
        return self.policy.predict_action_chunk(dict(zip(self.input_names, tensors)))


def build_policy(ckpt: Checkpoint) -> tuple[ACTConfig, ACTPolicy]:
    """The LeRobot-compatible PyTorch ACT with the checkpoint's weights, in eval mode."""
    config = ACTConfig.from_dict(ckpt.config)
    policy = build_within_memory(lambda: ACTPolicy(config), "ACT")
    load_strict(policy, ckpt.state_dict)
    return config, policy.eval()


def build(ckpt: Checkpoint, options: ExportOptions) -> FamilyExport:
    config, policy = build_policy(ckpt)
    shapes = {f.name: (1, *f.shape) for f in ckpt.input_features}
    graph = GraphExport(
        name="act",
        module=ACTGraph(policy, list(shapes)),
        input_names=list(shapes),
        output_names=["action"],
        samples=random_inputs(shapes, options.samples, options.seed),
    )
    chunking = Chunking(chunk_size=config.chunk_size, n_action_steps=config.n_action_steps, n_obs_steps=1,
                        temporal_ensemble_coeff=config.temporal_ensemble_coeff)
    return FamilyExport(graphs=[graph], chunking=chunking, policy=ACTSection())

