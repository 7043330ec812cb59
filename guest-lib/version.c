/* SPDX-License-Identifier: MIT */
/* ivl_version(): the version this libivlink.so was built as (VERSION). */
#include <ivlink/ivlink.h>

IVL_API uint32_t ivl_version(void)
{
	return IVL_VERSION_NUMBER;
}
