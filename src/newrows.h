/*
 * newrows.h — what a training records so that a later one can tell the rows
 * added since (newrows.c): its snapshot with 64-bit transaction ids, its own
 * transaction ids, the relation's storage (relfilenode of each leaf) and the
 * cluster's system identifier; and the checks that refuse a retraining when
 * the rows' xmins no longer mean what they meant.
 */
#ifndef DLTRAIN_NEWROWS_H
#define DLTRAIN_NEWROWS_H

#include "postgres.h"

#include "access/transam.h"
#include "utils/snapshot.h"

/* a 32-bit xid seen now (in a snapshot or a row's xmin), as 64 bits */
extern FullTransactionId DltWidenXid(TransactionId xid, FullTransactionId next);

/*
 * The snapshot as pg_current_snapshot() writes it ("xmin:xmax:xip,..."),
 * 64-bit; its xip also lists the subtransactions of the transactions in
 * progress (resolved through pg_subtrans when the snapshot overflowed), so
 * that pg_visible_in_snapshot() is exact for a subtransaction's xid too.
 */
extern char *DltSnapshotText(Snapshot snap);

/* the current transaction's own xids (top and subtransactions): a JSON array */
extern char *DltOwnXidsJson(void);

/*
 * {"relfilenodes": {"leaf oid": relfilenode, ...}, "system_identifier": "..."}
 * without the braces: the storage of relid (each leaf of a partitioned table).
 */
extern char *DltStorageJson(Oid relid);

/* the next full xid, and the cluster's system identifier, as text */
extern char *DltSystemIdentifier(void);

#endif							/* DLTRAIN_NEWROWS_H */
