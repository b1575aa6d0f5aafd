"""Check a raw observation against the package's inputs and turn it into normalised graph tensors.

The robot hands over a dict keyed by LeRobot feature names: states as real numeric arrays (cast to
float32), images as uint8 HWC exactly as the camera delivers them. `check` runs on every call of every
runner, before anything else: it refuses a wrong key, type, shape or dtype and a non-finite value
(ObservationError naming the feature), and counts, without refusing, state values far outside the
training statistics (`out_of_distribution`, one warning per feature until `reset`). `normalize` does
LeRobot's /255, channel-first and normalisation.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

import numpy as np

from edge.errors import ObservationError, OptionError
from edge.runtime.normalize import Normalizer
from edge.runtime.package import ObservationInput
from edge.runtime.package.manifest import Manifest

log = logging.getLogger("edge.runtime.observation")
DEFAULT_OOD_MARGIN = 3.0  # standard deviations beyond the training range


def ood_bounds(inp: ObservationInput, margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """[lo, hi] per element: `margin` standard deviations beyond the training min/max (the mean when no min/max
    was recorded; the range stands in for a missing std). None when the statistics cannot say (no stats, images)."""
    stats = inp.normalization.stats
    if inp.kind == "image":
        return None
    lo = stats.get("min", stats.get("mean"))
    hi = stats.get("max", stats.get("mean"))
    if lo is None or hi is None:
        return None
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    spread = np.asarray(stats["std"], np.float64) if "std" in stats else hi - lo
    shape = tuple(inp.shape)
    return (lo - margin * spread).reshape(shape), (hi + margin * spread).reshape(shape)


class ObservationProcessor:
    """Checks observations (`check`), normalises them (`normalize`); `__call__` does both.

    `ood_margin`: how many standard deviations beyond the training min/max a state value may lie before
    it counts as out of distribution (default 3). `element_names`: per feature, the name of each element (the
    dataset's `shoulder_pan.pos`, ...), so the warning names the joint.
    """

    def __init__(self, inputs: list[ObservationInput], ood_margin: float = DEFAULT_OOD_MARGIN,
                 element_names: Mapping[str, list[str]] | None = None):
        if isinstance(ood_margin, bool) or not isinstance(ood_margin, (int, float)) or not math.isfinite(ood_margin) \
                or ood_margin < 0:
            raise OptionError(f"ood_margin must be a finite number >= 0 (standard deviations), got {ood_margin!r}")
        self.inputs = inputs
        self.expected = [inp.name for inp in inputs]
        self._norm = {inp.name: Normalizer(inp.normalization, (3, 1, 1) if inp.kind == "image" else tuple(inp.shape))
                      for inp in inputs}
        self._bounds = {inp.name: b for inp in inputs if (b := ood_bounds(inp, float(ood_margin))) is not None}
        self.counts = dict.fromkeys(self._bounds, 0)  # observations with a value out of distribution, per feature
        self._warned: set[str] = set()
        self._element_names = dict(element_names or {})


    @classmethod
    def for_manifest(cls, manifest: Manifest, ood_margin: float = DEFAULT_OOD_MARGIN) -> ObservationProcessor:
        """The processor of a package's inputs, its state warnings naming the dataset's joints when it has them."""
        names = manifest.dataset.state_names if manifest.dataset is not None else None
        return cls(manifest.inputs, ood_margin,
                   element_names={i.name: names for i in manifest.inputs if i.kind == "state"} if names else {})
    def reset(self) -> None:
        """Clear the out-of-distribution counts (in place: views of them stay live) and re-arm the warnings."""
        for name in self.counts:
            self.counts[name] = 0
        self._warned.clear()

    def check(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation's inputs, states as float32; ObservationError naming the first problem."""
        if not isinstance(observation, Mapping):
            raise ObservationError("observation must be a dict keyed by feature name, got "
                                   f"{type(observation).__name__}")
        missing = [k for k in self.expected if k not in observation]
        if missing:
            raise ObservationError(f"observation is missing key(s) {missing}; expected {self.expected}")
        checked = {}
        for inp in self.inputs:
            value = observation[inp.name]
            if not isinstance(value, np.ndarray):
                raise ObservationError(f"{inp.name}: expected a numpy array, got {type(value).__name__}")
            if value.shape != tuple(inp.shape):
                hint = " (images are HWC as the camera delivers them)" if inp.kind == "image" else ""
                raise ObservationError(f"{inp.name}: expected shape {tuple(inp.shape)}, got {value.shape}{hint}")
            if inp.kind == "image":
                if value.dtype != np.uint8:
                    raise ObservationError(f"{inp.name}: images must be uint8 HWC as the camera delivers them, "
                                           f"got {value.dtype}")
            else:
                if value.dtype.kind not in "iuf":
                    raise ObservationError(f"{inp.name}: expected a real numeric array (cast to float32), "
                                           f"got {value.dtype}")
                if value.dtype != np.float32:
                    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
                        value = value.astype(np.float32)
                finite = np.isfinite(value)
                if not finite.all():
                    bad = np.flatnonzero(~finite).tolist()
                    cast = " (after conversion to float32)" if observation[inp.name].dtype != np.float32 else ""
                    raise ObservationError(f"{inp.name}: non-finite value(s) at index {bad}{cast}")
                if inp.name in self._bounds:
                    self._count(inp.name, value)
            checked[inp.name] = value
        return checked

    def _count(self, name: str, value: np.ndarray) -> None:
        lo, hi = self._bounds[name]
        outside = (value < lo) | (value > hi)
        if not outside.any():
            return
        self.counts[name] += 1
        if name not in self._warned:
            self._warned.add(name)
            i = int(np.flatnonzero(outside)[0])
            names = self._element_names.get(name)
            joint = names[i] if names and i < len(names) else f"element {i}; no joint names in the package"
            log.warning("%s: value %.4g at index %d (%s) is far outside the training statistics (in distribution: "
                        "%.4g..%.4g); the policy is being asked about a state it never saw (counted per observation, "
                        "warned once until reset)", name, value.flat[i], i, joint, lo.flat[i], hi.flat[i])

    def normalize(self, checked: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`{feature: float32 array}` normalised, images CHW in [0, 1] before normalisation, no batch dim."""
        out = {}
        # a value far out may overflow here; the non-finite actions it leads to are refused on the way out
        with np.errstate(over="ignore", invalid="ignore"):
            for inp in self.inputs:
                value = checked[inp.name]
                if inp.kind == "image":
                    value = value.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
                out[inp.name] = np.ascontiguousarray(self._norm[inp.name](value), dtype=np.float32)
        return out

    def __call__(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.normalize(self.check(observation))
