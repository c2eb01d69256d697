"""Sim-to-sim: the deployed pipeline (adapters -> ONNX policy -> certificate) closed around our simulator
and around pybullet, compared. It sits above sim/, policies/ and ros_nodes/ because it runs exactly what
they deploy; the engines themselves (sim/pybullet) import none of them."""
