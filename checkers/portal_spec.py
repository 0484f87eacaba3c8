#!/usr/bin/env python3
"""The portal header, version 2.1, decoded from its specification alone.

Written from Documentation/admin-guide/mm/cxl-switched-abi.rst, without the
driver's code, so that it can check what that code wrote:

    portal_spec.py check FILE [--final]   check the invariants of a portal
    portal_spec.py image KIND OUT BS SIZE write a test image for the lab:
                                          corrupt, newer, older, foreign (a first
                                          page); hostile-slot, hostile-members
                                          (one record a hostile peer wrote)

`check` reads the committed state (a transaction in progress, the intent
of a slot that is not free, counts as rolled back, as the spec's rollback
makes it), so it can check a copy taken at any moment; it exits 1 and
names every violation: a record with no valid copy, a
block owned by a host that is not a live member, a block in a handoff that
is not in use or does not list it, a handoff between hosts that are gone,
a handoff whose manifest (its page list in the blocks it moves) breaks a rule.
With --final (every host but one is dead and has been reaped), exactly one
member is live and no handoff is in progress.
"""
import struct
import sys

RECORD = 256
MAGIC = b"CXLSWPTL"
NO_SLOT, QUARANTINED = 0xFFFF, 0xFFFE
ENTRIES = 26
KIND_MEMBERS, KIND_OWNERS, KIND_HANDOFF = 1, 2, 3
SLOT_KIND = 0x544F4C53
MAJOR = 2  # the only major version this checker reads


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 & -(c & 1))
    return c ^ 0xFFFFFFFF


_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 & -(_c & 1))
    _CRC_TABLE.append(_c)


def crc32c_fast(data: bytes) -> int:
    """crc32c() by a table: the same value, fast enough for 4 KiB chunks."""
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


CHUNK = 4096
PAGE = 4096


def manifest(img: bytes, sb: dict, index: int, rec: bytes, ext: list) -> list:
    """What is wrong with the manifest of handoff `index` (record `rec`,
    extents `ext`), per the spec's Manifests section; [] if it has none or
    it is sound."""
    first, tag, pages, chunks, blob_bytes, chain_crc = struct.unpack_from("<QQQIII", rec, 0x80)
    if first == 0:
        return []
    bs, hb = sb["block_size"], sb["header_blocks"]
    where = f"handoff {index}: manifest"

    def page_of(off):
        """The index of the page at `off` among the extents' pages, or None."""
        if off % PAGE:
            return None
        block = off // bs - hb
        before = 0
        for st, c in ext:
            if st <= block < st + c:
                return (before + block - st) * (bs // PAGE) + (off % bs) // PAGE
            before += c
        return None

    if not 1 <= chunks <= 1024 or blob_bytes > 65536 or pages == 0:
        return [f"{where}: counts out of range ({chunks} chunks, {blob_bytes} blob bytes, {pages} pages)"]
    seen = set()
    got_pages = got_blob = 0
    crc_input = b""
    prev_end = 0
    at = first
    for seq in range(chunks):
        p = page_of(at)
        if p is None:
            return [f"{where}: chunk {seq} at {at:#x} is not in the blocks handed off"]
        if p in seen:
            return [f"{where}: chunk {seq} at {at:#x} is a page seen before"]
        seen.add(p)
        if at + CHUNK > len(img):
            return [f"{where}: chunk {seq} at {at:#x} is past the end of the image"]
        c = img[at:at + CHUNK]
        stored = struct.unpack_from("<I", c, CHUNK - 4)[0]
        if crc32c_fast(c[:CHUNK - 4]) != stored:
            return [f"{where}: chunk {seq} CRC32C mismatch"]
        magic, ctag, kind, cseq, used, res, nxt, cfirst = struct.unpack_from("<8sQIIIIQQ", c, 0)
        if magic != b"CXLSWMNF" or res or any(c[0x30:0x40]) or ctag != tag or cseq != seq:
            return [f"{where}: chunk {seq} has a bad header"]
        crc_input += struct.pack("<I", stored)
        if kind == 1:
            if not 1 <= used <= 167 or cfirst != got_pages:
                return [f"{where}: chunk {seq}: {used} runs from page {cfirst}"]
            for k in range(used):
                va, off, n, flags = struct.unpack_from("<QQII", c, 0x40 + 24 * k)
                if flags or not 1 <= n <= 1 << 20 or va % PAGE or va < prev_end \
                        or va + n * PAGE > U64_MAX:
                    return [f"{where}: chunk {seq} run {k} is bad"]
                prev_end = va + n * PAGE
                for j in range(n):
                    q = page_of(off + j * PAGE)
                    if q is None or q in seen:
                        return [f"{where}: chunk {seq} run {k} lists page {off + j * PAGE:#x} "
                                "outside the blocks or twice"]
                    seen.add(q)
                got_pages += n
        elif kind == 2:
            if not 1 <= used <= 4028 or cfirst != got_blob:
                return [f"{where}: chunk {seq}: {used} blob bytes from {cfirst}"]
            got_blob += used
        else:
            return [f"{where}: chunk {seq} of kind {kind}"]
        if (seq + 1 == chunks) != (nxt == 0):
            return [f"{where}: the chain's length is not the record's"]
        at = nxt
    if got_pages != pages or got_blob != blob_bytes or crc32c_fast(crc_input) != chain_crc:
        return [f"{where}: totals ({got_pages} pages, {got_blob} blob bytes) or chain CRC "
                "differ from the record's"]
    return []


def sealed(rec: bytes) -> bool:
    return struct.unpack_from("<I", rec, 252)[0] == crc32c(rec[:252])


def seal(rec: bytearray) -> bytearray:
    struct.pack_into("<I", rec, 252, crc32c(bytes(rec[:252])))
    return rec


class Violation(Exception):
    pass


def superblock(img: bytes) -> dict:
    rec = img[:RECORD]
    if rec[:8] != MAGIC:
        raise Violation("superblock: unknown magic")
    if not sealed(rec):
        raise Violation("superblock: CRC32C mismatch")
    f = struct.unpack_from("<HHIQ16sQQIIQIIQQQIIII", rec, 8)
    keys = ["major", "minor", "record_size", "generation", "uuid", "block_size",
            "block_count", "header_blocks", "host_slots", "slot_offset",
            "slot_size", "flags", "members", "owners", "handoffs",
            "handoff_count", "lease_ms", "settle_ms", "state"]
    sb = dict(zip(keys, f))
    if sb["major"] != MAJOR or sb["record_size"] != RECORD or sb["state"] != 2:
        raise Violation(f"superblock: version {sb['major']}.{sb['minor']}, "
                        f"record size {sb['record_size']}, state {sb['state']}")
    return sb


def table(img: bytes, base: int, kind: int, index: int, undo=frozenset()) -> bytes:
    """The current copy of a table record: the valid one of larger generation;
    the other copy if the current one was written by a transaction in `undo`
    (see pending()) and the other is valid, as its rollback would make it."""
    copies = []
    for copy in (0, 1):
        off = base + (index * 2 + copy) * RECORD
        rec = img[off:off + RECORD]
        if rec == bytes(RECORD) or not sealed(rec):
            continue
        k, i, gen = struct.unpack_from("<IIQ", rec, 0)
        if (k, i) != (kind, index):
            continue
        copies.append((gen, rec))
    if not copies:
        raise Violation(f"table {kind} record {index}: no valid copy")
    copies.sort(key=lambda c: c[0], reverse=True)
    cur = copies[0][1]
    txid, writer, epoch = struct.unpack_from("<QHxxI", cur, 0x10)
    if (writer, epoch, txid) in undo and len(copies) > 1:
        return copies[1][1]
    return cur


def pending(img: bytes, sb: dict) -> frozenset:
    """(slot, epoch, transaction) of every transaction in progress: the
    intent in a slot (a free one too: a host that booted again carries its
    dead incarnation's intent until it is rolled back). The epoch is the
    intent's upper 32 bits, the incarnation that began it. The committed
    state of the tables is what they hold once each is rolled back."""
    out = set()
    for n in range(sb["host_slots"]):
        st = slot(img, sb, n)
        if st and st[3]:
            out.add((n, st[3] >> 32, st[3]))
    return frozenset(out)


def slot(img: bytes, sb: dict, n: int):
    """The current copy of slot n: (state, generation, epoch, intent) or None."""
    best = None
    for copy in (0, 1):
        off = sb["slot_offset"] + n * sb["slot_size"] + copy * RECORD
        rec = img[off:off + RECORD]
        if rec == bytes(RECORD) or not sealed(rec):
            continue
        kind, state, gen = struct.unpack_from("<IIQ", rec, 0)
        confirms = struct.unpack_from("<I", rec, 0x3C)[0]
        # States 0 free, 1 claiming, 2 member; at most 16 confirmations.
        if kind != SLOT_KIND or state > 2 or confirms > 16:
            continue
        epoch = struct.unpack_from("<I", rec, 0x20)[0]
        intent = struct.unpack_from("<Q", rec, 0x30)[0]
        if best is None or gen > best[1]:
            best = (state, gen, epoch, intent)
    return best


def check(img: bytes, final: bool = False) -> dict:
    """The invariants of the committed state (transactions in progress
    rolled back, as the next lock holder would once their host is fenced):
    checkable on a snapshot taken at any moment."""
    sb = superblock(img)
    undo = pending(img, sb)
    errors = []
    data_blocks = sb["block_count"] - sb["header_blocks"]
    members = {}
    for n in range(sb["host_slots"]):
        rec = table(img, sb["members"], KIND_MEMBERS, n // ENTRIES, undo)
        v = struct.unpack_from("<Q", rec, 0x20 + (n % ENTRIES) * 8)[0]
        epoch, state = v & 0xFFFFFFFF, (v >> 32) & 0xFFFF
        if v >> 48 or state > 2:
            errors.append(f"member {n}: bad entry {v:#x}")
        members[n] = (state, epoch)
    live = {(n, e) for n, (s, e) in members.items() if s == 1}
    handoffs = {}
    manifests = 0
    for i in range(sb["handoff_count"]):
        rec = table(img, sb["handoffs"], KIND_HANDOFF, i, undo)
        hid, state, outcome, src, dst, se, de, nx = struct.unpack_from("<QIIHHIII", rec, 0x20)
        ext = [struct.unpack_from("<II", rec, 0x40 + k * 8) for k in range(min(nx, 8))]
        if nx > 8 or state > 2 or outcome > 2:
            errors.append(f"handoff {i}: bad record")
        # Target flags: bit 0 pulled (minor 2), bit 1 mapped (minor 3); the target sets them
        # once it accepted; a free record keeps those its last handoff ended with.
        flags = struct.unpack_from("<I", rec, 0xa4)[0]
        if flags & ~3:
            errors.append(f"handoff {i}: unknown target flags {flags:#x}")
        if flags and (state == 1 or (state == 0 and outcome == 0)):
            errors.append(f"handoff {i}: target flags {flags:#x} on a record never accepted "
                          f"(state {state}, outcome {outcome})")
        if state != 0:
            handoffs[i] = (src, se, dst, de, ext)
            errors.extend(manifest(img, sb, i, rec, ext))
            if struct.unpack_from("<Q", rec, 0x80)[0]:
                manifests += 1
            for who in ((src, se), (dst, de)):
                if who not in live:
                    errors.append(f"handoff {i} in progress with slot {who[0]} epoch {who[1]}, not a live member")
    owned = {}
    for b in range(data_blocks):
        rec = table(img, sb["owners"], KIND_OWNERS, b // ENTRIES, undo)
        s, h, e = struct.unpack_from("<HHI", rec, 0x20 + (b % ENTRIES) * 8)
        if s not in (NO_SLOT, QUARANTINED):
            if (s, e) not in live:
                errors.append(f"block {b}: owned by slot {s} epoch {e}, not a live member")
            owned[(s, e)] = owned.get((s, e), 0) + 1
        if h:
            x = handoffs.get(h - 1)
            if x is None:
                errors.append(f"block {b}: in handoff {h - 1}, which is not in progress")
            elif not any(st <= b < st + c for st, c in x[4]):
                errors.append(f"block {b}: in handoff {h - 1}, which does not list it")
    for n in range(sb["host_slots"]):
        st = slot(img, sb, n)
        if st and st[0] == 2 and members[n] == (1, st[2]) and st[3] and final:
            errors.append(f"slot {n}: a transaction in progress at the end")
    if final:
        if len(live) != 1:
            errors.append(f"{len(live)} live members at the end, not one")
        if handoffs:
            errors.append(f"{len(handoffs)} handoff(s) in progress at the end")
    if errors:
        raise Violation("; ".join(errors))
    return {"live": sorted(live), "owned": sum(owned.values()), "data_blocks": data_blocks,
            "manifests": manifests}


U64_MAX = (1 << 64) - 1


def hostile(kind: str) -> bytes:
    """One record as a buggy or malicious peer could write it, checksum and
    all: a host slot claiming, with the largest generation and bakery ticket;
    or the member table's record 0 (every entry free) at the largest
    generation. No record can be newer than either."""
    rec = bytearray(RECORD)
    if kind == "hostile-slot":
        # kind, state 1 (claiming), generation, host UUID, epoch, choosing,
        # ticket, intent, op.
        struct.pack_into("<IIQ16sIIQQI", rec, 0, SLOT_KIND, 1, U64_MAX,
                         b"\xee" * 16, 0, 0, U64_MAX, 0, 0)
    else:
        # kind, index, generation, txid, writer slot, reserved, writer epoch;
        # the payload stays zero: 26 free member entries of epoch 0.
        struct.pack_into("<IIQQHHI", rec, 0, KIND_MEMBERS, 0, U64_MAX, 1, 0, 0, 1)
    return bytes(seal(rec))


def image(kind: str, block_size: int, size: int) -> bytes:
    """A first page for the lab: a valid superblock made corrupt, newer or older,
    or foreign data; or one hostile record (see hostile())."""
    if kind.startswith("hostile-"):
        return hostile(kind)
    rec = bytearray(RECORD)
    rec[:8] = MAGIC
    count = size // block_size
    struct.pack_into("<HHIQ16sQQIIQIIQQQIIII", rec, 8, MAJOR, 0, RECORD, 2, bytes(range(16)),
                     block_size, count, 1, 16, 4096, 512, 0, 0x3000, 0x4000, 0x5000,
                     16, 5000, 100, 2)
    if kind == "newer":
        struct.pack_into("<H", rec, 8, MAJOR + 1)
        seal(rec)
    elif kind == "older":
        # Version 1: its hosts reclaim on lease expiry alone.
        struct.pack_into("<H", rec, 8, 1)
        seal(rec)
    elif kind == "corrupt":
        seal(rec)
        rec[0x30] ^= 0x10
    elif kind == "foreign":
        rec = bytearray(b"not a portal: somebody's data\n" * 8)[:RECORD]
    else:
        raise SystemExit(f"unknown image kind {kind}")
    return bytes(rec) + bytes(4096 - RECORD)


def main(argv: list) -> int:
    if len(argv) >= 2 and argv[0] == "check":
        img = open(argv[1], "rb").read()
        try:
            r = check(img, final="--final" in argv)
        except Violation as e:
            print(f"portal_spec: {argv[1]}: VIOLATION: {e}")
            return 1
        print(f"portal_spec: {argv[1]}: invariants hold: live members {r['live']}, "
              f"{r['owned']} of {r['data_blocks']} blocks owned, "
              f"{r['manifests']} manifest(s) of handoffs in progress checked")
        return 0
    if len(argv) == 5 and argv[0] == "image":
        open(argv[2], "wb").write(image(argv[1], int(argv[3], 0), int(argv[4], 0)))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
