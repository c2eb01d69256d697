"""marlstack: sim-to-real multi-robot control, from JAX simulation to ROS 2 fleets.

Installed as an ament_python package (colcon) or with pip. Extras keep a robot's
computer lean: `pip install marlstack[onboard,ros]` brings no JAX.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "marlstack"

ROS_MESSAGES = [
    "ros-geometry-msgs", "ros-nav-msgs", "ros-sensor-msgs", "ros-diagnostic-msgs",
    "ros-trajectory-msgs", "ros-std-msgs", "ros-std-srvs", "ros-rosgraph-msgs", "ros-builtin-interfaces",
]
EXTRAS = {
    "onboard": ["numpy", "onnxruntime", "cvxpy", "clarabel", "osqp", "pyyaml", "tqdm"],
    "train": ["jax", "flax", "optax", "onnx", "jax2onnx", "matplotlib", "pillow", "tqdm", "pyyaml", "tensorboardX"],
    "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "rosbags", "foxglove-sdk", *ROS_MESSAGES],
    "replay": ["rosbags", "numpy", "pyyaml", "matplotlib", "pillow", "onnxruntime", "tqdm", "pyulog", "pymavlink"],
    "sim2sim": ["pybullet"],
    "sweep": ["ray"],  # marlstack sweep: trainings as Ray tasks, local or on a cluster
    "hardware": ["pymavlink", "cflib"],  # flight-controller links (hardware/mavlink.py, hardware/crazyflie.py)
    # JaxMARL's wrappers (jaxmarl.wrappers.baselines) import gymnax, which needs `six` without declaring it
    "jaxmarl": ["jaxmarl", "six"],
    "dev": ["pytest", "pytest-xdist", "robotarium-python-simulator", "cvxopt", "jaxmarl", "six", "qpax",
            "mcap", "mcap-ros2-support", "websockets"],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})
# Training on an NVIDIA GPU (CUDA 12 wheels of the pinned jaxlib): `pip install -c constraints.txt .[train,cuda]`.
# Not in "all": CI and robots have no GPU, and the wheels are ~2 GB.
EXTRAS["cuda"] = ["jax[cuda12]"]

# The user's layout keeps these folders at the top of the repository; installed, they are subpackages of
# `marlstack` (marlstack.sim, marlstack.policies, ...), so nothing generic lands in site-packages.
FOLDERS = ("sim", "policies", "controllers", "ros_nodes", "hardware", "bench", "targets", "replay")
PACKAGES = find_packages(include=[PACKAGE, f"{PACKAGE}.*"]) + [
    f"{PACKAGE}.{name}" for folder in FOLDERS for name in [folder, *(f"{folder}.{sub}" for sub in find_packages(folder))]]

# Node executables: `ros2 run marlstack <node>` finds these (script dir in setup.cfg).
NODES = {
    "policy_node": "marlstack.ros_nodes.policy_node:main",
    "fleet_policy_node": "marlstack.ros_nodes.fleet_policy_node:main",
    "container": "marlstack.ros_nodes.container:main",
    "safety_node": "marlstack.ros_nodes.safety_node:main",
    "sim_node": "marlstack.ros_nodes.sim_node:main",
    "task_server_node": "marlstack.ros_nodes.task_server_node:main",
    "recorder_node": "marlstack.ros_nodes.recorder_node:main",
    "rate_controller_node": "marlstack.ros_nodes.rate_controller_node:main",
    "mav_policy_node": "marlstack.ros_nodes.mav_policy_node:main",
    "mav_team_policy_node": "marlstack.ros_nodes.mav_team_policy_node:main",
    "mav_sim_node": "marlstack.ros_nodes.mav_sim_node:main",
    "hardware_adapter_node": "marlstack.ros_nodes.hardware_adapter_node:main",
    "flight_link_node": "marlstack.ros_nodes.flight_link_node:main",
    "mocap_odom_node": "marlstack.ros_nodes.mocap_odom_node:main",
    "foxglove_node": "marlstack.ros_nodes.foxglove_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Sim-to-real multi-robot control stack: JAX simulators, MARL, ONNX export, ROS 2 nodes, log replay.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={f"{PACKAGE}.{folder}": folder for folder in FOLDERS},
    package_data={f"{PACKAGE}.hardware": ["vehicles/*.yaml", "urdf/*.urdf"], f"{PACKAGE}.policies": ["configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py") + glob("launch/*.yaml")),
        (f"share/{PACKAGE}/vehicles", glob("hardware/vehicles/*.yaml")),
    ],
    install_requires=["numpy", "pyyaml"],
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        "console_scripts": [f"{PACKAGE}=marlstack.cli:main",
                            *(f"{name}={target}" for name, target in NODES.items())],
    },
)
