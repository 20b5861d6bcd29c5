#!/usr/bin/env python3
"""Prints the Lambda architecture the zips are built for: x86_64 or arm64.

One source with the stacks: ARCH when set (a one-off build), else cdk/cdk.json's context
`architecture` (the setting the CDK app gives every function and the Web Adapter layer), else
x86_64. Synth checks each zip's executable against the setting, so a mismatch fails before a deploy.
    python3 scripts/lambda-arch.py            # x86_64 | arm64
"""

import json
import os
import sys
from pathlib import Path

ARCHITECTURES = ("x86_64", "arm64")


def architecture(root: Path, env: dict[str, str]) -> str:
    arch = env.get("ARCH", "")
    if not arch:
        context = json.loads((root / "cdk" / "cdk.json").read_text()).get("context", {})
        arch = context.get("architecture", "x86_64")
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture must be x86_64 or arm64, got {arch!r}")
    return arch


def main() -> int:
    try:
        print(architecture(Path(__file__).resolve().parent.parent, dict(os.environ)))
    except (ValueError, OSError, json.JSONDecodeError) as e:
        print(f"lambda-arch.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
