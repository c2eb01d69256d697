"""Shared test set-up: JAX on the CPU, quiet, and float64 only where a test asks for it."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
