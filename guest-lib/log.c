/* SPDX-License-Identifier: MIT */
/* The library's only way to say something: the caller's log callback. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>

#include "backend.h"

void ivl__logf(const struct ivl__log *log, enum ivl_log_level level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!log || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->ctx, level, msg);
}
