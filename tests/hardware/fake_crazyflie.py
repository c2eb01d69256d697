"""The Crazyflie's side of CRTP, behind cflib's own link layer: in-process (`fake://`) or over UDP on loopback.

`Firmware` plays the Crazyflie: it records every packet cflib sends with its arrival time, answers
the connection handshake (link service "Bitcraze Crazyflie" banner, CRTP protocol version 12) like
firmware does and, given a `vehicle` (tests/hardware/fake_vehicle.py), flies it the way the firmware
reads the packets: supervisor arming and emergency stop, high-level take-off / land, the generic
commander's manual setpoint in rate mode (roll rate, -pitch rate on the wire, yaw rate in deg/s,
thrust as a fraction of 65535 of full power) and its stop setpoint (motors off). Not modelled: the
commander's own watchdog (level after 0.5 s without setpoints, motors off after 2 s).

Two transports, both where cflib's real drivers sit:
  * `FakeRadioDriver`, registered in `cflib.crtp.CLASSES` for `fake://` URIs (the radio's place);
  * `FakeCrazyflieUdp`, a UDP server speaking cflib's `udp://` driver protocol (one CRTP packet per
    datagram: header byte, then data), which the Crazyflie firmware's software-in-the-loop build
    also speaks: a flight link node in another process reaches it at `udp://127.0.0.1:PORT`.
"""
from __future__ import annotations

import math
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from cflib.crtp.crtpdriver import CRTPDriver
from cflib.crtp.crtpstack import CRTPPacket, CRTPPort
from cflib.crtp.exceptions import WrongUriType

PROTOCOL_VERSION = 12
GET_STATE_BITFIELD = 0x0C                  # supervisor info channel: the state bitfield query
SUPERVISOR_CAN_BE_ARMED, SUPERVISOR_IS_ARMED = 1 << 0, 1 << 1


@dataclass
class Sent:
    time: float
    port: int
    channel: int
    data: bytes


class Firmware:
    """Records, answers the handshake, flies `vehicle` if one is given."""

    def __init__(self, vehicle: Any = None):
        self.sent: list[Sent] = []
        self.vehicle = vehicle
        self.armed = False
        self.can_arm = True         # False: a supervisor that refuses to arm (low battery, tumbled, locked)

    def receive(self, port: int, channel: int, data: bytes) -> list[tuple[int, int, bytes]]:
        """One packet from cflib -> the firmware's replies (port, channel, data)."""
        self.sent.append(Sent(time.monotonic(), port, channel, bytes(data)))
        arming = port == CRTPPort.SUPERVISOR and channel == 1 and data[:1] == b"\x01"
        if arming:
            self.armed = bool(data[1]) and self.can_arm
        if self.vehicle is not None:
            self._fly(port, channel, data)
        if port == CRTPPort.LINKCTRL and channel == 1:                     # link service source: the banner
            return [(CRTPPort.LINKCTRL, 1, b"Bitcraze Crazyflie".ljust(28, b"\0"))]
        if port == CRTPPort.PLATFORM and channel == 1 and data[:1] == b"\0":   # protocol version
            return [(CRTPPort.PLATFORM, 1, bytes([0, PROTOCOL_VERSION]))]
        if port == CRTPPort.SUPERVISOR and channel == 0 and data[:1] == bytes([GET_STATE_BITFIELD]):
            bits = (SUPERVISOR_CAN_BE_ARMED if self.can_arm else 0) | (SUPERVISOR_IS_ARMED if self.armed else 0)
            return [(CRTPPort.SUPERVISOR, 0, bytes([GET_STATE_BITFIELD | 0x80]) + bits.to_bytes(2, "little"))]
        if arming:   # the supervisor's answer: success, is armed
            return [(CRTPPort.SUPERVISOR, 1, bytes([0x81, int(self.armed == bool(data[1])), int(self.armed)]))]
        return []

    def _fly(self, port: int, channel: int, data: bytes) -> None:
        v = self.vehicle
        if port == CRTPPort.SUPERVISOR and channel == 1 and data[:1] == b"\x01":
            if not self.armed:
                v.set_mode("off")
        elif port == CRTPPort.SUPERVISOR and channel == 1 and data[:1] == b"\x03":   # emergency stop
            self.armed = False
            v.set_mode("off")
        elif port == CRTPPort.COMMANDER_GENERIC and channel == 0 and data[:1] == bytes([11]) and self.armed:
            roll, pitch_wire, yawrate, thrust, rate = struct.unpack("<fffHB", data[1:])
            if rate:
                v.set_rates([math.radians(roll), -math.radians(pitch_wire), math.radians(yawrate)],
                            thrust / 65535 * v.max_thrust_n)
                v.set_mode("rate")      # low-level setpoints take priority over the high-level commander
        elif port == CRTPPort.COMMANDER_GENERIC and channel == 0 and data[:1] == b"\x00":   # stop setpoint
            v.set_mode("off")
        elif port == CRTPPort.COMMANDER_GENERIC and channel == 1 and data[:1] == b"\x00":   # notify setpoint stop
            v.set_mode("hold")          # the high-level commander holds until told otherwise
        elif port == CRTPPort.SETPOINT_HL and data[:1] in (b"\x07", b"\x08") and self.armed:
            _, _, height, _, _, _ = struct.unpack("<BBff?f", data)
            v.set_mode("takeoff", height) if data[0] == 7 else v.set_mode("land")

    # --- decoding what cflib sent --------------------------------------------------------------
    def manual_setpoints(self) -> list[tuple[float, tuple]]:
        """(time, (roll, pitch_on_wire, yawrate, thrust16, rate)) of every generic-commander manual setpoint."""
        return [(s.time, struct.unpack("<fffHB", s.data[1:])) for s in self.sent
                if s.port == CRTPPort.COMMANDER_GENERIC and s.channel == 0 and s.data[:1] == bytes([11])]

    def of(self, port: int, channel: int | None = None) -> list[Sent]:
        return [s for s in self.sent if s.port == port and (channel is None or s.channel == channel)]


class FakeRadioDriver(CRTPDriver, Firmware):
    instances: list["FakeRadioDriver"] = []

    def __init__(self):
        CRTPDriver.__init__(self)
        Firmware.__init__(self)
        self.needs_resending = False
        self._in: queue.Queue = queue.Queue()

    def connect(self, uri, radio_link_statistics_callback, link_error_callback):
        if not uri.startswith("fake://"):
            raise WrongUriType("not a fake:// URI")
        FakeRadioDriver.instances.append(self)

    def send_packet(self, pk):
        for port, channel, data in self.receive(pk.port, pk.channel, bytes(pk.data)):
            reply = CRTPPacket()
            reply.set_header(port, channel)
            reply.data = data
            self._in.put(reply)

    def receive_packet(self, wait=0):
        try:
            return self._in.get(timeout=wait if wait > 0 else None) if wait != 0 else self._in.get_nowait()
        except queue.Empty:
            return None

    def get_status(self):
        return "fake radio"

    def get_name(self):
        return "fake"

    def scan_interface(self, address=None):
        return []

    def close(self):
        pass


class FakeCrazyflieUdp(Firmware):
    """A Crazyflie on 127.0.0.1 for cflib's `udp://` driver; `url` is what a link connects to."""

    def __init__(self, vehicle: Any = None):
        super().__init__(vehicle)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"udp://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-crazyflie", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, client = self._sock.recvfrom(64)
            except (socket.timeout, OSError):
                continue
            header = datagram[0]
            if header == 0xFF:   # the null packet (scans, keep-alive)
                continue
            for port, channel, data in self.receive((header >> 4) & 0x0F, header & 0x03, datagram[1:]):
                self._sock.sendto(bytes([(port << 4) | 0x0C | channel]) + data, client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
