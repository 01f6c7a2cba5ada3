/*
 * A device's or vCPU's saved state as bytes: a growing writer and a bounded
 * reader, little-endian, fixed widths. The reader never reads past its end:
 * an overrun sets its error and reads zeros, so a parser of a truncated or
 * hostile snapshot checks once, at state_in__end.
 */
#ifndef RTVMM_BASE_STATE_H
#define RTVMM_BASE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_out {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err;           /* -ENOMEM once an append failed: later appends do nothing */
};

struct state_in {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;           /* -EINVAL once a read went past the end, or state_in__fail said so */
};

void state_out__u8(struct state_out *o, uint8_t v);
void state_out__u16(struct state_out *o, uint16_t v);
void state_out__u32(struct state_out *o, uint32_t v);
void state_out__u64(struct state_out *o, uint64_t v);
void state_out__bytes(struct state_out *o, const void *src, size_t n);
/* Frees the buffer; the writer is empty again. */
void state_out__free(struct state_out *o);

/* A reader of [p, p+len). */
struct state_in state_in__of(const void *p, size_t len);
uint8_t state_in__u8(struct state_in *in);
uint16_t state_in__u16(struct state_in *in);
uint32_t state_in__u32(struct state_in *in);
uint64_t state_in__u64(struct state_in *in);
void state_in__bytes(struct state_in *in, void *dst, size_t n);
/* Marks the state invalid (a value out of range): state_in__end then fails. */
void state_in__fail(struct state_in *in);
/* 0 when every byte was read and none past the end; -EINVAL otherwise. */
int state_in__end(const struct state_in *in);

/* True when the `n` bytes at `p` are all zero (guest RAM saved or sent as a length). */
bool state__all_zero(const void *p, size_t n);

#endif
