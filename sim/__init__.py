"""JAX simulators: Robotarium-style fleets and the cable-suspended load team."""
