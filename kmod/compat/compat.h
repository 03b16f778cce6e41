/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every kernel-version difference crak.ko knows about.
 *
 * Force-included into every source file (Kbuild: -include). The sources
 * call the crak_compat_* helpers below and never test the kernel version
 * themselves.
 *
 * Supported range: 6.1 <= version < 6.2. Verified against Debian bookworm's
 * 6.1.0-56 (6.1.192) amd64 headers, and cross-built for arm64 and
 * mips64el (5kc-malta). Reasons for the upper bound, for whoever widens it:
 * kernel_cap_t became a u64 in 6.3; get_user_pages_remote() lost its vmas
 * argument in 6.5; pte_offset_map_lock() may fail from 6.5 on;
 * close_on_exec() takes a files_struct from 6.6; task->rseq_len (the
 * rseq size to report) exists from 6.3; task_work placement in
 * get_signal() must be re-checked (see the uAPI header).
 */
#ifndef _CRAK_COMPAT_H
#define _CRAK_COMPAT_H

#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "crak: Linux older than 6.1 is not supported"
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#error "crak: Linux 6.2 and newer are not verified yet (see compat/compat.h)"
#endif

#include <linux/capability.h>
#include <linux/fdtable.h>
#include <linux/mm.h>

/* kernel_cap_t is two __u32 words up to 6.2. */
static inline u64 crak_compat_cap(kernel_cap_t cap)
{
	return (u64)cap.cap[0] | ((u64)cap.cap[1] << 32);
}

static inline long crak_compat_gup_remote(struct mm_struct *mm,
					  unsigned long start,
					  unsigned long nr_pages,
					  unsigned int gup_flags,
					  struct page **pages)
{
	return get_user_pages_remote(mm, start, nr_pages, gup_flags, pages,
				     NULL, NULL);
}

/* Maps and locks the PTE table under a pmd known to point to one. */
static inline pte_t *crak_compat_pte_map_lock(struct mm_struct *mm,
					      pmd_t *pmd, unsigned long addr,
					      spinlock_t **ptl)
{
	return pte_offset_map_lock(mm, pmd, addr, ptl);
}

/* Caller holds files->file_lock or rcu_read_lock(). */
static inline bool crak_compat_close_on_exec(struct files_struct *files,
					     unsigned int fd)
{
	return close_on_exec(fd, files_fdtable(files));
}

/*
 * The rseq area size PTRACE_GET_RSEQ_CONFIGURATION reports: the fixed
 * struct rseq up to 6.2 (task->rseq_len appears in 6.3).
 */
#ifdef CONFIG_RSEQ
#include <linux/rseq.h>
#define crak_compat_rseq_len(t)	((u32)sizeof(*(t)->rseq))
#endif

#endif /* _CRAK_COMPAT_H */
