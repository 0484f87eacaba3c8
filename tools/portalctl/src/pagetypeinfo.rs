//! Parser for `/proc/pagetypeinfo`.
//!
//! Upstream prints, per node and zone, one row of free-block counts per order
//! for every migrate type, then a table of pageblock counts per migrate type.
//! A node whose memory the cxl_switched driver typed adds, per zone, a row
//! whose type is `Switched` (the zone's free counts summed over the migrate
//! types). Lines this parser does not know are skipped; a line that looks
//! like one of these rows but does not parse is an error naming its line.

use std::collections::BTreeMap;
use std::fmt;

/// Free-block counts of one (node, zone, type) row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeRow {
    pub node: u32,
    pub zone: String,
    pub kind: String,
    /// Free blocks of order 0, 1, ...
    pub counts: Vec<u64>,
}

impl FreeRow {
    /// Free pages this row accounts for.
    pub fn free_pages(&self) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .map(|(order, n)| n << order)
            .sum()
    }
}

/// A parsed `/proc/pagetypeinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageTypeInfo {
    pub pageblock_order: Option<u32>,
    pub pages_per_block: Option<u64>,
    pub free: Vec<FreeRow>,
    /// (node, zone) -> pageblocks per migrate type, in header order.
    pub blocks: BTreeMap<(u32, String), Vec<(String, u64)>>,
}

/// The memory type name the driver gives a switched portal node.
pub const SWITCHED: &str = "Switched";

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn numbers(s: &str, line: usize) -> Result<Vec<u64>, ParseError> {
    s.split_whitespace()
        .map(|w| {
            w.parse::<u64>()
                .map_err(|_| err(line, format!("'{w}' is not a count")))
        })
        .collect()
}

impl PageTypeInfo {
    /// Parses the text of a pagetypeinfo file.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut p = PageTypeInfo::default();
        let mut block_types: Option<Vec<String>> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end();
            if let Some(rest) = line.strip_prefix("Page block order:") {
                p.pageblock_order = Some(
                    rest.trim()
                        .parse()
                        .map_err(|_| err(n, "bad page block order"))?,
                );
            } else if let Some(rest) = line.strip_prefix("Pages per block:") {
                p.pages_per_block = Some(
                    rest.trim()
                        .parse()
                        .map_err(|_| err(n, "bad pages per block"))?,
                );
            } else if let Some(rest) = line.strip_prefix("Number of blocks type") {
                block_types = Some(rest.split_whitespace().map(str::to_owned).collect());
            } else if line.starts_with("Node") {
                let (node, rest) = node_prefix(line, n)?;
                // "zone <Z>, type <T> counts..." or "zone <Z> counts..."
                let rest = rest
                    .trim_start()
                    .strip_prefix("zone")
                    .ok_or_else(|| err(n, "expected 'zone' after the node number"))?
                    .trim_start();
                if let Some((zone, after)) = rest.split_once(',') {
                    let after = after.trim_start();
                    let after = after
                        .strip_prefix("type")
                        .ok_or_else(|| err(n, "expected 'type' after the zone"))?;
                    let mut words = after.split_whitespace();
                    let kind = words
                        .next()
                        .ok_or_else(|| err(n, "missing migrate type"))?
                        .to_owned();
                    let rest: Vec<&str> = words.collect();
                    let counts = numbers(&rest.join(" "), n)?;
                    if counts.is_empty() {
                        return Err(err(n, "free-page row without counts"));
                    }
                    p.free.push(FreeRow {
                        node,
                        zone: zone.trim().to_owned(),
                        kind,
                        counts,
                    });
                } else {
                    let mut words = rest.split_whitespace();
                    let zone = words
                        .next()
                        .ok_or_else(|| err(n, "missing zone name"))?
                        .to_owned();
                    let counts = numbers(&words.collect::<Vec<_>>().join(" "), n)?;
                    let types = block_types
                        .as_ref()
                        .ok_or_else(|| err(n, "block-count row before its header"))?;
                    if counts.len() != types.len() {
                        return Err(err(
                            n,
                            format!(
                                "{} block counts for {} migrate types",
                                counts.len(),
                                types.len()
                            ),
                        ));
                    }
                    p.blocks
                        .insert((node, zone), types.iter().cloned().zip(counts).collect());
                }
            }
            // Anything else (headers, blank lines, unknown rows) is skipped.
        }
        Ok(p)
    }

    /// Nodes that have at least one `Switched` row.
    pub fn switched_nodes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .free
            .iter()
            .filter(|r| r.kind == SWITCHED)
            .map(|r| r.node)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// All nodes that appear in the file, ascending.
    pub fn nodes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.free.iter().map(|r| r.node).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Free pages of a node, counted once (the `Switched` rows repeat the
    /// migrate-type rows' sum and are not added again).
    pub fn free_pages(&self, node: u32) -> u64 {
        self.free
            .iter()
            .filter(|r| r.node == node && r.kind != SWITCHED)
            .map(FreeRow::free_pages)
            .sum()
    }
}

fn node_prefix(line: &str, n: usize) -> Result<(u32, &str), ParseError> {
    let rest = line["Node".len()..].trim_start();
    let (num, rest) = rest
        .split_once(',')
        .ok_or_else(|| err(n, "expected 'Node <n>,'"))?;
    let node = num
        .trim()
        .parse()
        .map_err(|_| err(n, format!("'{}' is not a node number", num.trim())))?;
    Ok((node, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &str = "\
Page block order: 9
Pages per block:  512

Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 
Node    0, zone    DMA32, type    Unmovable      1      0      0      0      0      0      0      0      0      0      0 
Node    0, zone    DMA32, type      Movable      2      3      0      0      0      0      0      0      0      0      1 
Node    1, zone  Movable, type      Movable      0      0      0      0      0      0      0      0      0      0     64 

Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate 
Node 0, zone    DMA32            1            7            0            0            0 
Node 1, zone  Movable            0          128            0            0            0 
";

    #[test]
    fn parses_upstream() {
        let p = PageTypeInfo::parse(UPSTREAM).unwrap();
        assert_eq!(p.pageblock_order, Some(9));
        assert_eq!(p.pages_per_block, Some(512));
        assert_eq!(p.free.len(), 3);
        assert_eq!(p.nodes(), vec![0, 1]);
        assert!(p.switched_nodes().is_empty());
        assert_eq!(p.free_pages(0), 1 + 2 + 3 * 2 + 1024);
        assert_eq!(p.free_pages(1), 64 * 1024);
        assert_eq!(
            p.blocks[&(1, "Movable".to_string())][1],
            ("Movable".to_string(), 128)
        );
    }

    #[test]
    fn switched_rows_mark_the_node_and_are_not_double_counted() {
        let text = UPSTREAM.replace(
            "Node    1, zone  Movable, type      Movable      0      0      0      0      0      0      0      0      0      0     64 \n",
            "Node    1, zone  Movable, type      Movable      0      0      0      0      0      0      0      0      0      0     64 \n\
             Node    1, zone  Movable, type     Switched      0      0      0      0      0      0      0      0      0      0     64 \n",
        );
        let p = PageTypeInfo::parse(&text).unwrap();
        assert_eq!(p.switched_nodes(), vec![1]);
        assert_eq!(p.free_pages(1), 64 * 1024);
    }

    #[test]
    fn malformed_row_names_its_line() {
        let text = UPSTREAM.replace("type      Movable      2", "type      Movable      x2");
        let e = PageTypeInfo::parse(&text).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("x2"), "{e}");
        let e = PageTypeInfo::parse("Node zero, zone DMA, type Movable 1\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn unknown_lines_are_skipped() {
        let text = format!("Something new: 3\n{UPSTREAM}A trailing note\n");
        assert_eq!(PageTypeInfo::parse(&text).unwrap().free.len(), 3);
    }

    #[test]
    fn block_row_count_mismatch_is_an_error() {
        let text = UPSTREAM.replace(
            "Node 1, zone  Movable            0          128",
            "Node 1, zone  Movable 128",
        );
        let e = PageTypeInfo::parse(&text).unwrap_err();
        assert_eq!(e.line, 11);
    }
}
