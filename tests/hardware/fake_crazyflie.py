"""cflib's link layer replaced: a CRTP driver for `fake://` URIs that plays the Crazyflie's side.

Registered in `cflib.crtp.CLASSES`, it sits exactly where the radio driver would: cflib's own
Crazyflie, commander, supervisor, localisation and high-level commander encode every packet; this
driver records them with their send times and answers the connection handshake (link service
"Bitcraze Crazyflie" banner, CRTP protocol version 12) like firmware does. No radio, no USB.
"""
from __future__ import annotations

import queue
import struct
import time
from dataclasses import dataclass

from cflib.crtp.crtpdriver import CRTPDriver
from cflib.crtp.crtpstack import CRTPPacket, CRTPPort
from cflib.crtp.exceptions import WrongUriType

PROTOCOL_VERSION = 12


@dataclass
class Sent:
    time: float
    port: int
    channel: int
    data: bytes


class FakeRadioDriver(CRTPDriver):
    instances: list["FakeRadioDriver"] = []

    def __init__(self):
        super().__init__()
        self.needs_resending = False
        self.sent: list[Sent] = []
        self._in: queue.Queue = queue.Queue()

    def connect(self, uri, radio_link_statistics_callback, link_error_callback):
        if not uri.startswith("fake://"):
            raise WrongUriType("not a fake:// URI")
        FakeRadioDriver.instances.append(self)

    def send_packet(self, pk):
        self.sent.append(Sent(time.monotonic(), pk.port, pk.channel, bytes(pk.data)))
        if pk.port == CRTPPort.LINKCTRL and pk.channel == 1:          # link service source: the banner
            self._reply(CRTPPort.LINKCTRL, 1, b"Bitcraze Crazyflie".ljust(28, b"\0"))
        elif pk.port == CRTPPort.PLATFORM and pk.channel == 1 and pk.data[:1] == b"\0":   # protocol version
            self._reply(CRTPPort.PLATFORM, 1, bytes([0, PROTOCOL_VERSION]))

    def _reply(self, port, channel, data):
        pk = CRTPPacket()
        pk.set_header(port, channel)
        pk.data = data
        self._in.put(pk)

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

    # --- decoding what cflib sent --------------------------------------------------------------
    def manual_setpoints(self) -> list[tuple[float, tuple]]:
        """(time, (roll, pitch_on_wire, yawrate, thrust16, rate)) of every generic-commander manual setpoint."""
        return [(s.time, struct.unpack("<fffHB", s.data[1:])) for s in self.sent
                if s.port == CRTPPort.COMMANDER_GENERIC and s.channel == 0 and s.data[:1] == bytes([11])]

    def of(self, port: int, channel: int | None = None) -> list[Sent]:
        return [s for s in self.sent if s.port == port and (channel is None or s.channel == channel)]
