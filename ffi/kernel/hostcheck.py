#!/usr/bin/env python3
"""Host-side check of what the example module wrote, from the disk images.

Usage: hostcheck.py GUEST_LOG NAME=IMAGE...   (NAME: device, file)

For each area the module reported (HOSTMAP <name> <first_slot> <pages> <start> lines, the
slot map; HOSTCHECK <name> slots=N gen=G), IMAGE (the raw device, or the swap file dumped
from the filesystem) must hold:
  * at slot 0's position, a swap header: SWAPSPACE2 at byte 4086, version 1,
    last_page = slots - 1, no bad pages;
  * at every other slot's position, the page ex_fill() writes: word i of slot s is
    0xa5 << 56 | gen << 48 | s << 9 | i (little-endian).
Prints one PASS/FAIL line per area; exits 1 on any failure.
"""

import re
import struct
import sys

PAGE = 4096


def expected_page(slot, gen):
    base = 0xA5 << 56 | (gen & 0xFF) << 48 | slot << 9
    return struct.pack("<512Q", *(base | i for i in range(512)))


def check(name, image, maps, slots, gen):
    with open(image, "rb") as f:
        data = f.read()
    pos_of = {}
    for first, pages, start in maps:
        for k in range(pages):
            pos_of[first + k] = start + k * PAGE
    errors = []
    if sorted(pos_of) != list(range(slots)):
        errors.append(f"map covers {len(pos_of)} slots, expected 0..{slots - 1}")
    hdr = data[pos_of.get(0, 0) : pos_of.get(0, 0) + PAGE]
    if hdr[4086:4096] != b"SWAPSPACE2":
        errors.append("no SWAPSPACE2 signature at slot 0")
    else:
        version, last_page, nr_bad = struct.unpack_from("<III", hdr, 1024)
        if (version, last_page, nr_bad) != (1, slots - 1, 0):
            errors.append(f"header version/last_page/nr_badpages {version}/{last_page}/{nr_bad}")
    bad_pages = 0
    for slot in range(1, slots):
        pos = pos_of.get(slot)
        if pos is None or data[pos : pos + PAGE] != expected_page(slot, gen):
            bad_pages += 1
            if bad_pages <= 3:
                errors.append(f"slot {slot} at {pos}: contents differ")
    verdict = "FAIL" if errors or bad_pages else "PASS"
    print(f"{verdict} host check {name}: header and {slots - 1 - bad_pages}/{slots - 1} pages at their mapped positions")
    for e in errors:
        print(f"  {e}")
    return verdict == "PASS"


def main():
    log = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    images = dict(a.split("=", 1) for a in sys.argv[2:])
    ok = True
    seen = 0
    for name, image in images.items():
        maps = [tuple(map(int, m)) for m in re.findall(rf"HOSTMAP {name} (\d+) (\d+) (\d+)", log)]
        m = re.search(rf"HOSTCHECK {name} slots=(\d+) gen=(\d+)", log)
        if not m or not maps:
            print(f"FAIL host check {name}: the guest reported no map")
            ok = False
            continue
        seen += 1
        ok &= check(name, image, maps, int(m.group(1)), int(m.group(2)))
    return 0 if ok and seen else 1


if __name__ == "__main__":
    sys.exit(main())
