/*
 * Fuzz target: the legacy devices (vmm/hw: the 16550A UART, the i8042, the ACPI PM1 block and
 * reset register, the test device) on the port and MMIO buses, as a hostile guest drives them:
 * accesses of any width at and around their ports, interleaved with host input to the UART.
 *
 * Input: a list of operations, one byte each (bits 0-2: which, bit 7: write), then its
 * arguments (see run_op).
 * Beyond the sanitizers: the UART never takes more input than it says it has room for, and
 * interrupt lines are only ever driven to 0 or 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "hw_fakes.h"
#include "vmm/bus.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/hw/i8042.h"
#include "vmm/hw/serial.h"
#include "vmm/hw/testdev.h"
#include "vmm/x86/layout.h"

#include "fuzz.h"

static int null_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	FUZZ_CHECK(null_fd >= 0, "cannot open /dev/null");
	return 0;
}

struct rig {
	struct bus pio, mmio;
	struct fake_irq com1_irq, kbd_irq, aux_irq, sci_irq;
	struct fake_ctl ctl;
	struct serial *uart;
	struct i8042 *kbd;
	struct acpi_pm *pm;
	struct testdev *test;
};

/* Where the devices live; an access lands at one of these plus a small offset. */
static const uint16_t bases[] = {
	PORT_COM1, PORT_I8042_DATA, PORT_I8042_CMD, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_CNT,
	PORT_ACPI_RESET, PORT_TESTDEV, PORT_TESTDEV + TESTDEV_PIO_PUTC,
};

static const uint32_t widths[] = { 1, 2, 4, 8 };

static void check_irq(const struct fake_irq *f, const char *line)
{
	unsigned i, n = f->calls < FAKE_IRQ_HISTORY ? f->calls : FAKE_IRQ_HISTORY;

	for (i = 0; i < n; i++)
		FUZZ_CHECK(f->history[i] == 0 || f->history[i] == 1, "%s driven to %d", line,
			   f->history[i]);
}

static void run_op(struct rig *r, struct fuzz_in *in)
{
	uint8_t op = fuzz_in__u8(in);
	uint64_t v;

	switch (op & 7) {
	case 0:   /* port access near a device: any width, read or write */
	case 1: {
		uint8_t base = fuzz_in__u8(in), off = fuzz_in__u8(in), w = fuzz_in__u8(in);

		v = fuzz_in__u32(in);
		bus__access(&r->pio, bases[base % (sizeof(bases) / sizeof(bases[0]))] + off % 16, &v,
			    widths[w % 3], op & 0x80);
		break;
	}
	case 2: { /* the test device's MMIO window, and just past it */
		uint16_t off = fuzz_in__u16(in);
		uint8_t w = fuzz_in__u8(in);

		v = fuzz_in__u64(in);
		bus__access(&r->mmio, LAYOUT_TESTDEV_MMIO + off % (LAYOUT_TESTDEV_MMIO_SIZE + 16), &v,
			    widths[w % 4], op & 0x80);
		break;
	}
	case 3: { /* host input to the UART, as the console thread gives it */
		size_t room = serial__rx_room(r->uart), n, took;
		const uint8_t *bytes = fuzz_in__bytes(in, fuzz_in__u8(in), &n);

		took = serial__receive(r->uart, bytes, n);
		FUZZ_CHECK(took <= n && took <= room, "took %zu of %zu bytes with room for %zu",
			   took, n, room);
		break;
	}
	default: { /* the console drains the room event */
		uint64_t c;

		if (read(serial__rx_room_fd(r->uart), &c, sizeof(c)) < 0)
			FUZZ_CHECK(errno == EAGAIN, "room fd: %s", strerror(errno));
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct irq_sink com1, kbd, aux, sci;
	struct vm_ctl ctl;
	struct rig r;
	int out_fd;

	memset(&r, 0, sizeof(r));
	out_fd = size && (data[0] & 1) ? -1 : null_fd;
	bus__init(&r.pio, "pio");
	bus__init(&r.mmio, "mmio");
	com1 = fake_irq_sink(&r.com1_irq, PORT_COM1_IRQ);
	kbd = fake_irq_sink(&r.kbd_irq, I8042_KBD_IRQ);
	aux = fake_irq_sink(&r.aux_irq, I8042_AUX_IRQ);
	sci = fake_irq_sink(&r.sci_irq, ACPI_SCI_IRQ);
	ctl = fake_vm_ctl(&r.ctl);
	FUZZ_CHECK(!serial__add(&r.pio, PORT_COM1, &com1, out_fd, &r.uart), "serial__add");
	FUZZ_CHECK(!i8042__add(&r.pio, &ctl, &r.kbd), "i8042__add");
	i8042__set_irqs(r.kbd, &kbd, &aux);
	FUZZ_CHECK(!acpi_pm__add(&r.pio, &ctl, &sci, &r.pm), "acpi_pm__add");
	FUZZ_CHECK(!testdev__add(&r.pio, &r.mmio, &ctl, r.uart, &r.test), "testdev__add");

	while (in.n)
		run_op(&r, &in);

	check_irq(&r.com1_irq, "IRQ4");
	check_irq(&r.kbd_irq, "IRQ1");
	check_irq(&r.aux_irq, "IRQ12");
	check_irq(&r.sci_irq, "SCI");
	testdev__destroy(r.test);
	acpi_pm__destroy(r.pm);
	i8042__destroy(r.kbd);
	serial__destroy(r.uart);
	pthread_mutex_destroy(&r.ctl.lock);
	bus__exit(&r.pio);
	bus__exit(&r.mmio);
	return 0;
}
