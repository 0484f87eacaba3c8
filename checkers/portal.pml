/*
 * The portal protocol, version 2, of Documentation/admin-guide/mm/cxl-switched-abi.rst
 * (drivers/cxl_switched/handoff/protocol/: lock.rs, records.rs, tx.rs, membership.rs,
 * ownership.rs, handoffs.rs), modelled for spin.
 *
 * Safety must not rest on timing. A host may pause at any step for any length of time and
 * resume where it was, and a lease only makes a host a suspect. So the model has no clocks.
 * Pauses are spin's scheduling; suspicion is arbitrary.
 *
 * What is modelled
 *  - Host slots: two copies each, an int per copy: valid, generation (mod 4), state, epoch,
 *    choosing, ticket, intent. A slot write is two steps: tear the older copy (invalid, the
 *    next generation), then complete it. A crash in between leaves the torn copy. A host
 *    rewrites its slot while it holds the lock (begin and commit of its transactions), with
 *    the same ticket. The older copy's content is never current (the current record is always
 *    the last completed write, which is valid), so the model keeps only its generation and its
 *    valid flag (STALE).
 *  - Settled reads (read_slot_settled): copy 0, copy 1, then copy 0 again until it reads the
 *    same twice. The model keeps, for each reader and slot, a bit meaning "nobody wrote copy 0
 *    since my first read of it" (watch[]) instead of the value read. When the read settles,
 *    copy 0 at the copy-1 read is what the first read saw. So a settled read returns the record
 *    that is current at the copy-1 read, and the model computes it there. The read takes two
 *    steps: (1) the first read of copy 0, which only starts the window and is folded into the
 *    reader's previous step; (2) the reads of copy 1 and of copy 0 again, one step. Both folds
 *    only drop settled reads of the code: the window starts earlier, or ends at the copy-1
 *    read, so it sees more writes. Every value a settled read of the code returns, the model
 *    returns too, at most one retry later, and a retry is invisible to the other hosts. A read
 *    that does not settle, or finds no valid copy, is waited for: it is retried, or the attempt
 *    is given up. With -DSNAPSHOT=1 (the 3-host run) a settled read is one step, a snapshot of
 *    the current record: that is what the argument above shows a settled read to be, as a
 *    retry can always start just before the snapshot.
 *  - The bakery (lock.rs): the doorway (choosing; read every other slot settled; ticket = max +
 *    1), then, for each other slot, wait while it counts and is choosing or holds a smaller
 *    (ticket, slot). A slot counts if it is claiming or a member, not if it is free or fenced.
 *    A suspect is never passed. At every wait a host may give up instead (Error::Suspect,
 *    TimedOut): it clears choosing and its ticket, and the attempt fails. A ticket over MAXT
 *    gives up as Error::Overflow does.
 *  - Crashes: a host may crash before any write and in the middle of a slot write, and then
 *    never takes a step again. What it wrote stays: its slot, its ticket, its half transaction.
 *  - Fencing: the fence agent confirms only crashed hosts ("fence = crash, then confirm"), so a
 *    paused host is never confirmed. The model records the confirmation in the crashed host's
 *    slot as its last record with state fenced, no ticket and generation + 1, in a two-step
 *    write; the code records it in the confirmer's own slot as (slot, epoch) and never writes
 *    the crashed host's slot. For the model's hosts, which never boot again, the two say the
 *    same: "this incarnation is off" becomes true once, stays true, and nobody else writes
 *    that slot. Only a fenced (known off) host is rolled back and reaped, and it no longer
 *    counts in the bakery. The interleaving harness (tools/handoff/src/interleave.rs) runs the
 *    code's own rule, with hosts that boot again in their slot.
 *  - Tables (the member, owner and handoff records), two copies each, with the tx.rs rules.
 *    A put goes to the copy that is not current, or over the current one if this transaction
 *    wrote it. A rollback zeroes the current copy that the open transaction wrote, if the
 *    other copy is valid. Only the lock holder reads or writes tables, so its table work is
 *    folded into its neighbouring steps. A crash stays possible before every put, and in the
 *    middle of a put over the transaction's own copy (that record reverts). tstamp marks "the
 *    current copy was written by host h's open transaction", standing for the (txid, slot,
 *    epoch) stamps. When the commit's slot write completes, the mark is dropped and the other
 *    copy, dead from then on, is zeroed (forget).
 *  - Transactions: begin (the intent in the slot), the puts, commit (the intent cleared). The
 *    next lock holder first rolls back every fenced host's unfinished transaction, then, in a
 *    transaction of its own, reaps each fenced member: its member entry fenced, its handoff
 *    ended, its blocks given to the reaper (or freed if the reaper is still joining). Then it
 *    frees the fenced slot (reap_fenced).
 *  - Operations: claim a free block, return one, offer one to the next host, accept, release
 *    (HANDOFF), a heartbeat that reaps, and leave (end its handoff, free its blocks, member entry
 *    free, then slot free). After a leave the host joins again in its slot with epoch + 1
 *    (REJOIN). A host that finds its own lease lapsed at the commit of a transaction
 *    self-fences: it stops using its blocks, rolls back its own transaction, unlocks, leaves
 *    and joins again. Owner entries carry (slot, epoch). A block of an older epoch of the slot
 *    is not the new incarnation's.
 *  - Use: a host uses (believes it owns) a block from the commit that makes the block its own:
 *    claim, reap, or, after a release to it, its next lock. It stops using a block before it
 *    returns or releases it or leaves. The source of a handoff uses the block until it
 *    releases it.
 *
 * Checked (asserts)
 *  - The lock is mutually exclusive among hosts that have not crashed; paused ones count.
 *  - No block is used by two hosts that have not crashed (checked when a host starts to).
 *  - At the end, once the auditor has confirmed, rolled back and reaped every crashed host as
 *    a lock holder would: every block is free or owned by a live member in its epoch; a block
 *    in a handoff is that handoff's; a handoff in progress is between two live members, so it
 *    can still finish; every block a host uses is its own, or the one it is handing off.
 *
 * Not modelled
 *  - Format. One host formats (host index 0), before any host joins: nothing races it. The
 *    hosts start as members in their own slots, and a join reuses the host's own slot, as the
 *    protocol does (slot k is host index k's).
 *  - Several hosts recording the same confirmation; renewals outside transactions (they are
 *    rewrites like begin and commit, which are modelled); cancel; quarantine; more than one
 *    handoff record or block per handoff; a crashed host booting again; the data-block
 *    coherency rule; a joining host's reap of its slot's previous member (here a host always
 *    leaves before it joins again).
 *
 * Runs (scripts/protocol-check.sh), with 2 blocks, one handoff record, tickets up to 7
 *  - default: 2 hosts; one does two operations, the other one (init picks which); block 0
 *    starts as host 0's; handoffs, leave and join again (epochs up to 3); either host may
 *    crash, at every write.
 *  - -DN=3 -DHANDOFF=0 -DREJOIN=0 -DPREOWN=0 -DSNAPSHOT=1 -DCRASHER=2 -DTORN_CRASH=0: 3 hosts,
 *    one claim or heartbeat each; host 2 may crash, before any write. This covers the bakery
 *    among three, and a fenced host's ticket, half transaction and blocks with two others
 *    competing. A crash in the middle of a slot write is left out here: until the fence
 *    agent's write to that copy, its torn copy cannot be told from the older copy it replaces
 *    (readers take the other copy either way, and the agent writes the same copy).
 *
 * Mutants (protocol-check.sh makes each by one textual replacement; each must fail)
 *  - M1, finding 1 (torn doorway read): a slot read that is not settled, or has no valid
 *    copy, counts as "no ticket, do not wait" (SETTLE);
 *  - M2, version 1's reclaim: a member is reaped on suspicion alone, without a fence
 *    confirmation (REAPABLE); a paused host that resumes still uses its block: two users;
 *  - M3, version 1's bakery: a waiter passes a suspect instead of giving up; a paused lock
 *    holder resumes in the critical section: two holders;
 *  - M4, finding 4 (rollback gap): operations write the tables without reaping first, and
 *    only the heartbeat reaps (REAPS_FIRST). The next lock holder builds on a fenced host's
 *    half transaction, or overwrites the pre-image its rollback needs, so the half
 *    transaction's effect stands: a block lost, or a handoff stuck with a party that is no
 *    member;
 *  - M5, counts() in lock.rs today: a member slot counts only if its member entry is live in
 *    its epoch (the model reads the entry with the slot; lock.rs reads it once, before the
 *    wait). A leaving host sets its entry free before it commits and unlocks, so a waiter
 *    passes it while it holds the lock: two holders. If the leaving host crashes there, the
 *    next writer overwrites the pre-image its rollback needs, and a block stays owned by a
 *    host that is no member. This is a finding of this model, not fixed in the code yet. The
 *    model's COUNTS (every claiming or member slot counts) is the fix it proposes.
 */

#ifndef N
#define N 2            /* hosts, each in its own slot */
#endif
#ifndef HANDOFF
#define HANDOFF 1      /* offer, accept, release */
#endif
#ifndef REJOIN
#define REJOIN 1       /* leave and join again */
#endif
#ifndef PREOWN
#define PREOWN 1       /* block 0 starts as host 0's */
#endif
#ifndef SNAPSHOT
#define SNAPSHOT 0     /* settled reads as one snapshot */
#endif
#ifndef TORN_CRASH
#define TORN_CRASH 1   /* crashes in the middle of slot writes too */
#endif
#ifndef CRASHER
#define CRASHER N      /* the host that may crash; N: any */
#endif
#define B 2            /* blocks */
#define MAXT 7         /* the largest ticket */
#define MAXEP 3        /* the largest epoch */
#define NONE 3         /* the owner slot of a free block */

/* ---- host slots: slot[2 * host + copy] ---- */
#define VALID(c)    ((c) & 1)
#define GEN(c)      (((c) >> 1) & 3)
#define SSTATE(c)   (((c) >> 3) & 3)
#define SEPOCH(c)   (((c) >> 5) & 3)
#define CHOOSING(c) (((c) >> 7) & 1)
#define TICKET(c)   (((c) >> 8) & 7)
#define INTENT(c)   (((c) >> 11) & 1)
#define ENC(g, st, e, ch, tk, in) (1 | ((g) << 1) | ((st) << 3) | ((e) << 5) | ((ch) << 7) | ((tk) << 8) | ((in) << 11))
#define TORN(g)     ((g) << 1)
/* y is the write after x (two valid copies are one write apart: generations mod 4 suffice) */
#define NEWER(x, y) (GEN(y) == ((GEN(x) + 1) & 3))
/* the current record of two copies: the valid one with the larger generation */
#define CUR(x, y)   (VALID(x) && VALID(y) -> (NEWER(x, y) -> (y) : (x)) : (VALID(x) -> (x) : (y)))
#define SCUR(h)     CUR(slot[2 * (h)], slot[2 * (h) + 1])
#define SCURIX(h)   (VALID(slot[2 * (h)]) && VALID(slot[2 * (h) + 1]) -> (NEWER(slot[2 * (h)], slot[2 * (h) + 1]) -> 1 : 0) : (VALID(slot[2 * (h)]) -> 0 : 1))
#define UNSETTLED   (-1)

#define S_FREE 0
#define S_CLAIMING 1
#define S_MEMBER 2
#define S_FENCED 3

int slot[2 * N];
/* bit i of watch[h]: host i's read of slot h began and nobody wrote copy 0 of slot h since */
byte watch[N];
#define W0(h, cp) if :: (cp) == 0 -> watch[h] = 0 :: else -> skip fi
#if SNAPSHOT
#define WATCH(h) skip
#define SETTLED(h) true
#else
#define WATCH(h) watch[h] = watch[h] | (1 << i)
#define SETTLED(h) ((watch[h] >> i) & 1)
#endif
/* A write of copy cp completed: the other copy keeps only its generation and valid flag. */
#define STALE(h, cp) slot[2 * (h) + 1 - (cp)] = slot[2 * (h) + 1 - (cp)] & 7

/* ---- tables: the member, owner and handoff records, two copies each ---- */
#define R_MEM 0
#define R_OWN 1
#define R_HO 2
byte tcur[3];          /* each record's current copy */
bool tvalid[6];        /* [2 * record + copy] */
byte tstamp[6];        /* h + 1: written by host h's open transaction */

#define M_FREE 0
#define M_LIVE 1
#define M_FENCED 2
byte mst[2 * N];       /* member entries [copy * N + slot]: state, epoch */
byte mep[2 * N];
byte oslot[2 * B];     /* owner entries [copy * B + block]: slot, epoch, in the handoff */
byte oep[2 * B];
bool otag[2 * B];
#define H_FREE 0
#define H_OFFERED 1
#define H_ACCEPTED 2
byte hst[2];           /* the handoff record [copy] */
byte hsrc[2];
byte hsep[2];
byte hdst[2];
byte hdep[2];
byte hblk[2];

/* current copies */
#define MST(k)   mst[tcur[R_MEM] * N + (k)]
#define MEP(k)   mep[tcur[R_MEM] * N + (k)]
#define OSLOT(b) oslot[tcur[R_OWN] * B + (b)]
#define OEP(b)   oep[tcur[R_OWN] * B + (b)]
#define OTAG(b)  otag[tcur[R_OWN] * B + (b)]
#define HST  hst[tcur[R_HO]]
#define HSRC hsrc[tcur[R_HO]]
#define HSEP hsep[tcur[R_HO]]
#define HDST hdst[tcur[R_HO]]
#define HDEP hdep[tcur[R_HO]]
#define HBLK hblk[tcur[R_HO]]
/* the copy t that a put writes */
#define TMST(k)   mst[t * N + (k)]
#define TMEP(k)   mep[t * N + (k)]
#define TOSLOT(b) oslot[t * B + (b)]
#define TOEP(b)   oep[t * B + (b)]
#define TOTAG(b)  otag[t * B + (b)]

/* ---- ghosts ---- */
bool crashed[N];
bool fconf[N];         /* the fence agent recorded the host's confirmation */
bool in_cs[N];
bool mine[N * B];      /* the blocks a host uses */
byte gep[N];           /* a host's epoch while it is a member, else 0 */
byte nops[N];          /* operations of each host */
byte done;             /* hosts finished or crashed */
bool fbusy;            /* the fence agent is in the middle of a write */

/* A crash: only host CRASHER, if one is named. CRASH_TORN: in the middle of a slot write. */
#define CRASH (CRASHER == N || i == CRASHER) -> goto dead
#define CRASH_TORN TORN_CRASH && (CRASHER == N || i == CRASHER) -> goto dead

/* ---- the rules the mutants change ---- */
/* A slot competes for the lock if it is claiming or a member (not free, not fenced); lock.rs
 * today also asks that a member slot's member entry be live in its epoch (mutant M5). */
#define COUNTS(r) (SSTATE(r) == S_CLAIMING || SSTATE(r) == S_MEMBER)
/* Only a host confirmed off (its slot fenced) is rolled back and reaped. */
#define REAPABLE(c) (SSTATE(c) == S_FENCED)
/* Every operation reaps first, before it writes anything else. */
#define REAPS_FIRST(op) (op != 0)

#define OP_CLAIM 1
#define OP_RETURN 2
#define OP_OFFER 3
#define OP_ACCEPT 4
#define OP_RELEASE 5
#define OP_HB 6
#define OP_LEAVE 7
#define OP_JOIN 8
#define OP_LAPSE 9

#if N == 2
#define OTHER0(i) (1 - (i))
#define NEXT_OTHER(j) N
#define ANY_FENCED (REAPABLE(SCUR(0)) || REAPABLE(SCUR(1)))
#else
#define OTHER0(i) ((i) == 0 -> 1 : 0)
#define NEXT_OTHER(j) ((j) + 1 == i -> (j) + 2 : (j) + 1)
#define ANY_FENCED (REAPABLE(SCUR(0)) || REAPABLE(SCUR(1)) || REAPABLE(SCUR(2)))
#endif
#define OPS_LEFT (ops < nops[i])
#define FREE_BLOCK (OSLOT(0) == NONE || OSLOT(1) == NONE)
#define USES_ONE (mine[i * B] || mine[i * B + 1])

/* ---- table records (used inside d_step) ---- */
inline zero_mem(cp) {
	tvalid[2 * R_MEM + (cp)] = false; tstamp[2 * R_MEM + (cp)] = 0;
	k = 0; do :: k < N -> mst[(cp) * N + k] = 0; mep[(cp) * N + k] = 0; k++ :: else -> break od; k = 0
}
inline zero_own(cp) {
	tvalid[2 * R_OWN + (cp)] = false; tstamp[2 * R_OWN + (cp)] = 0;
	k = 0; do :: k < B -> oslot[(cp) * B + k] = 0; oep[(cp) * B + k] = 0; otag[(cp) * B + k] = 0; k++ :: else -> break od; k = 0
}
inline zero_ho(cp) {
	tvalid[2 * R_HO + (cp)] = false; tstamp[2 * R_HO + (cp)] = 0;
	hst[(cp)] = 0; hsrc[(cp)] = 0; hsep[(cp)] = 0; hdst[(cp)] = 0; hdep[(cp)] = 0; hblk[(cp)] = 0
}

/* A put: t := the copy it writes (over the current copy if this transaction wrote it, else the
 * other), filled from the current copy; the caller then changes entries of copy t. */
#define PUT_TARGET(R) t = (tstamp[2 * (R) + tcur[R]] == i + 1 -> tcur[R] : 1 - tcur[R])
inline put_mem() {
	PUT_TARGET(R_MEM);
	if
	:: t != tcur[R_MEM] -> k = 0; do :: k < N -> TMST(k) = MST(k); TMEP(k) = MEP(k); k++ :: else -> break od; k = 0
	:: else -> skip
	fi
}
inline put_own() {
	PUT_TARGET(R_OWN);
	if
	:: t != tcur[R_OWN] -> k = 0; do :: k < B -> TOSLOT(k) = OSLOT(k); TOEP(k) = OEP(k); TOTAG(k) = OTAG(k); k++ :: else -> break od; k = 0
	:: else -> skip
	fi
}
inline put_ho() {
	PUT_TARGET(R_HO);
	if
	:: t != tcur[R_HO] -> hst[t] = HST; hsrc[t] = HSRC; hsep[t] = HSEP; hdst[t] = HDST; hdep[t] = HDEP; hblk[t] = HBLK
	:: else -> skip
	fi
}
inline put_end(R) {
	tvalid[2 * R + t] = true; tstamp[2 * R + t] = i + 1; tcur[R] = t; t = 0
}
/* Instead of a put: a crash before it, or, for a put over this transaction's own copy, during
 * it (that copy torn: the record reverts to the other copy). */
#define PUT_FAILS(R, ZERO) \
	:: tstamp[2 * (R) + tcur[R]] == i + 1 && (CRASHER == N || i == CRASHER) -> \
		d_step { ZERO(tcur[R]); tcur[R] = 1 - tcur[R] }; goto dead \
	:: CRASH

/* Roll back host x's open transaction in record R: zero the copy it wrote, if the other copy
 * is valid (undo keeps it otherwise). UNDO may crash before each write; UNDO_END may not. */
#define UNDO_END(R, ZERO, x) \
	if \
	:: tstamp[2 * (R) + tcur[R]] == (x) + 1 && tvalid[2 * (R) + 1 - tcur[R]] -> \
		ZERO(tcur[R]); tcur[R] = 1 - tcur[R] \
	:: else -> skip \
	fi
#define UNDO(R, ZERO, x) \
	if \
	:: tstamp[2 * (R) + tcur[R]] == (x) + 1 && tvalid[2 * (R) + 1 - tcur[R]] -> \
		if \
		:: d_step { ZERO(tcur[R]); tcur[R] = 1 - tcur[R] } \
		:: CRASH \
		fi \
	:: else -> skip \
	fi
#define UNDO_ALL(x) UNDO(R_MEM, zero_mem, x); UNDO(R_OWN, zero_own, x); UNDO(R_HO, zero_ho, x)

/* The commit's slot write completed: this host's transaction is committed. Its marks go, and
 * a record's other copy is dead once no open transaction wrote its current one: nothing reads
 * it (a rollback reverts only a current copy an open transaction wrote; the next put
 * overwrites it). It is zeroed, so that states differing only in dead history are one. */
inline committed() {
	k = 0;
	do
	:: k < 6 -> if :: tstamp[k] == i + 1 -> tstamp[k] = 0 :: else -> skip fi; k++
	:: else -> break
	od;
	k = 0;
	if :: tstamp[2 * R_MEM + tcur[R_MEM]] == 0 -> zero_mem(1 - tcur[R_MEM]) :: else -> skip fi;
	if :: tstamp[2 * R_OWN + tcur[R_OWN]] == 0 -> zero_own(1 - tcur[R_OWN]) :: else -> skip fi;
	if :: tstamp[2 * R_HO + tcur[R_HO]] == 0 -> zero_ho(1 - tcur[R_HO]) :: else -> skip fi
}

/* Host i starts to use block bb: no other host that has not crashed uses it. */
inline gain(bb) {
	k = 0;
	do
	:: k < N -> assert(k == i || crashed[k] || !mine[k * B + bb]); k++
	:: else -> break
	od;
	k = 0;
	mine[i * B + bb] = true
}

/* A host uses the blocks it owns in its epoch outside a handoff (not while it leaves). */
inline sync() {
	u = 0;
	do
	:: u < B && op != OP_LEAVE && op != OP_LAPSE ->
		if
		:: OSLOT(u) == i && OEP(u) == ep && ep != 0 && !OTAG(u) && !mine[i * B + u] -> gain(u)
		:: else -> skip
		fi;
		u++
	:: else -> break
	od;
	u = 0
}

/* ---- this host's slot writes: TEAR the older copy, then COMPLETE it ---- */
#define TEAR \
	if \
	:: true -> d_step { slot[2 * i + nxt] = TORN((g + 1) & 3); W0(i, nxt) } \
	:: CRASH \
	fi
#define COMPLETE(st_, ch_, tk_, in_) \
	if \
	:: true -> d_step { g = (g + 1) & 3; rst = st_; rch = ch_; rtk = tk_; rin = in_; \
		slot[2 * i + nxt] = ENC(g, rst, ep, rch, rtk, rin); W0(i, nxt); STALE(i, nxt); nxt = 1 - nxt } \
	:: CRASH_TORN \
	fi

/* ---- settled reads of slot j: the reads of copy 1 and of copy 0 again (r = SCUR(j) first) ---- */
/* r := what the doorway needs: the slot's ticket (0 if it is free) */
#define SNAP_DOORWAY \
	r = (!VALID(r) -> UNSETTLED : (SSTATE(r) != S_FREE -> TICKET(r) : 0))
/* r := what the wait needs: 1 if j counts and is choosing or before us */
#define SNAP_WAIT \
	r = (!VALID(r) -> UNSETTLED : (COUNTS(r) && (CHOOSING(r) || (TICKET(r) != 0 && (TICKET(r) < rtk || (TICKET(r) == rtk && j < i)))) -> 1 : 0))
/* settled if nobody wrote copy 0 since the first read */
#define SETTLE(j) \
	if \
	:: SETTLED(j) && r != UNSETTLED -> skip \
	:: else -> r = UNSETTLED   /* not settled, or no valid copy: wait for it */ \
	fi; \
	watch[j] = watch[j] & ~(1 << i)

/* End the handoff that host x of epoch e is a party to (reap, leave): an accepted handoff
 * whose source goes is released to the target; any other goes back to the source. */
#define END_HANDOFF(x, e) \
	if \
	:: HST != H_FREE && ((HSRC == x && HSEP == e) || (HDST == x && HDEP == e)) -> \
		if \
		:: d_step { put_own(); \
			if \
			:: TOTAG(HBLK) && HST == H_ACCEPTED && HSRC == x && HSEP == e -> TOSLOT(HBLK) = HDST; TOEP(HBLK) = HDEP \
			:: TOTAG(HBLK) && !(HST == H_ACCEPTED && HSRC == x && HSEP == e) -> TOSLOT(HBLK) = HSRC; TOEP(HBLK) = HSEP \
			:: else -> skip \
			fi; \
			TOTAG(HBLK) = false; \
			put_end(R_OWN) } \
		PUT_FAILS(R_OWN, zero_own) \
		fi; \
		if \
		:: d_step { put_ho(); hst[t] = 0; hsrc[t] = 0; hsep[t] = 0; hdst[t] = 0; hdep[t] = 0; hblk[t] = 0; put_end(R_HO) } \
		PUT_FAILS(R_HO, zero_ho) \
		fi \
	:: else -> skip \
	fi

proctype Host(byte i) {
	byte ops, op, j, mx, t, k, u, b, x;
	byte g, nxt, rst, ep, rch, rtk, rin;    /* this host's slot: its last write */
	int r;

	d_step { g = 1; nxt = 0; rst = S_MEMBER; ep = 1 }
top:
	/* The next operation. Its first write (choosing) tears at once. */
	do
	:: atomic { OPS_LEFT && rst == S_MEMBER && FREE_BLOCK -> ops++; op = OP_CLAIM; TEAR }; goto doorway
	:: atomic { OPS_LEFT && rst == S_MEMBER && USES_ONE -> ops++; op = OP_RETURN; TEAR }; goto doorway
#if HANDOFF
	:: atomic { OPS_LEFT && rst == S_MEMBER && HST == H_FREE && USES_ONE -> ops++; op = OP_OFFER; TEAR }; goto doorway
	:: atomic { OPS_LEFT && rst == S_MEMBER && HST == H_OFFERED && HDST == i && HDEP == ep -> ops++; op = OP_ACCEPT; TEAR }; goto doorway
	:: atomic { OPS_LEFT && rst == S_MEMBER && HST == H_ACCEPTED && HSRC == i && HSEP == ep -> ops++; op = OP_RELEASE; TEAR }; goto doorway
#endif
	:: atomic { OPS_LEFT && rst == S_MEMBER && ANY_FENCED -> ops++; op = OP_HB; TEAR }; goto doorway
#if REJOIN
	:: atomic { OPS_LEFT && rst == S_MEMBER && MEP(i) < MAXEP -> ops++; op = OP_LEAVE;
		mine[i * B] = false; mine[i * B + 1] = false; TEAR }; goto doorway
	:: atomic { OPS_LEFT && rst == S_FREE && MEP(i) < MAXEP -> ops++; op = OP_JOIN; TEAR }; goto claim_slot
#endif
	:: CRASH
	:: break
	od;
	atomic { done++; ops = 0; op = 0; g = 0; nxt = 0; rst = 0; ep = 0 }
	goto out;

	/* ---- the lock ---- */
doorway:
	atomic { COMPLETE(rst, 1, 0, rin); d_step { mx = 0; j = OTHER0(i); WATCH(j) } }
dw_read:
	atomic {
		r = SCUR(j);
		d_step { SNAP_DOORWAY; SETTLE(j) }
		if
		:: r != UNSETTLED -> skip
		:: else ->
			if
			:: r = 0; WATCH(j); goto dw_read   /* not settled: read it again */
			:: r = 0; goto give_up
			fi
		fi;
		d_step {
			if :: r > mx -> mx = r :: else -> skip fi;
			r = 0;
			j = NEXT_OTHER(j)
		}
		if
		:: j < N -> WATCH(j); goto dw_read
		:: j >= N && mx >= MAXT -> goto give_up
		:: j >= N && mx < MAXT -> skip
		fi
	}
	atomic { TEAR }
	atomic { COMPLETE(rst, 0, mx + 1, rin); d_step { mx = 0; j = OTHER0(i); WATCH(j) } }
wt_read:
	atomic {
		r = SCUR(j);
		d_step { SNAP_WAIT; SETTLE(j) }
		if
		:: r == 0 -> skip                     /* j does not hold us up */
		:: else ->
			if
			:: r = 0; WATCH(j); goto wt_read /* keep waiting */
			:: r = 0; goto give_up           /* j looks a suspect: give up, try again later */
			fi
		fi;
		r = 0;
		j = NEXT_OTHER(j);
		if
		:: j < N -> WATCH(j); goto wt_read
		:: else -> skip
		fi;
		/* The lock is ours. */
		d_step {
			j = 0;
			in_cs[i] = true;
			k = 0;
			do
			:: k < N -> assert(k == i || !in_cs[k] || crashed[k]); k++
			:: else -> break
			od;
			k = 0
		}
		/* reap_fenced: first roll back every fenced host's unfinished transaction ... */
		if
		:: REAPS_FIRST(op) ->
			x = 0;
			do
			:: x < N ->
				if
				:: x != i && REAPABLE(SCUR(x)) && INTENT(SCUR(x)) -> UNDO_ALL(x)
				:: else -> skip
				fi;
				x++
			:: else -> break
			od;
			x = 0
		:: else -> x = N
		fi;
		/* ... then, for each fenced host from x on: reap it if it is a live member in its
		 * slot's epoch, and free its slot */
reap_next:
		true;
		d_step {
			do
			:: x < N && (x == i || !REAPABLE(SCUR(x))) -> x++
			:: else -> break
			od
		}
		if
		:: x < N && MST(x) == M_LIVE && MEP(x) == SEPOCH(SCUR(x)) -> goto reap_begin
		:: x < N && !(MST(x) == M_LIVE && MEP(x) == SEPOCH(SCUR(x))) -> goto free_slot
		:: else -> x = 0
		fi;

		/* ---- the operation's checks ---- */
		d_step {
			sync();
			if
			:: op == OP_CLAIM ->
				b = 0;
				do
				:: b < B && OSLOT(b) != NONE -> b++
				:: else -> break
				od
			:: op == OP_RETURN || op == OP_OFFER ->
				b = 0;
				do
				:: b < B && !(mine[i * B + b] && OSLOT(b) == i && OEP(b) == ep && !OTAG(b)) -> b++
				:: else -> break
				od;
				if :: op == OP_OFFER -> x = (i + 1) % N :: else -> skip fi
			:: else -> b = 0
			fi
		}
		if
		:: op == OP_CLAIM && b < B -> skip
		:: op == OP_RETURN && b < B -> mine[i * B + b] = false
		:: op == OP_OFFER && b < B && HST == H_FREE && MST(x) == M_LIVE -> skip
		:: op == OP_ACCEPT && HST == H_OFFERED && HDST == i && HDEP == ep -> skip
		:: op == OP_RELEASE && HST == H_ACCEPTED && HSRC == i && HSEP == ep -> mine[i * B + HBLK] = false
		:: op == OP_LEAVE || op == OP_JOIN -> skip
		:: else -> b = 0; x = 0; goto unlock   /* nothing to do (or a heartbeat) */
		fi;
		goto begin_tx
	}

	/* ---- reap fenced host x: a transaction of this host ---- */
reap_begin:
	atomic { TEAR }
	atomic {
		COMPLETE(rst, 0, rtk, 1);
		u = SEPOCH(SCUR(x));
		if
		:: d_step { put_mem(); TMST(x) = M_FENCED; put_end(R_MEM) }
		PUT_FAILS(R_MEM, zero_mem)
		fi;
		END_HANDOFF(x, u);
		if
		:: (OSLOT(0) == x && OEP(0) == u && !OTAG(0)) || (OSLOT(1) == x && OEP(1) == u && !OTAG(1)) ->
			if
			:: d_step {
				put_own();
				b = 0;
				do
				:: b < B ->
					if
					:: TOSLOT(b) == x && TOEP(b) == u && !TOTAG(b) && rst == S_MEMBER -> TOSLOT(b) = i; TOEP(b) = ep
					:: TOSLOT(b) == x && TOEP(b) == u && !TOTAG(b) && rst != S_MEMBER -> TOSLOT(b) = NONE; TOEP(b) = 0
					:: else -> skip
					fi;
					b++
				:: else -> break
				od;
				b = 0;
				put_end(R_OWN)
			   }
			PUT_FAILS(R_OWN, zero_own)
			fi
		:: else -> skip
		fi;
		u = 0
	}
	atomic { TEAR }
	atomic { COMPLETE(rst, 0, rtk, 0); d_step { committed(); sync() } }
	/* free its slot: a record newer than the fenced one */
free_slot:
	if
	:: true -> d_step { t = SCURIX(x); slot[2 * x + 1 - t] = TORN((GEN(slot[2 * x + t]) + 1) & 3); W0(x, 1 - t) }
	:: CRASH
	fi;
	if
	:: d_step {
		slot[2 * x + 1 - t] = ENC((GEN(slot[2 * x + t]) + 1) & 3, S_FREE, 0, 0, 0, 0); W0(x, 1 - t); STALE(x, 1 - t);
		t = 0; x++ };
		goto reap_next
	:: CRASH_TORN
	fi;

	/* ---- the operation's transaction: begin, puts, commit ---- */
begin_tx:
	atomic { TEAR }
	atomic {
		COMPLETE(rst, 0, rtk, 1);
		if
		:: op == OP_CLAIM ->
			if
			:: d_step { put_own(); TOSLOT(b) = i; TOEP(b) = ep; TOTAG(b) = false; put_end(R_OWN) }
			PUT_FAILS(R_OWN, zero_own)
			fi
		:: op == OP_RETURN ->
			if
			:: d_step { put_own(); TOSLOT(b) = NONE; TOEP(b) = 0; put_end(R_OWN) }
			PUT_FAILS(R_OWN, zero_own)
			fi
		:: op == OP_OFFER ->
			if
			:: d_step { put_own(); TOTAG(b) = true; put_end(R_OWN) }
			PUT_FAILS(R_OWN, zero_own)
			fi;
			if
			:: d_step { put_ho(); hst[t] = H_OFFERED; hsrc[t] = i; hsep[t] = ep; hdst[t] = x; hdep[t] = MEP(x); hblk[t] = b; put_end(R_HO) }
			PUT_FAILS(R_HO, zero_ho)
			fi
		:: op == OP_ACCEPT ->
			if
			:: d_step { put_own(); TOSLOT(HBLK) = i; TOEP(HBLK) = ep; put_end(R_OWN) }
			PUT_FAILS(R_OWN, zero_own)
			fi;
			if
			:: d_step { put_ho(); hst[t] = H_ACCEPTED; put_end(R_HO) }
			PUT_FAILS(R_HO, zero_ho)
			fi
		:: op == OP_RELEASE ->
			if
			:: d_step { put_own(); TOSLOT(HBLK) = HDST; TOEP(HBLK) = HDEP; TOTAG(HBLK) = false; put_end(R_OWN) }
			PUT_FAILS(R_OWN, zero_own)
			fi;
			if
			:: d_step { put_ho(); hst[t] = 0; hsrc[t] = 0; hsep[t] = 0; hdst[t] = 0; hdep[t] = 0; hblk[t] = 0; put_end(R_HO) }
			PUT_FAILS(R_HO, zero_ho)
			fi
		:: op == OP_LEAVE ->
			END_HANDOFF(i, ep);
			if
			:: (OSLOT(0) == i && OEP(0) == ep) || (OSLOT(1) == i && OEP(1) == ep) ->
				if
				:: d_step {
					put_own();
					b = 0;
					do
					:: b < B ->
						if
						:: TOSLOT(b) == i && TOEP(b) == ep -> TOSLOT(b) = NONE; TOEP(b) = 0; TOTAG(b) = false
						:: else -> skip
						fi;
						b++
					:: else -> break
					od;
					put_end(R_OWN)
				   }
				PUT_FAILS(R_OWN, zero_own)
				fi
			:: else -> skip
			fi;
			if
			:: d_step { put_mem(); TMST(i) = M_FREE; put_end(R_MEM) }
			PUT_FAILS(R_MEM, zero_mem)
			fi
		:: op == OP_JOIN ->
			assert(MST(i) != M_LIVE);
			if
			:: d_step { put_mem(); TMST(i) = M_LIVE; TMEP(i) = MEP(i) + 1; put_end(R_MEM) }
			PUT_FAILS(R_MEM, zero_mem)
			fi;
			ep = MEP(i); rst = S_MEMBER
		fi;
		b = 0; x = 0
	}
	/* commit; or this host finds its own lease lapsed: it self-fences */
	atomic {
		if
		:: TEAR
		:: op != OP_LEAVE && op != OP_JOIN ->
			d_step { op = OP_LAPSE; mine[i * B] = false; mine[i * B + 1] = false }
			UNDO_ALL(i);
			TEAR
		fi
	}
	atomic {
		COMPLETE(rst, 0, rtk, 0);
		d_step {
			if
			:: op != OP_LAPSE -> committed(); sync()
			:: else -> skip
			fi;
			if
			:: op == OP_JOIN -> gep[i] = ep
			:: else -> skip
			fi
		}
	}
unlock:
	atomic { TEAR }
	atomic {
		COMPLETE(rst, 0, 0, rin);
		in_cs[i] = false;
		if
		:: op == OP_LAPSE -> op = OP_LEAVE; goto lock_again
		:: op == OP_LEAVE -> ep = 0; gep[i] = 0; goto slot_free
		:: else -> op = 0; goto top
		fi
	}

	/* Out of the bakery without the lock (abandon): not choosing, no ticket. */
give_up:
	atomic { j = 0; mx = 0; TEAR }
	atomic {
		COMPLETE(rst, 0, 0, rin);
		if
		:: op == OP_JOIN -> goto slot_free   /* the join fails: the slot is given up */
		:: op == OP_LEAVE -> goto dead       /* the leave fails: the host is dropped */
		:: else -> op = 0; goto top
		fi
	}

lock_again:
	atomic { TEAR }
	goto doorway;

	/* After a leave or a failed join: the slot free; then, once more, a join. */
slot_free:
	atomic { TEAR }
	atomic {
		COMPLETE(S_FREE, 0, 0, 0);
		if
		:: op == OP_LEAVE && MEP(i) < MAXEP -> op = OP_JOIN
		:: else -> op = 0; goto top
		fi
	}
	atomic { TEAR }
	/* The slot claim (pre-assigned: no other host claims it); then the lock. */
claim_slot:
	atomic { COMPLETE(S_CLAIMING, 0, 0, 0) }
	goto lock_again;

dead:
	atomic {
		crashed[i] = true; in_cs[i] = false; gep[i] = 0;
		mine[i * B] = false; mine[i * B + 1] = false;
		k = 0;
		do
		:: k < N -> watch[k] = watch[k] & ~(1 << i); k++
		:: else -> break
		od;
		ops = 0; op = 0; j = 0; mx = 0; t = 0; k = 0; u = 0; b = 0; x = 0; g = 0; nxt = 0;
		rst = 0; ep = 0; rch = 0; rtk = 0; rin = 0; r = 0;
		done++
	}
out:
	skip
}

/* The fence agent: confirms that a crashed host is off, and records it in its slot. */
#define CONFIRM(h) \
	:: d_step { crashed[h] && !fconf[h] && SSTATE(SCUR(h)) != S_FREE -> \
		f = h; fbusy = true; fc = SCURIX(f); fr = slot[2 * f + fc]; \
		slot[2 * f + 1 - fc] = TORN((GEN(fr) + 1) & 3); W0(f, 1 - fc) }; \
	   d_step { slot[2 * f + 1 - fc] = ENC((GEN(fr) + 1) & 3, S_FENCED, SEPOCH(fr), 0, 0, INTENT(fr)); \
		W0(f, 1 - fc); STALE(f, 1 - fc); fconf[f] = true; fbusy = false; f = 0; fc = 0; fr = 0 }

active proctype Fence() {
	byte f, fc;
	int fr;
end:
	do
	CONFIRM(0)
	CONFIRM(1)
#if N > 2
	CONFIRM(2)
#endif
	od
}

/* Once every host has finished or crashed: the auditor confirms every crashed host, rolls them
 * back and reaps them as a lock holder would, and checks what is left. */
active proctype Auditor() {
	byte x, k, b, t, lv;
	int r;
	(done == N && !fbusy);
	d_step {
		x = 0;
		do
		:: x < N ->
			r = SCUR(x);
			if
			:: crashed[x] && SSTATE(r) != S_FREE && SSTATE(r) != S_FENCED ->
				t = SCURIX(x);
				slot[2 * x + 1 - t] = ENC((GEN(r) + 1) & 3, S_FENCED, SEPOCH(r), 0, 0, INTENT(r))
			:: else -> skip
			fi;
			x++
		:: else -> break
		od;
		x = 0;
		do
		:: x < N ->
			if
			:: REAPABLE(SCUR(x)) && INTENT(SCUR(x)) ->
				UNDO_END(R_MEM, zero_mem, x); UNDO_END(R_OWN, zero_own, x); UNDO_END(R_HO, zero_ho, x)
			:: else -> skip
			fi;
			x++
		:: else -> break
		od;
		x = 0;
		do
		:: x < N ->
			r = SCUR(x);
			lv = SEPOCH(r);
			if
			:: REAPABLE(r) && MST(x) == M_LIVE && MEP(x) == lv ->
				MST(x) = M_FENCED;
				if
				:: HST != H_FREE && ((HSRC == x && HSEP == lv) || (HDST == x && HDEP == lv)) ->
					if
					:: OTAG(HBLK) && HST == H_ACCEPTED && HSRC == x && HSEP == lv -> OSLOT(HBLK) = HDST; OEP(HBLK) = HDEP
					:: OTAG(HBLK) && !(HST == H_ACCEPTED && HSRC == x && HSEP == lv) -> OSLOT(HBLK) = HSRC; OEP(HBLK) = HSEP
					:: else -> skip
					fi;
					OTAG(HBLK) = false;
					HST = H_FREE
				:: else -> skip
				fi;
				b = 0;
				do
				:: b < B ->
					if
					:: OSLOT(b) == x && OEP(b) == lv && !OTAG(b) -> OSLOT(b) = NONE; OEP(b) = 0
					:: else -> skip
					fi;
					b++
				:: else -> break
				od
			:: else -> skip
			fi;
			x++
		:: else -> break
		od;
		/* Nothing lost, nothing stuck. */
		b = 0;
		do
		:: b < B ->
			assert(OSLOT(b) == NONE || (OSLOT(b) < N && !crashed[OSLOT(b)] && MST(OSLOT(b)) == M_LIVE && MEP(OSLOT(b)) == OEP(b)));
			assert(!OTAG(b) || (HST != H_FREE && HBLK == b));
			x = 0;
			do
			:: x < N -> assert(!mine[x * B + b] || crashed[x] || (OSLOT(b) == x && OEP(b) == gep[x]) || (HST != H_FREE && HBLK == b && HSRC == x && HSEP == gep[x])); x++
			:: else -> break
			od;
			b++
		:: else -> break
		od;
		if
		:: HST != H_FREE ->
			assert(OTAG(HBLK));
			assert(!crashed[HSRC] && MST(HSRC) == M_LIVE && MEP(HSRC) == HSEP);
			assert(!crashed[HDST] && MST(HDST) == M_LIVE && MEP(HDST) == HDEP)
		:: else -> skip
		fi
	}
}

init {
	byte k;
	atomic {
		/* Every host has joined: a member of epoch 1 in its own slot, its last write copy 1. */
		k = 0;
		do
		:: k < N ->
			slot[2 * k] = ENC(0, S_MEMBER, 1, 0, 0, 0) & 7;
			slot[2 * k + 1] = ENC(1, S_MEMBER, 1, 0, 0, 0);
			mst[k] = M_LIVE; mep[k] = 1; gep[k] = 1; nops[k] = 1;
			k++
		:: else -> break
		od;
		/* The tables as formatted: copy 0 current, copy 1 zero; every block free. */
		tvalid[0] = true; tvalid[2] = true; tvalid[4] = true;
		k = 0;
		do
		:: k < B -> oslot[k] = NONE; k++
		:: else -> break
		od;
#if PREOWN
		oslot[0] = 0; oep[0] = 1; mine[0] = true;
#endif
#if N == 2
		/* One host does two operations. */
		if
		:: nops[0] = 2
		:: nops[1] = 2
		fi;
#endif
		k = 0;
		do
		:: k < N -> run Host(k); k++
		:: else -> break
		od
	}
}
