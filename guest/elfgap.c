/*
 * elfgap: keep QEMU from loading the zero padding between a kernel's
 * text and its read-only data.
 *
 *   elfgap VMLINUX
 *
 * x86-64 links .rodata at the next 2 MiB boundary after .text, and
 * both lie in one PT_LOAD segment, so QEMU copies up to 2 MiB of zeros
 * into guest RAM at every boot and keeps them mapped from the file for
 * the VM's life (docs/guest.md, "Measured").  The kernel frees that gap
 * after boot without reading it (and, with x86-no-init-poison.patch,
 * without writing it).  elfgap splits the segment in place around the
 * gap: the first part ends with .text (rounded up to a page), the
 * second starts at .rodata.  The gap must hold only zeros.  A file
 * without such a gap, or one already split, is left as it is.
 *
 * Exit status: 0 split or nothing to do; 1 a file elfgap will not
 * touch (not x86-64 ELF, no room for one more program header, bytes
 * in the gap); 100 usage; 111 a system call failed.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_PH 32

static const char *path;

static void die(int code, const char *what)
{
	fprintf(stderr, "elfgap: %s: %s%s%s\n", path, what,
		code == 111 ? ": " : "", code == 111 ? strerror(errno) : "");
	exit(code);
}

static void get(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n < 0)
		die(111, "read");
	if ((size_t)n != len)
		die(1, "truncated");
}

/* The section called name: its address and size. */
static int find_section(int fd, const Elf64_Ehdr *eh, const char *name,
			Elf64_Shdr *out)
{
	Elf64_Shdr str, sh;
	char buf[32];

	if (eh->e_shstrndx == SHN_UNDEF || eh->e_shstrndx >= eh->e_shnum)
		return -1;
	get(fd, &str, sizeof(str), eh->e_shoff +
	    (off_t)eh->e_shstrndx * sizeof(str));
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		get(fd, &sh, sizeof(sh), eh->e_shoff + (off_t)i * sizeof(sh));
		if (sh.sh_name >= str.sh_size)
			continue;
		memset(buf, 0, sizeof(buf));
		if (pread(fd, buf, sizeof(buf) - 1,
			  str.sh_offset + sh.sh_name) < 0)
			die(111, "read");
		if (strcmp(buf, name) == 0) {
			*out = sh;
			return 0;
		}
	}
	return -1;
}

static int all_zero(int fd, off_t off, size_t len)
{
	static unsigned char buf[65536];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		get(fd, buf, n, off);
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return 0;
		off += n;
		len -= n;
	}
	return 1;
}

int main(int argc, char **argv)
{
	Elf64_Phdr ph[MAX_PH + 1], out[MAX_PH + 1];
	Elf64_Shdr text, ro;
	Elf64_Ehdr eh;
	uint64_t gap_lo, gap_hi, lowest = UINT64_MAX;
	int fd, seg = -1, n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: elfgap VMLINUX\n");
		return 100;
	}
	path = argv[1];
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die(111, "open");
	get(fd, &eh, sizeof(eh), 0);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_phnum > MAX_PH)
		die(1, "not an x86-64 ELF file elfgap knows");
	get(fd, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff);
	if (find_section(fd, &eh, ".text", &text) < 0 ||
	    find_section(fd, &eh, ".rodata", &ro) < 0)
		return 0;
	gap_lo = (text.sh_addr + text.sh_size + PAGE - 1) & ~(PAGE - 1);
	gap_hi = ro.sh_addr & ~(PAGE - 1);
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_filesz && ph[i].p_offset < lowest)
			lowest = ph[i].p_offset;
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr <= text.sh_addr &&
		    gap_hi < ph[i].p_vaddr + ph[i].p_filesz &&
		    ph[i].p_filesz == ph[i].p_memsz)
			seg = i;
	}
	/* Already split, or nothing worth a page between them. */
	if (seg < 0 || gap_hi <= gap_lo)
		return 0;
	if (eh.e_phoff + (eh.e_phnum + 1) * sizeof(Elf64_Phdr) > lowest ||
	    (eh.e_shoff && eh.e_phoff + (eh.e_phnum + 1) *
	     sizeof(Elf64_Phdr) > eh.e_shoff))
		die(1, "no room for another program header");
	if (!all_zero(fd, ph[seg].p_offset + (gap_lo - ph[seg].p_vaddr),
		      gap_hi - gap_lo))
		die(1, "the gap between .text and .rodata is not all zeros");
	for (int i = 0; i < eh.e_phnum; i++) {
		uint64_t skip = gap_hi - ph[i].p_vaddr;

		out[n++] = ph[i];
		if (i != seg)
			continue;
		out[n - 1].p_filesz = out[n - 1].p_memsz =
			gap_lo - ph[i].p_vaddr;
		out[n] = ph[i];
		out[n].p_offset += skip;
		out[n].p_vaddr += skip;
		out[n].p_paddr += skip;
		out[n].p_filesz -= skip;
		out[n].p_memsz -= skip;
		n++;
	}
	eh.e_phnum = (Elf64_Half)n;
	if (pwrite(fd, out, n * sizeof(out[0]), eh.e_phoff) !=
	    (ssize_t)(n * sizeof(out[0])) ||
	    pwrite(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		die(111, "write");
	if (close(fd) < 0)
		die(111, "close");
	printf("elfgap: %s: %lu kB of zeros between .text and .rodata no "
	       "longer loaded\n", path, (unsigned long)(gap_hi - gap_lo) / 1024);
	return 0;
}
