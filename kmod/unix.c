// SPDX-License-Identifier: GPL-2.0
/*
 * unix.c - receive queues of AF_UNIX sockets, read in place.
 *
 * The queue is walked under its own spinlock and every skb copied into a
 * buffer allocated beforehand (skb_copy_bits does not sleep), with the
 * sender's name from the sending socket the skb still points to. Nothing
 * is dequeued and no peek offset is moved. A listener's not yet accepted
 * connections are skbs on its queue whose socket is the server side of
 * that connection: its own queue holds what the client sent so far.
 */
#include <linux/file.h>
#include <linux/net.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/un.h>
#include <net/af_unix.h>
#include <net/sock.h>
#include "internal.h"

/* Bytes of data still to be read in skb (a stream skb may be partly read). */
static u32 crak_unix_skb_len(struct sock *sk, struct sk_buff *skb)
{
	if (sk->sk_type == SOCK_STREAM)
		return skb->len - UNIXCB(skb).consumed;
	return skb->len;
}

static u32 crak_unix_record_len(u32 addr_len, u32 len)
{
	return ALIGN(sizeof(struct crak_unix_msg) + addr_len + len, 8);
}

/*
 * Walk sk's receive queue: count it into q and, when it fits in buf
 * (buf_len bytes), copy the records there. Returns the bytes needed.
 */
static u32 crak_unix_copy_queue(struct sock *sk, char *buf, u32 buf_len,
				struct crak_unix_queue *q)
{
	struct sk_buff *skb;
	u32 need = 0;

	q->nr_msgs = 0;
	q->nr_bytes = 0;
	spin_lock(&sk->sk_receive_queue.lock);
	skb_queue_walk(&sk->sk_receive_queue, skb) {
		struct unix_address *addr = NULL;
		struct crak_unix_msg m = { 0 };
		u32 rec;

		if (skb->sk && skb->sk->sk_family == AF_UNIX)
			addr = smp_load_acquire(&unix_sk(skb->sk)->addr);
		m.len = crak_unix_skb_len(sk, skb);
		m.addr_len = addr ? addr->len - offsetof(struct sockaddr_un, sun_path) : 0;
		m.flags = UNIXCB(skb).fp ? CRAK_UNIX_MSG_F_FDS : 0;
		rec = crak_unix_record_len(m.addr_len, m.len);
		if (buf && need + rec <= buf_len) {
			char *p = buf + need;

			memcpy(p, &m, sizeof(m));
			p += sizeof(m);
			if (m.addr_len)
				memcpy(p, addr->name->sun_path, m.addr_len);
			p += m.addr_len;
			if (m.len && skb_copy_bits(skb, skb->len - m.len, p, m.len))
				m.len = 0; /* cannot happen for a queued skb */
		}
		need += rec;
		q->nr_msgs++;
		q->nr_bytes += m.len;
	}
	spin_unlock(&sk->sk_receive_queue.lock);
	return need;
}

/* The server side of listener's index-th pending connection, held; or NULL. */
static struct sock *crak_unix_pending(struct sock *listener, u32 index)
{
	struct sock *found = NULL;
	struct sk_buff *skb;
	u32 i = 0;

	spin_lock(&listener->sk_receive_queue.lock);
	skb_queue_walk(&listener->sk_receive_queue, skb) {
		if (i++ == index) {
			found = skb->sk;
			if (found)
				sock_hold(found);
			break;
		}
	}
	spin_unlock(&listener->sk_receive_queue.lock);
	return found;
}

long crak_ioc_unix_queue(struct crak_session *s, void __user *arg)
{
	struct crak_unix_queue q;
	struct crak_fd_pick pick;
	struct socket *sock;
	struct sock *sk;
	char *kbuf = NULL;
	u32 need;
	long ret;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_UNIX_QUEUE_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (!(q.flags & CRAK_UNIX_QUEUE_F_PENDING) && q.index)
		return -EINVAL;
	if (q.buf_len > CRAK_MAX_PEEK)
		return -E2BIG;
	ret = crak_target_exact_fd(s, q.fd, &pick);
	if (ret)
		return ret;
	sock = sock_from_file(pick.file);
	if (!sock || !sock->sk || sock->sk->sk_family != AF_UNIX) {
		ret = -ENOTSOCK;
		goto out_file;
	}
	sk = sock->sk;
	sock_hold(sk);
	if (q.flags & CRAK_UNIX_QUEUE_F_PENDING) {
		struct sock *server = NULL;

		if (READ_ONCE(sk->sk_state) == TCP_LISTEN)
			server = crak_unix_pending(sk, q.index);
		sock_put(sk);
		if (!server) {
			ret = -ENOENT;
			goto out_file;
		}
		sk = server;
	}
	if (q.buf_len) {
		kbuf = kvzalloc(q.buf_len, GFP_KERNEL);
		if (!kbuf) {
			ret = -ENOMEM;
			goto out_sock;
		}
	}
	need = crak_unix_copy_queue(sk, kbuf, q.buf_len, &q);
	q.out_len = need;
	ret = need > q.buf_len ? -ENOSPC : 0;
	if (!ret && need && copy_to_user(u64_to_user_ptr(q.buf_ptr), kbuf, need))
		ret = -EFAULT;
	if ((!ret || ret == -ENOSPC) && copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
	kvfree(kbuf);
out_sock:
	sock_put(sk);
out_file:
	fput(pick.file);
	return ret;
}
