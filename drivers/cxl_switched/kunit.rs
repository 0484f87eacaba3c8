// SPDX-License-Identifier: GPL-2.0

//! KUnit suites of the handoff core, run in the kernel that runs it.
//!
//! The core (`crate::handoff`) never names the kernel crate; its suites live here, in the glue.
//! The userspace crate `tools/handoff` runs the same code through many more tests (property
//! tests, a crash at every write of every operation, the handoff steps, a fuzz target).

#[kernel::macros::kunit_tests(cxl_switched_crc32c)]
mod crc32c {
    use crate::handoff::crc32c::{crc32c, update};

    // Check values from RFC 3720, appendix B.4, and the CRC catalogue.
    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let mut inc = [0u8; 32];
        for (b, v) in inc.iter_mut().zip(0u8..) {
            *b = v;
        }
        assert_eq!(crc32c(&inc), 0x46dd_794e);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"switched CXL memory as typed NUMA nodes";
        let (a, b) = data.split_at(11);
        assert_eq!(!update(update(!0, a), b), crc32c(data));
    }
}

#[kernel::macros::kunit_tests(cxl_switched_layout)]
mod layout {
    use crate::handoff::layout::{LayoutError, PortalLayout};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn splits_header_from_online_part() -> Result<(), LayoutError> {
        let l = PortalLayout::new(0x1_0000_0000, 512 * MIB, 128 * MIB)?;
        assert_eq!(l.header, 0x1_0000_0000..0x1_0800_0000);
        assert_eq!(l.online, 0x1_0800_0000..0x1_2000_0000);
        assert_eq!(l.blocks(), 3);
        assert_eq!(l.block_size(), 128 * MIB);
        Ok(())
    }

    #[test]
    fn smallest_portal_is_header_plus_one_block() -> Result<(), LayoutError> {
        let l = PortalLayout::new(4 * GIB, 256 * MIB, 128 * MIB)?;
        assert_eq!(l.blocks(), 1);
        assert_eq!(
            PortalLayout::new(4 * GIB, 128 * MIB, 128 * MIB),
            Err(LayoutError::TooSmall)
        );
        assert_eq!(
            PortalLayout::new(4 * GIB, 0, 128 * MIB),
            Err(LayoutError::TooSmall)
        );
        Ok(())
    }

    #[test]
    fn refuses_misaligned_ranges() {
        assert_eq!(
            PortalLayout::new(4 * GIB + 4096, 512 * MIB, 128 * MIB),
            Err(LayoutError::MisalignedStart)
        );
        assert_eq!(
            PortalLayout::new(4 * GIB, 512 * MIB + 4096, 128 * MIB),
            Err(LayoutError::MisalignedSize)
        );
    }

    #[test]
    fn refuses_bad_block_size_and_overflow() {
        assert_eq!(
            PortalLayout::new(0, 512 * MIB, 0),
            Err(LayoutError::BadBlockSize)
        );
        assert_eq!(
            PortalLayout::new(0, 512 * MIB, 96 * MIB),
            Err(LayoutError::BadBlockSize)
        );
        assert_eq!(
            PortalLayout::new(u64::MAX - 128 * MIB + 1, 256 * MIB, 128 * MIB),
            Err(LayoutError::Overflow)
        );
    }

    #[test]
    fn block_lookup_round_trips() -> Result<(), LayoutError> {
        let l = PortalLayout::new(8 * GIB, 2 * GIB, 128 * MIB)?;
        assert_eq!(l.blocks(), 15);
        let mut next = l.online.start;
        for i in 0..l.blocks() {
            let r = l.block(i).ok_or(LayoutError::TooSmall)?;
            assert_eq!(r.start, next);
            assert_eq!(r.end - r.start, 128 * MIB);
            assert_eq!(l.block_of(r.start), Some(i));
            assert_eq!(l.block_of(r.end - 1), Some(i));
            next = r.end;
        }
        assert_eq!(next, l.online.end);
        assert_eq!(l.block(15), None);
        assert_eq!(l.block_of(l.header.start), None);
        assert_eq!(l.block_of(l.online.end), None);
        Ok(())
    }
}

#[kernel::macros::kunit_tests(cxl_switched_abi)]
mod abi {
    use crate::handoff::abi::{
        boot_state, BootState, Geometry, HeaderError, Superblock, Timing, EMPTY_BYTES, MINOR,
        SB_READY,
    };

    use kernel::prelude::*;

    const GEO: Geometry = Geometry {
        block_size: 128 << 20,
        block_count: 4,
        header_blocks: 1,
        host_slots: 64,
    };
    const TIMING: Timing = Timing {
        lease_ms: 5000,
        settle_ms: 100,
    };

    fn ready(uuid: [u8; 16]) -> Superblock {
        let mut sb = Superblock::new(uuid, GEO, 16, TIMING);
        sb.state = SB_READY;
        sb
    }

    // Pages live on the heap: three of them would crowd a kernel stack.
    fn page_with(rec: &[u8]) -> Result<KVec<u8>> {
        let mut p = KVec::from_elem(0u8, EMPTY_BYTES, GFP_KERNEL)?;
        p[..rec.len()].copy_from_slice(rec);
        Ok(p)
    }

    #[test]
    fn round_trip_and_known_layout() -> Result {
        let sb = ready([7; 16]);
        let b = sb.encode();
        assert_eq!(&b[..8], b"CXLSWPTL");
        assert_eq!(b[0x08], 2);
        assert_eq!(b[0x3c], 64);
        assert_eq!(Superblock::decode(&b), Ok(sb));
        assert_eq!(boot_state(&page_with(&b)?, &GEO), BootState::Formatted(sb));
        Ok(())
    }

    #[test]
    fn zero_is_empty_and_garbage_is_refused() -> Result {
        assert_eq!(boot_state(&page_with(&[])?, &GEO), BootState::Empty);
        let mut p = page_with(&[])?;
        p[EMPTY_BYTES - 1] = 1;
        assert_eq!(
            boot_state(&p, &GEO),
            BootState::Refused(HeaderError::Foreign)
        );
        Ok(())
    }

    #[test]
    fn flipped_byte_newer_major_and_other_device_are_refused() -> Result {
        let b = ready([1; 16]).encode();
        let mut torn = b;
        torn[0x30] ^= 0x40;
        assert!(matches!(
            boot_state(&page_with(&torn)?, &GEO),
            BootState::Refused(HeaderError::Corrupt { .. })
        ));
        let mut newer = ready([1; 16]);
        newer.major = 3;
        assert_eq!(
            boot_state(&page_with(&newer.encode())?, &GEO),
            BootState::Refused(HeaderError::Newer {
                major: 3,
                minor: MINOR
            })
        );
        // Version 1 hosts reclaim without fencing: not a portal to share with them.
        let mut older = ready([1; 16]);
        older.major = 1;
        assert_eq!(
            boot_state(&page_with(&older.encode())?, &GEO),
            BootState::Refused(HeaderError::Older {
                major: 1,
                minor: MINOR
            })
        );
        let other = Geometry {
            block_count: 8,
            ..GEO
        };
        assert!(matches!(
            boot_state(&page_with(&b)?, &other),
            BootState::Refused(HeaderError::Geometry(_))
        ));
        Ok(())
    }
}

#[kernel::macros::kunit_tests(cxl_switched_protocol)]
mod protocol {
    use crate::handoff::{
        abi::{Geometry, MemberState, Timing},
        protocol::{
            boot::open,
            records::{for_each_owner, read_member},
            Error, Host, Medium,
        },
    };

    use core::cell::{Cell, RefCell};
    use kernel::prelude::*;

    const GEO: Geometry = Geometry {
        block_size: 64 << 10,
        block_count: 21,
        header_blocks: 1,
        host_slots: 4,
    };
    const TIMING: Timing = Timing {
        lease_ms: 1000,
        settle_ms: 10,
    };

    /// Memory shared by simulated hosts, with a clock that moves when one sleeps; a host may die
    /// at its n-th write, which lands torn.
    struct Sim {
        bytes: RefCell<KVec<u8>>,
        clock: Cell<u64>,
        budget: Cell<u64>,
    }

    impl Sim {
        fn new() -> Result<Self> {
            let bytes = KVec::from_elem(0u8, usize::try_from(GEO.block_size)?, GFP_KERNEL)?;
            Ok(Sim {
                bytes: RefCell::new(bytes),
                clock: Cell::new(1000),
                budget: Cell::new(u64::MAX),
            })
        }
    }

    fn span(off: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(off).ok()?;
        Some(start..start.checked_add(len)?)
    }

    impl Medium for Sim {
        fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Error> {
            let b = self.bytes.borrow();
            let s = span(off, buf.len())
                .and_then(|r| b.get(r))
                .ok_or(Error::Medium)?;
            buf.copy_from_slice(s);
            Ok(())
        }

        fn write(&self, off: u64, data: &[u8]) -> Result<(), Error> {
            let mut b = self.bytes.borrow_mut();
            let s = span(off, data.len())
                .and_then(|r| b.get_mut(r))
                .ok_or(Error::Medium)?;
            match self.budget.get() {
                0 => return Err(Error::Medium),
                1 => {
                    self.budget.set(0);
                    s[..data.len() / 2].copy_from_slice(&data[..data.len() / 2]);
                    return Err(Error::Medium);
                }
                n => self.budget.set(n.saturating_sub(1)),
            }
            s.copy_from_slice(data);
            Ok(())
        }

        fn write_back(&self, _off: u64, _len: usize) {}

        fn invalidate(&self, _off: u64, _len: usize) {}

        fn now_ms(&self) -> u64 {
            self.clock.get()
        }

        fn sleep_ms(&self, ms: u32) {
            self.clock.set(self.clock.get() + u64::from(ms.max(1)));
        }
    }

    fn join(m: &Sim, n: u8) -> Result<KBox<Host>> {
        let sb = *open(m, &GEO, [n + 100; 16], 4, TIMING, true)
            .map_err(|_| EIO)?
            .superblock();
        Ok(KBox::new(
            Host::join(m, sb, [n; 16], u32::from(n)).map_err(|_| EIO)?,
            GFP_KERNEL,
        )?)
    }

    fn count(h: &Host, m: &Sim) -> u64 {
        let mut n = 0;
        assert!(h.owned(m, |_, _| n += 1).is_ok());
        n
    }

    #[test]
    fn format_join_claim_disjoint() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_ne!(a.slot(), b.slot());
        assert_eq!(a.claim(&m, 12), Ok(12));
        assert_eq!(b.claim(&m, 12), Ok(8));
        let mut both = 0;
        let (sa, sb) = (u16::try_from(a.slot())?, u16::try_from(b.slot())?);
        assert!(for_each_owner(&m, a.superblock(), |_, o| both +=
            u32::from(o.slot == sa) + u32::from(o.slot == sb))
        .is_ok());
        assert_eq!(both, 20);
        assert_eq!(a.give_back(&m, |blk| blk < 4), Ok(4));
        assert_eq!(count(&a, &m), 8);
        Ok(())
    }

    #[test]
    fn silent_host_is_a_suspect_and_reaped_once_fenced() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_eq!(a.claim(&m, 5), Ok(5));
        // b heartbeats; a is silent: a suspect after a lease, but it keeps its blocks.
        for _ in 0..15 {
            m.sleep_ms(200);
            assert!(b.heartbeat(&m).is_ok());
        }
        assert_eq!(count(&b, &m), 0);
        let mut suspects = 0;
        assert!(b
            .suspects(&m, |s| suspects +=
                u32::from(s.slot == a.slot() && !s.confirmed))
            .is_ok());
        assert_eq!(suspects, 1);
        // Confirmed off: the next heartbeat reaps it.
        assert!(b.confirm_fenced(&m, a.slot(), a.uuid()).is_ok());
        assert_eq!(b.heartbeat(&m), Ok(1));
        assert_eq!(count(&b, &m), 5);
        assert_eq!(a.renew(&m), Err(Error::Expired));
        assert_eq!(
            read_member(&m, a.superblock(), a.slot()).map(|x| x.state),
            Ok(MemberState::Fenced)
        );
        Ok(())
    }

    #[test]
    fn crash_mid_claim_is_rolled_back() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_eq!(a.claim(&m, 4), Ok(4));
        assert_eq!(a.give_back(&m, |blk| blk < 2), Ok(2));
        assert_eq!(b.claim(&m, 2), Ok(2));
        assert_eq!((count(&a, &m), count(&b, &m)), (2, 2));
        // a dies at the fourth write of a claim (inside its transaction) and is confirmed off:
        // b rolls it back, reaps a and takes its two blocks; nothing is half-claimed.
        m.budget.set(4);
        assert!(a.claim(&m, 3).is_err());
        m.budget.set(u64::MAX);
        assert!(b.confirm_fenced(&m, a.slot(), a.uuid()).is_ok());
        for _ in 0..15 {
            m.sleep_ms(200);
            assert!(b.heartbeat(&m).is_ok());
        }
        assert_eq!(count(&b, &m), 4);
        let mut free = 0;
        assert!(for_each_owner(&m, b.superblock(), |_, o| free += u32::from(o.is_free())).is_ok());
        assert_eq!(free, 16);
        Ok(())
    }
}
