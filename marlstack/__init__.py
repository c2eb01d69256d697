"""marlstack: sim-to-real multi-robot control stack."""
__version__ = "0.1.0"
