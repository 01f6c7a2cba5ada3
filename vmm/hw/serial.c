/* 16550A UART: register model, receive FIFO, interrupt line. See serial.h for the model. */
#include "vmm/hw/serial.h"

#include <errno.h>
#include <linux/serial_reg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/counter.h"

#define SERIAL_IER_MASK  (UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI)
#define SERIAL_MCR_MASK  (UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT1 | UART_MCR_OUT2 | UART_MCR_LOOP)
#define SERIAL_IIR_FIFO  0xc0 /* IIR[7:6]: FIFOs enabled (16550A) */
#define SERIAL_DIVISOR   12   /* 9600 baud at reset, as PC firmware leaves it */

struct serial {
	pthread_mutex_t lock;
	struct irq_sink irq;
	bool has_irq;
	int irq_level;       /* level last driven on the line */
	uint16_t base;       /* first port */
	int out_fd;
	int room_fd;         /* eventfd: receive room after a short serial__receive */
	bool want_room;
	int tx_fd;           /* eventfd: output waits in tx[] for the drainer */
	bool tx_kicked;      /* tx_fd written since the drainer last found tx[] empty */
	unsigned tx_head;
	unsigned tx_count;   /* bytes waiting for the drainer; the counters read it unlocked */

	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thr_ipending;   /* THRE interrupt pending (cleared by IIR read or THR write) */
	uint8_t rbr_last;    /* value read from an empty receiver */
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head;
	unsigned rx_count;

	struct serial_stats stats;
	uint8_t tx[SERIAL_TX_BUF];
};

static bool serial_fifo_on(const struct serial *s)
{
	return s->fcr & UART_FCR_ENABLE_FIFO;
}

static unsigned serial_rx_cap(const struct serial *s)
{
	return serial_fifo_on(s) ? SERIAL_RX_FIFO : 1;
}

static unsigned serial_rx_trigger(const struct serial *s)
{
	static const unsigned level[4] = { 1, 4, 8, 14 };

	return level[(s->fcr & UART_FCR_TRIGGER_MASK) >> 6];
}

/* Highest-priority pending reason as IIR[3:0], UART_IIR_NO_INT if none. */
static uint8_t serial_iir_reason(const struct serial *s)
{
	if ((s->ier & UART_IER_RLSI) && (s->lsr & UART_LSR_BRK_ERROR_BITS))
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count) {
		if (serial_fifo_on(s) && s->rx_count < serial_rx_trigger(s))
			return UART_IIR_RX_TIMEOUT;
		return UART_IIR_RDI;
	}
	if ((s->ier & UART_IER_THRI) && s->thr_ipending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_ANY_DELTA))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* Drives the line to match the state; calls the sink only on a change (irq_level -1: always). */
static void serial_update_irq(struct serial *s)
{
	int level = serial_iir_reason(s) != UART_IIR_NO_INT &&
		    (s->mcr & (UART_MCR_OUT2 | UART_MCR_LOOP)) == UART_MCR_OUT2;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->has_irq)
		irq_sink__set(&s->irq, level);
}

static size_t serial_rx_room(const struct serial *s)
{
	if (s->mcr & UART_MCR_LOOP)
		return 0; /* the receiver listens to the transmitter only */
	return serial_rx_cap(s) - s->rx_count;
}

static void serial_signal_room(struct serial *s)
{
	uint64_t one = 1;

	if (!s->want_room || serial_rx_room(s) == 0)
		return;
	s->want_room = false;
	if (write(s->room_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: counter saturated, the reader wakes anyway */
	}
}

static void serial_rx_reset(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

/* A character reaches the receiver from the line (host or loopback). */
static void serial_rx_push(struct serial *s, uint8_t c)
{
	unsigned cap = serial_rx_cap(s);

	if (s->rx_count == cap) {
		s->lsr |= UART_LSR_OE;
		counter__add(&s->stats.rx_overruns, 1);
		if (serial_fifo_on(s))
			return; /* FIFO kept, new character lost */
		s->rx[s->rx_head] = c; /* 16450: the holding register is overwritten */
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
}

static uint8_t serial_rx_pop(struct serial *s)
{
	if (!s->rx_count)
		return s->rbr_last;
	s->rbr_last = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	s->rx_count--;
	if (s->rx_count <= serial_rx_cap(s) / 2)
		serial_signal_room(s);
	return s->rbr_last;
}

/*
 * Queues a transmitted byte for the drainer; never blocks. The drainer is woken
 * once per busy period: the first byte after it went idle (serial__tx_rearm).
 */
static void serial_tx(struct serial *s, uint8_t c)
{
	uint64_t one = 1;

	if (s->out_fd < 0) {
		counter__add(&s->stats.tx_dropped, 1);
		return;
	}
	if (s->tx_count == SERIAL_TX_BUF) {
		counter__add(&s->stats.tx_overflow, 1);
		return;
	}
	s->tx[(s->tx_head + s->tx_count) % SERIAL_TX_BUF] = c;
	__atomic_store_n(&s->tx_count, s->tx_count + 1, __ATOMIC_RELAXED);
	if (s->tx_kicked)
		return;
	s->tx_kicked = true;
	if (write(s->tx_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: counter saturated, the drainer wakes anyway */
	}
}

/* MSR[7:4] as the modem lines (or, in loopback, the outputs of `mcr`) present them. */
static uint8_t serial_msr_lines(uint8_t mcr)
{
	uint8_t m = 0;

	if (!(mcr & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	if (mcr & UART_MCR_DTR)
		m |= UART_MSR_DSR;
	if (mcr & UART_MCR_RTS)
		m |= UART_MSR_CTS;
	if (mcr & UART_MCR_OUT1)
		m |= UART_MSR_RI;
	if (mcr & UART_MCR_OUT2)
		m |= UART_MSR_DCD;
	return m;
}

static void serial_update_msr(struct serial *s)
{
	uint8_t old = s->msr & 0xf0, now = serial_msr_lines(s->mcr), chg = old ^ now;
	uint8_t delta = s->msr & UART_MSR_ANY_DELTA;

	if (chg & UART_MSR_CTS)
		delta |= UART_MSR_DCTS;
	if (chg & UART_MSR_DSR)
		delta |= UART_MSR_DDSR;
	if (chg & UART_MSR_DCD)
		delta |= UART_MSR_DDCD;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		delta |= UART_MSR_TERI;
	s->msr = now | delta;
}

static void serial_reset(struct serial *s)
{
	s->ier = 0;
	s->fcr = 0;
	s->lcr = 0;
	s->mcr = 0;
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	s->msr = serial_msr_lines(s->mcr);
	s->scr = 0;
	s->dll = SERIAL_DIVISOR;
	s->dlm = 0;
	s->thr_ipending = false;
	serial_rx_reset(s);
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v;

	switch (reg) {
	case UART_RX:
		if (dlab)
			return s->dll;
		return serial_rx_pop(s);
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		v = serial_iir_reason(s);
		if (v == UART_IIR_THRI)
			s->thr_ipending = false; /* reading IIR acknowledges THRE */
		return v | (serial_fifo_on(s) ? SERIAL_IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = s->lsr | (s->rx_count ? UART_LSR_DR : 0);
		s->lsr &= ~UART_LSR_BRK_ERROR_BITS;
		return v;
	case UART_MSR:
		v = s->msr;
		s->msr &= ~UART_MSR_ANY_DELTA;
		return v;
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void serial_write_fcr(struct serial *s, uint8_t v)
{
	bool toggled = (v ^ s->fcr) & UART_FCR_ENABLE_FIFO;

	/* Changing FIFO enable clears both FIFOs; other bits need FIFO enable set. */
	if (toggled || ((v & UART_FCR_ENABLE_FIFO) && (v & UART_FCR_CLEAR_RCVR)))
		serial_rx_reset(s);
	s->fcr = v & UART_FCR_ENABLE_FIFO ?
		 v & (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK) : 0;
	serial_signal_room(s);
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t old;

	switch (reg) {
	case UART_TX:
		if (dlab) {
			s->dll = v;
			return;
		}
		/* The write acknowledges THRE; the instant transmit re-arms it (a new edge). */
		s->thr_ipending = false;
		serial_update_irq(s);
		if (s->mcr & UART_MCR_LOOP)
			serial_rx_push(s, v);
		else
			serial_tx(s, v);
		s->thr_ipending = true;
		return;
	case UART_IER:
		if (dlab) {
			s->dlm = v;
			return;
		}
		old = s->ier;
		s->ier = v & SERIAL_IER_MASK;
		/* Enabling ETBEI while THR is empty raises THRE, even if IIR had acknowledged it. */
		if ((old ^ s->ier) & UART_IER_THRI)
			s->thr_ipending = (s->ier & UART_IER_THRI) && (s->lsr & UART_LSR_THRE);
		return;
	case UART_FCR:
		serial_write_fcr(s, v);
		return;
	case UART_LCR:
		s->lcr = v;
		return;
	case UART_MCR:
		old = s->mcr;
		s->mcr = v & SERIAL_MCR_MASK;
		serial_update_msr(s);
		if ((old & UART_MCR_LOOP) && !(s->mcr & UART_MCR_LOOP))
			serial_signal_room(s);
		return;
	case UART_SCR:
		s->scr = v;
		return;
	}
	/* LSR and MSR writes (factory test) are ignored. */
}

static void serial_io_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct serial *s = dev;
	uint8_t *p = data;

	memset(p, 0xff, len);
	pthread_mutex_lock(&s->lock);
	p[0] = serial_read_reg(s, off);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_io_write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct serial *s = dev;

	(void)len;
	pthread_mutex_lock(&s->lock);
	serial_write_reg(s, off, *(const uint8_t *)data);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct io_ops serial_ops = {
	.read = serial_io_read,
	.write = serial_io_write,
};

int serial__add(struct bus *pio, uint16_t base, const struct irq_sink *irq, int out_fd,
		struct serial **out)
{
	struct serial *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->room_fd < 0) {
		err = -errno;
		goto err_free;
	}
	s->tx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->tx_fd < 0) {
		err = -errno;
		goto err_close_room;
	}
	err = pthread_mutex_init(&s->lock, NULL);
	if (err) {
		err = -err;
		goto err_close_tx;
	}
	if (irq) {
		s->irq = *irq;
		s->has_irq = true;
	}
	s->base = base;
	s->out_fd = out_fd;
	serial_reset(s);

	err = bus__register(pio, base, SERIAL_NR_PORTS, &serial_ops, s, "serial");
	if (err)
		goto err_destroy_lock;
	*out = s;
	return 0;

err_destroy_lock:
	pthread_mutex_destroy(&s->lock);
err_close_tx:
	close(s->tx_fd);
err_close_room:
	close(s->room_fd);
err_free:
	free(s);
	return err;
}

void serial__destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	close(s->tx_fd);
	close(s->room_fd);
	free(s);
}

size_t serial__receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n, i;

	pthread_mutex_lock(&s->lock);
	n = serial_rx_room(s);
	if (n > len)
		n = len;
	for (i = 0; i < n; i++)
		serial_rx_push(s, buf[i]);
	counter__add(&s->stats.rx_bytes, n);
	if (n < len)
		s->want_room = true;
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial__rx_room(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = serial_rx_room(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

int serial__rx_room_fd(const struct serial *s)
{
	return s->room_fd;
}

void serial__put(struct serial *s, uint8_t c)
{
	pthread_mutex_lock(&s->lock);
	serial_tx(s, c);
	pthread_mutex_unlock(&s->lock);
}

int serial__out_fd(const struct serial *s)
{
	return s->out_fd;
}

int serial__tx_fd(const struct serial *s)
{
	return s->tx_fd;
}

size_t serial__tx_peek(struct serial *s, const uint8_t **data)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->tx_count;
	if (n > SERIAL_TX_BUF - s->tx_head)
		n = SERIAL_TX_BUF - s->tx_head;
	*data = s->tx + s->tx_head;
	pthread_mutex_unlock(&s->lock);
	return n;
}

bool serial__tx_rearm(struct serial *s)
{
	bool idle;

	pthread_mutex_lock(&s->lock);
	idle = s->tx_count == 0;
	if (idle)
		s->tx_kicked = false;
	pthread_mutex_unlock(&s->lock);
	return idle;
}

void serial__tx_consume(struct serial *s, size_t n, enum serial_tx_fate fate)
{
	pthread_mutex_lock(&s->lock);
	if (n > s->tx_count)
		n = s->tx_count;
	s->tx_head = (s->tx_head + n) % SERIAL_TX_BUF;
	__atomic_store_n(&s->tx_count, s->tx_count - (unsigned)n, __ATOMIC_RELAXED);
	if (fate == SERIAL_TX_WRITTEN)
		counter__add(&s->stats.tx_bytes, n);
	else if (fate == SERIAL_TX_FAILED)
		counter__add(&s->stats.tx_dropped, n);
	else
		counter__add(&s->stats.tx_overflow, n);
	pthread_mutex_unlock(&s->lock);
}

void serial__tx_abandon(struct serial *s)
{
	serial__tx_consume(s, SERIAL_TX_BUF, SERIAL_TX_ABANDONED);
}

void serial__get_stats(struct serial *s, struct serial_stats *st)
{
	/* Lock-free: written under the lock, read with relaxed loads (base/counter.h). */
	*st = (struct serial_stats){
		.tx_bytes = counter__get(&s->stats.tx_bytes),
		.tx_dropped = counter__get(&s->stats.tx_dropped),
		.tx_overflow = counter__get(&s->stats.tx_overflow),
		.rx_bytes = counter__get(&s->stats.rx_bytes),
		.rx_overruns = counter__get(&s->stats.rx_overruns),
	};
}

static void serial_device_destroy(void *dev)
{
	serial__destroy(dev);
}

/*
 * As at power-on: registers, receive FIFO, line low. Output the drainer has
 * not written yet is kept (the guest wrote it before the reset).
 */
static void serial_device_reset(void *dev)
{
	struct serial *s = dev;

	pthread_mutex_lock(&s->lock);
	serial_reset(s);
	serial_update_irq(s);
	serial_signal_room(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_device_report(void *dev, FILE *out)
{
	struct serial_stats st;

	serial__get_stats(dev, &st);
	fprintf(out, "tx %llu bytes (dropped %llu, reader too slow %llu), rx %llu bytes (overruns %llu)",
		(unsigned long long)st.tx_bytes, (unsigned long long)st.tx_dropped,
		(unsigned long long)st.tx_overflow,
		(unsigned long long)st.rx_bytes, (unsigned long long)st.rx_overruns);
}

static void serial_device_counters(void *dev, const struct counter_sink *sink)
{
	struct serial_stats st;

	serial__get_stats(dev, &st);
	sink->num(sink->opaque, "tx_bytes", st.tx_bytes);
	sink->num(sink->opaque, "tx_buffered", __atomic_load_n(&((struct serial *)dev)->tx_count, __ATOMIC_RELAXED));
	sink->num(sink->opaque, "tx_dropped", st.tx_dropped);
	sink->num(sink->opaque, "tx_overflow", st.tx_overflow);
	sink->num(sink->opaque, "rx_bytes", st.rx_bytes);
	sink->num(sink->opaque, "rx_overruns", st.rx_overruns);
}

/* A PC serial port (PNP0501) at its ports and ISA IRQ, named COMn after its base as on PCs. */
static bool serial_device_acpi(void *dev, struct device_acpi *out)
{
	static const uint16_t pc_bases[] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
	const struct serial *s = dev;
	unsigned i;

	for (i = 0; i < sizeof(pc_bases) / sizeof(pc_bases[0]) && pc_bases[i] != s->base; i++)
		;
	if (!s->has_irq || i == sizeof(pc_bases) / sizeof(pc_bases[0]))
		return false;
	*out = (struct device_acpi){ .hid = "PNP0501", .nr_io = 1,
				     .io = { { s->base, SERIAL_NR_PORTS } }, .irq = (uint8_t)s->irq.gsi };
	snprintf(out->name, sizeof(out->name), "COM%u", i + 1);
	return true;
}

#define SERIAL_STATE_VERSION 1

/*
 * Version 1: IER, FCR, LCR, MCR, LSR, MSR, SCR, DLL, DLM, the THRE interrupt
 * pending (0/1), the last byte read from RBR (what an empty receiver
 * rereads), then the receive FIFO's count (u16) and bytes, oldest first.
 * The line level follows from these; the output buffer is the console's.
 */
static int serial_device_save(void *dev, struct state_out *out)
{
	struct serial *s = dev;
	unsigned i;

	pthread_mutex_lock(&s->lock);
	state_out__u32(out, SERIAL_STATE_VERSION);
	state_out__u8(out, s->ier);
	state_out__u8(out, s->fcr);
	state_out__u8(out, s->lcr);
	state_out__u8(out, s->mcr);
	state_out__u8(out, s->lsr);
	state_out__u8(out, s->msr);
	state_out__u8(out, s->scr);
	state_out__u8(out, s->dll);
	state_out__u8(out, s->dlm);
	state_out__u8(out, s->thr_ipending);
	state_out__u8(out, s->rbr_last);
	state_out__u16(out, (uint16_t)s->rx_count);
	for (i = 0; i < s->rx_count; i++)
		state_out__u8(out, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
	return out->err;
}

/* A version 1 state, read whole before any of it is checked. */
struct serial_saved {
	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm, thr_ipending, rbr_last;
	unsigned rx_count;
	uint8_t rx[SERIAL_RX_FIFO];
};

/* 0, or -EINVAL with the first register the UART could not hold in `why`. */
static int serial_check_saved(const struct serial_saved *v, char *why, size_t why_len)
{
	uint8_t fcr_bits = UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK;
	unsigned cap = v->fcr & UART_FCR_ENABLE_FIFO ? SERIAL_RX_FIFO : 1;

	if (v->ier & ~SERIAL_IER_MASK)
		snprintf(why, why_len, "IER 0x%02x: reserved bits set", v->ier);
	else if (v->fcr & ~fcr_bits || (v->fcr && !(v->fcr & UART_FCR_ENABLE_FIFO)))
		snprintf(why, why_len, "FCR 0x%02x: not a FIFO control the UART keeps", v->fcr);
	else if (v->mcr & ~SERIAL_MCR_MASK)
		snprintf(why, why_len, "MCR 0x%02x: reserved bits set", v->mcr);
	else if ((v->lsr & ~UART_LSR_BRK_ERROR_BITS) != (UART_LSR_THRE | UART_LSR_TEMT))
		snprintf(why, why_len, "LSR 0x%02x: not THRE|TEMT with error bits", v->lsr);
	else if ((v->msr & 0xf0) != serial_msr_lines(v->mcr))
		snprintf(why, why_len, "MSR 0x%02x: lines disagree with MCR 0x%02x", v->msr, v->mcr);
	else if (v->thr_ipending > 1)
		snprintf(why, why_len, "THRE pending %u: not 0 or 1", v->thr_ipending);
	else if (v->rx_count > cap)
		snprintf(why, why_len, "receive FIFO count %u: more than its %u bytes", v->rx_count, cap);
	else
		return 0;
	return -EINVAL;
}

/* Takes a version 1 state (see serial_device_save) and drives the line to match it. */
static int serial_device_load(void *dev, struct state_in *in, char *why, size_t why_len)
{
	struct serial *s = dev;
	struct serial_saved v;
	uint32_t version;
	int err;

	version = state_in__u32(in);
	if (in->err) {
		snprintf(why, why_len, "state truncated: %zu bytes", in->len);
		return -EINVAL;
	}
	if (version != SERIAL_STATE_VERSION) {
		snprintf(why, why_len, "state version %u, expected %u", version, SERIAL_STATE_VERSION);
		return -EINVAL;
	}
	v.ier = state_in__u8(in);
	v.fcr = state_in__u8(in);
	v.lcr = state_in__u8(in);
	v.mcr = state_in__u8(in);
	v.lsr = state_in__u8(in);
	v.msr = state_in__u8(in);
	v.scr = state_in__u8(in);
	v.dll = state_in__u8(in);
	v.dlm = state_in__u8(in);
	v.thr_ipending = state_in__u8(in);
	v.rbr_last = state_in__u8(in);
	v.rx_count = state_in__u16(in);
	if (v.rx_count > SERIAL_RX_FIFO) {
		snprintf(why, why_len, "receive FIFO count %u: more than its %u bytes", v.rx_count,
			 SERIAL_RX_FIFO);
		return -EINVAL;
	}
	state_in__bytes(in, v.rx, v.rx_count);
	if (state_in__end(in)) {
		snprintf(why, why_len, "state %s: %zu bytes", in->err ? "truncated" : "too long", in->len);
		return -EINVAL;
	}
	err = serial_check_saved(&v, why, why_len);
	if (err)
		return err;

	pthread_mutex_lock(&s->lock);
	s->ier = v.ier;
	s->fcr = v.fcr;
	s->lcr = v.lcr;
	s->mcr = v.mcr;
	s->lsr = v.lsr;
	s->msr = v.msr;
	s->scr = v.scr;
	s->dll = v.dll;
	s->dlm = v.dlm;
	s->thr_ipending = v.thr_ipending;
	s->rbr_last = v.rbr_last;
	memcpy(s->rx, v.rx, v.rx_count);
	s->rx_head = 0;
	s->rx_count = v.rx_count;
	s->irq_level = -1; /* whatever the line was at, drive it */
	serial_update_irq(s);
	serial_signal_room(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

const struct device_ops serial__device_ops = {
	.reset = serial_device_reset,
	.destroy = serial_device_destroy,
	.report = serial_device_report,
	.counters = serial_device_counters,
	.acpi = serial_device_acpi,
	.save = serial_device_save,
	.load = serial_device_load,
};
