/*
 * The portal protocol of Documentation/admin-guide/mm/cxl-switched-abi.rst,
 * modelled for spin: three hosts, two blocks, one handoff record.
 *
 * What is modelled:
 *  - the portal lock: Lamport's bakery over per-host choosing/ticket
 *    variables, each written by its host only; a waiter skips a host whose
 *    lease expired;
 *  - leases: a host may crash at any step (it stops for good); only then
 *    may its lease expire (the timing assumption: a live host renews in
 *    time, a host stops writing before its lease could expire);
 *  - transactions: changes to the owner table and handoff record are
 *    logged with the old value (the record's other copy) under an intent;
 *    a crash mid-transaction leaves the intent, which the reaper undoes;
 *  - reaping: under the lock, a live host undoes the unfinished
 *    transactions of every expired member, then fences each, ends its handoffs (an accepted handoff whose source
 *    died is released to the target, any other goes back to the source) and
 *    takes its blocks;
 *  - claim, return, and a handoff offer -> accept -> release.
 *
 * Checked (make check runs spin -a, gcc -DSAFETY, ./pan):
 *  - the lock is mutually exclusive among live hosts (assert in the CS);
 *  - a block a live host believes it owns is owned by it in the table
 *    (no block owned by two live hosts, as "using" follows belief);
 *  - at the end, after an auditor reaps every dead host: every block is
 *    free or owned by a live member (none lost) and the handoff record is
 *    free (every handoff released or rolled back).
 */

#define N 3          /* hosts */
#define B 2          /* blocks */
#define NONE 255

/* Member table: 0 free, 1 live, 2 fenced. */
byte member[N];
/* Owner table and its transaction log (the record's other copy). */
byte owner[B];
bool lent[B];
/* The handoff record: 0 free, 1 offered, 2 accepted. */
byte hstate;
byte hsrc = NONE;
byte hdst = NONE;
byte hblock = NONE;

/* Per-host transaction: the intent and the old values (the member, owner
 * and handoff records it may rewrite, as their other copies keep them). */
bool intent[N];
byte old_owner[N * B];
bool old_lent[N * B];
byte old_member[N * N];
byte old_hstate[N];
byte old_hsrc[N];
byte old_hdst[N];
byte old_hblock[N];

/* Bakery. */
bool choosing[N];
byte ticket[N];

bool alive[N];
bool expired[N];
/* What each host believes it owns and uses. */
bool mine[N * B];
bool in_cs[N];      /* hosts in the critical section */
byte done;          /* hosts finished or dead */

inline begin_tx(i) {
	atomic {
		k = 0;
		do
		:: k < B -> old_owner[i * B + k] = owner[k]; old_lent[i * B + k] = lent[k]; k++
		:: else -> break
		od;
		k = 0;
		do
		:: k < N -> old_member[i * N + k] = member[k]; k++
		:: else -> break
		od;
		old_hstate[i] = hstate; old_hsrc[i] = hsrc; old_hdst[i] = hdst;
		old_hblock[i] = hblock;
		intent[i] = true
	}
}

inline rollback(j) {
	atomic {
		if
		:: intent[j] ->
			k = 0;
			do
			:: k < B -> owner[k] = old_owner[j * B + k]; lent[k] = old_lent[j * B + k]; k++
			:: else -> break
			od;
			k = 0;
			do
			:: k < N -> member[k] = old_member[j * N + k]; k++
			:: else -> break
			od;
			hstate = old_hstate[j]; hsrc = old_hsrc[j]; hdst = old_hdst[j];
			hblock = old_hblock[j]
		:: else -> skip
		fi
	}
}

/* No live host's belief is contradicted by the table. */
inline beliefs() {
	atomic {
		x = 0;
		do
		:: x < N * B -> assert(!alive[x / B] || !mine[x] || owner[x % B] == x / B); x++
		:: else -> break
		od
	}
}

/* A crash point: the host may die here, for good. */
inline step(i) {
	beliefs();
	if
	:: true
	:: alive[i] = false; goto dead
	fi
}

inline lock(i) {
	choosing[i] = true;
	step(i);
	atomic {
		m = 0; k = 0;
		do
		:: k < N -> if :: ticket[k] > m -> m = ticket[k] :: else -> skip fi; k++
		:: else -> break
		od;
		ticket[i] = m + 1
	}
	step(i);
	choosing[i] = false;
	j = 0;
	do
	:: j < N ->
		if
		:: j != i ->
			/* A dead host's lease runs out, at some point. */
			do
			:: !alive[j] && !expired[j] && member[j] == 1 -> expired[j] = true
			:: !choosing[j] || expired[j] || member[j] == 2 -> break
			od;
			do
			:: !alive[j] && !expired[j] && member[j] == 1 -> expired[j] = true
			:: ticket[j] == 0 || ticket[j] > ticket[i] ||
			   (ticket[j] == ticket[i] && j > i) || expired[j] || member[j] == 2 -> break
			od
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	atomic {
		in_cs[i] = true;
		/* Mutual exclusion among live hosts (a dead one does nothing). */
		k = 0;
		do
		:: k < N -> assert(k == i || !in_cs[k] || !alive[k]); k++
		:: else -> break
		od
	}
}

inline unlock(i) {
	atomic { in_cs[i] = false; ticket[i] = 0 }
}

/* Fence expired member j and take what it owned. Holding the lock. */
inline reap(i, j) {
	begin_tx(i);
	step(i);
	member[j] = 2;
	step(i);
	if
	:: hstate != 0 && (hsrc == j || hdst == j) ->
		/* Accepted and the source died: the target keeps the block. */
		if
		:: hstate == 2 && hsrc == j -> owner[hblock] = hdst
		:: else -> owner[hblock] = hsrc
		fi;
		lent[hblock] = false;
		step(i);
		hstate = 0; hsrc = NONE; hdst = NONE; hblock = NONE
	:: else -> skip
	fi;
	step(i);
	k = 0;
	do
	:: k < B ->
		if
		:: owner[k] == j && !lent[k] -> owner[k] = i; step(i)
		:: else -> skip
		fi;
		k++
	:: else -> break
	od;
	intent[i] = false
}

inline reap_all(i) {
	/* First undo every dead member's unfinished transaction, then reap. */
	j2 = 0;
	do
	:: j2 < N ->
		if
		:: j2 != i && expired[j2] && member[j2] == 1 -> rollback(j2); step(i)
		:: else -> skip
		fi;
		j2++
	:: else -> break
	od;
	j2 = 0;
	do
	:: j2 < N ->
		if
		:: j2 != i && expired[j2] && member[j2] == 1 -> reap(i, j2)
		:: else -> skip
		fi;
		j2++
	:: else -> break
	od
}

/* Beliefs follow the table after each commit. */
inline sync_mine(i) {
	atomic {
		k = 0;
		do
		:: k < B -> mine[i * B + k] = (owner[k] == i && !lent[k]); k++
		:: else -> break
		od
	}
}

proctype Host(byte i; byte nops) {
	byte j, j2, k, m, b, x, ops;
	do
	:: ops < nops ->
		ops++;
		lock(i);
		reap_all(i);
		if
		:: /* claim a free block */
			b = 0;
			do
			:: b < B && owner[b] != NONE -> b++
			:: else -> break
			od;
			if
			:: b < B -> begin_tx(i); step(i); owner[b] = i; step(i); intent[i] = false
			:: else -> skip
			fi
		:: /* return an owned block */
			b = 0;
			do
			:: b < B && !(owner[b] == i && !lent[b]) -> b++
			:: else -> break
			od;
			if
			:: b < B -> mine[i * B + b] = false; begin_tx(i); step(i); owner[b] = NONE;
				step(i); intent[i] = false
			:: else -> skip
			fi
		:: /* offer an owned block to a live member */
			b = 0;
			do
			:: b < B && !(owner[b] == i && !lent[b]) -> b++
			:: else -> break
			od;
			j = (i + 1) % N;
			if
			:: b < B && hstate == 0 && member[j] == 1 ->
				begin_tx(i); step(i);
				lent[b] = true; step(i);
				hstate = 1; hsrc = i; hdst = j; hblock = b; step(i);
				intent[i] = false
			:: else -> skip
			fi
		:: /* accept an offer to this host */
			skip;
			if
			:: hstate == 1 && hdst == i ->
				begin_tx(i); step(i);
				owner[hblock] = i; step(i);
				hstate = 2; step(i);
				intent[i] = false
			:: else -> skip
			fi
		:: /* release an accepted offer of this host's */
			skip;
			if
			:: hstate == 2 && hsrc == i ->
				begin_tx(i); step(i);
				lent[hblock] = false; step(i);
				hstate = 0; hsrc = NONE; hdst = NONE; hblock = NONE;
				intent[i] = false
			:: else -> skip
			fi
		fi;
		sync_mine(i);
		unlock(i)
	:: else -> break
	od;
	/* Still a live member: keeps its blocks and renews its lease. */
	atomic { done++ }
	goto out;
dead:
	skip;
	atomic {
		k = 0;
		do
		:: k < B -> mine[i * B + k] = false; k++
		:: else -> break
		od;
		done++
	}
out:
	skip
}

/* When every host is finished or dead: a live auditor reaps the dead (their
 * leases expire in the end) and checks that nothing is lost or pending. */
active proctype Auditor() {
	byte k, x;
	(done == N);
	atomic {
		/* Let every lease of the dead run out. */
		x = 0;
		do
		:: x < N -> if :: !alive[x] && member[x] == 1 -> expired[x] = true :: else -> skip fi; x++
		:: else -> break
		od;
		/* Reap them, as a live host holding the lock does. */
		x = 0;
		do
		:: x < N -> if :: expired[x] && member[x] == 1 -> rollback(x) :: else -> skip fi; x++
		:: else -> break
		od;
		x = 0;
		do
		:: x < N ->
			if
			:: expired[x] && member[x] == 1 ->
				member[x] = 2;
				if
				:: hstate != 0 && (hsrc == x || hdst == x) ->
					if
					:: hstate == 2 && hsrc == x -> owner[hblock] = hdst
					:: else -> owner[hblock] = hsrc
					fi;
					lent[hblock] = false;
					hstate = 0; hsrc = NONE; hdst = NONE; hblock = NONE
				:: else -> skip
				fi;
				k = 0;
				do
				:: k < B -> if :: owner[k] == x && !lent[k] -> owner[k] = NONE :: else -> skip fi; k++
				:: else -> break
				od
			:: else -> skip
			fi;
			x++
		:: else -> break
		od;
		/* A handoff between two live hosts may still be in progress: the
		 * source releases it, or cancels an offer. */
		if
		:: hstate == 2 -> lent[hblock] = false; hstate = 0
		:: hstate == 1 -> lent[hblock] = false; hstate = 0
		:: else -> skip
		fi;
		/* Nothing lost: every block is free or a live member's. */
		k = 0;
		do
		:: k < B -> assert(owner[k] == NONE || (alive[owner[k]] && member[owner[k]] == 1));
			assert(!lent[k]); k++
		:: else -> break
		od;
		assert(hstate == 0)
	}
}

init {
	byte k;
	atomic {
		k = 0;
		do
		:: k < B -> owner[k] = NONE; k++
		:: else -> break
		od;
		/* The hosts have joined (a join is a transaction like the others). */
		k = 0;
		do
		:: k < N -> member[k] = 1; alive[k] = true; k++
		:: else -> break
		od;
		run Host(0, 2); run Host(1, 2); run Host(2, 1)
	}
}
