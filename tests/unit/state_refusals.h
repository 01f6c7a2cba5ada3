/*
 * Snapshot test helpers (include after <cmocka.h>): save a device, load bytes
 * into one, and check that what a device refuses it refuses properly.
 */
#ifndef RTVMM_TESTS_STATE_REFUSALS_H
#define RTVMM_TESTS_STATE_REFUSALS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/state.h"
#include "vmm/device.h"

#define STATE_WHY_LEN 160 /* device_ops.load's longest reason */

/* `dev`'s state through `ops`; the caller frees it with state_out__free. */
static inline struct state_out state_save(const struct device_ops *ops, void *dev)
{
	struct state_out out = { 0 };

	assert_int_equal(ops->save(dev, &out), 0);
	assert_int_equal(out.err, 0);
	return out;
}

/* Loads [buf, buf+len) into `dev`; a refusal must be -EINVAL with a reason in `why`. */
static inline int state_load(const struct device_ops *ops, void *dev, const void *buf, size_t len,
			     char why[STATE_WHY_LEN])
{
	struct state_in in = state_in__of(buf, len);
	int err;

	memset(why, 0, STATE_WHY_LEN);
	err = ops->load(dev, &in, why, STATE_WHY_LEN);
	if (err) {
		assert_int_equal(err, -EINVAL);
		assert_true(why[0] != '\0');
		assert_non_null(memchr(why, '\0', STATE_WHY_LEN));
	}
	return err;
}

/* Every proper prefix of a good state, and the state with a byte more, are refused. */
static inline void assert_state_length_exact(const struct device_ops *ops, void *dev,
					     const struct state_out *good)
{
	char why[STATE_WHY_LEN];
	uint8_t *longer = calloc(1, good->len + 1);
	size_t n;

	assert_non_null(longer);
	for (n = 0; n < good->len; n++)
		assert_int_equal(state_load(ops, dev, good->buf, n, why), -EINVAL);
	memcpy(longer, good->buf, good->len);
	assert_int_equal(state_load(ops, dev, longer, good->len + 1, why), -EINVAL);
	free(longer);
}

/*
 * `good` with the byte at `off` replaced by `v` is refused, its reason
 * containing `needle`.
 */
static inline void assert_state_byte_refused(const struct device_ops *ops, void *dev,
					     const struct state_out *good, size_t off, uint8_t v,
					     const char *needle)
{
	char why[STATE_WHY_LEN];
	uint8_t *bad = malloc(good->len);

	assert_non_null(bad);
	assert_true(off < good->len);
	memcpy(bad, good->buf, good->len);
	bad[off] = v;
	assert_int_equal(state_load(ops, dev, bad, good->len, why), -EINVAL);
	if (!strstr(why, needle))
		fail_msg("reason '%s' does not name '%s'", why, needle);
	free(bad);
}

#endif
