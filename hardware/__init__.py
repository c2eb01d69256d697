"""Vehicle profiles (limits, physical parameters), robot descriptions and hardware adapters."""
from marlstack.hardware.profile import GroundProfile, ProfileError, available_profiles, load_profile, profile_hash

__all__ = ["GroundProfile", "ProfileError", "available_profiles", "load_profile", "profile_hash"]
