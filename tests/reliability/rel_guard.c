/* SPDX-License-Identifier: MIT */
/*
 * Guard pages around region mappings (see rel.h). This file defines mmap()
 * and munmap() in the test executable; the dynamic linker resolves
 * libivlink.so's calls to them here first (the executable comes first in the
 * lookup order), and we call the next definition (the sanitizer's
 * interceptor or libc) through dlsym(RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "rel.h"

#define MAX_MAPS   16
#define REGION_MIN (1u << 20)

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static struct {
	uint8_t *base;
	size_t len;
} maps[MAX_MAPS];
static unsigned n_guarded, last = MAX_MAPS;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static mmap_fn real_mmap(void)
{
	static mmap_fn fn;

	if (!fn)
		fn = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	return fn;
}

static munmap_fn real_munmap(void)
{
	static munmap_fn fn;

	if (!fn)
		fn = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
	return fn;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uint8_t *res, *p;
	unsigned i;

	if (addr || fd < 0 || !(flags & MAP_SHARED) || len < REGION_MIN || off != 0)
		return real_mmap()(addr, len, prot, flags, fd, off);
	res = real_mmap()(NULL, len + 2 * REL_GUARD_SIZE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return real_mmap()(addr, len, prot, flags, fd, off);
	p = real_mmap()(res + REL_GUARD_SIZE, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED) {
		/* A hugetlbfs file maps only at huge-page-aligned addresses:
		 * no guard pages for it, a plain mapping. */
		real_munmap()(res, len + 2 * REL_GUARD_SIZE);
		return real_mmap()(addr, len, prot, flags, fd, off);
	}
	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_MAPS && maps[i].base; i++)
		;
	if (i < MAX_MAPS) {
		maps[i].base = p;
		maps[i].len = len;
		last = i;
		n_guarded++;
	}
	pthread_mutex_unlock(&lock);
	return p;
}

int munmap(void *addr, size_t len)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < MAX_MAPS; i++) {
		if (maps[i].base == addr && maps[i].len == len) {
			maps[i].base = NULL;
			if (last == i)
				last = MAX_MAPS;
			pthread_mutex_unlock(&lock);
			return real_munmap()((uint8_t *)addr - REL_GUARD_SIZE,
					     len + 2 * REL_GUARD_SIZE);
		}
	}
	pthread_mutex_unlock(&lock);
	return real_munmap()(addr, len);
}

unsigned rel_guard_count(void)
{
	return __atomic_load_n(&n_guarded, __ATOMIC_RELAXED);
}

int rel_guard_region(struct ivl_region *rg)
{
	uint8_t *base = NULL;
	size_t len = 0;

	pthread_mutex_lock(&lock);
	if (last < MAX_MAPS) {
		base = maps[last].base;
		len = maps[last].len;
	}
	pthread_mutex_unlock(&lock);
	if (!base)
		return -ENOENT;
	return ivl_region_attach(rg, base, len);
}
