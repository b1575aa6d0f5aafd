"""The policy's joints (the dataset's `<motor>.pos` names, in the package's `dataset` section) against the robot's.

LeRobot records every joint as `<motor>.pos` (`left_<motor>.pos` on its bimanual robots), in the order of the
robot's motors; a robot file that lists them in another order would send each action to the wrong joint. Same names
in another order are mapped by name; different names are refused before anything is opened, with both lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.lerobot_paths import POS_SUFFIX, joint_feature_name
from edge.errors import PackageError
from edge.runtime.package import DatasetInfo


@dataclass(frozen=True)
class JointOrder:
    """Index maps between the robot file's joint order and the policy's: `state = robot_state[to_policy]`,
    `robot_action = action[to_robot]`; `note` says once what was mapped (None: nothing to say); `identity`: both
    already in the robot's order (decided once here, read every tick)."""

    to_policy: np.ndarray
    to_robot: np.ndarray
    note: str | None = None
    identity: bool = field(init=False)

    def __post_init__(self) -> None:
        n = np.arange(len(self.to_policy))
        object.__setattr__(self, "identity", bool(np.array_equal(self.to_policy, n) and np.array_equal(self.to_robot, n)))


def _joint_of(name: str) -> str:
    """`shoulder_pan.pos` -> `shoulder_pan` (a name without the suffix is taken as the joint itself)."""
    return name[: -len(POS_SUFFIX)] if name.endswith(POS_SUFFIX) else name


def _table(policy: list[str], robot: list[str]) -> str:
    """Both lists side by side, differing rows marked."""
    width = max(len("policy (dataset)"), *(len(n) for n in policy))
    rows = [f"  {'#':>2}  {'policy (dataset)':<{width}}  robot file"]
    for i in range(max(len(policy), len(robot))):
        p = policy[i] if i < len(policy) else "-"
        r = joint_feature_name(robot[i]) if i < len(robot) else "-"
        rows.append(f"  {i:>2}  {p:<{width}}  {r}{'' if p == r else '   <- differs'}")
    return "\n".join(rows)


def _order(names: list[str], joints: list[str], what: str) -> np.ndarray:
    """Index of each policy name's joint in the robot's vector; PackageError with the table when they differ."""
    wanted = [_joint_of(n) for n in names]
    if sorted(wanted) != sorted(joints):
        missing = [n for n, j in zip(names, wanted) if j not in joints]
        extra = [joint_feature_name(j) for j in joints if j not in wanted]
        raise PackageError(
            f"the policy's {what} names do not match the robot's joints (policy only: {', '.join(missing) or '-'}; "
            f"robot only: {', '.join(extra) or '-'}); rename the motors in the robot file to the dataset's names "
            f"(LeRobot's <motor>.pos, left_/right_ prefixes per bus):\n{_table(names, joints)}")
    return np.array([joints.index(j) for j in wanted], dtype=np.intp)


def joint_order(dataset: DatasetInfo | None, joints: list[str]) -> JointOrder:
    """How the policy's state and action vectors map onto the robot's `joints` (names as in the robot's vector)."""
    n = len(joints)
    identity = np.arange(n)
    state = None if dataset is None else dataset.state_names
    action = None if dataset is None else dataset.action_names
    if state is None and action is None:
        return JointOrder(identity, identity,
                          "the policy package records no joint names (exported without the dataset's meta/info.json:"
                          " edge-export --dataset-info): the robot file's joint order is taken to be the training "
                          f"order ({', '.join(joints)})")
    to_policy = identity if state is None else _order(state, joints, "observation.state")
    # action[k] is for joint to_action[k]; the robot wants, for each of its joints, the action index naming it
    to_action = identity if action is None else _order(action, joints, "action")
    to_robot = np.argsort(to_action)
    order = JointOrder(to_policy, to_robot)
    if order.identity:
        return order
    shown = state if state is not None else action
    return JointOrder(to_policy, to_robot, "the policy's joints are in another order than the robot file's; mapped "
                                           f"by name (policy: {', '.join(shown or [])}; robot file: "
                                           f"{', '.join(joint_feature_name(j) for j in joints)})")
