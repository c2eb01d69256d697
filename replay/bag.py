"""Open a rosbag2 log (MCAP or sqlite3 storage) read-only and stream its messages.

The reader is lenient on purpose: a log from the lab may come from a recorder that was
killed (no metadata.yaml, no MCAP footer), may be cut short by a copy, or may carry types
we have no definition for. Every such problem becomes a line in `Bag.status` instead of an
exception, and everything before the damage is still delivered. Files are only ever opened
for reading (sqlite3 as an immutable URI), so the input bag is never modified.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import yaml
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from marlstack.replay import cdr_columns
from marlstack.replay import mcap_records as mr

STORAGE_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}


class BagError(Exception):
    """A bag cannot be opened at all; the message says what is wrong and what to do."""


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str
    msgtype: str
    t_ns: int  # log (receive) time in nanoseconds
    raw: bytes  # CDR exactly as stored


@dataclasses.dataclass(frozen=True)
class _Block:
    """Messages of one topic from one place in the file: data[starts[i]:ends[i]] is message i's CDR."""
    topic: str
    msgtype: str
    t_ns: np.ndarray
    data: bytes
    starts: np.ndarray
    ends: np.ndarray


@dataclasses.dataclass(frozen=True)
class Payloads:
    """Messages of one topic whose CDR payloads have the same length: `rows[i]` is the payload of the
    message logged at `t_ns[i]`, the `seq[i]`-th of its topic in storage order."""
    msgtype: str
    seq: np.ndarray
    t_ns: np.ndarray
    rows: np.ndarray  # (n, length) uint8


@dataclasses.dataclass
class ReadStatus:
    """What the last full pass over the bag found; filled while `Bag.records` runs."""
    counts: Counter = dataclasses.field(default_factory=Counter)
    stops: list[str] = dataclasses.field(default_factory=list)  # one line per damaged file
    unread_bytes: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.stops


class Bag:
    """A rosbag2 bag: a directory (with or without metadata.yaml) or one .mcap / .db3 file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists() and self.path.suffix == ".mcap" and self.path.with_suffix("").is_dir():
            self.path = self.path.with_suffix("")  # the recorder's naming: `--record out.mcap` writes out/
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (give a rosbag2 directory or a .mcap / .db3 file)")
        self.metadata = self._read_metadata()
        self.files = self._storage_files()
        storages = {STORAGE_SUFFIX[f.suffix] for f in self.files}
        if len(storages) != 1:
            raise BagError(f"{self.path}: mixes storage formats {sorted(storages)}; split it into one bag per format")
        self.storage = storages.pop()
        info = (self.metadata or {}).get("topics_with_message_count", [])
        # topic -> (type, count) as the recorder wrote it at close; None when it never closed
        self.expected: dict[str, tuple[str, int]] | None = (
            {t["topic_metadata"]["name"]: (t["topic_metadata"]["type"], int(t["message_count"])) for t in info}
            if self.metadata else None)
        self.types: dict[str, str] = {name: typ for name, (typ, _) in (self.expected or {}).items()}
        self.status = ReadStatus()
        self._defs: dict[str, tuple[str, str]] = {}  # msgtype -> (encoding, definition text)
        self._store = get_typestore(Stores.EMPTY)
        self._unknown: set[str] = set()

    # ---------------------------------------------------------------- opening
    def _read_metadata(self) -> dict | None:
        meta = self.path / "metadata.yaml" if self.path.is_dir() else None
        if meta is None or not meta.is_file():
            return None
        try:
            data = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise BagError(f"{meta}: not a rosbag2 metadata file ({exc}); move it aside to read the storage files alone") from None
        comp = (data.get("compression_mode") or "").lower()
        if comp not in ("", "none"):
            raise BagError(f"{meta}: compression mode {comp!r} is not supported; "
                           f"decompress with `ros2 bag convert` first")
        return data

    def _storage_files(self) -> list[Path]:
        if self.path.is_file():
            if self.path.suffix not in STORAGE_SUFFIX:
                raise BagError(f"{self.path}: not a bag file (expected .mcap or .db3, or a rosbag2 directory)")
            return [self.path]
        if self.metadata:
            files = [self.path / Path(p).name for p in self.metadata.get("relative_file_paths", [])]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise BagError(f"{self.path}: storage file(s) {', '.join(missing)} named in metadata.yaml are missing")
        else:
            files = sorted(f for f in self.path.iterdir() if f.suffix in STORAGE_SUFFIX)
        if not files:
            raise BagError(f"{self.path}: no .mcap or .db3 files in this directory")
        return files

    # ---------------------------------------------------------------- reading
    def records(self, topics: Iterable[str] | None = None) -> Iterator[Record]:
        """Stream records in storage order (chronological for a recorder's log).

        A full pass refreshes `status`: per-topic counts read, where a damaged file stopped,
        how much was lost. `topics` restricts what is yielded (not what is checked).
        """
        wanted = set(topics) if topics is not None else None
        self.status = ReadStatus()
        read = self._mcap_records if self.storage == "mcap" else self._sqlite_records
        for path in self.files:
            for rec in read(path):
                self.status.counts[rec.topic] += 1
                if wanted is None or rec.topic in wanted:
                    yield rec
        self._account_losses()

    def message_times(self) -> dict[str, np.ndarray]:
        """Per topic, the log times (ns) of its messages in storage order: a full pass like `records()`
        (and the same `status`) without the payloads. MCAP chunks come whole from their message indexes."""
        return {topic: np.concatenate([p.t_ns for p in parts]) for topic, parts in self._blocks(None, False).items()}

    def payloads(self, topics: Iterable[str]) -> dict[str, list[Payloads]]:
        """The messages of `topics` as arrays: per topic, one `Payloads` per payload length (a topic's
        messages usually all have one), each with its messages' places in storage order. A full pass
        like `records()` (and the same `status`); MCAP chunks come whole from their message indexes."""
        out: dict[str, list[Payloads]] = {}
        for topic, parts in self._blocks(set(topics), True).items():
            seq = np.cumsum([0] + [len(p.t_ns) for p in parts])
            groups: dict[int, list[tuple[int, np.ndarray]]] = {}  # payload length -> (part, its messages of it)
            for k, part in enumerate(parts):
                lengths = part.ends - part.starts
                for n in np.unique(lengths):
                    groups.setdefault(int(n), []).append((k, np.flatnonzero(lengths == n)))
            out[topic] = []
            for n, members in sorted(groups.items()):
                rows = np.empty((sum(len(sel) for _, sel in members), n), np.uint8)  # filled in place: one copy
                at = 0
                for k, sel in members:
                    buf = np.frombuffer(parts[k].data, np.uint8)
                    # each message's bytes as one row of an (n-byte window) view: a gather of rows, not of bytes
                    rows[at:at + len(sel)] = np.lib.stride_tricks.sliding_window_view(buf, n)[parts[k].starts[sel]] \
                        if n else 0
                    at += len(sel)
                out[topic].append(Payloads(parts[0].msgtype, np.concatenate([seq[k] + sel for k, sel in members]),
                                           np.concatenate([parts[k].t_ns[sel] for k, sel in members]), rows))
        return out

    def _blocks(self, topics: set[str] | None, payloads: bool) -> dict[str, list[_Block]]:
        """A full pass (refreshing `status`) that keeps, per topic of `topics` (None: all), its messages in
        storage order as blocks of arrays (the payloads only if asked): an indexed MCAP chunk's at once,
        single records (walked chunks, sqlite3) gathered until the topic's next block."""
        self.status = ReadStatus()
        parts: dict[str, list[_Block]] = {}
        singles: dict[str, tuple[str, list[int], list[bytes]]] = {}

        def flush(topic: str) -> None:
            msgtype, times, raws = singles.pop(topic)
            ends = np.cumsum([len(r) for r in raws], dtype=np.int64) if payloads else np.zeros(len(times), np.int64)
            starts = ends - [len(r) for r in raws] if payloads else ends
            parts.setdefault(topic, []).append(_Block(topic, msgtype, np.array(times, np.int64), b"".join(raws),
                                                      starts, ends))

        read = partial(self._mcap_records, blocks=True) if self.storage == "mcap" else self._sqlite_records
        for item in (item for path in self.files for item in read(path)):
            single = type(item) is Record
            self.status.counts[item.topic] += 1 if single else len(item.t_ns)
            if topics is not None and item.topic not in topics:
                continue
            if single:
                entry = singles.setdefault(item.topic, (item.msgtype, [], []))
                entry[1].append(item.t_ns)
                if payloads:
                    entry[2].append(item.raw)
                continue
            if item.topic in singles:
                flush(item.topic)
            parts.setdefault(item.topic, []).append(item if payloads else dataclasses.replace(item, data=b""))
        for topic in list(singles):
            flush(topic)
        self._account_losses()
        return parts

    def _mcap_records(self, path: Path, blocks: bool = False) -> Iterator[Record | _Block]:
        """Records of one MCAP file; with `blocks`, an indexed chunk's messages as one _Block per topic."""
        schemas: dict[int, mr.Schema] = {}
        channels: dict[int, tuple[str, str]] = {}
        size = path.stat().st_size
        data_end = False
        with path.open("rb") as f:
            try:
                for rec in mr.walk(f, size, blocks):
                    if type(rec) is mr.Message:  # by far the most frequent record: tested first
                        topic, msgtype = channels.get(rec.channel_id, ("", ""))
                        if not topic:
                            self._warn(f"{path.name}: message on undeclared channel {rec.channel_id} skipped")
                            continue
                        yield Record(topic, msgtype, rec.log_time, rec.data)
                    elif type(rec) is mr.MessageBlock:
                        for cid in np.unique(rec.channel_ids):
                            topic, msgtype = channels.get(int(cid), ("", ""))
                            if not topic:
                                self._warn(f"{path.name}: message on undeclared channel {cid} skipped")
                                continue
                            sel = rec.channel_ids == cid
                            yield _Block(topic, msgtype, rec.log_times[sel], rec.data, rec.starts[sel], rec.ends[sel])
                    elif isinstance(rec, mr.DataEnd):
                        data_end = True
                    elif isinstance(rec, mr.Schema):
                        schemas[rec.id] = rec
                        if rec.data and rec.name not in self._defs:
                            self._defs[rec.name] = (rec.encoding, rec.data.decode("utf-8", "replace"))
                    elif isinstance(rec, mr.Channel):
                        schema = schemas.get(rec.schema_id)
                        msgtype = schema.name if schema else self.types.get(rec.topic, "")
                        channels[rec.id] = (rec.topic, msgtype)
                        self.types.setdefault(rec.topic, msgtype)
            except mr.McapCorrupt as exc:
                if data_end:  # only the index/summary after the data is damaged: nothing lost
                    self._warn(f"{path.name}: index/summary section damaged at byte {exc.offset} of {size} "
                               f"({exc.reason}); all messages were read")
                    return
                self.status.unread_bytes += size - exc.offset
                self.status.stops.append(f"{path.name}: stopped at byte {exc.offset} of {size}: {exc.reason}")

    def _sqlite_records(self, path: Path) -> Iterator[Record]:
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader  # opens read-only + immutable

        reader = Sqlite3Reader(path)
        try:
            reader.open()
        except Exception as exc:  # apsw raises many kinds for a damaged database
            yield from self._sqlite_salvage(path, exc)
            return
        try:
            for conn in reader.connections:
                self.types.setdefault(conn.topic, conn.msgtype)
                if conn.msgdef.data and conn.msgtype not in self._defs:
                    self._defs[conn.msgtype] = ("ros2idl" if conn.msgdef.format.name == "IDL" else "ros2msg",
                                                conn.msgdef.data)
            n = 0
            try:
                for conn, t_ns, raw in reader.messages(reader.connections):
                    n += 1
                    yield Record(conn.topic, conn.msgtype, t_ns, bytes(raw))
            except Exception as exc:
                self.status.stops.append(f"{path.name}: stopped after {n} messages: {exc}")
        finally:
            reader.close()

    def _sqlite_salvage(self, path: Path, why: Exception) -> Iterator[Record]:
        """Rows of a cut database, in insertion order, up to the first missing page.

        SQLite refuses a file shorter than its header's page count, so a temporary copy gets the
        header fixed to the pages actually present (the input file is not touched).
        """
        import sqlite3
        import struct
        import tempfile

        data = bytearray(path.read_bytes())
        page = struct.unpack(">H", data[16:18])[0] if len(data) >= 100 else 0
        page = 65536 if page == 1 else page
        n = 0
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            if page:
                del data[len(data) // page * page:]
                data[28:32] = struct.pack(">I", len(data) // page)
            copy.write_bytes(bytes(data))
            con = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
            try:
                conns = {tid: (name, typ) for tid, name, typ in con.execute("SELECT id, name, type FROM topics")}
                for name, typ in conns.values():
                    self.types.setdefault(name, typ)
                if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'message_definitions'").fetchone():
                    for typ, enc, text in con.execute(
                            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                        if text and typ not in self._defs:
                            self._defs[typ] = (enc, text)
                for tid, t_ns, raw in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                    n += 1
                    yield Record(*conns[tid], t_ns, bytes(raw))
            except sqlite3.DatabaseError as exc:
                self.status.stops.append(f"{path.name}: damaged sqlite3 database ({why}); "
                                         f"read {n} messages before: {exc}")
                return
            finally:
                con.close()
        self.status.warnings.append(f"{path.name}: damaged sqlite3 database ({why}); all {n} rows were salvaged")

    def _account_losses(self) -> None:
        if self.status.complete or self.expected is None:
            if not self.status.complete:
                unread = f"{self.status.unread_bytes} bytes could not be read; " if self.status.unread_bytes else ""
                self.status.warnings.append(f"{unread}without metadata.yaml the number of lost messages is unknown")
            return
        for topic, (_, count) in sorted(self.expected.items()):
            lost = count - self.status.counts.get(topic, 0)
            if lost > 0:
                self.status.warnings.append(f"{topic}: {lost} of {count} messages lost")

    def lost(self) -> dict[str, int]:
        """Per-topic messages the recorder wrote that the last pass could not read."""
        if self.expected is None:
            return {}
        return {t: c - self.status.counts.get(t, 0) for t, (_, c) in self.expected.items()
                if c > self.status.counts.get(t, 0)}

    def _warn(self, line: str) -> None:
        if line not in self.status.warnings:
            self.status.warnings.append(line)

    # ---------------------------------------------------------------- decoding
    def decode(self, rec: Record) -> Any | None:
        """The message as a rosbags dataclass, or None (with one warning) for unknown types."""
        if not self.can_decode(rec.msgtype):
            self.warn_unknown(rec.topic)
            return None
        try:
            return self._store.deserialize_cdr(rec.raw, rec.msgtype)
        except Exception as exc:  # a damaged payload inside an intact record
            self._warn(f"{rec.topic}: a message at t={rec.t_ns} ns could not be decoded ({exc}); skipped")
            return None

    def warn_unknown(self, topic: str) -> None:
        self._warn(f"{topic}: message type {self.types.get(topic) or '<none>'!r} has no definition "
                   f"in the bag or in ROS 2 Kilted; its messages are skipped")

    def columns(self, payloads: Payloads, text: bool = False) -> dict[str, np.ndarray] | None:
        """The numeric fields (with `text`, the strings too) of a batch of one type `can_decode` accepted, as
        columns (`replay.cdr_columns`); None when the batch has no fixed layout (decode it message by message)."""
        return cdr_columns.columns(self._store.fielddefs, payloads.msgtype, payloads.rows, text)

    def fields_of(self, msgtype: str) -> list[tuple[str, Any]]:
        """The field definitions (name, (kind, type)) of a type `can_decode` accepted."""
        return self._store.fielddefs[msgtype][1]

    def can_decode(self, msgtype: str) -> bool:
        """Whether messages of this type can be decoded (definitions seen so far + Kilted)."""
        if msgtype in self._store.fielddefs:
            return True
        if not msgtype or msgtype in self._unknown:
            return False
        typs: dict = {}
        if msgtype in self._defs:
            encoding, text = self._defs[msgtype]
            try:
                typs = get_types_from_idl(text) if encoding == "ros2idl" else get_types_from_msg(text, msgtype)
            except Exception:
                typs = {}
        kilted = get_typestore(Stores.ROS2_KILTED).fielddefs
        if msgtype not in typs and msgtype not in kilted:
            self._unknown.add(msgtype)
            return False
        known = {**kilted, **typs}
        # only this type and the types it refers to: registering all of Kilted's ~480 cost ~1 s per bag
        fresh, todo = {}, [msgtype]
        while todo:
            name = todo.pop()
            if name in fresh or name in self._store.fielddefs or name not in known:
                continue
            fresh[name] = known[name]
            todo += [ref for _, node in known[name][1] for ref in _refs(node)]
        self._store.register(fresh)
        return True


def _refs(node: tuple) -> list[str]:
    """The message types a field definition (kind, payload) refers to."""
    kind, payload = node
    if kind == Nodetype.NAME:
        return [payload]
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return _refs(payload[0])
    return []
