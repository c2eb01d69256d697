"""`marlstack profile`: list the bundled vehicle profiles, show one, or validate a file."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from marlstack.hardware.profile import ProfileError, available_profiles, load_profile, profile_hash


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack profile", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="names of the bundled profiles")
    for action in ("show", "validate"):
        p = sub.add_parser(action, help=f"{action} a profile (bundled name or YAML path)")
        p.add_argument("profile")
    args = parser.parse_args(argv)
    if args.action == "list":
        print("\n".join(available_profiles()))
        return 0
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.action == "show":
        print(json.dumps({**dataclasses.asdict(profile), "hash": profile_hash(profile)}, indent=2))
    else:
        print(f"ok: {args.profile} ({profile.kind}, hash {profile_hash(profile)})")
    return 0
