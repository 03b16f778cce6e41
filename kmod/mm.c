// SPDX-License-Identifier: GPL-2.0
/*
 * mm.c - VMAs and the page dump.
 *
 * The page dump walks the target's page tables itself (walk_page_range()
 * and vm_normal_page() are not exported) under mmap_read_lock, in batches:
 * select up to CRAK_DUMP_BATCH pages, pin them with get_user_pages_remote(),
 * drop the target's mmap lock, write each page from a kmap straight into the
 * caller's file, unpin. One copy, no user-space buffer.
 *
 * Selection, equal to what /proc/PID/pagemap tells the ptrace source:
 * a page is dumped iff its PTE is present and it has no normal page (zero
 * page, special PTE) or an anonymous one, or the PTE is a swap entry (swap,
 * migration). Transparent huge pages are judged as a whole by their head
 * page. VM_SHARED/VM_MAYSHARE, VM_IO/VM_PFNMAP, hugetlb and special
 * mappings without a file ([vdso], [vvar], ...) are skipped.
 */
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/hugetlb_inline.h>
#include <linux/kdev_t.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include "internal.h"

#define CRAK_DUMP_BATCH		64
/* PMD-sized steps a batch may scan before it lets go of the mmap lock. */
#define CRAK_SCAN_BUDGET	512

static const struct {
	unsigned long vm;
	u64 crak;
} crak_vm_flags[] = {
	{ VM_READ, CRAK_VMA_READ },
	{ VM_WRITE, CRAK_VMA_WRITE },
	{ VM_EXEC, CRAK_VMA_EXEC },
	{ VM_SHARED, CRAK_VMA_SHARED },
	{ VM_MAYREAD, CRAK_VMA_MAYREAD },
	{ VM_MAYWRITE, CRAK_VMA_MAYWRITE },
	{ VM_MAYEXEC, CRAK_VMA_MAYEXEC },
	{ VM_MAYSHARE, CRAK_VMA_MAYSHARE },
	{ VM_GROWSDOWN, CRAK_VMA_GROWSDOWN },
	{ VM_GROWSUP, CRAK_VMA_GROWSUP },
	{ VM_PFNMAP, CRAK_VMA_PFNMAP },
	{ VM_IO, CRAK_VMA_IO },
	{ VM_LOCKED, CRAK_VMA_LOCKED },
	{ VM_DONTCOPY, CRAK_VMA_DONTCOPY },
	{ VM_DONTEXPAND, CRAK_VMA_DONTEXPAND },
	{ VM_DONTDUMP, CRAK_VMA_DONTDUMP },
	{ VM_WIPEONFORK, CRAK_VMA_WIPEONFORK },
	{ VM_HUGEPAGE, CRAK_VMA_HUGEPAGE },
	{ VM_NOHUGEPAGE, CRAK_VMA_NOHUGEPAGE },
	{ VM_MERGEABLE, CRAK_VMA_MERGEABLE },
	{ VM_HUGETLB, CRAK_VMA_HUGETLB },
	{ VM_NORESERVE, CRAK_VMA_NORESERVE },
};

static u64 crak_vma_prot_flags(struct vm_area_struct *vma)
{
	u64 out = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(crak_vm_flags); i++)
		if (crak_vm_flags[i].vm && (vma->vm_flags & crak_vm_flags[i].vm))
			out |= crak_vm_flags[i].crak;
	if (vma_is_anonymous(vma))
		out |= CRAK_VMA_ANON;
	return out;
}

static bool crak_vma_is_special(struct vm_area_struct *vma)
{
	return !vma->vm_file && vma->vm_ops && vma->vm_ops->name;
}

long crak_ioc_get_vma(struct crak_session *s, void __user *arg)
{
	struct vm_area_struct *vma;
	struct file *file = NULL;
	struct mm_struct *mm;
	const char *name = "";
	struct crak_vma v;
	char *buf;
	long ret;

	if (copy_from_user(&v, arg, sizeof(v)))
		return -EFAULT;
	if (v.flags & ~CRAK_VMA_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(v.reserved, ARRAY_SIZE(v.reserved)))
		return -EINVAL;
	if (v.name_cap > CRAK_MAX_NAME)
		return -E2BIG;
	buf = kmalloc(CRAK_MAX_NAME, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	buf[0] = '\0';
	mm = crak_session_mm(s);
	if (!mm) {
		ret = -ESRCH;
		goto out_buf;
	}
	if (mmap_read_lock_killable(mm)) {
		ret = -EINTR;
		goto out_mm;
	}
	vma = find_vma(mm, v.addr);
	if (!vma) {
		mmap_read_unlock(mm);
		ret = -ENOENT;
		goto out_mm;
	}
	v.start = vma->vm_start;
	v.end = vma->vm_end;
	v.prot_flags = crak_vma_prot_flags(vma);
	v.offset = 0;
	v.ino = 0;
	v.dev_major = 0;
	v.dev_minor = 0;
	v.mode = 0;
	v.f_flags = 0;
	if (vma->vm_file) {
		file = get_file(vma->vm_file);
		v.kind = CRAK_VMA_KIND_FILE;
		v.offset = (u64)vma->vm_pgoff << PAGE_SHIFT;
	} else if (crak_vma_is_special(vma)) {
		v.kind = CRAK_VMA_KIND_SPECIAL;
		strscpy(buf, vma->vm_ops->name(vma) ?: "", CRAK_MAX_NAME);
	} else if (vma->vm_start <= mm->brk && vma->vm_end >= mm->start_brk) {
		v.kind = CRAK_VMA_KIND_HEAP;
		strscpy(buf, "[heap]", CRAK_MAX_NAME);
	} else if (vma->vm_start <= mm->start_stack &&
		   vma->vm_end >= mm->start_stack) {
		v.kind = CRAK_VMA_KIND_STACK;
		strscpy(buf, "[stack]", CRAK_MAX_NAME);
	} else {
		v.kind = CRAK_VMA_KIND_ANON;
	}
	mmap_read_unlock(mm);

	name = buf;
	if (file) {
		struct inode *inode = file_inode(file);

		v.ino = inode->i_ino;
		v.dev_major = MAJOR(inode->i_sb->s_dev);
		v.dev_minor = MINOR(inode->i_sb->s_dev);
		v.mode = inode->i_mode;
		v.f_flags = file->f_flags;
		if (d_unlinked(file->f_path.dentry))
			v.prot_flags |= CRAK_VMA_FILE_DELETED;
		name = d_path(&file->f_path, buf, CRAK_MAX_NAME);
		fput(file);
		if (IS_ERR(name)) {
			ret = PTR_ERR(name);
			goto out_mm;
		}
	}
	ret = crak_copy_name(name, strlen(name), v.name_ptr, v.name_cap,
			     &v.name_len);
	/* name_len is reported even when the name does not fit. */
	if ((!ret || ret == -ENAMETOOLONG) && copy_to_user(arg, &v, sizeof(v)))
		ret = -EFAULT;
out_mm:
	mmput(mm);
out_buf:
	kfree(buf);
	return ret;
}

struct crak_dump {
	struct mm_struct *mm;
	unsigned long addr;		/* cursor */
	unsigned long end;
	unsigned int limit;		/* pages this batch may take */
	unsigned int n;			/* pages selected in this batch */
	unsigned int budget;		/* PMD steps left in this batch */
	bool runs_full;
	unsigned long addrs[CRAK_DUMP_BATCH];
	struct page *pages[CRAK_DUMP_BATCH];
	/* runs: `cur` is open; done[] closed in this batch, not copied yet */
	struct crak_page_run cur;
	struct crak_page_run done[CRAK_DUMP_BATCH + 1];
	unsigned int nr_done;
	u32 nr_emitted;
	u32 runs_cap;
	struct crak_page_run __user *uruns;
};

static bool crak_vma_skipped(struct vm_area_struct *vma)
{
	return (vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_IO | VM_PFNMAP)) ||
	       is_vm_hugetlb_page(vma) || crak_vma_is_special(vma);
}

static bool crak_pte_wanted(pte_t pte)
{
	unsigned long pfn;

	if (pte_none(pte))
		return false;
	if (!pte_present(pte))
		return true;	/* swap or migration entry */
	if (pte_special(pte))
		return true;	/* no normal page behind it */
	pfn = pte_pfn(pte);
	if (is_zero_pfn(pfn) || !pfn_valid(pfn))
		return true;
	return PageAnon(pfn_to_page(pfn));
}

/* Adds one page to the batch; false when no run slot is left for it. */
static bool crak_accept(struct crak_dump *d, unsigned long addr)
{
	if (d->cur.nr_pages &&
	    addr == d->cur.start + d->cur.nr_pages * PAGE_SIZE) {
		d->cur.nr_pages++;
	} else {
		u32 used = d->nr_emitted + d->nr_done + !!d->cur.nr_pages;

		if (used >= d->runs_cap) {
			d->runs_full = true;
			return false;
		}
		if (d->cur.nr_pages)
			d->done[d->nr_done++] = d->cur;
		d->cur.start = addr;
		d->cur.nr_pages = 1;
	}
	d->addrs[d->n++] = addr;
	return true;
}

static bool crak_batch_done(struct crak_dump *d)
{
	return d->n == d->limit || d->runs_full || !d->budget;
}

/* The pmd covering addr, or NULL with *skip set past an empty upper level. */
static pmd_t *crak_find_pmd(struct mm_struct *mm, unsigned long addr,
			    unsigned long end, unsigned long *skip)
{
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;

	pgd = pgd_offset(mm, addr);
	if (pgd_none(*pgd) || pgd_bad(*pgd)) {
		*skip = pgd_addr_end(addr, end);
		return NULL;
	}
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d)) {
		*skip = p4d_addr_end(addr, end);
		return NULL;
	}
	pud = pud_offset(p4d, addr);
	if (pud_none(*pud) || pud_bad(*pud)) {
		*skip = pud_addr_end(addr, end);
		return NULL;
	}
	return pmd_offset(pud, addr);
}

/* Selects pages of one VMA from d->addr up to vend. mmap lock held. */
static void crak_scan_vma(struct crak_dump *d, unsigned long vend)
{
	struct mm_struct *mm = d->mm;
	unsigned long addr = d->addr, next;
	spinlock_t *ptl;
	pmd_t *pmd, pmdval;
	pte_t *start_pte, *pte;
	bool want;

	while (addr < vend && !crak_batch_done(d)) {
		d->budget--;
		next = pmd_addr_end(addr, vend);
		pmd = crak_find_pmd(mm, addr, vend, &next);
		if (!pmd) {
			addr = next;
			continue;
		}
		pmdval = READ_ONCE(*pmd);
		if (pmd_none(pmdval)) {
			addr = next;
			continue;
		}
		if (pmd_trans_huge(pmdval) || pmd_devmap(pmdval) ||
		    !pmd_present(pmdval)) {
			/* A huge page, or a huge page under migration. */
			ptl = pmd_lock(mm, pmd);
			pmdval = *pmd;
			if (pmd_none(pmdval)) {
				spin_unlock(ptl);
				addr = next;
				continue;
			}
			if (pmd_present(pmdval) && !pmd_trans_huge(pmdval) &&
			    !pmd_devmap(pmdval)) {
				spin_unlock(ptl);
				continue;	/* split meanwhile: look again */
			}
			want = !pmd_present(pmdval) ||
			       (!pmd_devmap(pmdval) &&
				PageAnon(pmd_page(pmdval)));
			spin_unlock(ptl);
			for (; want && addr < next; addr += PAGE_SIZE)
				if (d->n == d->limit || !crak_accept(d, addr))
					break;
			if (want && addr < next)
				break;
			addr = next;
			continue;
		}
		if (pmd_bad(pmdval)) {
			addr = next;
			continue;
		}
		start_pte = crak_compat_pte_map_lock(mm, pmd, addr, &ptl);
		for (pte = start_pte; addr < next; addr += PAGE_SIZE, pte++) {
			if (d->n == d->limit)
				break;
			if (!crak_pte_wanted(ptep_get(pte)))
				continue;
			if (!crak_accept(d, addr))
				break;
		}
		pte_unmap_unlock(start_pte, ptl);
		if (addr < next)
			break;
	}
	d->addr = addr;
}

/* Selects and pins one batch. mmap lock held. */
static int crak_collect(struct crak_dump *d)
{
	struct vm_area_struct *vma;
	unsigned int i, j;
	long got;

	d->n = 0;
	d->budget = CRAK_SCAN_BUDGET;
	while (d->addr < d->end && !crak_batch_done(d)) {
		vma = find_vma(d->mm, d->addr);
		if (!vma || vma->vm_start >= d->end) {
			d->addr = d->end;
			break;
		}
		if (d->addr < vma->vm_start)
			d->addr = vma->vm_start;
		if (crak_vma_skipped(vma)) {
			d->addr = min(vma->vm_end, d->end);
			continue;
		}
		crak_scan_vma(d, min(vma->vm_end, d->end));
	}

	for (i = 0; i < d->n; i = j) {
		for (j = i + 1; j < d->n; j++)
			if (d->addrs[j] != d->addrs[j - 1] + PAGE_SIZE)
				break;
		got = crak_compat_gup_remote(d->mm, d->addrs[i], j - i,
					     FOLL_FORCE, &d->pages[i]);
		if (got != j - i) {
			while (got > 0)
				put_page(d->pages[i + --got]);
			while (i > 0)
				put_page(d->pages[--i]);
			d->n = 0;
			return got < 0 ? (int)got : -EFAULT;
		}
	}
	return 0;
}

static int crak_write_batch(struct crak_dump *d, struct file *file,
			    loff_t *pos)
{
	unsigned int i;
	ssize_t w;
	int ret = 0;

	for (i = 0; i < d->n; i++) {
		if (!ret) {
			void *kaddr = kmap_local_page(d->pages[i]);

			w = kernel_write(file, kaddr, PAGE_SIZE, pos);
			kunmap_local(kaddr);
			if (w != PAGE_SIZE)
				ret = w < 0 ? (int)w : -EIO;
		}
		put_page(d->pages[i]);
	}
	return ret;
}

static int crak_flush_runs(struct crak_dump *d, bool all)
{
	if (all && d->cur.nr_pages) {
		d->done[d->nr_done++] = d->cur;
		d->cur.nr_pages = 0;
	}
	if (d->nr_done &&
	    copy_to_user(d->uruns + d->nr_emitted, d->done,
			 d->nr_done * sizeof(d->done[0])))
		return -EFAULT;
	d->nr_emitted += d->nr_done;
	d->nr_done = 0;
	return 0;
}

long crak_ioc_dump_pages(struct crak_session *s, void __user *arg)
{
	struct crak_dump_pages q;
	struct crak_dump *d;
	struct file *file;
	u64 total = 0;
	loff_t pos;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_DUMP_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (!PAGE_ALIGNED(q.start) || !PAGE_ALIGNED(q.end) || q.end < q.start)
		return -EINVAL;
	if (q.out_offset > (u64)LLONG_MAX)
		return -EINVAL;
	file = fget(q.out_fd);
	if (!file)
		return -EBADF;
	if (!(file->f_mode & FMODE_WRITE)) {
		ret = -EBADF;
		goto out_file;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d) {
		ret = -ENOMEM;
		goto out_file;
	}
	d->mm = crak_session_mm(s);
	if (!d->mm) {
		ret = -ESRCH;
		goto out_dump;
	}
	d->addr = q.start;
	d->end = q.end;
	d->runs_cap = q.runs_cap;
	d->uruns = u64_to_user_ptr(q.runs_ptr);
	pos = q.out_offset;

	while (d->addr < d->end && !d->runs_full &&
	       total < CRAK_DUMP_MAX_PAGES) {
		if (signal_pending(current)) {
			if (!total && d->addr == q.start)
				ret = -EINTR;
			break;
		}
		d->limit = min_t(u64, CRAK_DUMP_BATCH,
				 CRAK_DUMP_MAX_PAGES - total);
		if (mmap_read_lock_killable(d->mm)) {
			ret = -EINTR;
			break;
		}
		ret = crak_collect(d);
		mmap_read_unlock(d->mm);
		if (ret)
			break;
		ret = crak_write_batch(d, file, &pos);
		if (ret)
			break;
		total += d->n;
		ret = crak_flush_runs(d, false);
		if (ret)
			break;
		cond_resched();
	}
	if (!ret)
		ret = crak_flush_runs(d, true);
	if (!ret) {
		q.out_offset = pos;
		q.nr_runs = d->nr_emitted;
		q.nr_pages = total;
		q.next = d->addr;
		if (copy_to_user(arg, &q, sizeof(q)))
			ret = -EFAULT;
	}
	mmput(d->mm);
out_dump:
	kfree(d);
out_file:
	fput(file);
	return ret;
}
