"""The column fast paths of `replay report` against the message-by-message code they replace.

`Bag.payloads` + `cdr_columns` read fixed-layout messages as numpy columns, `fleet._convert_columns`
applies the robots' conversions to whole columns, `table_csv` formats them: each must give what rosbags'
deserialiser + `ros_nodes.convert` + "%.6f" give, message by message, including the messages the robots
reject (NaN, a zero quaternion), which keep the robots' own reason.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from marlstack.replay import cdr_columns, table_csv
from marlstack.replay.bag import Bag
from marlstack.replay.fleet import _convert, read_fleet
from replay_fixtures import POSE, TWIST, S, T, pose_msg, twist_msg, write_bag

STORE = get_typestore(Stores.ROS2_KILTED)


def _leaves(msg, prefix=""):
    """Every numeric leaf of a rosbags message, dotted (the reference for cdr_columns)."""
    out = {}
    for name in msg.__dataclass_fields__:
        v = getattr(msg, name)
        key = f"{prefix}{name}"
        if hasattr(v, "__dataclass_fields__"):
            out.update(_leaves(v, key + "."))
        elif isinstance(v, np.ndarray):
            out.update({f"{key}.{i}": x for i, x in enumerate(v.tolist())})
        elif not isinstance(v, str):
            out[key] = v
    return out


def _rows(raws):
    return np.frombuffer(b"".join(raws), np.uint8).reshape(len(raws), -1)


def test_columns_equal_rosbags_decoding_for_fixed_layouts():
    rng = np.random.default_rng(3)
    odom_t = "nav_msgs/msg/Odometry"
    odoms = []
    for k in range(20):
        m = STORE.deserialize_cdr(STORE.serialize_cdr(pose_msg(0, 0, 0, 0), POSE), POSE)  # a template
        o = T[odom_t](header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=k, nanosec=7 * k),
                                                      frame_id="world"), child_frame_id="mav_0/base_link",
                      pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=m.pose, covariance=rng.normal(size=36)),
                      twist=T["geometry_msgs/msg/TwistWithCovariance"](
                          twist=twist_msg(*rng.normal(size=2)), covariance=rng.normal(size=36)))
        odoms.append(o)
    cases = [(POSE, [pose_msg(*rng.normal(size=3), 0.01 * k) for k in range(50)]),
             (TWIST, [twist_msg(*rng.normal(size=2)) for _ in range(50)]),
             (odom_t, odoms)]
    for msgtype, msgs in cases:
        cols = cdr_columns.columns(STORE.fielddefs, msgtype, _rows([STORE.serialize_cdr(m, msgtype) for m in msgs]))
        want = [_leaves(m) for m in msgs]
        assert set(cols) == set(want[0]), msgtype
        for key, col in cols.items():
            assert col.tolist() == [w[key] for w in want], (msgtype, key)


def test_columns_of_sequences_and_strings_equal_what_replay_csv_flattens():
    """Sequences and strings of one length across the batch (a MAV's one-point set-point, joint states with names)
    are read as columns too; with `text`, strings included, every cell is the value rosbags decodes, of its type."""
    from marlstack.replay.export import flatten
    rng = np.random.default_rng(11)
    traj, point, joints = ("trajectory_msgs/msg/MultiDOFJointTrajectory",
                           "trajectory_msgs/msg/MultiDOFJointTrajectoryPoint", "sensor_msgs/msg/JointState")
    vec, twist = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Twist"]
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=3, nanosec=5), frame_id="world")
    cases = [(traj, [T[traj](header=header, joint_names=["mav_0"], points=[T[point](
        transforms=[T["geometry_msgs/msg/Transform"](translation=vec(*rng.normal(size=3)), rotation=T[
            "geometry_msgs/msg/Quaternion"](*rng.normal(size=4)))],
        velocities=[twist(linear=vec(0.0, 0.0, 0.0), angular=vec(*rng.normal(size=3)))],
        accelerations=[twist(linear=vec(*rng.normal(size=3)), angular=vec(0.0, 0.0, 0.0))],
        time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=k))]) for k in range(30)]),
             (joints, [T[joints](header=header, name=["a", "bc"], position=rng.normal(size=2),
                                 velocity=np.zeros(0), effort=rng.normal(size=2)) for _ in range(30)]),
             ("diagnostic_msgs/msg/DiagnosticStatus", [T["diagnostic_msgs/msg/DiagnosticStatus"](
                 level=k % 3, name="n", message="ok", hardware_id="h", values=[]) for k in range(30)]),
             ("std_msgs/msg/Bool", [T["std_msgs/msg/Bool"](data=k % 2 == 0) for k in range(30)])]
    for msgtype, msgs in cases:
        cols = cdr_columns.columns(STORE.fielddefs, msgtype, _rows([STORE.serialize_cdr(m, msgtype) for m in msgs]),
                                   text=True)
        for k, m in enumerate(msgs):
            want = dict(flatten(STORE.deserialize_cdr(STORE.serialize_cdr(m, msgtype), msgtype)))
            got = {key: col.tolist()[k] for key, col in cols.items()}
            assert list(got) == list(want) and got == want, msgtype
            assert [type(v) for v in got.values()] == [type(v) for v in want.values()], msgtype


def test_columns_refuse_what_has_no_fixed_layout():
    # frame ids of 2 and 3 characters give payloads of one length (alignment) but fields at other offsets
    a, b = pose_msg(1, 2, 0.3, 0), pose_msg(1, 2, 0.3, 0)
    a.header.frame_id, b.header.frame_id = "ab", "abc"
    raws = [STORE.serialize_cdr(m, POSE) for m in (a, b)]
    assert len(raws[0]) == len(raws[1])
    assert cdr_columns.columns(STORE.fielddefs, POSE, _rows(raws)) is None
    # sequences of different lengths in payloads of one length: 0 poses and a long frame id, 1 pose and a short one
    arrays = "geometry_msgs/msg/PoseArray"
    one = STORE.serialize_cdr(T[arrays](header=a.header, poses=[a.pose]), arrays)
    empty = [STORE.serialize_cdr(T[arrays](header=T["std_msgs/msg/Header"](stamp=a.header.stamp, frame_id="x" * k),
                                           poses=[]), arrays) for k in range(1, 120)]
    none = next(raw for raw in empty if len(raw) == len(one))
    assert cdr_columns.columns(STORE.fielddefs, arrays, _rows([one, none])) is None
    assert cdr_columns.columns(STORE.fielddefs, arrays, _rows([one, one]))["poses.0.position.y"].tolist() == [2.0, 2.0]
    big_endian = bytearray(raws[0])
    big_endian[1] = 0
    assert cdr_columns.columns(STORE.fielddefs, POSE, _rows([bytes(big_endian)])) is None
    # a Twist's payload read as a PoseStamped: the definition does not fit the data
    assert cdr_columns.columns(STORE.fielddefs, POSE, _rows([STORE.serialize_cdr(twist_msg(1, 2), TWIST)])) is None


def _reference(bag, topic, kind):
    """The message-by-message path: rosbags decode + the robots' conversion, stable-sorted by log time."""
    rows, rejected = [], []
    for rec in bag.records([topic]):
        try:
            rows.append((rec.t_ns / 1e9, _convert(bag.decode(rec), kind)))
        except ValueError as exc:
            rejected.append((rec.t_ns / 1e9, str(exc)))
    rows.sort(key=lambda r: r[0])
    return [r[0] for r in rows], [list(r[1]) for r in rows], rejected


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_read_fleet_equals_the_message_by_message_conversion(tmp_path, storage):
    rng = np.random.default_rng(5)
    msgs = [("/robot_0/goal", POSE, 0, pose_msg(0.5, 0.25, 0.0, 0.0)), ("/robot_1/goal", POSE, 0, pose_msg(-1, 0, 0, 0))]
    for k in range(120):
        t = 1 * S + k * 10_000_000
        for r in range(2):
            x, y, yaw = rng.uniform(-1, 1, 3) * [1, 1, math.pi]
            m = pose_msg(x, y, yaw, k * 0.01)
            if (k, r) == (40, 0):
                m.pose.position.x = math.nan  # NonFinite: rejected with the robots' reason
            if (k, r) == (41, 1):
                m.pose.orientation.w = m.pose.orientation.z = 0.0  # a zero quaternion: Malformed
            if (k, r) == (42, 0):
                m.header.frame_id = "map"  # another payload length: its own batch
            t_log = t + int(rng.integers(0, 3)) * 1_000_000 - (20_000_000 if (k, r) == (50, 1) else 0)  # one late
            msgs.append((f"/robot_{r}/pose", POSE, t_log, m))
            v, w = rng.normal(size=2)
            msgs.append((f"/robot_{r}/cmd_vel_nominal", TWIST, t_log + 4_000_000,
                         twist_msg(math.inf if (k, r) == (60, 1) else v, w)))
            msgs.append((f"/robot_{r}/cmd_vel", TWIST, t_log + 4_000_000, twist_msg(v, w)))
    bag_dir = write_bag(tmp_path / "bag", msgs, storage=storage, chunk_every=97)
    fleet = read_fleet(Bag(bag_dir), need=("pose", "cmd_vel_nominal", "cmd_vel"))
    bag = Bag(bag_dir)
    for r in ("robot_0", "robot_1"):
        for kind, stream in (("pose", fleet.pose[r]), ("goal", fleet.goal[r]), ("cmd_vel_nominal", fleet.nominal[r]),
                             ("cmd_vel", fleet.safe[r])):
            t, values, rejected = _reference(bag, f"/{r}/{kind}", kind)
            assert stream.t.tolist() == t, (r, kind)
            got = stream.values.tolist() if kind != "pose" else np.column_stack([stream.values, fleet.pose_stamp[r]]).tolist()
            assert got == values, (r, kind)  # exactly: the same arithmetic in the same order
            assert fleet.invalid.get((r, kind), []) == rejected, (r, kind)
    assert fleet.rejected == {"/robot_0/pose": 1, "/robot_1/pose": 1, "/robot_1/cmd_vel_nominal": 1}
    assert "non-finite position.x" in fleet.invalid[("robot_0", "pose")][0][1]
    assert "quaternion has norm" in fleet.invalid[("robot_1", "pose")][0][1]


def test_csv_writer_matches_printf(tmp_path):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=5000) * 10.0 ** rng.integers(-7, 6, 5000),
                        [0.0, -0.0, -1e-9, 0.5, 9.9999996, 10.0, 123456.7890125, -5e8, math.nan, math.inf, -math.inf]])
    words = np.array(["robot_0", "", "intervention"] * len(x))[:len(x)]
    path = tmp_path / "t.csv"
    table_csv.write(path, ["x", "kind", "y"], [x, words, -x], rows_per_block=333)
    lines = path.read_text().splitlines()
    assert lines[0] == "x,kind,y"
    assert lines[1:] == [f"{a:.6f},{w},{-a:.6f}" for a, w in zip(x.tolist(), words)]
    table_csv.write(path, ["big"], [np.array([2e9, 1.0])])  # beyond the exact range: Python formats the column
    assert path.read_text().splitlines()[1:] == ["2000000000.000000", "1.000000"]
