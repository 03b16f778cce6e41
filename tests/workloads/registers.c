/*
 * registers: CPU state must survive the freeze exactly.
 *
 * On x86-64 the wait is a spin loop written in assembly: before it every
 * general purpose register (rsp aside), the 16 vector registers (ymm when
 * the CPU and OS have AVX, else xmm), the eight x87 registers, MXCSR and
 * the x87 control word are loaded with known non-default values; after
 * SIGTERM they are stored and compared. The dump therefore catches the
 * process in user mode, between two instructions of that loop.
 *
 * Everywhere: __thread variables keep their values and addresses, and the
 * thread pointer (and on x86-64 the FS/GS bases) is the same as before.
 */
#include "wl.h"

#ifdef __x86_64__
#include <asm/prctl.h>
#include <cpuid.h>
#include <sys/syscall.h>
#endif

static __thread uint64_t tls_word = 0x1122334455667788ULL;
static __thread char tls_buf[200];

#ifdef __x86_64__
/* Order of gpr_in/gpr_out. */
static const char *const gpr_names[] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};
#define NGPR 15

uint64_t gpr_in[NGPR], gpr_out[NGPR];
unsigned char vec_in[16 * 32], vec_out[16 * 32];
double x87_in[8], x87_out[8];
uint64_t rbp_save, rsp_before, rsp_after;
uint32_t mxcsr_in = 0x1f80 | 0x8000 | 0x0040 | 0x2000;	/* FTZ, DAZ, round down */
uint32_t mxcsr_out, mxcsr_default = 0x1f80;
uint16_t fcw_in = 0x037f | 0x0c00;	/* round toward zero */
uint16_t fcw_out, fcw_default = 0x037f;
int use_avx;

static int have_avx(void)
{
	unsigned int a, b, c, d, lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;	/* OS saves SSE and AVX state */
}

#define LD(i) "movq " #i "*8+%[gin], %%" 
#define VLD(i) "vmovdqu " #i "*32+%[vin], %%ymm" #i "\n\t"
#define VST(i) "vmovdqu %%ymm" #i ", " #i "*32+%[vout]\n\t"
#define XLD(i) "movdqu " #i "*32+%[vin], %%xmm" #i "\n\t"
#define XST(i) "movdqu %%xmm" #i ", " #i "*32+%[vout]\n\t"
#define ALL16(m) m(0) m(1) m(2) m(3) m(4) m(5) m(6) m(7) \
		 m(8) m(9) m(10) m(11) m(12) m(13) m(14) m(15)

static void spin_with_known_registers(void)
{
	__asm__ volatile(
		"movq %%rbp, %[rbp_save]\n\t"
		"movq %%rsp, %[rsp_before]\n\t"
		"ldmxcsr %[mxcsr_in]\n\t"
		"fldcw %[fcw_in]\n\t"
		"fldl 0*8+%[x87in]\n\t" "fldl 1*8+%[x87in]\n\t"
		"fldl 2*8+%[x87in]\n\t" "fldl 3*8+%[x87in]\n\t"
		"fldl 4*8+%[x87in]\n\t" "fldl 5*8+%[x87in]\n\t"
		"fldl 6*8+%[x87in]\n\t" "fldl 7*8+%[x87in]\n\t"
		"cmpl $0, %[avx]\n\t"
		"je 2f\n\t"
		ALL16(VLD)
		"jmp 3f\n"
		"2:\n\t"
		ALL16(XLD)
		"3:\n\t"
		LD(0) "rax\n\t" LD(1) "rbx\n\t" LD(2) "rcx\n\t" LD(3) "rdx\n\t"
		LD(4) "rsi\n\t" LD(5) "rdi\n\t" LD(6) "rbp\n\t"
		LD(7) "r8\n\t" LD(8) "r9\n\t" LD(9) "r10\n\t" LD(10) "r11\n\t"
		LD(11) "r12\n\t" LD(12) "r13\n\t" LD(13) "r14\n\t"
		LD(14) "r15\n"
		"1:\n\t"
		"pause\n\t"
		"cmpl $0, %[term]\n\t"
		"je 1b\n\t"
		"movq %%rax, 0*8+%[gout]\n\t" "movq %%rbx, 1*8+%[gout]\n\t"
		"movq %%rcx, 2*8+%[gout]\n\t" "movq %%rdx, 3*8+%[gout]\n\t"
		"movq %%rsi, 4*8+%[gout]\n\t" "movq %%rdi, 5*8+%[gout]\n\t"
		"movq %%rbp, 6*8+%[gout]\n\t" "movq %%r8, 7*8+%[gout]\n\t"
		"movq %%r9, 8*8+%[gout]\n\t" "movq %%r10, 9*8+%[gout]\n\t"
		"movq %%r11, 10*8+%[gout]\n\t" "movq %%r12, 11*8+%[gout]\n\t"
		"movq %%r13, 12*8+%[gout]\n\t" "movq %%r14, 13*8+%[gout]\n\t"
		"movq %%r15, 14*8+%[gout]\n\t"
		"movq %[rbp_save], %%rbp\n\t"
		"movq %%rsp, %[rsp_after]\n\t"
		"cmpl $0, %[avx]\n\t"
		"je 4f\n\t"
		ALL16(VST)
		"vzeroupper\n\t"
		"jmp 5f\n"
		"4:\n\t"
		ALL16(XST)
		"5:\n\t"
		"fstpl 7*8+%[x87out]\n\t" "fstpl 6*8+%[x87out]\n\t"
		"fstpl 5*8+%[x87out]\n\t" "fstpl 4*8+%[x87out]\n\t"
		"fstpl 3*8+%[x87out]\n\t" "fstpl 2*8+%[x87out]\n\t"
		"fstpl 1*8+%[x87out]\n\t" "fstpl 0*8+%[x87out]\n\t"
		"stmxcsr %[mxcsr_out]\n\t"
		"fnstcw %[fcw_out]\n\t"
		"ldmxcsr %[mxcsr_default]\n\t"
		"fldcw %[fcw_default]\n\t"
		: [gout] "=m"(gpr_out), [vout] "=m"(vec_out),
		  [x87out] "=m"(x87_out), [rbp_save] "=m"(rbp_save),
		  [rsp_before] "=m"(rsp_before), [rsp_after] "=m"(rsp_after),
		  [mxcsr_out] "=m"(mxcsr_out), [fcw_out] "=m"(fcw_out)
		: [gin] "m"(gpr_in), [vin] "m"(vec_in), [x87in] "m"(x87_in),
		  [term] "m"(wl_term), [avx] "m"(use_avx),
		  [mxcsr_in] "m"(mxcsr_in), [fcw_in] "m"(fcw_in),
		  [mxcsr_default] "m"(mxcsr_default),
		  [fcw_default] "m"(fcw_default)
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
		  "r11", "r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2",
		  "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
		  "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "memory", "cc");
}

static void check_x86_registers(void)
{
	size_t vlen = use_avx ? 32 : 16;
	int i;

	for (i = 0; i < NGPR; i++)
		wl_check(gpr_out[i] == gpr_in[i], "%s is %#llx, was %#llx",
			 gpr_names[i], (unsigned long long)gpr_out[i],
			 (unsigned long long)gpr_in[i]);
	wl_check(rsp_after == rsp_before, "rsp is %#llx, was %#llx",
		 (unsigned long long)rsp_after, (unsigned long long)rsp_before);
	for (i = 0; i < 16; i++)
		wl_check(!memcmp(vec_out + 32 * i, vec_in + 32 * i, vlen),
			 "%s%d changed", use_avx ? "ymm" : "xmm", i);
	for (i = 0; i < 8; i++)
		wl_check(x87_out[i] == x87_in[i], "x87 register %d is %g, was %g",
			 i, x87_out[i], x87_in[i]);
	wl_check(mxcsr_out == mxcsr_in, "MXCSR is %#x, was %#x",
		 mxcsr_out, mxcsr_in);
	wl_check(fcw_out == fcw_in, "x87 control word is %#x, was %#x",
		 fcw_out, fcw_in);
}
#endif /* __x86_64__ */

int main(void)
{
	void *tp_before = __builtin_thread_pointer(), *tp_after;
	uint64_t *tls_addr = &tls_word;
	uint64_t tls_sum;
#ifdef __x86_64__
	unsigned long fs_before = 0, gs_before = 0, fs_after = 0, gs_after = 0;
	int i;
#endif

	wl_setup(0);
	tls_word ^= 0xa5a5a5a5a5a5a5a5ULL;
	wl_fill(tls_buf, sizeof(tls_buf), 5);
	tls_sum = wl_cksum(tls_buf, sizeof(tls_buf));

#ifdef __x86_64__
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_before);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_before);
	use_avx = have_avx();
	for (i = 0; i < NGPR; i++)
		gpr_in[i] = 0x0101010101010101ULL * (i + 1) ^ 0x8000000000000000ULL;
	wl_fill(vec_in, sizeof(vec_in), 99);
	for (i = 0; i < 8; i++)
		x87_in[i] = 1.0 / (i + 3) + i * 1000.25;
	wl_say("vector registers: %s", use_avx ? "ymm (AVX)" : "xmm");
	wl_ready();
	wl_term_unblock(1);
	spin_with_known_registers();
	wl_term_unblock(0);
	check_x86_registers();
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_after);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &gs_after);
	wl_check(fs_after == fs_before, "FS base is %#lx, was %#lx",
		 fs_after, fs_before);
	wl_check(gs_after == gs_before, "GS base is %#lx, was %#lx",
		 gs_after, gs_before);
#else
	wl_ready();
	wl_wait();
#endif

	tp_after = __builtin_thread_pointer();
	wl_check(tp_after == tp_before, "thread pointer is %p, was %p",
		 tp_after, tp_before);
	wl_check(&tls_word == tls_addr, "__thread variable moved");
	wl_check(tls_word == (0x1122334455667788ULL ^ 0xa5a5a5a5a5a5a5a5ULL),
		 "__thread variable changed");
	wl_check(wl_cksum(tls_buf, sizeof(tls_buf)) == tls_sum,
		 "__thread buffer changed");
	return wl_finish();
}
