"""Predator-capture-prey's classes, sensors and observation in plain Python (no JAX): discovery's, with
sensing and capturing predators and the prey's speed."""
from __future__ import annotations

from marlstack.sim.scenarios import discovery_spec as dc

SCENARIO = "predator_capture_prey"
NUM_NEIGHBORS = dc.NUM_NEIGHBORS
NUM_TARGETS = dc.NUM_TARGETS  # prey
CLASSES = {"sensing": dc.CLASSES["sensing"], "capture": dc.CLASSES["tagging"]}
TEAM = ("sensing", "capture")
CAPABILITIES = dc.CAPABILITIES
PREY_SPEED = 0.05  # m/s: a quarter of a GRITSbot's top speed
FLEE_RADIUS = 0.3  # m: a prey runs from a robot this close

SENSORS = dc.SENSORS
obs_names, obs_dim, sensor_shapes = dc.obs_names, dc.obs_dim, dc.sensor_shapes
