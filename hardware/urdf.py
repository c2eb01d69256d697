"""URDF descriptions of differential-drive robots, generated from their vehicle profile (for pybullet).

Why generated: wheel radius, axle length, footprint and wheel-speed limit are the profile's
numbers, so the description pybullet simulates cannot drift from the one the JAX simulator,
the controllers and the exported policies use. What a ground profile does not carry (mass,
chassis height, caster size, motor torque, friction) is a `Chassis` estimate, named once here.

Frames: the base link's origin (and its centre of mass, which pybullet reports as the base
pose) is the midpoint of the axle, the point the unicycle model tracks; x forward, z up.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Chassis:
    """GRITSbot-class estimates that are not in the ground profile (not measured on a robot)."""
    mass: float = 0.25             # kg, body with battery and boards
    wheel_mass: float = 0.01       # kg, each wheel
    wheel_width: float = 0.008     # m, drawn only: tyres collide as spheres
    height: float = 0.05           # m, body cylinder
    clearance: float = 0.004       # m, body bottom above the floor
    caster_radius: float = 0.005   # m, ball casters front and back (frictionless: they roll freely)
    motor_torque: float = 0.05     # N m, most torque a wheel motor applies (pybullet's velocity-motor force)
    tyre_friction: float = 1.0     # lateral friction coefficient of the tyres


def _inertial(mass: float, ixx: float, iyy: float, izz: float) -> str:
    return (f'<inertial><origin xyz="0 0 0"/><mass value="{mass!r}"/>'
            f'<inertia ixx="{ixx!r}" ixy="0" ixz="0" iyy="{iyy!r}" iyz="0" izz="{izz!r}"/></inertial>')


def _shape(geometry: str, xyz: str, rpy: str = "0 0 0", collision: str | None = None) -> str:
    origin = f'<origin xyz="{xyz}" rpy="{rpy}"/>'
    return (f"<visual>{origin}<geometry>{geometry}</geometry></visual>"
            f"<collision>{origin}<geometry>{collision or geometry}</geometry></collision>")


def ground_robot_urdf(profile: Any, chassis: Chassis = Chassis()) -> str:
    """URDF text of a two-wheeled robot of `profile` (a ground profile): body, two casters, two wheel joints."""
    r, axle, body_r = profile.wheel_radius, profile.base_length, profile.diameter / 2
    c, h, w = chassis, chassis.height, chassis.wheel_width
    body_z = c.clearance - r + h / 2          # the floor is at z = -r in the base frame
    caster_x, caster_z = body_r - c.caster_radius, c.caster_radius - r
    body = (f'<cylinder radius="{body_r!r}" length="{h!r}"/>', f"0 0 {body_z!r}")
    casters = [(f'<sphere radius="{c.caster_radius!r}"/>', f"{s * caster_x!r} 0 {caster_z!r}") for s in (1, -1)]
    # The body's mass sits on the origin, not at the cylinder's centre: pybullet reports the base's
    # centre of mass as its pose, and that must be the axle midpoint.
    body_i = c.mass * (3 * body_r**2 + h**2) / 12
    base_inertia = _inertial(c.mass, body_i, body_i, c.mass * body_r**2 / 2)
    shapes = "".join(_shape(g, xyz) for g, xyz in [body, *casters])
    wheel_i = c.wheel_mass * (3 * r**2 + w**2) / 12
    wheel_inertia = _inertial(c.wheel_mass, wheel_i, c.wheel_mass * r**2 / 2, wheel_i)
    # Tyres collide as spheres: one contact point right below the wheel centre, so the track is
    # exactly the profile's axle. Bullet's cylinder-on-box contacts wander across the tyre width
    # and rock the robot (measured: 5.6 % too fast, 3 % too quick to turn).
    wheel_shape = _shape(f'<cylinder radius="{r!r}" length="{w!r}"/>', "0 0 0", f"{math.pi / 2!r} 0 0",
                         collision=f'<sphere radius="{r!r}"/>')
    friction = f'<contact><lateral_friction value="{c.tyre_friction!r}"/></contact>'
    parts = [f'<?xml version="1.0"?>\n<robot name="{profile.name}">',
             f'<link name="base"><contact><lateral_friction value="0"/></contact>{base_inertia}{shapes}</link>']
    for side, sign in (("left", 1), ("right", -1)):
        parts.append(f'<link name="{side}_wheel">{friction}{wheel_inertia}{wheel_shape}</link>')
        parts.append(f'<joint name="{side}_wheel_joint" type="continuous"><parent link="base"/>'
                     f'<child link="{side}_wheel"/><origin xyz="0 {sign * axle / 2!r} 0"/><axis xyz="0 1 0"/>'
                     f'<limit effort="{c.motor_torque!r}" velocity="{profile.max_wheel_speed!r}"/></joint>')
    parts.append("</robot>\n")
    return "\n".join(parts)


def write_urdf(profile: Any, path: str | Path, chassis: Chassis = Chassis()) -> Path:
    """Write `ground_robot_urdf(profile, chassis)` to `path`; returns the path."""
    path = Path(path)
    path.write_text(ground_robot_urdf(profile, chassis), encoding="utf-8")
    return path
