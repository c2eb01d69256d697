"""A minimal MCAP record walker that survives truncation and corruption.

Why not a library reader: a log from a robot whose recorder died has no footer, no summary
and maybe half a chunk at the end. Readers that start from the summary refuse such a file;
we walk the records front to back instead, hand out each chunk only once it has been read,
decompressed and parsed in full, and stop at the first record that does not add up, saying
at which byte and why. Only the records replay needs are parsed (schema, channel, message,
chunk, data end, footer); others are skipped by their length, as the MCAP spec allows.

`walk(..., times=True)` is the fast path for `replay info` and `replay report`, which need every
message's channel and log time, and the payloads as arrays rather than one object per message: a chunk
followed by its message indexes (every writer we know writes them) is handed out as one `MessageBlock`. The indexes are trusted only after they are
checked against the chunk's bytes (each points at a message record of its channel, the records tile
the chunk, what lies between them parses and holds no other message); else the chunk is walked record
by record as usual.
"""
from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MAGIC = b"\x89MCAP0\r\n"
SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX, DATA_END, FOOTER = 0x03, 0x04, 0x05, 0x06, 0x07, 0x0F, 0x02
KNOWN_OPCODES = frozenset(range(0x01, 0x11))  # 0x80+ are user-defined, 0x00 and 0x11..0x7f are not valid
MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
RECORD_HEAD = struct.Struct("<BQ")  # opcode, body length


class McapCorrupt(Exception):
    """The file stops making sense at `offset`; everything before it was read."""

    def __init__(self, offset: int, reason: str):
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True)
class Schema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class Channel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str


@dataclass(frozen=True)
class Message:
    channel_id: int
    log_time: int
    data: bytes


@dataclass(frozen=True)
class MessageBlock:
    """Every message of one chunk as arrays, in chunk order: channel ids, log times (ns), and where each
    payload lies in the chunk's decompressed `data` (data[starts[i]:ends[i]])."""
    channel_ids: np.ndarray
    log_times: np.ndarray
    data: bytes
    starts: np.ndarray
    ends: np.ndarray


@dataclass(frozen=True)
class DataEnd:
    """Marks that the data section was written completely (only the summary may follow)."""


class _Cursor:
    """Little-endian field reader over one record body; running short means corruption."""

    def __init__(self, body: bytes):
        self.body, self.pos = body, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.body):
            raise ValueError(f"field of {n} bytes runs past the record end")
        out = self.body[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8")

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.pos)


def _parse(opcode: int, body: bytes) -> Schema | Channel | Message | DataEnd | None:
    c = _Cursor(body)
    if opcode == SCHEMA:
        return Schema(c.u16(), c.string(), c.string(), c.take(c.u32()))
    if opcode == CHANNEL:
        return Channel(c.u16(), c.u16(), c.string(), c.string())
    if opcode == MESSAGE:
        return _message(body, 0, len(body))
    if opcode == DATA_END:
        return DataEnd()
    return None


def _message(buf: bytes, start: int, end: int) -> Message:
    """The message record whose body is buf[start:end] (the hot path: one unpack, one slice)."""
    if end - start < MESSAGE_HEAD.size:
        raise ValueError(f"message record of {end - start} bytes is shorter than its {MESSAGE_HEAD.size}-byte header")
    channel_id, _sequence, log_time, _publish_time = MESSAGE_HEAD.unpack_from(buf, start)
    return Message(channel_id, log_time, buf[start + MESSAGE_HEAD.size:end])


def _decompress(compression: str, data: bytes) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        return zstd.decompress(data)
    if compression == "lz4":
        try:
            import lz4.frame
        except ImportError:
            raise ValueError("lz4-compressed chunk, but the lz4 package is not installed (pip install lz4)") from None
        return lz4.frame.decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


def _chunk_data(body: bytes) -> bytes:
    """A chunk's records, decompressed and checked against its size and CRC (ValueError if damaged)."""
    c = _Cursor(body)
    c.u64(), c.u64()  # message start / end time: recomputed from the messages themselves
    size, crc, compression = c.u64(), c.u32(), c.string()
    data = _decompress(compression, c.take(c.u64()))
    if len(data) != size:
        raise ValueError(f"chunk holds {len(data)} bytes after decompression, header says {size}")
    if crc and zlib.crc32(data) != crc:
        raise ValueError("chunk CRC does not match its contents")
    return data


def _records_in(data: bytes) -> list[Schema | Channel | Message]:
    """All records of a chunk's data, or ValueError if any part of it is damaged."""
    out, pos, n = [], 0, len(data)
    while pos < n:
        if pos + 9 > n:
            raise ValueError("chunk ends inside a record header")
        opcode, length = RECORD_HEAD.unpack_from(data, pos)
        end = pos + 9 + length
        if end > n:
            raise ValueError(f"record 0x{opcode:02x} in the chunk runs past the chunk end")
        record = _message(data, pos + 9, end) if opcode == MESSAGE else _parse(opcode, data[pos + 9:end])
        if record is not None:
            out.append(record)
        pos = end
    return out


def _chunk_records(body: bytes) -> list[Schema | Channel | Message]:
    return _records_in(_chunk_data(body))


def _message_index(body: bytes) -> tuple[int, np.ndarray] | None:
    """(channel id, byte offsets of its messages in the chunk) of a message index record; None if damaged."""
    try:
        c = _Cursor(body)
        channel = c.u16()
        entries = np.frombuffer(c.take(c.u32()), "<u8").reshape(-1, 2)  # (log time, offset) pairs
    except ValueError:
        return None
    return channel, entries[:, 1].astype(np.int64)


def _field(buf: np.ndarray, at: np.ndarray, dtype: str) -> np.ndarray:
    """A little-endian field read at many byte offsets at once."""
    width = np.dtype(dtype).itemsize
    return buf[at[:, None] + np.arange(width)].copy().view(dtype).ravel()


def _indexed_chunk(body: bytes, indexes: list[tuple[int, np.ndarray]]) -> list | None:
    """A chunk's non-message records + one MessageBlock, read through its message indexes; None when
    the indexes do not account for exactly the chunk's messages (then the caller walks it)."""
    data = _chunk_data(body)
    if not indexes:
        return None
    channels = np.concatenate([np.full(len(o), ch, np.int64) for ch, o in indexes])
    offsets = np.concatenate([o for _, o in indexes])
    order = np.argsort(offsets, kind="stable")
    offsets, channels = offsets[order], channels[order]
    buf = np.frombuffer(data, np.uint8)
    n = len(buf)
    if len(offsets) == 0 or offsets[0] < 0 or offsets[-1] + 9 + MESSAGE_HEAD.size > n:
        return None
    if np.any(buf[offsets] != MESSAGE):
        return None
    ends = offsets + 9 + _field(buf, offsets + 1, "<u8").astype(np.int64)
    if np.any(ends > n) or np.any(ends[:-1] > offsets[1:]) or np.any(ends - offsets < 9 + MESSAGE_HEAD.size):
        return None
    if np.any(_field(buf, offsets + 9, "<u2") != channels):
        return None
    others: list = []
    starts, stops = np.concatenate([[0], ends]), np.concatenate([offsets, [n]])
    for a, b in zip(starts[stops > starts], stops[stops > starts]):  # schemas and channels between messages
        records = _records_in(data[a:b])
        if any(isinstance(r, Message) for r in records):
            return None
        others += records
    return others + [MessageBlock(channels.astype(np.uint16), _field(buf, offsets + 15, "<u8").astype(np.int64),
                                  data, offsets + 9 + MESSAGE_HEAD.size, ends)]


def walk(f: BinaryIO, size: int, times: bool = False) -> Iterator[Schema | Channel | Message | MessageBlock | DataEnd]:
    """Yield records in file order; raise McapCorrupt at the first damaged or missing byte.

    A clean file ends with a footer and returns normally. A file that simply stops (no
    footer) raises McapCorrupt at the end offset, so the caller can tell "complete" from
    "recording was cut". With `times`, a chunk followed by valid message indexes comes as its
    schemas / channels and one MessageBlock instead of its messages.
    """
    if f.read(len(MAGIC)) != MAGIC:
        raise McapCorrupt(0, "not an MCAP file (bad magic)")
    pos = len(MAGIC)
    pending: tuple[int, bytes, list] | None = None  # times: a chunk whose message indexes may follow
    while True:
        head = f.read(9)
        problem, opcode, length = None, None, 0
        if len(head) < 9:
            problem = McapCorrupt(pos, "the file ends here without a footer" if not head
                                  else "the file ends inside a record header")
        else:
            opcode, length = struct.unpack("<BQ", head)
            if opcode not in KNOWN_OPCODES and opcode < 0x80:
                problem = McapCorrupt(pos, f"invalid record opcode 0x{opcode:02x}")
            elif length > size - pos - 9:
                problem = McapCorrupt(pos, f"record 0x{opcode:02x} of {length} bytes runs past the end of the file "
                                           f"({size - pos - 9} bytes left)")
        if pending is not None and (problem is not None or opcode != MESSAGE_INDEX):
            yield from _flush(*pending)
            pending = None
        if problem is not None:
            raise problem
        body = f.read(length)
        try:
            if opcode == CHUNK and times:
                pending = (pos, body, [])
            elif opcode == MESSAGE_INDEX and pending is not None:
                index = _message_index(body)
                pending = (pending[0], pending[1], None if index is None or pending[2] is None else pending[2] + [index])
            elif opcode == CHUNK:
                yield from _chunk_records(body)
            else:
                record = _parse(opcode, body)
                if record is not None:
                    yield record
        except (ValueError, UnicodeDecodeError, zstd.ZstdError, RuntimeError) as exc:
            raise McapCorrupt(pos, f"damaged record 0x{opcode:02x}: {exc}") from None
        pos += 9 + length
        if opcode == FOOTER:
            return


def _flush(pos: int, body: bytes, indexes: list | None) -> Iterator:
    """The records of a chunk held back for its message indexes (walked one by one without usable ones)."""
    try:
        records = (_indexed_chunk(body, indexes) if indexes else None) or _chunk_records(body)
    except (ValueError, UnicodeDecodeError, zstd.ZstdError, RuntimeError) as exc:
        raise McapCorrupt(pos, f"damaged record 0x{CHUNK:02x}: {exc}") from None
    yield from records
