"""Several vehicles' own recordings of one run as one bag on one clock (`replay eval LOG LOG ...`).

On a real team every companion computer records its own log, on its own clock. A MAV's policy reads
the load's odometry, its own and the other MAVs' odometry and the goal: what one log lacks, another
vehicle's log may hold. `MergedBag` reads each topic from one log: a vehicle's own topics
(`/<mav>/...`) from the log that holds that MAV's set-points, shared ones (`/load/odom`, `/load/goal`)
from the first log that has them; every log time is moved onto the first log's clock.

Alignment: `offsets` (seconds added to each log's clock, one per log), or by the sensor samples the
logs share: a message with the same topic and header stamp (one motion-capture frame, one sim tick)
reached every recorder at nearly the same moment, so the median difference of its log times is the
offset between the recorders' clocks (delivery jitter of a few ms averages out). Header stamps are
the sensors' clock and are not moved.
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from marlstack.ros_nodes import topics
from marlstack.replay.bag import Bag, Payloads, ReadStatus, Record


class MergeError(Exception):
    """The logs cannot be put on one clock or do not fit together; the text says why."""


HEADER_STAMP = struct.Struct("<iI")  # CDR: after the 4-byte encapsulation header, std_msgs/Header's stamp


def _stamped(bag: Bag, names: Iterable[str]) -> dict[tuple[str, int], int]:
    """(topic, header stamp ns) -> log time ns of each message on `names` whose type starts with a
    std_msgs/Header (its stamp read straight from the CDR bytes, little-endian as our recorders write)."""
    out = {}
    for rec in bag.records(names):
        if not bag.can_decode(rec.msgtype) or len(rec.raw) < 12 or rec.raw[1] != 1:  # CDR_LE
            continue
        first = bag.fields_of(rec.msgtype)[0]
        if first[0] != "header" or first[1][1] != "std_msgs/msg/Header":
            continue
        sec, nsec = HEADER_STAMP.unpack_from(rec.raw, 4)
        if sec or nsec:
            out[(rec.topic, sec * 1_000_000_000 + nsec)] = rec.t_ns
    return out


def _owner_of(bag: Bag) -> str | None:
    """The MAV whose set-points this log holds (its vehicle), if exactly one."""
    mavs = {t.split("/")[1] for t in bag.types if t.endswith(f"/{topics.SETPOINT.name}") and t.count("/") == 2}
    return mavs.pop() if len(mavs) == 1 else None


class MergedBag:
    """The `Bag` interface `replay eval` uses (types, records, payloads, columns, decode, status, path) over
    several logs."""

    def __init__(self, bags: list[Bag], offsets_s: list[float] | None = None):
        for b in bags:
            if not b.types:  # a recorder that never closed: the topic list comes from a pass
                for _ in b.records():
                    pass
        self.bags = bags
        self.path = Path(" + ".join(str(b.path) for b in bags))
        owners = [_owner_of(b) for b in bags]
        self.source: dict[str, int] = {}  # topic -> index of the log it is read from
        for i, b in enumerate(bags):
            for t in b.types:
                mine = t.count("/") == 2 and owners[i] == t.split("/")[1]
                if mine or t not in self.source:
                    self.source[t] = i
        self.types = {t: bags[i].types[t] for t, i in self.source.items()}
        if offsets_s is not None:
            if len(offsets_s) != len(bags):
                raise MergeError(f"--offsets gives {len(offsets_s)} offsets for {len(bags)} logs")
            self.offsets_s, self.method = [float(x) - float(offsets_s[0]) for x in offsets_s], "given offsets"
        else:
            self.offsets_s, self.method = self._align(), "shared header stamps"

    def _align(self) -> list[float]:
        ref = self.bags[0]
        out = [0.0]
        for b in self.bags[1:]:
            common = sorted(set(ref.types) & set(b.types))
            a, c = _stamped(ref, common), _stamped(b, common)
            both = sorted(set(a) & set(c))
            if not both:
                raise MergeError(f"{b.path} shares no stamped message with {ref.path}: give --offsets "
                                 f"(seconds added to each log's clock, one per log)")
            out.append(float(np.median([a[k] - c[k] for k in both])) * 1e-9)
        return out

    def records(self, names: Iterable[str] | None = None) -> Iterator[Record]:
        """Every log's records of the topics read from it, on the first log's clock, in time order."""
        wanted = set(self.source) if names is None else set(names)
        streams = []
        for i, b in enumerate(self.bags):
            mine = [t for t in wanted if self.source.get(t) == i]
            if mine:
                shift = int(round(self.offsets_s[i] * 1e9))
                streams.append(replace(r, t_ns=r.t_ns + shift) for r in b.records(mine))
        yield from heapq.merge(*streams, key=lambda r: r.t_ns)

    def decode(self, rec: Record) -> Any | None:
        return self.bags[self.source[rec.topic]].decode(rec)

    def payloads(self, names: Iterable[str]) -> dict[str, list[Payloads]]:
        """`Bag.payloads` of each topic from the log it is read from, on the first log's clock."""
        out: dict[str, list[Payloads]] = {}
        for i, b in enumerate(self.bags):
            mine = [t for t in names if self.source.get(t) == i]
            shift = int(round(self.offsets_s[i] * 1e9))
            for topic, groups in (b.payloads(mine) if mine else {}).items():
                out[topic] = [replace(g, t_ns=g.t_ns + shift) for g in groups]
        return out

    def _decoder(self, msgtype: str) -> Bag | None:
        return next((b for b in self.bags if b.can_decode(msgtype)), None)

    def can_decode(self, msgtype: str) -> bool:
        return self._decoder(msgtype) is not None

    def columns(self, payloads: Payloads, text: bool = False) -> dict[str, np.ndarray] | None:
        return self._decoder(payloads.msgtype).columns(payloads, text)

    def warn_unknown(self, topic: str) -> None:
        self.bags[self.source[topic]].warn_unknown(topic)

    @property
    def status(self) -> ReadStatus:
        merged = ReadStatus()
        for b in self.bags:
            merged.stops += [f"{b.path.name}: {s}" for s in b.status.stops]
            merged.warnings += [f"{b.path.name}: {w}" for w in b.status.warnings]
        return merged

    def alignment(self) -> dict[str, Any]:
        return {"method": self.method,
                "logs": [{"log": str(b.path), "offset_s": off, "vehicle": _owner_of(b),
                          "topics": sorted(t for t, i in self.source.items() if i == k)}
                         for k, (b, off) in enumerate(zip(self.bags, self.offsets_s))]}
