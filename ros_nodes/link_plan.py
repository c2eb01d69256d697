"""The `links:` section of a MAV team's deployment YAML: which vehicle each MAV is, and its flight link node.

Real MAVs fly through `ros_nodes/flight_link_node.py` (one per MAV: the policy's set-point ->
body rates + thrust -> the vehicle's flight controller). This module reads the section and turns it
into those nodes' specs; `team_plan` adds them to every plan that does not simulate the team.
Pure Python, like the plan.

    links:                      # optional; without it every MAV is simulated (link: sim)
      mav_0: {link: mavlink, url: "udpin:0.0.0.0:14540", autopilot: px4, mocap_message: att_pos_mocap}
      mav_1: {link: mavlink, url: "udpin:0.0.0.0:14541", autopilot: ardupilot}
      mav_2: {link: crazyflie, url: "radio://0/80/2M/E7E7E7E7E2", mocap_topic: /vrpn_mocap/cf2/pose}
      load: {mocap_topic: /vrpn_mocap/load/pose, mocap_up_axis: z}
    # per MAV, optional: takeoff_height (the take-off service's height, m); mocap_topic (+ mocap_up_axis
    # z|y): the mocap bridge's PoseStamped of that body, turned into its odometry by a mocap odometry
    # node (ros_nodes/mocap_odom_node.py); `load:` the same for the load's /load/odom

One load hangs under the whole team, so either every MAV is a real vehicle or every one is `sim`.
`marlstack sitl` (and `ros2 launch ... sim:=true`) always simulates the team: the links are then unused.
"""
from __future__ import annotations

from typing import Any, Mapping

from marlstack.ros_nodes.plan import NodeSpec, _fail

KINDS = ("mavlink", "crazyflie", "sim")
AUTOPILOTS = ("px4", "ardupilot")                         # hardware.mavlink.RATE_MODES
MOCAP_MESSAGES = ("att_pos_mocap", "vision_position_estimate")  # hardware.mavlink.MOCAP_MESSAGES
MOCAP = {"mocap_topic", "mocap_up_axis"}
FIELDS = {"mavlink": {"link", "url", "autopilot", "mocap_message", "takeoff_height", *MOCAP},
          "crazyflie": {"link", "url", "takeoff_height", *MOCAP}, "sim": {"link"}}
LOAD = "load"   # the `links` entry of the load (mocap only)
URL_PREFIXES = {"mavlink": ("udpin:", "udpout:", "udp:", "tcp:", "tcpin:", "/dev/", "COM"),   # pymavlink connections
                "crazyflie": ("radio://", "usb://", "udp://", "tcp://")}                      # cflib drivers


def load_links(raw: Any, mavs: list[str], where: str) -> dict[str, dict[str, Any]]:
    """The checked section: real MAV -> flight link node parameters (without `mav`; with the mocap keys
    given), and `load` -> its mocap keys if given; {} when every MAV is simulated."""
    if raw is None:
        return {}
    if LOAD in mavs:
        raise _fail(where, f"key 'mavs': '{LOAD}' names the load (/load/odom); call the MAV something else")
    if not isinstance(raw, Mapping) or set(raw) - {LOAD} != set(mavs):
        raise _fail(where, f"key 'links' must map every MAV ({', '.join(mavs)}) to {{link: {'|'.join(KINDS)}, url: ...}} "
                           f"(and optionally '{LOAD}' to its mocap_topic), got {sorted(raw) if isinstance(raw, Mapping) else raw!r}")
    out: dict[str, dict[str, Any]] = {}
    for mav in mavs:
        key, entry = f"links.{mav}", raw[mav]
        kind = entry.get("link") if isinstance(entry, Mapping) else None
        if kind not in KINDS:
            raise _fail(where, f"key '{key}.link' must be one of {', '.join(KINDS)}, got {entry!r}")
        extra = sorted(set(entry) - FIELDS[kind])
        if extra:
            raise _fail(where, f"key '{key}': {', '.join(extra)} not used by a {kind} link (it takes {', '.join(sorted(FIELDS[kind]))})")
        if kind == "sim":
            continue
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(URL_PREFIXES[kind]):
            raise _fail(where, f"key '{key}.url' must be a {kind} address starting with one of "
                               f"{', '.join(URL_PREFIXES[kind])}, got {url!r}")
        params: dict[str, Any] = {"link": kind, "url": url}
        if kind == "mavlink":
            params["autopilot"] = entry.get("autopilot", "px4")
            params["mocap_message"] = entry.get("mocap_message", "att_pos_mocap")
            if params["autopilot"] not in AUTOPILOTS:
                raise _fail(where, f"key '{key}.autopilot' must be one of {', '.join(AUTOPILOTS)}, got {params['autopilot']!r}")
            if params["mocap_message"] not in MOCAP_MESSAGES:
                raise _fail(where, f"key '{key}.mocap_message' must be one of {', '.join(MOCAP_MESSAGES)}, "
                                   f"got {params['mocap_message']!r}")
        height = entry.get("takeoff_height", 1.0)
        if not isinstance(height, (int, float)) or isinstance(height, bool) or not 0.1 <= height <= 20:
            raise _fail(where, f"key '{key}.takeoff_height' must be a number in [0.1, 20] m, got {height!r}")
        out[mav] = {**params, "takeoff_height": float(height), **_mocap(entry, where, key)}
    if out and len(out) != len(mavs):
        sim = [m for m in mavs if m not in out]
        raise _fail(where, f"key 'links': {', '.join(sim)} simulated but {', '.join(out)} real; one load hangs under "
                           f"the whole team, so every MAV is real or every one is 'sim'")
    if LOAD in raw:
        entry = raw[LOAD]
        if not out or not isinstance(entry, Mapping) or set(entry) - MOCAP or "mocap_topic" not in entry:
            raise _fail(where, f"key 'links.{LOAD}' must be {{mocap_topic: /..., mocap_up_axis: z|y}} beside real MAVs, got {entry!r}")
        out[LOAD] = _mocap(entry, where, f"links.{LOAD}")
    urls = [p["url"] for p in out.values() if "url" in p]
    dup = sorted({u for u in urls if urls.count(u) > 1})
    if dup:
        raise _fail(where, f"key 'links': {', '.join(dup)} used by more than one MAV")
    return out


def _mocap(entry: Mapping[str, Any], where: str, key: str) -> dict[str, str]:
    if "mocap_topic" not in entry:
        if "mocap_up_axis" in entry:
            raise _fail(where, f"key '{key}.mocap_up_axis' needs a mocap_topic beside it")
        return {}
    topic, up = entry["mocap_topic"], entry.get("mocap_up_axis", "z")
    if not isinstance(topic, str) or not topic.startswith("/") or up not in ("z", "y"):
        raise _fail(where, f"key '{key}': mocap_topic must be an absolute topic and mocap_up_axis z or y, "
                           f"got {topic!r} and {up!r}")
    return {"mocap_topic": topic, "mocap_up_axis": up}


def real_mavs(links: Mapping[str, Any]) -> list[str]:
    """The MAVs that fly through a flight link (the load's entry is not one)."""
    return [m for m in links if m != LOAD]


def link_specs(links: Mapping[str, Mapping[str, Any]], profile: str, hold_s: float) -> list[NodeSpec]:
    """One flight link node per real MAV, in its namespace, and a mocap odometry node per body with a
    mocap_topic; `hold_s`: hover this long without set-points, then land."""
    specs = []
    for body, params in links.items():
        link = {k: v for k, v in params.items() if k not in MOCAP}
        if body != LOAD:
            specs.append(NodeSpec("flight_link_node", "flight_link", f"/{body}",
                                  {"mav": body, "profile": profile, **link, "hold_s": hold_s}))
        if "mocap_topic" in params:
            specs.append(NodeSpec("mocap_odom_node", "mocap_odom", f"/{body}",
                                  {"body": body, **{k: params[k] for k in MOCAP}}))
    return specs
