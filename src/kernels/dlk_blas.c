/*
 * dlk_blas.c — run-time binding of the BLAS library.
 *
 * The kernels call cblas_sgemm through a pointer (dlk_cblas_sgemm, declared
 * in dlk_internal.h) instead of linking OpenBLAS: the extension's glue opens
 * the library only in a backend that actually trains, with signals blocked,
 * so OpenBLAS never starts its threads in the postmaster or in backends that
 * do not train, and the threads it starts inherit a mask that blocks
 * PostgreSQL's signals.  The library is opened RTLD_NOW (every symbol is
 * resolved here, not at the first GEMM in the middle of training) and
 * RTLD_LOCAL (its symbols do not leak into the global namespace of the
 * backend).  openblas_set_num_threads is optional, so any CBLAS library
 * works; without it dlk_blas_set_threads is a no-op.
 *
 * Opening is idempotent: once bound, the handle stays open for the life of
 * the process (unloading a library whose threads may be alive is unsafe).
 */
#include "dlk.h"
#include "dlk_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#define DLK_BLAS_DEFAULT_PATH "libopenblas.so.0"

typedef void (*dlk_set_threads_fn) (int n);

dlk_sgemm_fn dlk_cblas_sgemm = NULL;
static dlk_set_threads_fn dlk_openblas_set_num_threads = NULL;
static void *dlk_blas_handle = NULL;

static void
set_err(char *errbuf, size_t errlen, const char *what, const char *path)
{
	const char *detail;

	if (errbuf == NULL || errlen == 0)
		return;
	detail = dlerror();
	snprintf(errbuf, errlen, "%s \"%s\": %s", what, path,
			 detail ? detail : "unknown error");
}

/*
 * dlsym returns a data pointer; copying its bytes into a function pointer is
 * the conversion POSIX guarantees to work, without ISO C's cast warning.
 */
static int
lookup(void *handle, const char *name, void *fnptr, size_t fnsize)
{
	void	   *sym;

	dlerror();					/* clear any stale error */
	sym = dlsym(handle, name);
	if (sym == NULL)
		return 0;
	memcpy(fnptr, &sym, fnsize);
	return 1;
}

dlk_status
dlk_blas_open(const char *path, char *errbuf, size_t errlen)
{
	void	   *handle;
	dlk_sgemm_fn sgemm = NULL;
	dlk_set_threads_fn set_threads = NULL;

	if (dlk_cblas_sgemm != NULL)
		return DLK_OK;
	if (path == NULL || path[0] == '\0')
		path = DLK_BLAS_DEFAULT_PATH;

	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL)
	{
		set_err(errbuf, errlen, "could not open BLAS library", path);
		return DLK_EBLASLOAD;
	}
	if (!lookup(handle, "cblas_sgemm", &sgemm, sizeof(sgemm)))
	{
		set_err(errbuf, errlen, "cblas_sgemm not found in", path);
		dlclose(handle);
		return DLK_EBLASLOAD;
	}
	if (!lookup(handle, "openblas_set_num_threads", &set_threads,
				sizeof(set_threads)))
		set_threads = NULL;		/* optional */

	dlk_blas_handle = handle;
	dlk_openblas_set_num_threads = set_threads;
	dlk_cblas_sgemm = sgemm;
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	return DLK_OK;
}

int
dlk_blas_available(void)
{
	return dlk_cblas_sgemm != NULL;
}

void
dlk_blas_set_threads(int n)
{
	if (dlk_openblas_set_num_threads != NULL && n >= 1)
		dlk_openblas_set_num_threads(n);
}
