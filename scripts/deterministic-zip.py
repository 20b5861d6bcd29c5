#!/usr/bin/env python3
"""Writes a byte-reproducible zip: the same inputs give the same bytes, whoever builds, whenever.

    python3 scripts/deterministic-zip.py OUT.zip NAME=FILE [NAME=FILE ...]

Each FILE is stored as the entry NAME, entries in name order, each with the zip epoch as its
time (1980-01-01 00:00), mode 0755 (every entry here is an executable: a Lambda `bootstrap` or an
extension), Unix as the creating system, and deflate level 9. So an entry carries only its bytes:
not the build time, the umask or the order the files came in, which made every build a new CDK
asset (and every push an update of every function). cargo-lambda's own zip takes the binary's
mtime and mode, and ignores SOURCE_DATE_EPOCH.
"""
import sys
import zipfile

EPOCH = (1980, 1, 1, 0, 0, 0)
MODE = 0o100755  # a regular file, rwxr-xr-x


def write(out: str, entries: dict[str, str]) -> None:
    with zipfile.ZipFile(out, "w") as z:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = 3
            info.external_attr = MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(entries[name], "rb") as f:
                z.writestr(info, f.read(), compresslevel=9)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    entries = dict(a.split("=", 1) for a in argv[2:])
    write(argv[1], entries)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
