"""Safety layer between the policy and the bus: every goal the arm receives passes through here.

One module per job: `config` (what the layer is told, what it counts), `sanitizer` (limits, step cap, NaN),
`faults` (the error window and when the reaction is due), `signals` (SIGINT/SIGTERM/SIGHUP in the loop), `rest_pose`
(the move on a clean shutdown), and `layer` (SafetyLayer, composing them on one bus). See docs/firmware_bridge.md.
"""

from firmware_bridge.safety.config import REACTIONS, SafetyConfig, SafetyCounters, SafetyRefused
from firmware_bridge.safety.faults import SafetyTripped
from firmware_bridge.safety.layer import SafetyLayer
from firmware_bridge.safety.signals import SafetyStop

__all__ = ["REACTIONS", "SafetyConfig", "SafetyCounters", "SafetyLayer", "SafetyRefused", "SafetyStop",
           "SafetyTripped"]
