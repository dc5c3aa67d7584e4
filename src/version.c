/*
 * version.c — the loaded library and the extension's SQL agree, or say so.
 *
 * A database holds the SQL of the version it was created with or last
 * updated to (pg_extension.extversion); a process runs the library it loaded
 * (with dltrain in shared_preload_libraries: the one of the server's start,
 * otherwise the one of the session's first call).  The two can differ:
 *
 *   - SQL older than the library (a database not yet updated with ALTER
 *     EXTENSION dltrain UPDATE): it keeps working.  Every C symbol that an
 *     older version's SQL names stays in the library with the same
 *     arguments; test/sh/upgrade.sh creates 0.1.0 with this library (CREATE
 *     FUNCTION looks every symbol up) and trains, predicts and fits with it.
 *   - SQL newer than the library (the package was upgraded and the database
 *     updated, but this process still runs the old library): its functions
 *     may pass arguments this library does not know.  Every SQL-callable
 *     function calls DltCheckSqlVersion() first, which refuses with
 *     OBJECT_NOT_IN_PREREQUISITE_STATE, naming both versions.
 *
 * The check reads pg_extension once per transaction (its local transaction
 * id is remembered), so an update committed by another session, or by this
 * one, is seen from the next transaction on; a call costs one comparison
 * otherwise.  A database without the extension (functions created by hand)
 * is not checked.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "version.h"

/* the transaction in which the check last passed */
static LocalTransactionId version_checked_lxid = InvalidLocalTransactionId;

/* Parses one numeric component; false at anything but digits. */
static bool
ParseVersionPart(const char **p, long *out)
{
	long		v = 0;

	if (!isdigit((unsigned char) **p))
		return false;
	while (isdigit((unsigned char) **p))
	{
		if (v > 100000000L)
			return false;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return true;
}

/*
 * Compares two dotted version strings ("0.10.2"): *cmp <0, 0, >0.  Returns
 * false when either is not of that form.
 */
static bool
DltCompareVersions(const char *a, const char *b, int *cmp)
{
	*cmp = 0;
	while (*a || *b)
	{
		long		va = 0;
		long		vb = 0;

		/* a missing trailing component counts as 0: "1.2" = "1.2.0" */
		if (*a && !ParseVersionPart(&a, &va))
			return false;
		if (*b && !ParseVersionPart(&b, &vb))
			return false;
		if (*cmp == 0 && va != vb)
			*cmp = va < vb ? -1 : 1;
		if (*a == '.' && a[1] != '\0')
			a++;
		else if (*a)
			return false;
		if (*b == '.' && b[1] != '\0')
			b++;
		else if (*b)
			return false;
	}
	return true;
}

/* The extension's version in this database (palloc'd), or NULL. */
static char *
InstalledSqlVersion(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("dltrain"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

void
DltCheckSqlVersion(void)
{
	char	   *sql_version;
	int			cmp;

	if (MyProc == NULL || !IsTransactionState())
		return;
	if (version_checked_lxid != InvalidLocalTransactionId &&
		version_checked_lxid == MyProc->lxid)
		return;

	sql_version = InstalledSqlVersion();
	if (sql_version != NULL)
	{
		if (!DltCompareVersions(sql_version, DLTRAIN_VERSION, &cmp))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"dltrain\" is at version \"%s\" in this database, which the loaded library (version %s) does not know",
							sql_version, DLTRAIN_VERSION),
					 errhint("Install the dltrain package that provides version \"%s\".", sql_version)));
		if (cmp > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"dltrain\" is at version %s in this database, but the loaded library is version %s",
							sql_version, DLTRAIN_VERSION),
					 errdetail("A library runs the SQL of its own version and of older ones, never of newer ones."),
					 errhint("Install dltrain %s or later; then restart the server if dltrain is in shared_preload_libraries, or start a new session otherwise.",
							 sql_version)));
		pfree(sql_version);
	}
	version_checked_lxid = MyProc->lxid;
}
