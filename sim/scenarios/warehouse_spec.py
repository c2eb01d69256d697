"""Warehouse's classes, zones, sensors and observation in plain Python (no JAX): material transport's sensors
and observation (a robot senses its own colour's zones), with two colours of robot and two zone pairs."""
from __future__ import annotations

from marlstack.sim.scenarios import material_transport_spec as mt
from marlstack.sim.scenarios import team as tm

SCENARIO = "warehouse"
NUM_NEIGHBORS = mt.NUM_NEIGHBORS
CLASSES = {"red": tm.RobotClass(speed=1.0, capacity=1.0), "green": tm.RobotClass(speed=1.0, capacity=1.0)}
TEAM = ("red", "green")
CAPABILITIES = mt.CAPABILITIES
LOAD_ZONES = ((0.7, 0.5, 0.25), (0.7, -0.5, 0.25))  # red, green: on the right
UNLOAD_ZONES = ((-0.7, 0.5, 0.25), (-0.7, -0.5, 0.25))  # red, green: on the left
CLASS_ZONES = (("red", 0), ("green", 1))
MATERIAL = (1, 2)  # packages waiting per colour: one trip per robot (more trips put same-colour robots head-on,
# where the scripted policy deadlocks behind the barrier)

SENSORS = mt.SENSORS
obs_names, obs_dim, sensor_shapes = mt.obs_names, mt.obs_dim, mt.sensor_shapes
