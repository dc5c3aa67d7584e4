/*
 * version.h — does the loaded library agree with the extension's SQL?
 *
 * See version.c.
 */
#ifndef DLTRAIN_VERSION_H
#define DLTRAIN_VERSION_H

/* the version of this library (the Makefile's EXTVERSION) */
#ifndef DLTRAIN_VERSION
#error "DLTRAIN_VERSION must be defined by the build (Makefile: EXTVERSION)"
#endif

/*
 * Raises an error when the extension's SQL in the current database is newer
 * than this library; older SQL is accepted.  Called first by every
 * SQL-callable function; costs one catalog lookup per transaction.
 */
extern void DltCheckSqlVersion(void);

#endif							/* DLTRAIN_VERSION_H */
