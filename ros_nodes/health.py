"""Watchdog state and `/diagnostics` messages, shared by every node that commands motion.

Diagnostic convention (docs/ros.md): one `DiagnosticStatus` per node and robot, `name` = the
node's full name (plus `: <robot>` for fleet-wide nodes), `hardware_id` = the robot, and
key/values with cumulative counters (`watchdog_stops`, `interventions`, ...) so any listener,
e.g. the sim node's summary, can read the latest totals from a single message.
"""
from __future__ import annotations

from typing import Any, Mapping

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


class Watchdog:
    """Stopped-or-not with the reason; counts how often it tripped (ok -> stopped transitions).

    It starts stopped ("waiting for inputs") without counting that as a stop: only losing good
    inputs after having had them is a watchdog stop worth reporting.
    """

    def __init__(self) -> None:
        self.reason: str | None = "starting: waiting for the first good inputs"
        self.stops = 0

    @property
    def ok(self) -> bool:
        return self.reason is None

    def trip(self, reason: str) -> bool:
        """Enter (or stay in) the stopped state with the latest reason; True when this starts a stop."""
        new = self.reason is None
        self.stops += new
        self.reason = reason
        return new

    def clear(self) -> bool:
        """Inputs are good again; True when this ends a stop."""
        was = self.reason is not None
        self.reason = None
        return was


def status(name: str, hardware_id: str, level: int, message: str, values: Mapping[str, Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
    s = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    s.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return s


def array(stamp: Any, statuses: list[Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = stamp
    return msg


def watchdog_status(name: str, robot: str, dog: Watchdog, extra: Mapping[str, Any] | None = None) -> Any:
    """The standard status of a motion-commanding node: OK, or WARN with the reason it stopped."""
    values = {"watchdog": "ok" if dog.ok else "stopped", "watchdog_stops": dog.stops, **(extra or {})}
    if dog.ok:
        return status(name, robot, OK, "ok", values)
    return status(name, robot, WARN, f"zero velocity: {dog.reason}", values)


def values_of(s: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in s.values}
