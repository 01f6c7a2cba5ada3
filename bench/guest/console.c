/*
 * Console on the test device's putc port (COM1 without a test device), a
 * small printf, and the exit port.
 */
#include "rt.h"

#define COM1_LSR      5      /* line status register */
#define COM1_LSR_THRE 0x20   /* transmit holding register empty */

static struct spinlock con_lock;
bool console_on_com1;

void console__init(void)
{
	/* An absent device reads all-ones (rtvmm and QEMU alike). */
	console_on_com1 = inl(PORT_TESTDEV + TESTDEV_PIO_MAGIC) != TESTDEV_MAGIC;
}

void console__putc(char c)
{
	if (!console_on_com1) {
		outb(PORT_TESTDEV + TESTDEV_PIO_PUTC, (uint8_t)c);
		return;
	}
	/* A bounded wait: a missing UART (all-ones LSR) or a stuck one must not hang the guest. */
	for (unsigned i = 0; i < 100000 && !(inb(PORT_COM1 + COM1_LSR) & COM1_LSR_THRE); i++)
		barrier();
	outb(PORT_COM1, (uint8_t)c);
}

void console__write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		console__putc(s[i]);
}

/* Output cursor that never overruns its buffer and counts what would have been written. */
struct out {
	char *buf;
	size_t size, len;
};

static void out_c(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void out_num(struct out *o, uint64_t v, unsigned base, bool neg, int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		unsigned d = (unsigned)(v % base);
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (int w = n; w < width; w++)
		out_c(o, pad);
	while (n)
		out_c(o, tmp[--n]);
}

/* %[0][width][l|ll|z]{d,u,x,s,c,p,%}: enough for logs. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			out_c(&o, *fmt);
			continue;
		}
		char pad = ' ';
		int width = 0, lng = 0;
		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng++, fmt++;
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			out_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			out_num(&o, v, *fmt == 'x' ? 16 : 10, false, width, pad);
			break;
		}
		case 'p':
			out_c(&o, '0');
			out_c(&o, 'x');
			out_num(&o, (uintptr_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			size_t n = strlen(s);
			for (size_t w = n; w < (size_t)width; w++)
				out_c(&o, ' ');
			while (*s)
				out_c(&o, *s++);
			break;
		}
		case 'c':
			out_c(&o, (char)va_arg(ap, int));
			break;
		case '%':
			out_c(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			out_c(&o, '%');
			out_c(&o, *fmt);
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static void console_vlog(const char *fmt, va_list ap)
{
	static const char prefix[] = "rtvmm-guest: ";
	char line[256];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	spin_lock(&con_lock);
	console__write(prefix, sizeof(prefix) - 1);
	console__write(line, (size_t)n);
	console__putc('\n');
	spin_unlock(&con_lock);
}

void console__log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	console_vlog(fmt, ap);
	va_end(ap);
}

void rt__exit(uint32_t status)
{
	if (console_on_com1) {
		/* No test device (QEMU): say it, then isa-debug-exit (QEMU exits 2 * status + 1) if present. */
		console__log("exit status %u", status);
		outb(PORT_DEBUG_EXIT, (uint8_t)status);
	}
	for (;;) {
		outl(PORT_TESTDEV + TESTDEV_PIO_EXIT, status);
		/* Not reached with an rtvmm monitor; elsewhere, stop here. */
		cli();
		__asm__ volatile("hlt");
	}
}

void rt__fail(uint32_t status, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	console__log("FAIL %s", what);
	rt__exit(status);
}

/* ---- string helpers ---- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (uint8_t)*a - (uint8_t)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

/* Decimal, or hex with 0x. */
uint64_t strtou64(const char *s, const char **end)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2;
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			break;
		v = v * base + d;
	}
	if (end)
		*end = s;
	return v;
}
