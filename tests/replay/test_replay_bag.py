"""Reading bags: both storages, an independent MCAP reader as referee, damaged and cut files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap.records import Chunk, Footer, Message
from mcap_ros2.decoder import DecoderFactory

from replay_fixtures import known_fleet, write_bag
from marlstack.replay.bag import Bag
from marlstack.replay.cli import main

CHUNK_EVERY = 10  # messages per chunk, like the recorder's periodic flush on a small fleet


@pytest.fixture(scope="module")
def chunked(tmp_path_factory) -> Path:
    return write_bag(tmp_path_factory.mktemp("chunked") / "bag", known_fleet(), chunk_every=CHUNK_EVERY)


def mcap_file(bag: Path) -> Path:
    return next(bag.glob("*.mcap"))


def chunk_layout(path: Path) -> tuple[list[tuple[int, int, int]], int]:
    """[(start, end, messages)] per chunk and the summary start, from the `mcap` package (the referee)."""
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
        f.seek(0)
        footer = [r for r in StreamReader(f).records if isinstance(r, Footer)][0]
        chunks = []
        for ci in summary.chunk_indexes:
            f.seek(ci.chunk_start_offset)
            chunk = next(iter(StreamReader(f, skip_magic=True, emit_chunks=True).records))
            assert isinstance(chunk, Chunk)
            n = sum(isinstance(r, Message) for r in breakup_chunk(chunk, validate_crc=True))
            chunks.append((ci.chunk_start_offset, ci.chunk_start_offset + ci.chunk_length, n))
    return chunks, footer.summary_start


def test_mcap_zstd_mcap_and_sqlite3_storage_read_the_same(tmp_path):
    msgs = known_fleet()
    a = list(Bag(write_bag(tmp_path / "a", msgs, storage="mcap")).records())
    b = list(Bag(write_bag(tmp_path / "b", msgs, storage="sqlite3")).records())
    zbag = write_bag(tmp_path / "z", msgs, chunk_every=CHUNK_EVERY, zstd_chunks=True)
    z = list(Bag(zbag).records())
    key = lambda r: (r.t_ns, r.topic)  # noqa: E731
    assert sorted(a, key=key) == sorted(b, key=key) == sorted(z, key=key)
    assert len(a) == len(msgs)
    with mcap_file(zbag).open("rb") as f:
        assert {c.compression for c in make_reader(f).get_summary().chunk_indexes} == {"zstd"}


def test_recorder_style_name_finds_the_bag_directory(chunked):
    """`marlstack sitl --record out.mcap` writes the bag directory out/; `replay ... out.mcap` finds it."""
    assert Bag(chunked.with_suffix(".mcap")).path == chunked


def test_independent_reader_decodes_every_message_we_write(chunked):
    """mcap + mcap_ros2 (not rosbags, not our walker) must decode everything, to the same values."""
    ours = Bag(chunked)
    mine = {(r.topic, r.t_ns): ours.decode(r) for r in ours.records()}
    seen = 0
    with mcap_file(chunked).open("rb") as f:
        for schema, channel, message, decoded in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            ref = mine[(channel.topic, message.log_time)]
            if schema.name.endswith("PoseStamped"):
                assert (decoded.pose.position.x, decoded.pose.orientation.z) == (ref.pose.position.x, ref.pose.orientation.z)
                assert decoded.header.frame_id == ref.header.frame_id == "world"
            elif schema.name.endswith("Twist"):
                assert (decoded.linear.x, decoded.angular.z) == (ref.linear.x, ref.angular.z)
            else:
                assert decoded.status[0].values[0].value == ref.status[0].values[0].value
            seen += 1
    assert seen == len(known_fleet()) == len(mine)


def cut_copy(bag: Path, dst: Path, size: int, keep_metadata: bool = True) -> Path:
    dst.mkdir()
    src = mcap_file(bag)
    (dst / src.name).write_bytes(src.read_bytes()[:size])
    if keep_metadata:
        shutil.copy(bag / "metadata.yaml", dst / "metadata.yaml")
    return dst


def test_truncated_bag_reads_every_whole_chunk_and_says_what_was_lost(chunked, tmp_path):
    chunks, summary_start = chunk_layout(mcap_file(chunked))
    assert len(chunks) >= 10
    total = sum(n for _, _, n in chunks)
    cuts = [5, chunks[0][0] + 3, (chunks[2][0] + chunks[2][1]) // 2, chunks[4][1], chunks[-1][1] - 1]
    for i, cut in enumerate(cuts):
        bag = Bag(cut_copy(chunked, tmp_path / f"cut{i}", cut))
        read = list(bag.records())
        expected = sum(n for _, end, n in chunks if end <= cut)
        assert len(read) == expected, cut
        assert not bag.status.complete and f"byte" in bag.status.stops[0]
        assert (bag.status.unread_bytes > 0) == (cut != chunks[4][1])  # a cut on a record boundary leaves none
        assert sum(bag.lost().values()) == total - expected
        assert any("messages lost" in w for w in bag.status.warnings)
        assert [(r.topic, r.t_ns) for r in read] == [(m[0], m[2]) for m in known_fleet()[:expected]]
    # only the summary (index) is cut: every message is still there, and that is what we say
    bag = Bag(cut_copy(chunked, tmp_path / "summary_cut", summary_start + 20))
    assert len(list(bag.records())) == total
    assert bag.status.complete and bag.lost() == {}
    assert "all messages were read" in bag.status.warnings[0]


def test_column_reads_of_a_cut_bag_are_the_records_read(chunked, tmp_path, capsys):
    """`report` reads through `Bag.payloads` (indexed chunks as arrays): on a cut copy it delivers exactly the
    messages the record walk delivers, with the same damage line; a bag cut before its first message is
    nothing readable: one line, exit 2."""
    chunks, _ = chunk_layout(mcap_file(chunked))
    cut = cut_copy(chunked, tmp_path / "cut", (chunks[4][0] + chunks[4][1]) // 2)
    walked = Bag(cut)
    want: dict[str, list[tuple[int, bytes]]] = {}
    for rec in walked.records():
        want.setdefault(rec.topic, []).append((rec.t_ns, rec.raw))
    bag = Bag(cut)
    got = {topic: sorted((int(t), row.tobytes(), int(k)) for p in parts for k, t, row in zip(p.seq, p.t_ns, p.rows))
           for topic, parts in bag.payloads(want).items()}
    assert {t: [(ns, raw) for ns, raw, _ in sorted(v, key=lambda x: x[2])] for t, v in got.items()} == want
    assert bag.status.stops == walked.status.stops and bag.status.warnings == walked.status.warnings
    assert main(["report", str(cut), "-o", str(tmp_path / "r"), "--profile", "gritsbot_x", "--no-pictures"]) == 0
    assert "messages lost" in capsys.readouterr().out
    for argv in (["info", str(cut_copy(chunked, tmp_path / "head", 5))],
                 ["report", str(tmp_path / "head"), "-o", str(tmp_path / "r2"), "--profile", "gritsbot_x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not an MCAP file" in err, argv


def test_killed_recorder_without_metadata(chunked, tmp_path, capsys):
    chunks, _ = chunk_layout(mcap_file(chunked))
    cut = (chunks[3][0] + chunks[3][1]) // 2
    path = cut_copy(chunked, tmp_path / "killed", cut, keep_metadata=False)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["messages"] == sum(n for _, _, n in chunks[:3])
    assert info["stopped"][0].startswith(f"bag.mcap: stopped at byte {chunks[3][0]} of {cut}: record 0x06")
    assert "number of lost messages is unknown" in info["warnings"][0]
    assert info["topics"][0]["type"]  # types came from the schemas in the surviving chunks


def test_corrupt_chunk_stops_there(chunked, tmp_path, capsys):
    chunks, _ = chunk_layout(mcap_file(chunked))
    dst = cut_copy(chunked, tmp_path / "corrupt", 10**9)
    data = bytearray((dst / "bag.mcap").read_bytes())
    start = chunks[6][0]
    data[start + 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8 + 3] ^= 0xFF  # a byte inside the first record of chunk 7
    data[start + 1 + 8 + 8 + 8: start + 1 + 8 + 8 + 8 + 8] = (123).to_bytes(8, "little")  # wrong uncompressed size
    (dst / "bag.mcap").write_bytes(bytes(data))
    assert main(["info", str(dst)]) == 0
    out = capsys.readouterr().out
    assert f"DAMAGED: bag.mcap: stopped at byte {start} of {len(data)}: damaged record 0x06" in out
    assert "messages lost" in out
    assert sum(1 for _ in Bag(dst).records()) == sum(n for _, _, n in chunks[:6])


def test_cut_sqlite3_database_is_salvaged_up_to_the_first_missing_page(tmp_path):
    msgs = [(topic, typ, i * 1000, m) for i, (topic, typ, _, m) in enumerate(known_fleet() * 10)]
    full = write_bag(tmp_path / "full", msgs, storage="sqlite3")
    db = next(full.glob("*.db3"))
    data = db.read_bytes()
    for frac in (0.5, 0.9):
        cut = tmp_path / f"cut{frac}"
        cut.mkdir()
        shutil.copy(full / "metadata.yaml", cut / "metadata.yaml")
        (cut / db.name).write_bytes(data[:int(len(data) * frac)])
        bag = Bag(cut)
        read = [(r.topic, r.t_ns) for r in bag.records()]
        assert 0 < len(read) < len(msgs)
        assert read == [(m[0], m[2]) for m in msgs[:len(read)]]  # a prefix, in insertion order
        assert "damaged sqlite3 database" in bag.status.stops[0]
        assert sum(bag.lost().values()) == len(msgs) - len(read)
        assert (cut / db.name).read_bytes() == data[:int(len(data) * frac)]  # the input stays as it was
