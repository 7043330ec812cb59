/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: a kick list (layout v4) as a hostile producer writes
 * it, read by ivl_kick_read() from a position the input chooses too. The
 * input is the list length (one byte: 2^(3 + b % 6) entries), the
 * reader's position (8 bytes), then the list's bytes. The
 * reader must return a count it has room for (and then move exactly that
 * far, every slot one the list holds under its right tag) or -EOVERFLOW,
 * and leave its position at the tail it read; ASan guards the list's end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/kick.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ivl_kick_list *l = calloc(1, sizeof(*l));
	uint32_t slots[IVL_KICK_ENTRIES_MAX], entries = IVL_KICK_ENTRIES_MAX;
	uint64_t pos = 0, from;
	int n;

	if (!l)
		return 0;
	if (size >= 1) {
		entries = IVL_KICK_ENTRIES_MIN << (data[0] % 6);
		data++;
		size--;
	}
	if (size >= 8) {
		memcpy(&pos, data, 8);
		data += 8;
		size -= 8;
	}
	memcpy(l, data, size < IVL_KICK_LIST_SIZE(entries) ? size : IVL_KICK_LIST_SIZE(entries));
	from = pos;
	n = ivl_kick_read(l, entries, &pos, slots);
	if (pos != l->tail)
		abort();
	if (n != -EOVERFLOW) {
		if (n < 0 || n > (int)entries || (uint64_t)n != l->tail - from)
			abort();
		for (int i = 0; i < n; i++) {
			const struct ivl_kick_ent *e = &l->ent[(from + (uint64_t)i) % entries];

			if (e->slot != slots[i] || e->tag != (uint32_t)(from + (uint64_t)i + 1))
				abort();
		}
	}
	free(l);
	return 0;
}
