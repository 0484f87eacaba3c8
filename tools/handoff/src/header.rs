//! The portal header as portalctl reads it: views of the handoff core's records
//! (`drivers/cxl_switched/handoff/`, the very files the driver builds), for
//! display and JSON.

use serde::Serialize;

use crate::abi::{
    self, BootState, Geometry, HandoffState, HeaderError, MemberState, Outcome, Superblock,
};
use crate::medium::Snapshot;
use crate::protocol;

/// The superblock fields, as `portal show --json` prints them.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SuperblockView {
    pub version: String,
    pub generation: u64,
    pub uuid: String,
    pub block_size: u64,
    pub block_count: u64,
    pub header_blocks: u32,
    pub host_slots: u32,
    pub slot_table_offset: u64,
    pub slot_size: u32,
    pub handoff_records: u32,
    pub lease_ms: u32,
    pub settle_ms: u32,
    /// Bytes of the header the tables span.
    pub header_bytes: u64,
}

/// A host slot with a member entry or a record.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct MemberView {
    pub slot: u32,
    /// free, live or fenced (the member table).
    pub state: String,
    pub epoch: u32,
    /// The slot record: free, claiming, member or unreadable.
    pub slot_state: String,
    pub host: Option<String>,
    /// The slot's generation: its heartbeat.
    pub heartbeat: Option<u64>,
    pub ticket: Option<u64>,
    /// A transaction in progress (an intent), if any.
    pub intent: Option<u64>,
    /// Data blocks owned in this epoch.
    pub blocks: u64,
}

/// A run of data blocks with one owner.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OwnerRun {
    pub first: u64,
    pub count: u64,
    /// The owner's slot, or None when free.
    pub slot: Option<u16>,
    pub epoch: u32,
    /// The handoff record the blocks are in (index), if any.
    pub handoff: Option<u16>,
}

/// A handoff record in use, or that ended.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct HandoffView {
    pub index: u32,
    pub id: u64,
    pub state: String,
    pub outcome: String,
    pub source: u16,
    pub source_epoch: u32,
    pub target: u16,
    pub target_epoch: u32,
    pub extents: Vec<(u32, u32)>,
}

/// The tables of a formatted portal, when the bytes read cover them.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TablesView {
    pub members: Vec<MemberView>,
    pub owners: Vec<OwnerRun>,
    pub handoffs: Vec<HandoffView>,
}

/// What a booting host would do with a portal that starts with these bytes.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Inspection {
    /// All zero: a host formats it.
    Empty,
    /// A host is formatting it (or died doing so: a host formats it again
    /// after a lease).
    Formatting { superblock: SuperblockView },
    /// A valid header: a host joins it. `tables` when the bytes read cover
    /// them.
    Formatted {
        superblock: SuperblockView,
        tables: Option<TablesView>,
    },
    /// Refused: a host onlines nothing.
    Refused { reason: String },
}

/// The device a header is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// Memory block size of the hosts (bytes).
    pub block_size: u64,
    /// Device size in bytes.
    pub size: u64,
}

/// Bytes a host reads to decide.
pub const START_BYTES: usize = abi::EMPTY_BYTES;

/// The most header bytes worth reading: the tables of the largest portal
/// version 1 allows fit in this.
pub const MAX_HEADER_BYTES: usize = 64 << 20;

/// How many bytes of a portal starting with `start` hold its header's
/// tables (`start.len()` when it has none, or they cannot be told).
pub fn header_bytes(start: &[u8]) -> usize {
    let mut rec = [0u8; abi::SUPERBLOCK_SIZE];
    match start.get(..abi::SUPERBLOCK_SIZE) {
        Some(r) => rec.copy_from_slice(r),
        None => return start.len(),
    }
    match Superblock::decode(&rec) {
        Ok(sb) => usize::try_from(sb.header_end().unwrap_or(u64::MAX))
            .unwrap_or(MAX_HEADER_BYTES)
            .clamp(start.len(), MAX_HEADER_BYTES),
        Err(_) => start.len(),
    }
}

fn uuid_text(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

fn view(sb: &Superblock) -> SuperblockView {
    SuperblockView {
        version: format!("{}.{}", sb.major, sb.minor),
        generation: sb.generation,
        uuid: uuid_text(&sb.uuid),
        block_size: sb.geometry.block_size,
        block_count: sb.geometry.block_count,
        header_blocks: sb.geometry.header_blocks,
        host_slots: sb.geometry.host_slots,
        slot_table_offset: sb.slot_offset,
        slot_size: sb.slot_size,
        handoff_records: sb.handoffs,
        lease_ms: sb.timing.lease_ms,
        settle_ms: sb.timing.settle_ms,
        // A decoded superblock's tables end inside its header blocks.
        header_bytes: sb.header_end().unwrap_or(u64::MAX),
    }
}

fn tables(bytes: &[u8], sb: &Superblock) -> Result<TablesView, String> {
    let m = Snapshot(bytes);
    let err = |e: protocol::Error| match e {
        protocol::Error::Corrupt(kind, index) => {
            format!("{} ({kind:?} table record {index})", e.as_str())
        }
        _ => e.as_str().to_string(),
    };
    protocol::boot::check_tables(&m, sb).map_err(err)?;
    let mut owners: Vec<OwnerRun> = Vec::new();
    let mut counts = vec![(0u16, 0u32, 0u64); 0];
    protocol::records::for_each_owner(&m, sb, |b, o| {
        let slot = (!o.is_free()).then_some(o.slot);
        let handoff = (o.handoff != 0).then(|| o.handoff - 1);
        match owners.last_mut() {
            Some(r)
                if r.slot == slot
                    && r.epoch == o.epoch
                    && r.handoff == handoff
                    && r.first + r.count == b =>
            {
                r.count += 1
            }
            _ => owners.push(OwnerRun {
                first: b,
                count: 1,
                slot,
                epoch: o.epoch,
                handoff,
            }),
        }
        if let Some(s) = slot {
            match counts.iter_mut().find(|c| c.0 == s && c.1 == o.epoch) {
                Some(c) => c.2 += 1,
                None => counts.push((s, o.epoch, 1)),
            }
        }
    })
    .map_err(err)?;
    let mut members = Vec::new();
    protocol::records::for_each_member(&m, sb, |v| {
        if v.member.state == MemberState::Free && v.record.is_none() && v.member.epoch == 0 {
            return;
        }
        let r = v.record;
        members.push(MemberView {
            slot: v.slot,
            state: format!("{:?}", v.member.state).to_lowercase(),
            epoch: v.member.epoch,
            slot_state: r.map_or("unreadable".into(), |r| {
                format!("{:?}", r.state).to_lowercase()
            }),
            host: r.map(|r| uuid_text(&r.host)),
            heartbeat: r.map(|r| r.generation),
            ticket: r.map(|r| r.ticket),
            intent: r.and_then(|r| (r.intent != 0).then_some(r.intent)),
            blocks: counts
                .iter()
                .find(|c| u32::from(c.0) == v.slot && c.1 == v.member.epoch)
                .map_or(0, |c| c.2),
        });
    })
    .map_err(err)?;
    let mut handoffs = Vec::new();
    for index in 0..sb.handoffs {
        let h = protocol::records::read_handoff(&m, sb, index).map_err(err)?;
        if h.state == HandoffState::Free && h.outcome == Outcome::None {
            continue;
        }
        handoffs.push(HandoffView {
            index,
            id: h.id,
            state: format!("{:?}", h.state).to_lowercase(),
            outcome: format!("{:?}", h.outcome).to_lowercase(),
            source: h.source,
            source_epoch: h.source_epoch,
            target: h.target,
            target_epoch: h.target_epoch,
            extents: h.extents().iter().map(|e| (e.start, e.count)).collect(),
        });
    }
    Ok(TablesView {
        members,
        owners,
        handoffs,
    })
}

fn reason(e: &HeaderError) -> String {
    match e {
        HeaderError::Corrupt { stored, computed } => {
            format!(
                "{} (stored {stored:#010x}, computed {computed:#010x})",
                e.as_str()
            )
        }
        HeaderError::Newer { major, minor } | HeaderError::Older { major, minor } => {
            format!("{} ({major}.{minor})", e.as_str())
        }
        _ => e.as_str().to_string(),
    }
}

/// Decides, as the driver does at probe, from the first bytes of a portal.
/// Without a device, a valid header is checked against its own geometry.
pub fn inspect(start: &[u8], device: Option<Device>) -> Inspection {
    let geometry = match device {
        Some(d) => Geometry {
            block_size: d.block_size,
            block_count: d.size.checked_div(d.block_size).unwrap_or(0),
            header_blocks: crate::layout::HEADER_BLOCKS as u32,
            host_slots: 0,
        },
        None => {
            // Trust the record's own geometry: decode it first.
            let mut rec = [0u8; abi::SUPERBLOCK_SIZE];
            match start.get(..abi::SUPERBLOCK_SIZE) {
                Some(r) => rec.copy_from_slice(r),
                None => {
                    return Inspection::Refused {
                        reason: "fewer than 4096 bytes read".into(),
                    }
                }
            }
            match Superblock::decode(&rec) {
                Ok(sb) => sb.geometry,
                Err(_) => Geometry {
                    block_size: 0,
                    block_count: 0,
                    header_blocks: 0,
                    host_slots: 0,
                },
            }
        }
    };
    match abi::boot_state(start, &geometry) {
        BootState::Empty => Inspection::Empty,
        BootState::Formatting(sb) => Inspection::Formatting {
            superblock: view(&sb),
        },
        BootState::Formatted(sb) if sb.header_end().is_none_or(|e| (start.len() as u64) < e) => {
            Inspection::Formatted {
                superblock: view(&sb),
                tables: None,
            }
        }
        BootState::Formatted(sb) => match tables(start, &sb) {
            Ok(t) => Inspection::Formatted {
                superblock: view(&sb),
                tables: Some(t),
            },
            Err(reason) => Inspection::Refused { reason },
        },
        BootState::Refused(e) => Inspection::Refused { reason: reason(&e) },
    }
}

/// One fuzz input: the first bytes of a portal, checked against a device
/// taken from its first 16 bytes. Everything a booting host and `portal
/// show` do with them must end without a panic.
pub fn fuzz_one(data: &[u8]) {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        for (i, b) in w.iter_mut().enumerate() {
            *b = data.get(at + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(w)
    };
    // Block sizes from 4 KiB to 1 GiB, and any size.
    let device = Device {
        block_size: 1 << (12 + word(0) % 19),
        size: word(8),
    };
    let _ = inspect(data, Some(device));
    let _ = inspect(data, None);
    let _ = header_bytes(data);
    // A valid superblock followed by fuzzed tables: decode them all.
    let mut rec = [0u8; abi::SUPERBLOCK_SIZE];
    if let Some(r) = data.get(..abi::SUPERBLOCK_SIZE) {
        rec.copy_from_slice(r);
        if let Ok(sb) = Superblock::decode(&rec) {
            let _ = tables(data, &sb);
        }
    }
}

/// The header of a portal of `size` bytes in blocks of `block_size`, as a
/// host formats it: the superblock and every table, empty (for tests and
/// for seeding lab portals). Empty if the geometry cannot hold a portal.
pub fn format_record(uuid: [u8; 16], block_size: u64, size: u64, host_slots: u32) -> Vec<u8> {
    let geometry = Geometry {
        block_size,
        block_count: size.checked_div(block_size).unwrap_or(0),
        header_blocks: crate::layout::HEADER_BLOCKS as u32,
        host_slots,
    };
    let timing = abi::Timing {
        lease_ms: 5000,
        settle_ms: 100,
    };
    let Some(end) = Superblock::new(uuid, geometry, 16, timing).header_end() else {
        return Vec::new();
    };
    let mem = crate::medium::SharedMem::new(end.max(abi::EMPTY_BYTES as u64) as usize);
    if protocol::boot::format(&mem.host(), uuid, geometry, 16, timing).is_err() {
        return Vec::new();
    }
    mem.into_bytes()
}
