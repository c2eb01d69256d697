"""SetpointGuard: the fault rule every flight link shares (fresh -> stack's, stale -> hover, then land once)."""
import numpy as np
import pytest

from marlstack.hardware.flight import LinkLimits, SetpointGuard

LIMITS = LinkLimits(max_thrust_n=10.0, hover_thrust_n=4.0, max_body_rate=2.0, setpoint_timeout_s=0.1, hold_s=1.0)


def test_fresh_stale_recover_then_land_once():
    g = SetpointGuard(LIMITS)
    g.start(0.0)                                  # no stack setpoint yet: hover
    assert g.next(0.05)[1] == 4.0
    g.update((5.0, -0.5, 0.1), 20.0, 0.1)        # clipped to the limits
    rates, thrust = g.next(0.15)
    assert rates.tolist() == [2.0, -0.5, 0.1] and thrust == 10.0 and g.fault is None
    assert g.next(0.3)[0].tolist() == [0.0, 0.0, 0.0] and "stale" in g.fault   # hold
    g.update((0.1, 0.0, 0.0), 5.0, 0.5)          # back within the hold: fly on
    assert g.next(0.55)[1] == 5.0 and g.fault is None
    assert g.next(0.7)[1] == 4.0                  # stale again: hold from 0.7
    assert g.next(1.69) is not None and g.next(1.71) is None and not g.active
    g.update((np.nan, 0, 0), 5.0, 2.0)           # non-finite: dropped, the old setpoint stays stale
    g.start(2.0)
    assert g.next(2.05)[1] == 4.0 and "stale" in g.fault


def test_limits_refuse_slow_streams_and_bad_hover():
    with pytest.raises(ValueError, match="50 Hz"):
        LinkLimits(max_thrust_n=10, hover_thrust_n=4, max_body_rate=2, setpoint_rate_hz=20)
    with pytest.raises(ValueError, match="hover_thrust_n"):
        LinkLimits(max_thrust_n=10, hover_thrust_n=12, max_body_rate=2)
