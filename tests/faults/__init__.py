"""The fault suite (issue 11, item 4): scenarios with a fault proxy between the gatekeeper and
each dependency, and the invariants checked after each one."""
