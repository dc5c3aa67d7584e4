/*
 * newrows.c — what a training records so that a later one can train on
 * exactly the rows added since (dltrain.retrain, retrain.c).
 *
 * The rule: a row version is new if the current snapshot sees it and the
 * training's snapshot did not see its inserting transaction, read from the
 * xmin system column (the raw xmin, which freezing keeps) widened to 64 bits
 * against the current next xid; rows written by the training transaction
 * itself count as old.  For that a training records:
 *
 *   - its snapshot, 64-bit, in pg_current_snapshot()'s form.  Unlike
 *     pg_current_snapshot() (which drops them), xip also lists the
 *     subtransactions of the transactions then in progress, so that
 *     pg_visible_in_snapshot() answers right for a row a subtransaction
 *     wrote; when the snapshot's subtransaction cache overflowed, they are
 *     found through pg_subtrans now, while it still knows them (at most
 *     MAX_OVERFLOW_SPAN xids apart, or nothing is recorded);
 *   - its own xids (the top transaction's and its subtransactions': the
 *     backend's subxid cache, and the committed children of the current
 *     level), which no snapshot of its own lists;
 *   - the relation's storage: each leaf's relfilenode, and the cluster's
 *     system identifier.  Whatever gives rows new xmins (dump and restore,
 *     logical replication into another cluster, a rewriting ALTER TABLE,
 *     VACUUM FULL, CLUSTER, TRUNCATE and reload) changes one of them.
 *
 * 32-bit xids are widened the way xid8funcs.c widens a snapshot's: an xid
 * above the next xid's low half is of the previous epoch.  That is exact
 * for any xid issued less than 2^32 transactions before now.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "lib/stringinfo.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "newrows.h"

/* xids between xmin and xmax looked up in pg_subtrans at most (overflow) */
#define MAX_OVERFLOW_SPAN (1 << 20)

FullTransactionId
DltWidenXid(TransactionId xid, FullTransactionId next)
{
	uint32		epoch = EpochFromFullTransactionId(next);

	if (!TransactionIdIsNormal(xid))
		return FullTransactionIdFromEpochAndXid(0, xid);
	/* nothing seen now is at or past next: a larger low half is older */
	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

static int
CmpU64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

char *
DltSnapshotText(Snapshot snap)
{
	FullTransactionId next = ReadNextFullTransactionId();
	int			cap = snap->xcnt + (snap->subxcnt > 0 ? snap->subxcnt : 0) + 16;
	int			n = 0;
	uint64	   *xs;
	StringInfoData b;

	xs = palloc(sizeof(uint64) * cap);
	for (int i = 0; i < snap->xcnt; i++)
		xs[n++] = U64FromFullTransactionId(DltWidenXid(snap->xip[i], next));
	for (int i = 0; i < snap->subxcnt; i++)
		xs[n++] = U64FromFullTransactionId(DltWidenXid(snap->subxip[i], next));
	if (snap->suboverflowed)
	{
		/* subtransactions the snapshot does not list: ask pg_subtrans now */
		TransactionId x;

		if ((uint32) (snap->xmax - snap->xmin) > MAX_OVERFLOW_SPAN)
			return NULL;
		for (x = snap->xmin; TransactionIdPrecedes(x, snap->xmax);)
		{
			bool		in = XidInMVCCSnapshot(x, snap);
			TransactionId this = x;

			TransactionIdAdvance(x);
			if (!in)
				continue;
			if (n == cap)
			{
				cap *= 2;
				xs = repalloc(xs, sizeof(uint64) * cap);
			}
			xs[n++] = U64FromFullTransactionId(DltWidenXid(this, next));
		}
	}
	qsort(xs, n, sizeof(uint64), CmpU64);
	initStringInfo(&b);
	appendStringInfo(&b, UINT64_FORMAT ":" UINT64_FORMAT ":",
					 U64FromFullTransactionId(DltWidenXid(snap->xmin, next)),
					 U64FromFullTransactionId(DltWidenXid(snap->xmax, next)));
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && xs[i] == xs[i - 1])
			continue;
		appendStringInfo(&b, "%s" UINT64_FORMAT, i > 0 ? "," : "", xs[i]);
	}
	pfree(xs);
	return b.data;
}

char *
DltOwnXidsJson(void)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId top = GetTopFullTransactionIdIfAny();
	TransactionId cur = GetCurrentTransactionIdIfAny();
	TransactionId *children;
	int			nchildren = xactGetCommittedChildren(&children);
	StringInfoData b;
	bool		first = true;

	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
#define ADD(fx) do { appendStringInfo(&b, "%s" UINT64_FORMAT, first ? "" : ", ", \
									  U64FromFullTransactionId(fx)); first = false; } while (0)
	if (FullTransactionIdIsValid(top))
		ADD(top);
	if (TransactionIdIsValid(cur) && cur != XidFromFullTransactionId(top))
		ADD(DltWidenXid(cur, next));
	/* the subtransactions the backend advertises (up to 64), then the children */
	for (int i = 0; i < MyProc->subxidStatus.count; i++)
		ADD(DltWidenXid(MyProc->subxids.xids[i], next));
	for (int i = 0; i < nchildren; i++)
		ADD(DltWidenXid(children[i], next));
#undef ADD
	appendStringInfoChar(&b, ']');
	return b.data;
}

char *
DltSystemIdentifier(void)
{
	return psprintf(UINT64_FORMAT, GetSystemIdentifier());
}

char *
DltStorageJson(Oid relid)
{
	List	   *all = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;
	StringInfoData b;
	bool		first = true;

	initStringInfo(&b);
	appendStringInfoString(&b, "\"relfilenodes\": {");
	foreach(lc, all)
	{
		Oid			leaf = lfirst_oid(lc);
		Relation	r;

		if (get_rel_relkind(leaf) != RELKIND_RELATION)
			continue;
		r = RelationIdGetRelation(leaf);
		appendStringInfo(&b, "%s\"%u\": %u", first ? "" : ", ", leaf, r->rd_rel->relfilenode);
		RelationClose(r);
		first = false;
	}
	appendStringInfo(&b, "}, \"system_identifier\": \"%s\"", DltSystemIdentifier());
	return b.data;
}
