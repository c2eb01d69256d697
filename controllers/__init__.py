"""Safety and low-level control: barrier certificates, unicycle mappings, quadrotor rate control."""
