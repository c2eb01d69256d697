"""Export targets beyond `policy.onnx`: places a trained policy runs without our stack (the Robotarium)."""
