"""A team of quadrotors carrying a cable-suspended rigid load, in pure JAX.

`dynamics` holds the bodies, cables and integrators; `equilibrium` the resting hover; `env` the
JaxMARL-style multi-agent environment with the low-level controller in the loop; `render` plots.
"""
