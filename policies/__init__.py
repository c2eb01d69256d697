"""Decentralised policies: networks, IPPO/MAPPO training, checkpoints, evaluation, ONNX export and runtime."""
