//! Userspace tests of handoff manifests: the page list a source writes into the blocks it offers
//! and the target reads as untrusted input. Round trips, every torn or flipped byte, a crash at
//! every write of the source, and hostile chunks that are well sealed but lie.

use proptest::prelude::*;

use crate::abi::handoff::{Extent, ManifestRef};
use crate::abi::manifest::{
    Chunk, ChunkHeader, ChunkKind, ManifestEntry, BLOB_PER_CHUNK, CHUNK_SIZE, ENTRIES_PER_CHUNK,
    PAGE_BYTES,
};
use crate::abi::{Geometry, Handoff, HandoffState, Outcome, Superblock, Timing};
use crate::medium::{SharedMem, SimHost};
use crate::protocol::manifest::{chunks_needed, pages_in, read_manifest, write_manifest, Item};
use crate::protocol::{self, records::read_handoff, Error, Host, Medium};

/// Blocks of 1 MiB (256 pages), so that three blocks hold a manifest of several chunks.
const GEO: Geometry = Geometry {
    block_size: 1 << 20,
    block_count: 8,
    header_blocks: 1,
    host_slots: 4,
};
const TIMING: Timing = Timing {
    lease_ms: 1000,
    settle_ms: 10,
};
/// The blocks x offers: its first three.
const OFFERED: Extent = Extent { start: 0, count: 3 };
const PAGES_PER_BLOCK: u64 = (1 << 20) / PAGE_BYTES;
const VBASE: u64 = 0x7f00_0000_0000;

fn mem() -> SharedMem {
    SharedMem::new((GEO.block_count * GEO.block_size) as usize)
}

fn join(m: &SimHost<'_>, n: u8) -> Host {
    let sb = *protocol::boot::open(m, &GEO, [9; 16], 4, TIMING, true)
        .unwrap()
        .superblock();
    Host::join(m, sb, [n; 16], u32::from(n)).unwrap()
}

/// The device offset of page `p` of the offered blocks.
fn page(p: u64) -> u64 {
    (u64::from(GEO.header_blocks) + u64::from(OFFERED.start)) * GEO.block_size + p * PAGE_BYTES
}

/// x (slot 1) and y (slot 2) joined; x owns blocks 0..5, y 5..7.
fn two_hosts(mem: &SharedMem) -> (SimHost<'_>, SimHost<'_>, Host, Host) {
    let (mx, my) = (mem.host(), mem.host());
    let (mut x, mut y) = (join(&mx, 1), join(&my, 2));
    x.claim(&mx, 5).unwrap();
    y.claim(&my, 2).unwrap();
    (mx, my, x, y)
}

/// A workload of `n` single pages scattered over the offered blocks (page `i` at a page chosen
/// by a stride coprime with their number), in the pages after the `chunks` chunk pages.
fn scattered(n: u64, chunks: u64) -> Vec<ManifestEntry> {
    let room = 3 * PAGES_PER_BLOCK - chunks;
    assert!(n <= room);
    (0..n)
        .map(|i| ManifestEntry {
            vaddr: VBASE + i * PAGE_BYTES,
            offset: page(chunks + (i * 97) % room),
            pages: 1,
        })
        .collect()
}

/// The chunk pages: the first pages of the offered blocks.
fn chunk_pages(n: u32) -> Vec<u64> {
    (0..u64::from(n)).map(page).collect()
}

/// Writes the manifest of `entries` and `blob` as x and offers the blocks to y with it.
fn offer(
    mx: &SimHost<'_>,
    x: &mut Host,
    y: u32,
    entries: &[ManifestEntry],
    blob: &[u8],
) -> Result<(u32, u64, ManifestRef), Error> {
    let at = chunk_pages(chunks_needed(entries.len(), blob.len())?);
    let mut buf = Box::new(Chunk::ZERO);
    let r = write_manifest(mx, 0x5eed, &at, entries, blob, &mut buf)?;
    let (index, id) = x.offer_manifest(mx, y, &[OFFERED], r)?;
    Ok((index, id, r))
}

/// What the target reads of handoff `index`: the runs and the blob, or the error.
fn read(
    m: &impl Medium,
    sb: &Superblock,
    index: u32,
) -> Result<(Vec<ManifestEntry>, Vec<u8>), Error> {
    let h = read_handoff(m, sb, index)?;
    read_handoff_manifest(m, sb, &h)
}

fn read_handoff_manifest(
    m: &impl Medium,
    sb: &Superblock,
    h: &Handoff,
) -> Result<(Vec<ManifestEntry>, Vec<u8>), Error> {
    let mut buf = Box::new(Chunk::ZERO);
    let mut seen = vec![0u64; pages_in(sb, h).div_ceil(64) as usize];
    let (mut runs, mut blob) = (Vec::new(), Vec::new());
    read_manifest(m, sb, h, &mut buf, &mut seen, |item| {
        match item {
            Item::Pages(e) => runs.push(e),
            Item::Blob(b) => blob.extend_from_slice(b),
        }
        Ok(())
    })?;
    Ok((runs, blob))
}

#[test]
fn a_scattered_workload_and_its_blob_read_back_as_written() {
    let mem = mem();
    let (mx, my, mut x, mut y) = two_hosts(&mem);
    // 700 single pages: five chunks of runs, and a blob of two chunks.
    let entries = scattered(700, 7);
    let blob: Vec<u8> = (0..BLOB_PER_CHUNK + 100).map(|i| (i % 251) as u8).collect();
    assert_eq!(chunks_needed(entries.len(), blob.len()).unwrap(), 7);
    let (index, id, r) = offer(&mx, &mut x, y.slot(), &entries, &blob).unwrap();
    assert_eq!(
        (r.pages, r.chunks, r.blob_bytes),
        (700, 7, blob.len() as u32)
    );
    y.accept(&my, index, id).unwrap();
    let sb = *y.superblock();
    assert_eq!(read(&my, &sb, index).unwrap(), (entries, blob));
}

#[test]
fn runs_longer_than_a_page_and_an_empty_blob() {
    let mem = mem();
    let (mx, my, mut x, y) = two_hosts(&mem);
    let entries = [
        ManifestEntry {
            vaddr: VBASE,
            offset: page(1),
            pages: 255,
        },
        ManifestEntry {
            vaddr: VBASE + (1 << 30),
            offset: page(256),
            pages: 512,
        },
    ];
    let (index, _, _) = offer(&mx, &mut x, y.slot(), &entries, &[]).unwrap();
    let sb = *y.superblock();
    assert_eq!(read(&my, &sb, index).unwrap(), (entries.to_vec(), vec![]));
}

/// Flips one byte of the manifest's chunks (chunk `c`, byte `at`) and checks the target refuses
/// it with a manifest error, never anything else.
fn refused_after(entries: &[ManifestEntry], blob: &[u8], edit: impl FnOnce(&mut [u8])) -> Error {
    let mem = mem();
    let (mx, my, mut x, y) = two_hosts(&mem);
    let (index, _, _) = offer(&mx, &mut x, y.slot(), entries, blob).unwrap();
    edit(&mut mem.bytes_mut());
    let sb = *y.superblock();
    read(&my, &sb, index).expect_err("a damaged manifest was read as good")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_flipped_byte_of_any_chunk_is_refused(c in 0u64..4, at in 0usize..CHUNK_SIZE, bit in 0u8..8) {
        let entries = scattered(400, 4);
        let e = refused_after(&entries, &[7; 300], |b| {
            b[(page(c) as usize) + at] ^= 1 << bit;
        });
        prop_assert!(matches!(e, Error::Manifest(_)), "{e:?}");
    }

    #[test]
    fn a_torn_chunk_is_refused(c in 0u64..4, from in 1usize..CHUNK_SIZE) {
        // The chunk as a write that died after `from` bytes leaves it: the rest still zero.
        let entries = scattered(400, 4);
        let e = refused_after(&entries, &[7; 300], |b| {
            let s = page(c) as usize;
            b[s + from..s + CHUNK_SIZE].fill(0);
        });
        prop_assert!(matches!(e, Error::Manifest(_)), "{e:?}");
    }
}

/// Rewrites chunk `seq` of a manifest in place as `edit` makes it, sealed again: a lying peer.
fn reseal(b: &mut [u8], seq: u64, edit: impl FnOnce(&mut Chunk)) {
    let s = page(seq) as usize;
    let mut c = Box::new(Chunk::ZERO);
    c.0.copy_from_slice(&b[s..s + CHUNK_SIZE]);
    edit(&mut c);
    c.seal();
    b[s..s + CHUNK_SIZE].copy_from_slice(&c.0);
}

fn lie(edit: impl FnOnce(&mut Chunk)) -> String {
    let entries = scattered(300, 2);
    match refused_after(&entries, &[], |b| reseal(b, 1, edit)) {
        Error::Manifest(why) => why.to_string(),
        e => panic!("a lying chunk gave {e:?}, not a manifest error"),
    }
}

fn header(c: &Chunk) -> ChunkHeader {
    c.check().unwrap().0
}

/// Rewrites chunk `c`'s header as `edit` makes it, keeping as many of its entries as fit.
fn rehead(c: &mut Chunk, edit: impl FnOnce(ChunkHeader) -> ChunkHeader) {
    let h = header(c);
    let new = edit(h);
    let mut copy = Box::new(Chunk::ZERO);
    copy.start(&new);
    for i in 0..new.used.min(h.used) as usize {
        copy.put_entry(i, &c.entry(i).0);
    }
    c.0 = copy.0;
}

#[test]
fn sealed_chunks_that_lie_are_refused_for_what_they_say() {
    // Each lie is well sealed: only the checks of what it says catch it.
    let twice = lie(|c| {
        let (e, _) = c.entry(0);
        c.put_entry(
            1,
            &ManifestEntry {
                vaddr: e.vaddr + PAGE_BYTES,
                ..e
            },
        );
    });
    assert!(twice.contains("twice"), "{twice}");
    let a_chunk = lie(|c| {
        let (e, _) = c.entry(3);
        c.put_entry(
            3,
            &ManifestEntry {
                offset: page(0),
                ..e
            },
        );
    });
    assert!(a_chunk.contains("twice"), "{a_chunk}");
    let outside = lie(|c| {
        let (e, _) = c.entry(0);
        c.put_entry(
            0,
            &ManifestEntry {
                offset: 6 * GEO.block_size,
                ..e
            },
        );
    });
    assert!(outside.contains("not in the blocks"), "{outside}");
    let header_page = lie(|c| {
        let (e, _) = c.entry(0);
        c.put_entry(0, &ManifestEntry { offset: 0, ..e });
    });
    assert!(header_page.contains("not in the blocks"), "{header_page}");
    let order = lie(|c| {
        let (e, _) = c.entry(5);
        c.put_entry(5, &ManifestEntry { vaddr: 0, ..e });
    });
    assert!(order.contains("out of order"), "{order}");
    let overflow = lie(|c| {
        let (e, _) = c.entry(0);
        c.put_entry(
            0,
            &ManifestEntry {
                vaddr: !(PAGE_BYTES - 1),
                ..e
            },
        );
    });
    assert!(overflow.contains("overflow"), "{overflow}");
    let foreign = lie(|c| rehead(c, |h| ChunkHeader { tag: 0xbad, ..h }));
    assert!(foreign.contains("another manifest"), "{foreign}");
    let looped = lie(|c| rehead(c, |h| ChunkHeader { next: page(0), ..h }));
    // The manifest has 2 chunks: chunk 1 must end the chain.
    assert!(looped.contains("chain"), "{looped}");
    let totals = lie(|c| {
        rehead(c, |h| ChunkHeader {
            used: h.used - 1,
            ..h
        })
    });
    assert!(totals.contains("totals"), "{totals}");
    let kind = lie(|c| {
        let h = header(c);
        c.start(&ChunkHeader {
            kind: ChunkKind::Blob,
            ..h
        });
    });
    assert!(kind.contains("blob"), "{kind}");
}

#[test]
fn a_chunk_from_an_earlier_manifest_is_refused() {
    // x offers with one manifest, cancels, writes a second one over fewer chunks and offers
    // again; the first manifest's second chunk is still in memory: the new record's chain must
    // not pick it up. The second record references a one-chunk manifest; make its chunk claim a
    // successor and the stale chunk is refused by its tag.
    let mem = mem();
    let (mx, my, mut x, y) = two_hosts(&mem);
    let (index, id, _) = offer(&mx, &mut x, y.slot(), &scattered(300, 2), &[]).unwrap();
    x.cancel(&mx, index, id).unwrap();
    let at = chunk_pages(1);
    let mut buf = Box::new(Chunk::ZERO);
    let entries = scattered(100, 2);
    let mut r = write_manifest(&mx, 0x5eee, &at, &entries, &[], &mut buf).unwrap();
    r.chunks = 2;
    reseal(&mut mem.bytes_mut(), 0, |c| {
        rehead(c, |h| ChunkHeader { next: page(1), ..h })
    });
    let (index, _) = x.offer_manifest(&mx, y.slot(), &[OFFERED], r).unwrap();
    let sb = *y.superblock();
    match read(&my, &sb, index) {
        Err(Error::Manifest(why)) => assert!(why.contains("another manifest"), "{why}"),
        other => panic!("a stale chunk gave {other:?}"),
    }
}

#[test]
fn a_reader_with_a_short_page_map_is_refused() {
    let mem = mem();
    let (mx, my, mut x, y) = two_hosts(&mem);
    let (index, _, _) = offer(&mx, &mut x, y.slot(), &scattered(10, 1), &[]).unwrap();
    let sb = *y.superblock();
    let h = read_handoff(&my, &sb, index).unwrap();
    let mut seen = vec![0u64; (pages_in(&sb, &h) / 64 - 1) as usize];
    let r = read_manifest(&my, &sb, &h, &mut Box::new(Chunk::ZERO), &mut seen, |_| {
        Ok(())
    });
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
}

#[test]
fn the_writer_and_the_offer_refuse_what_no_reader_could_use() {
    let mem = mem();
    let (mx, _my, mut x, y) = two_hosts(&mem);
    let mut buf = Box::new(Chunk::ZERO);
    let one = |vaddr, offset, pages| {
        [ManifestEntry {
            vaddr,
            offset,
            pages,
        }]
    };
    for bad in [
        one(VBASE + 1, page(1), 1),
        one(VBASE, page(1) + 8, 1),
        one(VBASE, page(1), 0),
    ] {
        let r = write_manifest(&mx, 1, &chunk_pages(1), &bad, &[], &mut buf);
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
    }
    let r = write_manifest(
        &mx,
        1,
        &chunk_pages(2),
        &one(VBASE, page(1), 1),
        &[],
        &mut buf,
    );
    assert!(
        matches!(r, Err(Error::Invalid(_))),
        "two chunks for one: {r:?}"
    );
    assert!(chunks_needed(0, 0).is_err());
    assert!(chunks_needed(1, 64 << 10).is_ok());
    assert!(chunks_needed(1, (64 << 10) + 1).is_err());
    assert!(chunks_needed(1024 * ENTRIES_PER_CHUNK + 1, 0).is_err());
    // A manifest whose first chunk is outside the blocks offered.
    let r = write_manifest(
        &mx,
        1,
        &[6 * GEO.block_size],
        &one(VBASE, page(1), 1),
        &[],
        &mut buf,
    )
    .unwrap();
    let offered = x.offer_manifest(&mx, y.slot(), &[OFFERED], r);
    assert!(matches!(offered, Err(Error::Invalid(_))), "{offered:?}");
}

/// x dies at its `n`-th write of writing a manifest and offering with it. y must then see no
/// offer, or an offer whose manifest reads back exactly. Returns whether x finished.
fn after_a_dead_source(n: u64) -> bool {
    let mem = mem();
    let (mx, my, mut x, y) = two_hosts(&mem);
    let entries = scattered(400, 4);
    let blob = [3u8; 100];
    let before = mx.writes();
    mx.die_after(n);
    let done = offer(&mx, &mut x, y.slot(), &entries, &blob).is_ok();
    let finished = done && mx.writes() - before < n;
    let sb = *y.superblock();
    let mut offers = 0;
    for i in 0..sb.handoffs {
        let h = read_handoff(&my, &sb, i).unwrap();
        if h.state == HandoffState::Offered {
            assert_eq!(
                read_handoff_manifest(&my, &sb, &h).unwrap(),
                (entries.clone(), blob.to_vec()),
                "death at write {n}: an offer whose manifest is not what was written"
            );
            offers += 1;
        }
    }
    assert!(
        !finished || offers == 1,
        "the offer finished but is not there"
    );
    finished
}

#[test]
fn a_source_that_dies_at_any_write_leaves_no_offer_or_a_whole_one() {
    let mut offered_seen = false;
    for n in 1..200 {
        if after_a_dead_source(n) {
            offered_seen = true;
            break;
        }
    }
    assert!(offered_seen, "the offer never completes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever a peer writes into the chunks and the record's manifest fields, reading it
    /// returns, and never panics or overflows: chunks of random bytes, sealed or not, after a
    /// valid header or not.
    #[test]
    fn any_chunk_bytes_and_any_record_fields_give_an_answer(
        words in proptest::collection::vec(any::<u64>(), 4 * CHUNK_SIZE / 8),
        keep_header in any::<bool>(),
        sealed in any::<bool>(),
        chunks in 0u32..2000,
        pages in any::<u64>(),
        blob_bytes in 0u32..70_000,
        first in 0u64..8,
    ) {
        let mem = mem();
        let (mx, my, mut x, y) = two_hosts(&mem);
        let (index, _, r) = offer(&mx, &mut x, y.slot(), &scattered(300, 4), &[1; 10]).unwrap();
        {
            let mut b = mem.bytes_mut();
            for (seq, w) in words.chunks(CHUNK_SIZE / 8).enumerate() {
                let s = page(seq as u64) as usize;
                let mut c = Box::new(Chunk::ZERO);
                for (i, v) in w.iter().enumerate() {
                    c.0[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
                }
                if keep_header {
                    c.0[..0x40].copy_from_slice(&b[s..s + 0x40]);
                }
                if sealed {
                    c.seal();
                }
                b[s..s + CHUNK_SIZE].copy_from_slice(&c.0);
            }
        }
        let sb = *y.superblock();
        let mut h = read_handoff(&my, &sb, index).unwrap();
        h.manifest = ManifestRef { offset: page(first), chunks, pages, blob_bytes, ..r };
        let _ = read_handoff_manifest(&my, &sb, &h);
    }
}

/// Runs the independent checker (`checkers/portal_spec.py`, written from the spec) on `bytes`;
/// returns whether it passed and what it printed.
fn spec_check(bytes: &[u8], name: &str) -> (bool, String) {
    let path = std::env::temp_dir().join(format!("cxlsw-{}-{name}.img", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let checker = concat!(env!("CARGO_MANIFEST_DIR"), "/../../checkers/portal_spec.py");
    let out = std::process::Command::new("python3")
        .arg(checker)
        .arg("check")
        .arg(&path)
        .output()
        .expect("python3 runs the checker");
    let _ = std::fs::remove_file(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_independent_checker_agrees_on_a_manifest_and_on_a_damaged_one() {
    let mem = mem();
    let (mx, my, mut x, mut y) = two_hosts(&mem);
    let (index, id, _) = offer(&mx, &mut x, y.slot(), &scattered(600, 6), &[5; 5000]).unwrap();
    y.accept(&my, index, id).unwrap();
    let good = mem.bytes_mut().clone();
    let (ok, out) = spec_check(&good, "good");
    assert!(ok, "the checker refuses a manifest the core wrote: {out}");
    // A well-sealed chunk listing a page twice: the checker must see it as the core does.
    let mut bad = good.clone();
    reseal(&mut bad, 2, |c| {
        let (e, _) = c.entry(0);
        c.put_entry(
            1,
            &ManifestEntry {
                vaddr: e.vaddr + PAGE_BYTES,
                ..e
            },
        );
    });
    let (ok, out) = spec_check(&bad, "bad");
    assert!(
        !ok && out.contains("manifest"),
        "the checker missed a page listed twice: {out}"
    );
}

#[test]
fn a_source_releases_a_manifest_only_after_its_target_pulled() {
    let mem = mem();
    let (mx, my, mut x, mut y) = two_hosts(&mem);
    let (index, id, _) = offer(&mx, &mut x, y.slot(), &scattered(40, 1), &[]).unwrap();
    // Not accepted yet: nobody has pulled anything.
    assert!(matches!(y.pulled(&my, index, id), Err(Error::Invalid(_))));
    y.accept(&my, index, id).unwrap();
    // The target still reads the source's pages: the source must keep them.
    assert!(matches!(x.release(&mx, index, id), Err(Error::Invalid(_))));
    // Only the target says it pulled.
    assert!(matches!(x.pulled(&mx, index, id), Err(Error::Invalid(_))));
    y.pulled(&my, index, id).unwrap();
    let sb = *y.superblock();
    let h = read_handoff(&my, &sb, index).unwrap();
    assert!(h.pulled && h.state == HandoffState::Accepted);
    assert_eq!(h.manifest.pages, 40);
    let (ok, out) = spec_check(&mem.bytes_mut().clone(), "pulled");
    assert!(ok, "the checker refuses a pulled handoff: {out}");
    y.pulled(&my, index, id).unwrap();
    x.release(&mx, index, id).unwrap();
    let h = read_handoff(&mx, &sb, index).unwrap();
    assert_eq!(
        (h.state, h.outcome),
        (HandoffState::Free, Outcome::Released)
    );
    // The free record keeps the flags its handoff ended with, which the spec allows.
    assert!(h.pulled);
    let (ok, out) = spec_check(&mem.bytes_mut().clone(), "released");
    assert!(ok, "the checker refuses a released handoff's record: {out}");
}

/// x offers to y, y accepts, maps the pages if `map`, and dies; x has y fenced and reaps it.
/// Returns the record x then reads, and the image.
fn after_a_dead_target(map: bool) -> (Handoff, Vec<u8>) {
    let mem = mem();
    let (mx, my, mut x, mut y) = two_hosts(&mem);
    let (index, id, _) = offer(&mx, &mut x, y.slot(), &scattered(40, 1), &[]).unwrap();
    // Only the target of an accepted handoff maps it.
    assert!(matches!(y.mapped(&my, index, id), Err(Error::Invalid(_))));
    y.accept(&my, index, id).unwrap();
    assert!(matches!(x.mapped(&mx, index, id), Err(Error::Invalid(_))));
    if map {
        y.mapped(&my, index, id).unwrap();
        y.mapped(&my, index, id).unwrap();
    }
    for _ in 0..8 {
        mem.advance(u64::from(TIMING.lease_ms / 4));
        x.renew(&mx).unwrap();
    }
    x.confirm_fenced(&mx, y.slot(), y.uuid()).unwrap();
    for _ in 0..4 {
        mem.advance(u64::from(TIMING.lease_ms / 4));
        x.heartbeat(&mx).unwrap();
    }
    let sb = *x.superblock();
    let h = read_handoff(&mx, &sb, index).unwrap();
    assert_eq!(h.id, id);
    let img = mem.bytes_mut().clone();
    (h, img)
}

#[test]
fn a_handoff_rolled_back_after_its_target_died_says_whether_the_target_had_mapped_it() {
    for map in [false, true] {
        let (h, img) = after_a_dead_target(map);
        assert_eq!(
            (h.state, h.outcome, h.mapped),
            (HandoffState::Free, Outcome::RolledBack, map),
            "mapped {map}"
        );
        let (ok, out) = spec_check(&img, &format!("dead-target-{map}"));
        assert!(
            ok,
            "the checker refuses the rolled-back record (mapped {map}): {out}"
        );
    }
}

#[test]
fn the_checker_refuses_a_pulled_flag_on_an_offer() {
    let mem = mem();
    let (mx, _my, mut x, y) = two_hosts(&mem);
    let (index, _, _) = offer(&mx, &mut x, y.slot(), &scattered(10, 1), &[]).unwrap();
    let sb = *x.superblock();
    let h = read_handoff(&mx, &sb, index).unwrap();
    // Rewrite the record as the target never could: pulled before it accepted.
    let (mut rec, next) =
        protocol::records::read_table(&mx, &sb, crate::abi::Kind::Handoff, index).unwrap();
    Handoff { pulled: true, ..h }.encode(&mut rec.payload);
    let at = sb.record_offset(crate::abi::Kind::Handoff, index, 1 - next) as usize;
    let mut bad = mem.bytes_mut().clone();
    bad[at..at + crate::abi::RECORD_SIZE].copy_from_slice(&rec.encode());
    let (ok, out) = spec_check(&bad, "pulled-offer");
    assert!(
        !ok && out.contains("target flags 0x1 on a record never accepted"),
        "the checker missed it: {out}"
    );
    // Nor mapped, nor a flag no version defines.
    for (edit, name, says) in [
        (
            Handoff { mapped: true, ..h },
            "mapped-offer",
            "target flags 0x2 on a record never accepted",
        ),
        (h, "unknown-flag", "unknown target flags 0x6"),
    ] {
        let mut rec = rec;
        edit.encode(&mut rec.payload);
        if name == "unknown-flag" {
            rec.payload[0x84..0x88].copy_from_slice(&6u32.to_le_bytes());
        }
        let mut bad = mem.bytes_mut().clone();
        bad[at..at + crate::abi::RECORD_SIZE].copy_from_slice(&rec.encode());
        let (ok, out) = spec_check(&bad, name);
        assert!(
            !ok && out.contains(says),
            "the checker missed {name}: {out}"
        );
    }
}
