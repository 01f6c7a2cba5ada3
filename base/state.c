#include "base/state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *out_room(struct state_out *o, size_t n)
{
	if (o->err)
		return NULL;
	if (o->cap - o->len < n) {
		size_t cap = o->cap ? o->cap : 256;
		uint8_t *b;

		while (cap - o->len < n) {
			if (cap > SIZE_MAX / 2) {
				o->err = -ENOMEM;
				return NULL;
			}
			cap *= 2;
		}
		b = realloc(o->buf, cap);
		if (!b) {
			o->err = -ENOMEM;
			return NULL;
		}
		o->buf = b;
		o->cap = cap;
	}
	o->len += n;
	return o->buf + o->len - n;
}

static void out_le(struct state_out *o, uint64_t v, unsigned n)
{
	uint8_t *p = out_room(o, n);
	unsigned i;

	for (i = 0; p && i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void state_out__u8(struct state_out *o, uint8_t v)
{
	out_le(o, v, 1);
}

void state_out__u16(struct state_out *o, uint16_t v)
{
	out_le(o, v, 2);
}

void state_out__u32(struct state_out *o, uint32_t v)
{
	out_le(o, v, 4);
}

void state_out__u64(struct state_out *o, uint64_t v)
{
	out_le(o, v, 8);
}

void state_out__bytes(struct state_out *o, const void *src, size_t n)
{
	uint8_t *p = out_room(o, n);

	if (p && n)
		memcpy(p, src, n);
}

void state_out__free(struct state_out *o)
{
	free(o->buf);
	*o = (struct state_out){ 0 };
}

struct state_in state_in__of(const void *p, size_t len)
{
	return (struct state_in){ .p = p, .len = len };
}

/* The next n bytes, or NULL (and the error set) when fewer are left. */
static const uint8_t *in_take(struct state_in *in, size_t n)
{
	if (in->err || in->len - in->off < n) {
		in->err = -EINVAL;
		return NULL;
	}
	in->off += n;
	return in->p + in->off - n;
}

static uint64_t in_le(struct state_in *in, unsigned n)
{
	const uint8_t *p = in_take(in, n);
	uint64_t v = 0;
	unsigned i;

	for (i = 0; p && i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t state_in__u8(struct state_in *in)
{
	return (uint8_t)in_le(in, 1);
}

uint16_t state_in__u16(struct state_in *in)
{
	return (uint16_t)in_le(in, 2);
}

uint32_t state_in__u32(struct state_in *in)
{
	return (uint32_t)in_le(in, 4);
}

uint64_t state_in__u64(struct state_in *in)
{
	return in_le(in, 8);
}

void state_in__bytes(struct state_in *in, void *dst, size_t n)
{
	const uint8_t *p = in_take(in, n);

	if (p)
		memcpy(dst, p, n);
	else if (n)
		memset(dst, 0, n);
}

void state_in__fail(struct state_in *in)
{
	in->err = -EINVAL;
}

int state_in__end(const struct state_in *in)
{
	return in->err || in->off != in->len ? -EINVAL : 0;
}

bool state__all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	return !n || (b[0] == 0 && !memcmp(b, b + 1, n - 1));
}
