"""Schema of a MAV team profile: quadrotors, a cable-suspended rigid load, cables, control and task.

`load_profile` picks this schema for `kind: mav_team`. Every constant the cable simulator,
the quadrotor controllers and the cable environment use lives in one of these fields, so a
profile file is the whole description of a platform (the YAML comments say which numbers
come from a paper and which are our estimates).
"""
from __future__ import annotations

import dataclasses

from marlstack.hardware.profile import ProfileError, field

Vec3 = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Quadrotor:
    """One X-configuration quadrotor; rotor i sits at angle arm_angle + 90°·i, spinning (+, -, +, -)."""
    mass: float = field(1e-3, 50.0, "total mass", "kg")
    inertia: Vec3 = field(1e-8, 10.0, "principal moments of inertia about body x, y, z", "kg m^2")
    arm_length: float = field(1e-3, 2.0, "distance from the centre of mass to each rotor axis", "m")
    arm_angle: float = field(0.0, 90.0, "angle of the first arm from body x (45 for an X frame)", "deg")
    max_rotor_thrust: float = field(1e-3, 100.0, "largest thrust one rotor makes", "N")
    min_rotor_thrust: float = field(0.0, 100.0, "smallest thrust one spinning rotor makes", "N")
    torque_coefficient: float = field(0.0, 1.0, "rotor drag torque per unit thrust", "m")
    motor_time_constant: float = field(1e-4, 1.0, "first-order lag from commanded to actual rotor thrust", "s")
    drag_coefficient: float = field(0.0, 10.0, "linear drag force per unit velocity", "N s/m")
    cable_offset: float = field(0.0, 1.0, "the cable is attached this far below the centre of mass", "m")
    radius: float = field(1e-3, 2.0, "radius of the sphere that contains the frame and propellers", "m")


@dataclasses.dataclass(frozen=True)
class Team:
    """Where the cables of an N-MAV team hold the load, and how the team hangs at rest."""
    attachment_points: tuple[Vec3, ...] = field(-10.0, 10.0, "cable attachment points in the load frame", "m")
    cable_tilt: float = field(0.0, 80.0, "angle of each cable from vertical at rest, leaning away from the load centre", "deg")


@dataclasses.dataclass(frozen=True)
class Load:
    mass: float = field(1e-4, 100.0, "", "kg")
    inertia: Vec3 = field(1e-9, 100.0, "principal moments of inertia about load x, y, z", "kg m^2")
    teams: tuple[Team, ...] = field(doc="one entry per supported team size (number of attachment points)")


@dataclasses.dataclass(frozen=True)
class Cable:
    length: float = field(1e-2, 20.0, "rest length", "m")
    stiffness: float = field(1.0, 1e7, "spring constant of the tension-only model", "N/m")
    damping: float = field(0.0, 1e4, "damper along the cable in the tension-only model", "N s/m")
    model: str = field(doc="'tension' (spring-damper that only pulls) or 'rigid' (taut rods, the paper's assumption)")
    baumgarte: float = field(0.0, 1e4, "rigid model: constraint drift correction rate", "1/s")


@dataclasses.dataclass(frozen=True)
class Control:
    policy_rate_hz: float = field(1.0, 1000.0, "rate of the acceleration + body-rate commands", "Hz")
    physics_rate_hz: float = field(10.0, 10000.0, "physics substeps and low-level control, an integer multiple of policy_rate_hz", "Hz")
    integrator: str = field(doc="'euler' (semi-implicit Euler) or 'rk4'")
    inner_loop: str = field(doc="'indi' (needs rotor-thrust feedback) or 'pid' (plain body-rate PID)")
    attitude_gain: Vec3 = field(0.0, 1000.0, "body-rate reference per unit attitude error (roll, pitch, yaw)", "1/s")
    rate_gain: Vec3 = field(0.0, 10000.0, "INDI: commanded angular acceleration per unit body-rate error", "1/s")
    filter_cutoff_hz: float = field(0.1, 1000.0, "first-order low-pass on gyro derivative, rotor thrusts and accelerometer", "Hz")
    pid_kp: Vec3 = field(0.0, 10000.0, "rate PID: angular acceleration per unit rate error", "1/s")
    pid_ki: Vec3 = field(0.0, 100000.0, "rate PID: integral gain", "1/s^2")
    pid_kd: Vec3 = field(0.0, 100.0, "rate PID: derivative gain on the measured rate", "")
    pid_integral_limit: float = field(0.0, 100.0, "rate PID: clamp of the integrated rate error", "rad")
    max_body_rate: Vec3 = field(0.0, 100.0, "limit on the body-rate reference fed to the inner loop", "rad/s")
    max_tilt: float = field(1.0, 89.0, "outer loop: largest tilt of the commanded thrust from vertical", "deg")
    max_acceleration: float = field(0.0, 100.0, "action limit on each world-frame acceleration component", "m/s^2")
    max_rate_reference: float = field(0.0, 100.0, "action limit on the roll and pitch body-rate references", "rad/s")


@dataclasses.dataclass(frozen=True)
class Workspace:
    low: Vec3 = field(-1000.0, 1000.0, "lower corner (x, y, z)", "m")
    high: Vec3 = field(-1000.0, 1000.0, "upper corner (x, y, z)", "m")


@dataclasses.dataclass(frozen=True)
class Task:
    episode_seconds: float = field(0.1, 3600.0, "episode length", "s")
    start_height: float = field(0.0, 100.0, "height of the load centre at the start pose", "m")
    goal_position_range: float = field(0.0, 100.0, "random goals: load position within ±this of the start, per axis", "m")
    goal_tilt_range: float = field(0.0, 90.0, "random goals: roll and pitch within ±this (yaw is any)", "deg")
    move_offset: Vec3 = field(-100.0, 100.0, "'move' task: goal position relative to the start", "m")
    move_yaw: float = field(-180.0, 180.0, "'move' task: goal yaw relative to the start", "deg")
    workspace: Workspace = field(doc="leaving it ends the episode")
    ground_clearance: float = field(0.0, 10.0, "a body whose centre is lower than this touches the ground", "m")
    max_cable_angle: float = field(1.0, 180.0, "largest cable angle from vertical", "deg")
    min_mav_distance: float = field(0.0, 10.0, "smallest allowed distance between MAV centres", "m")
    min_cable_distance: float = field(0.0, 10.0, "smallest allowed distance between two cables", "m")
    success_position: float = field(0.0, 10.0, "success: load position error below this", "m")
    success_orientation: float = field(0.0, 180.0, "success: load orientation error below this", "deg")
    success_hold: float = field(0.0, 60.0, "success: both errors below their limits for this long", "s")
    start_position_range: float = field(0.0, 100.0, "the team starts at rest, shifted by up to ±this per axis (z: half)", "m")
    goal_cable_margin: float = field(0.0, 90.0, "random goals: the goal's equilibrium cables stay this far below max_cable_angle", "deg")
    goal_distance_margin: float = field(0.0, 10.0, "random goals: the goal's equilibrium MAVs stay this far beyond min_mav_distance", "m")


@dataclasses.dataclass(frozen=True)
class Reward:
    position: float = field(0.0, 100.0, "weight of exp(-|position error| / position_scale)")
    position_scale: float = field(1e-4, 100.0, "", "m")
    orientation: float = field(0.0, 100.0, "weight of exp(-|orientation error| / orientation_scale)")
    orientation_scale: float = field(1e-4, 10.0, "", "rad")
    smoothness: float = field(0.0, 100.0, "penalty on the squared change of the normalised action")
    body_rate: float = field(0.0, 100.0, "penalty on the squared body rate", "1/(rad/s)^2")
    effort: float = field(0.0, 100.0, "penalty on the squared normalised acceleration command")
    downwash: float = field(0.0, 100.0, "penalty per MAV flying above another MAV or the load")
    downwash_radius: float = field(1e-3, 10.0, "horizontal scale of the downwash penalty", "m")
    termination: float = field(0.0, 1000.0, "one-off penalty when the episode ends early")
    progress_position: float = field(0.0, 1000.0, "reward per metre the load's position error shrinks", "1/m")
    progress_orientation: float = field(0.0, 1000.0, "reward per radian the load's orientation error shrinks", "1/rad")
    in_tolerance: float = field(0.0, 1000.0, "reward for holding the load inside the success tolerance for task.success_hold, paid per step and taken back when it leaves")
    success: float = field(0.0, 1000.0, "one-off reward when the goal has been held for task.success_hold")
    proximity: float = field(0.0, 100.0, "penalty per MAV pair, exp(-(distance - min_mav_distance) / proximity_scale)")
    proximity_scale: float = field(1e-3, 10.0, "", "m")
    residual: float = field(0.0, 100.0, "penalty on the squared normalised residual (residual actions only)")


@dataclasses.dataclass(frozen=True)
class Safety:
    """The MAV barrier certificate on the commanded acceleration (controllers/mav_barrier.py)."""
    separation: float = field(0.0, 10.0, "certified smallest distance between MAV centres", "m")
    floor: float = field(0.0, 100.0, "certified lowest MAV altitude", "m")
    wall_margin: float = field(0.0, 10.0, "certified distance of every MAV from the workspace's sides and top", "m")
    gain: float = field(0.01, 100.0, "decay rate k of the braking-distance barrier (dh/dt >= -k h)", "1/s")
    cable_separation: float = field(0.0, 1.0, "certified smallest distance between two cables (0: cables not "
                                    "certified)", "m", default=0.0)
    max_cable_angle: float = field(0.0, 89.0, "certified largest cable angle from vertical (0: not certified)", "deg",
                                   default=0.0)


@dataclasses.dataclass(frozen=True)
class Failsafe:
    """Each vehicle's flight-controller failsafe once the stack's set-points stop: level hover for `hold_s`, then a
    descent at `descent_rate` (the SITL firmware, ros_nodes/mav_sim.py; a real link's hold, then the autopilot's
    land, whose speed must be set to the same rate). The team landing descends at that rate and, with a silent
    teammate, waits for its hold (ros_nodes/mav_io.py `TeamLanding`). A deployment's `failsafe:` may override it.
    The policy never sees it: left out of the profile hash."""
    hold_s: float = field(0.0, 60.0, "level hover after the last set-point, then the descent", "s", default=2.0)
    descent_rate: float = field(0.05, 2.0, "the failsafe's and the team landing's descent rate", "m/s", default=0.3)


@dataclasses.dataclass(frozen=True)
class Randomization:
    """Domain randomisation (CableEnv `variation="profile"`): each episode draws the true vehicle around the
    profile's numbers (the controllers keep the nominal ones) and corrupts what the policy senses."""
    mav_mass: float = field(0.0, 0.9, "relative spread of each MAV's mass: nominal × U(1 - x, 1 + x)")
    mav_inertia: float = field(0.0, 0.9, "relative spread of each MAV's moments of inertia")
    load_mass: float = field(0.0, 0.9, "relative spread of the load's mass")
    load_inertia: float = field(0.0, 0.9, "relative spread of the load's moments of inertia")
    cable_length: float = field(0.0, 0.5, "relative spread of each cable's length")
    motor_constant: float = field(0.0, 0.5, "relative spread of each MAV's thrust per commanded thrust")
    motor_time_constant: float = field(0.0, 0.9, "relative spread of each MAV's motor lag")
    noise_position: float = field(0.0, 1.0, "Gaussian noise std on sensed positions (MAVs, load)", "m")
    noise_velocity: float = field(0.0, 10.0, "Gaussian noise std on sensed linear velocities", "m/s")
    noise_attitude: float = field(0.0, 1.0, "Gaussian noise std of a small rotation on sensed attitudes, per axis", "rad")
    noise_rate: float = field(0.0, 10.0, "Gaussian noise std on sensed body rates", "rad/s")
    latency: float = field(0.0, 1.0, "largest delay from sensing to the command reaching the vehicle: U(0, x), whole policy steps", "s")


@dataclasses.dataclass(frozen=True)
class MavTeamProfile:
    """A team of quadrotors carrying a rigid load on cables, with its low-level control and task."""
    name: str
    kind: str
    description: str
    gravity: float = field(0.0, 100.0, "", "m/s^2")
    quadrotor: Quadrotor
    load: Load
    cable: Cable
    control: Control
    task: Task
    reward: Reward
    safety: Safety
    randomization: Randomization
    failsafe: Failsafe = Failsafe()

    def team(self, num_mavs: int) -> Team:
        """The attachment layout for `num_mavs` cables; a clear error when the profile has none."""
        for t in self.load.teams:
            if len(t.attachment_points) == num_mavs:
                return t
        sizes = sorted(len(t.attachment_points) for t in self.load.teams)
        raise ProfileError(f"profile {self.name!r} has no attachment layout for {num_mavs} MAVs (it has: {sizes})")

    @property
    def substeps(self) -> int:
        return round(self.control.physics_rate_hz / self.control.policy_rate_hz)

    def check(self, where: str) -> None:
        q, c = self.quadrotor, self.control
        choices = {"cable.model": (self.cable.model, ("tension", "rigid")),
                   "control.integrator": (c.integrator, ("euler", "rk4")),
                   "control.inner_loop": (c.inner_loop, ("indi", "pid"))}
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ProfileError(f"{where}: key '{key}' must be one of {list(allowed)}, got {value!r}")
        ratio = c.physics_rate_hz / c.policy_rate_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ProfileError(f"{where}: control.physics_rate_hz ({c.physics_rate_hz}) must be an integer "
                               f"multiple of control.policy_rate_hz ({c.policy_rate_hz})")
        if q.min_rotor_thrust >= q.max_rotor_thrust:
            raise ProfileError(f"{where}: quadrotor.min_rotor_thrust must be below quadrotor.max_rotor_thrust")
        if 4 * q.max_rotor_thrust <= q.mass * self.gravity:
            raise ProfileError(f"{where}: four rotors at quadrotor.max_rotor_thrust cannot lift quadrotor.mass")
        if not self.load.teams:
            raise ProfileError(f"{where}: key 'load.teams' needs at least one attachment layout")
        sizes = [len(t.attachment_points) for t in self.load.teams]
        if len(set(sizes)) != len(sizes) or min(sizes) < 1:
            raise ProfileError(f"{where}: load.teams must have distinct, non-empty attachment layouts, got sizes {sizes}")
        for n in sizes:
            lift = n * (4 * q.max_rotor_thrust - q.mass * self.gravity)
            if lift <= self.load.mass * self.gravity:
                raise ProfileError(f"{where}: a team of {n} cannot lift load.mass at quadrotor.max_rotor_thrust")
        ws = self.task.workspace
        if self.safety.separation < self.task.min_mav_distance:
            raise ProfileError(f"{where}: safety.separation must be at least task.min_mav_distance")
        if 0 < self.safety.cable_separation < self.task.min_cable_distance:
            raise ProfileError(f"{where}: safety.cable_separation must be 0 (off) or at least task.min_cable_distance")
        if self.safety.max_cable_angle > self.task.max_cable_angle:
            raise ProfileError(f"{where}: safety.max_cable_angle must be at most task.max_cable_angle")
        if not all(lo < hi for lo, hi in zip(ws.low, ws.high)):
            raise ProfileError(f"{where}: task.workspace needs low < high on every axis, got {ws}")
