"""The policy families' `policy` sections of the manifest, and the package format's list of them (POLICY_SECTIONS).

Each says which chunking its runner accepts (`check_chunking`, beyond the generic rules) and which graphs, with
which tensor names and shapes, its runner feeds and reads (`graph_io`); a new family adds its section here and to
POLICY_SECTIONS (the runtime's family table, edge/runtime/policies/__init__.py, pairs each with its runner), a new
field goes into its section (and into edge/runtime/migrate.py if older packages lack it). Diffusion's noise schedule
is part of the format too: SchedulerConfig and the sampler names are defined here, and the runtime's numpy
schedulers (edge/runtime/schedulers.py) implement them, so the format depends on no sampler's numerics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from calibration.strict_files import brief
from edge.errors import OptionError, PackageError
from edge.runtime.package.fields import check_finite, field_ref
from edge.runtime.package.manifest import Chunking, Dim, GraphIO, Manifest

SAMPLERS = ("ddim", "ddpm", "dpmsolver++", "unipc")  # edge/runtime/schedulers.py has one scheduler for each
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample")
TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")


@dataclass
class SchedulerConfig:
    """The training-time noise schedule (from the checkpoint) plus diffusers' defaults LeRobot leaves alone."""

    num_train_timesteps: int
    beta_start: float
    beta_end: float
    beta_schedule: str
    prediction_type: str
    clip_sample: bool
    clip_sample_range: float
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    timestep_spacing: str = "leading"
    variance_type: str = "fixed_small"

    def __post_init__(self) -> None:
        for name, value, allowed in (("beta_schedule", self.beta_schedule, BETA_SCHEDULES),
                                     ("prediction_type", self.prediction_type, PREDICTION_TYPES),
                                     ("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS),
                                     ("variance_type", self.variance_type, ("fixed_small",))):
            if value not in allowed:
                raise OptionError(f"scheduler {name} {value!r} is not supported (supported: {list(allowed)})")
        if self.num_train_timesteps < 1:
            raise OptionError(f"num_train_timesteps must be >= 1, got {self.num_train_timesteps}")


@dataclass
class ACTSection:
    """ACT's `policy` section: empty, its chunking (and temporal ensembling) lives in `chunking`."""

    def check_chunking(self, c: Chunking) -> None:
        if c.n_obs_steps != 1:
            raise PackageError(f"{field_ref('chunking.n_obs_steps')} is {c.n_obs_steps}; ACT observes one step")
        if c.temporal_ensemble_coeff is not None and c.n_action_steps != 1:
            raise PackageError(f"{field_ref('chunking.n_action_steps')} is {c.n_action_steps}; with temporal ensembling "
                               "a new chunk is computed every step, so it must be 1 (as LeRobot requires)")

    def graph_io(self, m: Manifest) -> GraphIO:
        chunk = [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]
        return {"act": ({inp.name: [1, *feature_dims(m, i)] for i, inp in enumerate(m.inputs)}, {"action": chunk})}


@dataclass
class FusedGraph:
    """A graph running a whole sampler loop (`denoise_<K>`): which sampler at how many steps."""

    sampler: str
    num_inference_steps: int


@dataclass
class DiffusionSection:
    """Diffusion Policy's `policy` section: the default sampler and K, the training noise schedule, fused graphs."""

    sampler: str
    num_inference_steps: int
    scheduler: SchedulerConfig
    fused_graphs: dict[str, FusedGraph] = field(default_factory=dict)

    def check_chunking(self, c: Chunking) -> None:
        not_ensembled(c, "Diffusion Policy")
        if c.n_obs_steps - 1 + c.n_action_steps > c.chunk_size:
            raise PackageError(f"{field_ref('chunking')}: n_obs_steps - 1 + n_action_steps = "
                               f"{c.n_obs_steps - 1 + c.n_action_steps} exceeds chunk_size (horizon) {c.chunk_size}")

    def graph_io(self, m: Manifest) -> GraphIO:
        if self.sampler not in SAMPLERS:
            raise PackageError(f"{field_ref('policy.sampler')} is {brief(self.sampler)}; known samplers {list(SAMPLERS)}")
        n_train = self.scheduler.num_train_timesteps
        if not 1 <= self.num_inference_steps <= n_train:
            raise PackageError(f"{field_ref('policy.num_inference_steps')} is {self.num_inference_steps}; it must be in "
                               f"1..{n_train} (policy.scheduler.num_train_timesteps)")
        for name, f in self.fused_graphs.items():
            if f.sampler != "ddim" or not 1 <= f.num_inference_steps <= n_train:
                raise PackageError(f"{field_ref(f'policy.fused_graphs.{name}')} is {f.sampler} with "
                                   f"{f.num_inference_steps} steps; fused graphs run DDIM with 1..{n_train} steps")
        for key in ("beta_start", "beta_end"):
            check_finite(getattr(self.scheduler, key), f"policy.scheduler.{key}", positive=True, below=1.0)
        check_finite(self.scheduler.clip_sample_range, "policy.scheduler.clip_sample_range", positive=True)
        chunk = [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]
        steps = (m.chunking.n_obs_steps, "chunking.n_obs_steps")
        cond = [1, "global_cond_dim"]
        graphs = {
            "obs_encoder": ({inp.name: [1, steps, *feature_dims(m, i)] for i, inp in enumerate(m.inputs)},
                            {"global_cond": cond}),
            "denoiser": ({"sample": chunk, "timestep": [1], "global_cond": cond}, {"model_output": chunk}),
        }
        graphs.update({name: ({"noise": chunk, "global_cond": cond}, {"action": chunk}) for name in self.fused_graphs})
        return graphs


@dataclass
class VQBeTSection:
    """VQ-BeT's `policy` section: codebook size, softmax temperature, secondary-code mode, the camera it encodes."""

    codebook_size: int
    bet_softmax_temperature: float
    sequentially_select: bool
    image_feature: str

    def check_chunking(self, c: Chunking) -> None:
        not_ensembled(c, "VQ-BeT")
        if c.n_action_steps != c.chunk_size:
            raise PackageError(f"{field_ref('chunking.n_action_steps')} is {c.n_action_steps}; VQ-BeT queues its whole "
                               f"chunk, so it must equal chunk_size ({c.chunk_size})")

    def graph_io(self, m: Manifest) -> GraphIO:
        if self.codebook_size < 1:
            raise PackageError(f"{field_ref('policy.codebook_size')} is {self.codebook_size}; it must be >= 1")
        check_finite(self.bet_softmax_temperature, "policy.bet_softmax_temperature", positive=True)
        kinds = [inp.kind for inp in m.inputs]
        images = [i for i, inp in enumerate(m.inputs) if inp.name == self.image_feature and inp.kind == "image"]
        if sorted(kinds) != ["image", "state"] or not images:
            raise PackageError(f"{field_ref('policy.image_feature')} is {brief(self.image_feature)}; VQ-BeT takes one state "
                               f"input and that image, the manifest's inputs are "
                               f"{[(inp.name, inp.kind) for inp in m.inputs]}")
        state = kinds.index("state")
        codes = (m.chunking.chunk_size * m.action.dim, "chunking.chunk_size x action.dim")
        book = (self.codebook_size, "policy.codebook_size")
        layers: Dim = ((2, "policy.sequentially_select (primary + secondary)") if self.sequentially_select
                       else "rvq_layers")
        steps = (m.chunking.n_obs_steps, "chunking.n_obs_steps")
        window = {m.inputs[state].name: [1, steps, *feature_dims(m, state)],
                  "image_features": [1, steps, "image_features"]}
        offsets = [1, layers, book, codes]
        graphs = {
            "encoder": ({self.image_feature: [1, *feature_dims(m, images[0])]},
                        {"image_features": [1, "image_features"]}),
            "decode": ({"codes": [1, layers, book], "offsets": offsets},
                       {"action": [1, (m.chunking.chunk_size, "chunking.chunk_size"), (m.action.dim, "action.dim")]}),
        }
        if self.sequentially_select:
            graphs["policy"] = (window, {"primary_logits": [1, book], "features": [1, "gpt_features"],
                                         "offsets": offsets})
            graphs["secondary"] = ({"features": [1, "gpt_features"], "primary_code": [1, book]},
                                   {"secondary_logits": [1, book]})
        else:
            graphs["policy"] = (window, {"logits": [1, layers, book], "offsets": offsets})
        return graphs


POLICY_SECTIONS: dict[str, type] = {"act": ACTSection, "diffusion": DiffusionSection, "vqbet": VQBeTSection}


def feature_dims(m: Manifest, i: int) -> list[Dim]:
    """Input i as a graph sees it (normalised, channels first for images), each dim tied to its manifest field."""
    inp = m.inputs[i]
    dims = [(d, f"inputs[{i}].shape[{k}]") for k, d in enumerate(inp.shape)]
    return [3, dims[0], dims[1]] if inp.kind == "image" else dims


def not_ensembled(c: Chunking, family: str) -> None:
    """Refuse temporal ensembling for a family that does not ensemble."""
    if c.temporal_ensemble_coeff is not None:
        raise PackageError(f"{field_ref('chunking.temporal_ensemble_coeff')} is {c.temporal_ensemble_coeff}; "
                           f"{family} does not ensemble (only ACT does)")
