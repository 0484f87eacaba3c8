// SPDX-License-Identifier: GPL-2.0
//! The migration workload: a computation whose whole state lives in one
//! region of memory, so that moving the region moves the computation, and
//! whose result changes if any page of it is lost, stale or duplicated on
//! the way.
//!
//! The region is `n >= 2` pages. Page 0 is the state page: eight
//! little-endian u64 words, the rest of the page zero:
//!
//! | word | field                                            |
//! |------|--------------------------------------------------|
//! | 0    | magic, the bytes `CXLSWWL1`                      |
//! | 1    | size of the region in pages, `n`                 |
//! | 2    | steps done                                       |
//! | 3    | steps total                                      |
//! | 4    | running hash                                     |
//! | 5    | seed                                             |
//! | 6    | runner token: who is running the workload        |
//! | 7    | checksum: words 0..=6 folded by [`fold`] from 0  |
//!
//! Pages 1..n are data pages of 512 little-endian u64 words. [`init`] sets
//! word `j` of data page `i` to `mix64(seed ^ (i << 20) ^ j)`: every word of
//! the region differs from every other, as [`mix64`] is a bijection.
//!
//! Step `s` folds `s`, then data pages `p`, `q` and `1 + s % (n - 1)` word
//! by word into the running hash (`p` and `q` are picked from the hash and
//! `s`), rewrites every word of page `p` with a bijection keyed by the new
//! hash, and writes the state page. The last step also folds in every data
//! page. So a page that differs from the clean run's, at any time, keeps
//! differing (the rewrite is a bijection) until it is folded into the hash,
//! at the latest in the last step, and from then on the hash differs (a fold
//! is a bijection in the hash and in the word): the result, the hash after
//! the last step, tells a faithful run from one that lost a write, read a
//! stale page or a duplicated one. Only a collision of several differences,
//! a chance of about 2^-64, would hide them.

use std::fmt;

use crate::PAGE;

/// The first eight bytes of a state page.
pub const MAGIC: [u8; 8] = *b"CXLSWWL1";

/// Bytes of the state page that hold its eight words.
const STATE_BYTES: usize = 64;
/// What a step folds with the hash to pick its page `p`, and its page `q`.
const PICK_P: u64 = 0x7061_6765_2d70_0001;
const PICK_Q: u64 = 0x7061_6765_2d71_0002;

/// The splitmix64 finalizer (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014) applied to `x + 0x9e3779b97f4a7c15`:
/// the value splitmix64 returns from state `x`. A bijection on u64.
pub fn mix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds word `w` into hash `h`: `mix64(h ^ w)`. Order-dependent, and a
/// bijection in `h` for a fixed `w` and in `w` for a fixed `h`.
pub fn fold(h: u64, w: u64) -> u64 {
    mix64(h ^ w)
}

/// A state page's fields, the words 1..=6 of the layout above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// Size of the region in pages.
    pub pages: u64,
    /// Steps done.
    pub done: u64,
    /// Steps total.
    pub total: u64,
    /// The running hash; once `done == total`, the result.
    pub hash: u64,
    /// The seed [`init`] filled the data pages from.
    pub seed: u64,
    /// The runner token of the last runner that [`claim`]ed the region.
    pub token: u64,
}

/// Why a region is not a workload, or not this runner's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The region's length in bytes is not a whole number of pages, at least 2.
    Length(usize),
    /// The state page does not start with [`MAGIC`].
    BadMagic,
    /// The state page's checksum does not match its fields.
    BadChecksum,
    /// The state page says `state` pages; the region has `actual`.
    SizeMismatch {
        /// The size the state page says.
        state: u64,
        /// The region's size in pages.
        actual: usize,
    },
    /// The state page says more steps are done than the total.
    StepsBeyondTotal {
        /// Steps done.
        done: u64,
        /// Steps total.
        total: u64,
    },
    /// The state page holds another runner's token, `found`, not `ours`.
    AnotherRunner {
        /// The token in the state page.
        found: u64,
        /// The token of the runner that checked.
        ours: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Length(len) => write!(
                f,
                "bad length: a region of {len} bytes is not a whole number of {PAGE}-byte pages, at least 2"
            ),
            Error::BadMagic => write!(f, "bad magic: the state page does not start with CXLSWWL1"),
            Error::BadChecksum => {
                write!(f, "bad checksum: the state page's fields do not match it")
            }
            Error::SizeMismatch { state, actual } => write!(
                f,
                "size mismatch: the state page says {state} pages, the region has {actual}"
            ),
            Error::StepsBeyondTotal { done, total } => {
                write!(f, "steps done {done} > steps total {total}")
            }
            Error::AnotherRunner { found, ours } => write!(
                f,
                "another runner took this workload (token {found:#018x}, ours {ours:#018x})"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The little-endian u64 in `c`, eight bytes.
fn word(c: &[u8]) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(c);
    u64::from_le_bytes(b)
}

/// The region's size in pages, if it is a whole number of pages, at least 2.
fn pages_of(mem: &[u8]) -> Result<usize, Error> {
    let n = mem.len() / PAGE;
    if mem.len() % PAGE != 0 || n < 2 {
        return Err(Error::Length(mem.len()));
    }
    Ok(n)
}

/// The checksum of a state page's words 0..=6.
fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0, |h, &w| fold(h, w))
}

/// Writes `st` into the state page of `mem`, which is at least a page.
fn write_state(mem: &mut [u8], st: &State) {
    let mut words = [
        u64::from_le_bytes(MAGIC),
        st.pages,
        st.done,
        st.total,
        st.hash,
        st.seed,
        st.token,
        0,
    ];
    words[7] = checksum(&words[..7]);
    for (c, w) in mem[..STATE_BYTES].chunks_exact_mut(8).zip(words) {
        c.copy_from_slice(&w.to_le_bytes());
    }
}

/// Reads and validates the state page of `mem`: the region's length, then
/// the magic, the checksum, the size and the steps, in that order; the
/// first that fails is the error. Never panics, whatever the bytes.
pub fn state(mem: &[u8]) -> Result<State, Error> {
    let n = pages_of(mem)?;
    let mut w = [0; 8];
    for (w, c) in w.iter_mut().zip(mem[..STATE_BYTES].chunks_exact(8)) {
        *w = word(c);
    }
    if w[0] != u64::from_le_bytes(MAGIC) {
        return Err(Error::BadMagic);
    }
    if w[7] != checksum(&w[..7]) {
        return Err(Error::BadChecksum);
    }
    if u64::try_from(n) != Ok(w[1]) {
        return Err(Error::SizeMismatch {
            state: w[1],
            actual: n,
        });
    }
    if w[2] > w[3] {
        return Err(Error::StepsBeyondTotal {
            done: w[2],
            total: w[3],
        });
    }
    Ok(State {
        pages: w[1],
        done: w[2],
        total: w[3],
        hash: w[4],
        seed: w[5],
        token: w[6],
    })
}

/// Makes `mem` a fresh workload of `total` steps from `seed`: fills the data
/// pages from the seed, and writes a state page with no steps done, the
/// hash `seed` and the token 0.
pub fn init(mem: &mut [u8], seed: u64, total: u64) -> Result<State, Error> {
    let n = pages_of(mem)?;
    let pages = u64::try_from(n).map_err(|_| Error::Length(mem.len()))?;
    for (i, page) in (0u64..).zip(mem.chunks_exact_mut(PAGE)).skip(1) {
        for (j, c) in (0u64..).zip(page.chunks_exact_mut(8)) {
            c.copy_from_slice(&mix64(seed ^ (i << 20) ^ j).to_le_bytes());
        }
    }
    mem[..PAGE].fill(0);
    let st = State {
        pages,
        done: 0,
        total,
        hash: seed,
        seed,
        token: 0,
    };
    write_state(mem, &st);
    Ok(st)
}

/// Makes `token` the runner token of the valid workload in `mem`: what a
/// runner does when it starts or resumes, before its first [`step`].
pub fn claim(mem: &mut [u8], token: u64) -> Result<State, Error> {
    let st = State {
        token,
        ..state(mem)?
    };
    write_state(mem, &st);
    Ok(st)
}

/// Validates the state page of `mem` and checks that it holds `token`.
fn check(mem: &[u8], token: u64) -> Result<State, Error> {
    let st = state(mem)?;
    if st.token != token {
        return Err(Error::AnotherRunner {
            found: st.token,
            ours: token,
        });
    }
    Ok(st)
}

/// Data page `1 + x % (n - 1)` of a region of `n >= 2` pages.
fn pick(x: u64, n: usize) -> usize {
    // Neither fallback is ever taken: n - 1 fits in a u64 where usize has at
    // most 64 bits, and x % data < n - 1 fits in a usize anyway.
    let data = u64::try_from(n - 1).unwrap_or(u64::MAX);
    1 + usize::try_from(x % data).unwrap_or(0)
}

/// Folds every word of `page` into `h`.
fn fold_page(h: u64, page: &[u8]) -> u64 {
    page.chunks_exact(8).fold(h, |h, c| fold(h, word(c)))
}

/// Page `i` of `mem`.
fn page(mem: &[u8], i: usize) -> &[u8] {
    &mem[i * PAGE..(i + 1) * PAGE]
}

/// Does step `st.done` of the valid workload `mem` of `n` pages, whose
/// state is `st` and not done, and returns the new state.
fn advance(mem: &mut [u8], n: usize, mut st: State) -> State {
    let s = st.done;
    let mut h = fold(st.hash, s);
    let p = pick(fold(h, PICK_P), n);
    let q = pick(fold(h, PICK_Q), n);
    for i in [p, q, pick(s, n)] {
        h = fold_page(h, page(mem, i));
    }
    for (j, c) in (0u64..).zip(mem[p * PAGE..(p + 1) * PAGE].chunks_exact_mut(8)) {
        c.copy_from_slice(&mix64(word(c) ^ h.wrapping_add(j)).to_le_bytes());
    }
    st.done = s + 1;
    if st.done == st.total {
        h = fold_page(h, &mem[PAGE..]);
    }
    st.hash = h;
    write_state(mem, &st);
    st
}

/// Does the next step of the workload in `mem` as the runner `token`, or
/// nothing if all steps are done, and returns the new state. Fails, with
/// the region unchanged, if the state page does not validate or holds
/// another runner's token.
pub fn step(mem: &mut [u8], token: u64) -> Result<State, Error> {
    let st = check(mem, token)?;
    if st.done == st.total {
        return Ok(st);
    }
    Ok(advance(mem, pages_of(mem)?, st))
}

/// Does [`step`]s as the runner `token` until `until` steps (or all of them,
/// if fewer) are done, and returns the state then. The checks of [`step`]
/// come before every step.
pub fn run(mem: &mut [u8], until: u64, token: u64) -> Result<State, Error> {
    loop {
        let st = check(mem, token)?;
        if st.done >= until.min(st.total) {
            return Ok(st);
        }
        advance(mem, pages_of(mem)?, st);
    }
}

/// The result of a workload of `pages` pages, `total` steps from `seed`,
/// computed in a plain vector: what a faithful run, wherever its memory
/// went, must end with. Fails with [`Error::Length`] if `pages` is not at
/// least 2 or its bytes overflow a usize.
pub fn expect(pages: usize, seed: u64, total: u64) -> Result<u64, Error> {
    let len = pages.checked_mul(PAGE).ok_or(Error::Length(usize::MAX))?;
    let mut mem = vec![0; len];
    init(&mut mem, seed, total)?;
    Ok(run(&mut mem, total, 0)?.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGES: usize = 64;
    const TOTAL: u64 = 300;
    const SEED: u64 = 0x1234_5678_9abc_def0;

    /// A fresh workload of PAGES pages and TOTAL steps from SEED, token 0.
    fn fresh() -> Vec<u8> {
        let mut mem = vec![0; PAGES * PAGE];
        init(&mut mem, SEED, TOTAL).unwrap();
        mem
    }

    /// A fresh workload after `k` steps.
    fn after(k: u64) -> Vec<u8> {
        let mut mem = fresh();
        assert_eq!(run(&mut mem, k, 0).unwrap().done, k);
        mem
    }

    /// Runs `mem` to the end as runner 0 and returns the result.
    fn finish(mem: &mut [u8]) -> u64 {
        let st = run(mem, u64::MAX, 0).unwrap();
        assert_eq!(st.done, st.total);
        st.hash
    }

    fn clean() -> u64 {
        expect(PAGES, SEED, TOTAL).unwrap()
    }

    fn page_mut(mem: &mut [u8], i: usize) -> &mut [u8] {
        &mut mem[i * PAGE..(i + 1) * PAGE]
    }

    /// The data pages that differ between `a` and `b`.
    fn changed(a: &[u8], b: &[u8]) -> Vec<usize> {
        (1..PAGES).filter(|&i| page(a, i) != page(b, i)).collect()
    }

    /// Steps in the middle and at both ends of the run.
    const KS: [u64; 5] = [0, 1, 77, TOTAL / 2, TOTAL - 2];

    #[test]
    fn the_vec_run_and_the_mmap_run_agree() {
        let mem = crate::anonymous_pages(PAGES).unwrap();
        init(mem, SEED, TOTAL).unwrap();
        claim(mem, 0xfeed).unwrap();
        assert_eq!(run(mem, TOTAL, 0xfeed).unwrap().hash, clean());
    }

    #[test]
    fn the_result_depends_on_the_seed_the_steps_and_the_size() {
        let r = clean();
        assert_eq!(r, clean());
        assert_ne!(r, expect(PAGES, SEED ^ 1, TOTAL).unwrap());
        assert_ne!(r, expect(PAGES, SEED, TOTAL + 1).unwrap());
        assert_ne!(r, expect(PAGES + 1, SEED, TOTAL).unwrap());
    }

    #[test]
    fn init_makes_every_word_distinct() {
        let mem = fresh();
        let words: std::collections::HashSet<u64> = mem[PAGE..].chunks_exact(8).map(word).collect();
        assert_eq!(words.len(), (PAGES - 1) * PAGE / 8);
    }

    #[test]
    fn a_run_resumed_from_its_memory_alone_gets_the_same_result() {
        for k in KS {
            // As a migration would: only the bytes go over, and a new runner
            // claims them.
            let mut mem = after(k).to_vec();
            assert_eq!(state(&mem).unwrap().done, k);
            claim(&mut mem, 42).unwrap();
            assert_eq!(run(&mut mem, TOTAL, 42).unwrap().hash, clean(), "k {k}");
        }
        let mut mem = fresh();
        while state(&mem).unwrap().done < TOTAL {
            step(&mut mem, 0).unwrap();
        }
        assert_eq!(state(&mem).unwrap().hash, clean());
        // Once done, more steps change nothing.
        let done = mem.clone();
        assert_eq!(step(&mut mem, 0).unwrap().hash, clean());
        assert_eq!(mem, done);
    }

    #[test]
    fn a_lost_write_changes_the_result() {
        for k in KS {
            let mut mem = after(k);
            let before = mem.clone();
            step(&mut mem, 0).unwrap();
            let written = changed(&before, &mem);
            assert_eq!(written.len(), 1, "k {k}: a step writes one data page");
            let p = written[0];
            // The step counted, but its write to page p never landed.
            page_mut(&mut mem, p).copy_from_slice(page(&before, p));
            assert_ne!(finish(&mut mem), clean(), "k {k}, page {p}");
        }
    }

    #[test]
    fn a_lost_state_page_write_changes_the_result() {
        for k in KS {
            let mut mem = after(k);
            let before = mem.clone();
            step(&mut mem, 0).unwrap();
            // The data page landed but the state page did not: the step is
            // done again.
            mem[..PAGE].copy_from_slice(&before[..PAGE]);
            assert_ne!(finish(&mut mem), clean(), "k {k}");
        }
    }

    #[test]
    fn a_stale_page_changes_the_result() {
        let (a, b) = (40, 200);
        let old = after(a);
        let new = after(b);
        let stale = changed(&old, &new);
        assert!(stale.len() > 10, "steps {a}..{b} rewrote {stale:?}");
        for p in stale {
            // The state and every other page are at step b, page p at step a.
            let mut mem = new.clone();
            page_mut(&mut mem, p).copy_from_slice(page(&old, p));
            assert_ne!(finish(&mut mem), clean(), "page {p}");
        }
    }

    #[test]
    fn a_duplicated_page_changes_the_result() {
        for k in KS {
            for (from, to) in [(1, 2), (PAGES - 1, 1), (17, 42), (42, 17)] {
                let mut mem = after(k);
                let copy = page(&mem, from).to_vec();
                page_mut(&mut mem, to).copy_from_slice(&copy);
                assert_ne!(finish(&mut mem), clean(), "k {k}: page {from} over {to}");
            }
        }
    }

    #[test]
    fn a_bit_flipped_in_any_data_page_changes_the_result() {
        // The last step reads every page: not one goes unread.
        for k in [0, TOTAL - 1] {
            for i in 1..PAGES {
                let mut mem = after(k);
                page_mut(&mut mem, i)[(i * 57) % PAGE] ^= 1 << (i % 8);
                assert_ne!(finish(&mut mem), clean(), "k {k}, page {i}");
            }
        }
    }

    #[test]
    fn a_bit_flipped_in_the_state_page_fails_validation() {
        let mem = after(5);
        for bit in 0..STATE_BYTES * 8 {
            let mut m = mem.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let e = state(&m).unwrap_err();
            let want = if bit < 64 {
                Error::BadMagic
            } else {
                Error::BadChecksum
            };
            assert_eq!(e, want, "bit {bit}");
            assert_eq!(step(&mut m, 0).unwrap_err(), want);
        }
    }

    #[test]
    fn each_validation_check_has_its_error() {
        for len in [0, 1, 64, PAGE, PAGE + 1, 2 * PAGE - 1, 3 * PAGE + 8] {
            let mut mem = vec![0; len];
            assert_eq!(state(&mem), Err(Error::Length(len)));
            assert_eq!(init(&mut mem, 0, 1), Err(Error::Length(len)));
            assert_eq!(step(&mut mem, 0), Err(Error::Length(len)));
        }
        let mut mem = fresh();
        mem[..8].copy_from_slice(b"CXLSWWL2");
        assert_eq!(state(&mem), Err(Error::BadMagic));

        let mut bigger = fresh();
        bigger.resize(2 * PAGES * PAGE, 0);
        let e = state(&bigger).unwrap_err();
        assert_eq!(
            e,
            Error::SizeMismatch {
                state: 64,
                actual: 128
            }
        );
        assert!(e.to_string().starts_with("size mismatch"), "{e}");

        let mut mem = fresh();
        let st = State {
            done: 9,
            total: 8,
            ..state(&mem).unwrap()
        };
        write_state(&mut mem, &st);
        let e = state(&mem).unwrap_err();
        assert_eq!(e, Error::StepsBeyondTotal { done: 9, total: 8 });
        assert_eq!(e.to_string(), "steps done 9 > steps total 8");
        assert!(Error::BadMagic.to_string().starts_with("bad magic"));
        assert!(Error::BadChecksum.to_string().starts_with("bad checksum"));
    }

    #[test]
    fn another_runner_is_detected_before_the_next_step() {
        let mut mem = fresh();
        claim(&mut mem, 1).unwrap();
        run(&mut mem, 10, 1).unwrap();
        claim(&mut mem, 2).unwrap();
        let taken = mem.clone();
        let e = Error::AnotherRunner { found: 2, ours: 1 };
        assert_eq!(step(&mut mem, 1), Err(e));
        assert_eq!(run(&mut mem, TOTAL, 1), Err(e));
        assert_eq!(mem, taken, "the refused runner wrote nothing");
        assert!(e
            .to_string()
            .starts_with("another runner took this workload"));
        // The new runner goes on to the clean result.
        assert_eq!(run(&mut mem, TOTAL, 2).unwrap().hash, clean());
    }

    #[test]
    fn random_state_pages_give_errors_not_panics() {
        let mut mem = fresh();
        let mut r = 0u64;
        let mut random = || {
            r += 1;
            mix64(r)
        };
        for i in 0..20_000 {
            let mut w: [u64; 8] = std::array::from_fn(|_| random());
            // Get past ever more of the checks: the magic, the checksum,
            // the size.
            if i % 4 >= 1 {
                w[0] = u64::from_le_bytes(MAGIC);
            }
            if i % 4 >= 3 {
                w[1] = 64;
            }
            if i % 4 >= 2 {
                w[7] = checksum(&w[..7]);
            }
            for (c, w) in mem[..STATE_BYTES].chunks_exact_mut(8).zip(w) {
                c.copy_from_slice(&w.to_le_bytes());
            }
            let got = state(&mem);
            match i % 4 {
                0 => assert_eq!(got, Err(Error::BadMagic)),
                1 => assert_eq!(got, Err(Error::BadChecksum)),
                2 => assert!(matches!(got, Err(Error::SizeMismatch { .. }))),
                _ if w[2] > w[3] => assert!(matches!(got, Err(Error::StepsBeyondTotal { .. }))),
                _ => assert!(got.is_ok()),
            }
            // Whatever the state page says, stepping gives an error or a
            // step, never a panic.
            let _ = step(&mut mem, w[6]);
            let _ = run(&mut mem, w[2].saturating_add(3), w[6]);
        }
    }
}
