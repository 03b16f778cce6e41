/*
 * sysvipc: System V IPC objects used by a parent and its child.
 *   A  a shared memory segment with a key, mode 0640, 3 pages + 123 bytes:
 *      attached by the parent (one page then made read-only, splitting the
 *      attach), inherited by the child, and attached again SHM_RDONLY by
 *      the child at another address;
 *   B  an IPC_PRIVATE segment attached by both and marked for removal
 *      (IPC_RMID while attached);
 *   S  a semaphore set of 3 with values 3, 0, 7 (the parent operated last);
 *   Q  a message queue with 4 typed messages, msg_qbytes lowered to 4096
 *      (the parent sent last).
 * After restore: same ids and keys, modes, sizes, contents, values and
 * messages (types and order), B still marked, the segments still shared
 * between the two processes. The objects are removed at the end.
 * Keys are made from the pid, so parallel runs do not collide.
 *
 * The child dies with the parent (PR_SET_PDEATHSIG), so nothing stays
 * attached when a test kills the parent.
 * argv[1] selects a state pyckpt must refuse instead:
 *   sem-undo     the parent did semops with SEM_UNDO (an undo list exists)
 *   shm-outside  segment A is also attached by a process outside the tree
 */
#include "wl.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define PAGE 4096
#define A_SIZE (3 * PAGE + 123)
#define B_SIZE PAGE

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msg {
	long type;
	char text[64];
};

static const struct {
	long type;
	const char *text;
	size_t len;
} messages[] = {
	{ 1, "one", 3 }, { 2, "two", 3 }, { 1, "three", 5 }, { 5, "\0bin\377ary", 8 },
};

static int shm_a, shm_b, sem_s, msg_q;
static key_t key_a, key_s, key_q;
static char *a, *b;

static int perms_of(void *addr, char *out)
{
	char line[512];
	unsigned long start;
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%*x %4s", &start, out) == 2 && start == (unsigned long)addr) {
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

static int child(void)
{
	char *ro, perms[8];

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))
		return 39;
	ro = shmat(shm_a, NULL, SHM_RDONLY);
	if (ro == (void *)-1)
		return 40;
	b[10] = 'c';
	wl_wait();
	if (a[PAGE] != 'P' || ro[PAGE] != 'P' || b[20] != 'Q')	/* the parent's writes after restore */
		return 41;
	if (ro[10] != a[10] || memcmp(ro + 2 * PAGE, "segment-A", 9))
		return 42;
	if (!perms_of(ro, perms) || strcmp(perms, "r--s"))
		return 43;
	a[PAGE + 1] = 'k';
	b[21] = 'l';
	return 0;
}

static void setup_refused(const char *mode)
{
	/* up and down again: the values are as before, the undo list stays */
	struct sembuf ops[2] = { { 0, 1, SEM_UNDO }, { 0, -1, SEM_UNDO } };
	pid_t main_pid = getpid();
	struct shmid_ds ds0;
	unsigned long attached_before;

	if (!strcmp(mode, "sem-undo")) {
		if (semop(sem_s, ops, 2))
			wl_die("semop SEM_UNDO");
		return;
	}
	if (shmctl(shm_a, IPC_STAT, &ds0))
		wl_die("IPC_STAT");
	attached_before = ds0.shm_nattch;
	if (strcmp(mode, "shm-outside")) {
		errno = EINVAL;
		wl_die(mode);
	}
	/* A grandchild reparented away from us (outside the tree) attaches A
	 * and stays as long as we exist. */
	if (!fork()) {
		if (!fork()) {
			if (shmat(shm_a, NULL, 0) == (void *)-1)
				_exit(1);
			kill(getppid(), SIGKILL);
			while (kill(main_pid, 0) == 0)
				usleep(20000);
			_exit(0);
		}
		pause();
		_exit(0);
	}
	while (1) {
		struct shmid_ds ds;

		if (shmctl(shm_a, IPC_STAT, &ds) == 0 && ds.shm_nattch > attached_before)
			break;
		usleep(1000);
	}
	wait(NULL);
}

int main(int argc, char **argv)
{
	unsigned short values[3] = { 3, 0, 7 }, got[3];
	struct sembuf op = { 1, 1, 0 };
	struct shmid_ds shm_ds;
	struct semid_ds sem_ds;
	struct msqid_ds msg_ds;
	union semun arg;
	struct msg m;
	char perms[8];
	pid_t kid;
	unsigned long nattch;
	int status;
	size_t i;
	ssize_t n;

	wl_setup(0);
	key_a = 0x5a000000 | (getpid() & 0xffffff);
	key_s = 0x5b000000 | (getpid() & 0xffffff);
	key_q = 0x5c000000 | (getpid() & 0xffffff);
	shm_a = shmget(key_a, A_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	shm_b = shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600);
	sem_s = semget(key_s, 3, IPC_CREAT | IPC_EXCL | 0600);
	msg_q = msgget(key_q, IPC_CREAT | IPC_EXCL | 0620);
	if (shm_a < 0 || shm_b < 0 || sem_s < 0 || msg_q < 0)
		wl_die("get");
	a = shmat(shm_a, NULL, 0);
	b = shmat(shm_b, NULL, 0);
	if (a == (void *)-1 || b == (void *)-1)
		wl_die("shmat");
	wl_fill(a, A_SIZE, 7);
	memcpy(a + 2 * PAGE, "segment-A", 9);
	if (mprotect(a + 2 * PAGE, PAGE, PROT_READ))
		wl_die("mprotect");
	arg.array = values;
	if (semctl(sem_s, 0, SETALL, arg) || semop(sem_s, &op, 1))	/* sem 1: 0 -> 1 */
		wl_die("sem");
	values[1] = 1;
	for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		m.type = messages[i].type;
		memcpy(m.text, messages[i].text, messages[i].len);
		if (msgsnd(msg_q, &m, messages[i].len, 0))
			wl_die("msgsnd");
	}
	if (msgctl(msg_q, IPC_STAT, &msg_ds))
		wl_die("IPC_STAT");
	msg_ds.msg_qbytes = 4096;
	if (msgctl(msg_q, IPC_SET, &msg_ds))
		wl_die("IPC_SET");
	if (argc > 1)
		setup_refused(argv[1]);
	kid = fork();
	if (kid < 0)
		wl_die("fork");
	if (!kid)
		_exit(child());
	while (b[10] != 'c')
		usleep(1000);
	if (shmctl(shm_b, IPC_RMID, NULL))
		wl_die("IPC_RMID");
	if (shmctl(shm_a, IPC_STAT, &shm_ds))
		wl_die("IPC_STAT");
	nattch = shm_ds.shm_nattch;
	wl_say("ids %d %d %d %d", shm_a, shm_b, sem_s, msg_q);
	wl_ready();
	wl_wait();

	/* A: id, key, mode, size, contents, the read-only piece */
	wl_check(shmget(key_a, 0, 0) == shm_a, "key %#x no longer finds segment %d", key_a, shm_a);
	wl_check(!shmctl(shm_a, IPC_STAT, &shm_ds) && shm_ds.shm_segsz == A_SIZE &&
		 (shm_ds.shm_perm.mode & 0777) == 0640 && shm_ds.shm_perm.uid == getuid(),
		 "segment A: size %zu mode %o", shm_ds.shm_segsz, shm_ds.shm_perm.mode);
	wl_check(shm_ds.shm_nattch == nattch, "segment A attached %lu times, was %lu",
		 (unsigned long)shm_ds.shm_nattch, nattch);
	wl_check(!memcmp(a + 2 * PAGE, "segment-A", 9), "segment A lost its contents");
	wl_check(perms_of(a + 2 * PAGE, perms) && !strcmp(perms, "r--s"), "read-only piece is %s", perms);
	wl_check(perms_of(a, perms) && !strcmp(perms, "rw-s"), "writable piece is %s", perms);
	/* B: still marked for removal, still shared */
	wl_check(!shmctl(shm_b, IPC_STAT, &shm_ds) && (shm_ds.shm_perm.mode & SHM_DEST) &&
		 shm_ds.shm_perm.__key == IPC_PRIVATE, "segment B: mode %o key %#x",
		 shm_ds.shm_perm.mode, shm_ds.shm_perm.__key);
	wl_check(b[10] == 'c', "segment B lost the child's write");
	/* S */
	wl_check(semget(key_s, 0, 0) == sem_s, "key %#x no longer finds semaphore set %d", key_s, sem_s);
	arg.array = got;
	wl_check(!semctl(sem_s, 0, GETALL, arg) && !memcmp(got, values, sizeof(got)),
		 "semaphores %u %u %u", got[0], got[1], got[2]);
	arg.buf = &sem_ds;
	wl_check(!semctl(sem_s, 0, IPC_STAT, arg) && (sem_ds.sem_perm.mode & 0777) == 0600 &&
		 sem_ds.sem_nsems == 3, "semaphore set mode %o", sem_ds.sem_perm.mode);
	/* Q: id, key, qbytes, the messages by type and in order */
	wl_check(msgget(key_q, 0) == msg_q, "key %#x no longer finds queue %d", key_q, msg_q);
	wl_check(!msgctl(msg_q, IPC_STAT, &msg_ds) && msg_ds.msg_qbytes == 4096 && msg_ds.msg_qnum == 4 &&
		 (msg_ds.msg_perm.mode & 0777) == 0620, "queue: qbytes %lu qnum %lu mode %o",
		 (unsigned long)msg_ds.msg_qbytes, (unsigned long)msg_ds.msg_qnum, msg_ds.msg_perm.mode);
	n = msgrcv(msg_q, &m, sizeof(m.text), 2, IPC_NOWAIT);
	wl_check(n == 3 && m.type == 2 && !memcmp(m.text, "two", 3), "type 2 message: %zd", n);
	for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		if (i == 1)
			continue;
		n = msgrcv(msg_q, &m, sizeof(m.text), 0, IPC_NOWAIT);
		wl_check(n == (ssize_t)messages[i].len && m.type == messages[i].type &&
			 !memcmp(m.text, messages[i].text, n), "message %zu: %zd bytes type %ld", i, n, m.type);
	}
	/* still shared with the child */
	a[PAGE] = 'P';
	b[20] = 'Q';
	wl_check(kill(kid, SIGTERM) == 0 && waitpid(kid, &status, 0) == kid, "child %d", (int)kid);
	wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	wl_check(a[PAGE + 1] == 'k' && b[21] == 'l', "the child's writes after restore not seen");

	shmctl(shm_a, IPC_RMID, NULL);
	semctl(sem_s, 0, IPC_RMID);
	msgctl(msg_q, IPC_RMID, NULL);
	return wl_finish();
}
