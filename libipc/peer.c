/*
 * Peers: credentials, descriptor passing and the socket paths servers
 * listen on.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../libhusk/cleanup.h"
#include "../libhusk/util.h"
#include "ipc.h"

int ipc_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid,
		  struct husk_err **err)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return husk_error_sys(err, errno, "getsockopt SO_PEERCRED");
	if (pid)
		*pid = uc.pid;
	if (uid)
		*uid = uc.uid;
	if (gid)
		*gid = uc.gid;
	return 0;
}

bool ipc_uid_allowed(uid_t uid, const uid_t *allowed, size_t n)
{
	if (n == 0)
		return uid == geteuid();
	for (size_t i = 0; i < n; i++)
		if (allowed[i] == uid)
			return true;
	return false;
}

/*
 * Passes descriptors: they ride on the first byte of buf, so the
 * receiver's recvmsg that returns that byte also returns them.
 */
ssize_t ipc_send_fds(int sock, const void *buf, size_t len, const int *fds,
		     int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds < 0 || nfds > IPC_MAX_FDS || len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/*
 * Receives descriptors (close-on-exec) along with bytes.  Descriptors
 * beyond maxfds, or cut off by the kernel, are closed and reported.
 */
ssize_t ipc_recv_fds(int sock, void *buf, size_t len, int *fds, int *nfds,
		     int maxfds, bool *truncated)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	if (truncated)
		*truncated = false;
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	if ((msg.msg_flags & MSG_CTRUNC) && truncated)
		*truncated = true;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
	     cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k;
		int *in;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		in = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, &in[i], sizeof(fd));
			if (fds && nfds && *nfds < maxfds) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				if (truncated)
					*truncated = true;
			}
		}
	}
	return n;
}

/* Directories of long socket paths, opened O_PATH once and kept: a
 * process that confined itself can still reach them (no openat). */
#define DIRFD_CACHE 8
static struct {
	char *dir;
	int fd;
} dirfds[DIRFD_CACHE];

static int dir_fd(const char *dir, struct husk_err **err)
{
	struct stat a, b;
	int free_slot = -1, fd;

	for (int i = 0; i < DIRFD_CACHE; i++) {
		if (!dirfds[i].dir) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (strcmp(dirfds[i].dir, dir) != 0)
			continue;
		/* Still the same directory (not removed and made again)? */
		if (fstat(dirfds[i].fd, &a) == 0 && stat(dir, &b) == 0 &&
		    (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
			close(dirfds[i].fd);
			free(dirfds[i].dir);
			dirfds[i].dir = NULL;
			free_slot = i;
			break;
		}
		return dirfds[i].fd;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket directory `%s`", dir);
	if (free_slot < 0) {
		/* Full: the oldest goes (its users have connected). */
		close(dirfds[0].fd);
		free(dirfds[0].dir);
		memmove(&dirfds[0], &dirfds[1],
			sizeof(dirfds[0]) * (DIRFD_CACHE - 1));
		free_slot = DIRFD_CACHE - 1;
	}
	dirfds[free_slot].dir = husk_xstrdup(dir);
	dirfds[free_slot].fd = fd;
	return fd;
}

int ipc_sockaddr(struct sockaddr_un *sa, const char *path,
		 struct husk_err **err)
{
	const char *slash;
	char *dir;
	int fd, n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) < sizeof(sa->sun_path)) {
		strcpy(sa->sun_path, path);
		return 0;
	}
	/* Longer than sun_path: through its directory's descriptor. */
	slash = strrchr(path, '/');
	if (!slash || slash == path || !slash[1])
		return husk_error(err, HUSK_E_TOO_LARGE,
				  "socket path `%s` is too long", path);
	dir = husk_xstrdup(path);
	dir[slash - path] = '\0';
	fd = dir_fd(dir, err);
	free(dir);
	if (fd < 0)
		return -1;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s",
		     fd, slash + 1);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return husk_error(err, HUSK_E_TOO_LARGE, "socket name `%s` is "
				  "too long", slash + 1);
	return 0;
}

/* The directory holding a socket is its real access control. */
static int check_parent(const char *path, struct husk_err **err)
{
	cleanup_free char *dir = husk_xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct stat st;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0)
		return husk_error_sys(err, errno, "stat `%s`", dir);
	if (!S_ISDIR(st.st_mode))
		return husk_error(err, HUSK_E_INVALID, "`%s` is not a directory",
				  dir);
	if (st.st_uid != geteuid())
		return husk_error(err, HUSK_E_PERMISSION,
				  "socket directory `%s` is owned by uid %u, "
				  "not by us (%u)", dir, (unsigned)st.st_uid,
				  (unsigned)geteuid());
	if (st.st_mode & 077)
		return husk_error(err, HUSK_E_PERMISSION,
				  "socket directory `%s` has mode %04o; it "
				  "must be 0700 or tighter", dir,
				  (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Remove a socket left by a dead server; refuse to steal a live one. */
static int remove_stale(const char *path, const struct sockaddr_un *sa,
			struct husk_err **err)
{
	cleanup_close int probe = -1;
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return husk_error_sys(err, errno, "lstat `%s`", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return husk_error(err, HUSK_E_EXISTS,
				  "`%s` exists and is not a socket", path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return husk_error_sys(err, errno, "socket");
	if (connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
	    errno == EAGAIN)
		return husk_error(err, HUSK_E_EXISTS,
				  "a server already listens on `%s`", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return husk_error_sys(err, errno, "unlink `%s`", path);
	return 0;
}

int ipc_listen_path(const char *path, struct husk_err **err)
{
	cleanup_close int fd = -1;
	struct sockaddr_un sa;
	mode_t old;
	int r;

	if (ipc_sockaddr(&sa, path, err) < 0 || check_parent(path, err) < 0 ||
	    remove_stale(path, &sa, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return husk_error_sys(err, errno, "socket");
	/* No window in which the socket exists with a looser mode. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return husk_error_sys(err, errno, "bind `%s`", path);
	if (chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		unlink(path);
		return husk_error_sys(err, e, "listen `%s`", path);
	}
	return husk_steal_fd(fd);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ipc_connect_path(const char *path, int timeout_ms, struct husk_err **err)
{
	long long deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	struct sockaddr_un sa;

	if (ipc_sockaddr(&sa, path, err) < 0)
		return -1;
	for (;;) {
		cleanup_close int fd = -1;
		long long left;
		int e;

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return husk_error_sys(err, errno, "socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return husk_steal_fd(fd);
		e = errno;
		if (e == EINTR)
			continue;
		left = deadline - now_ms();
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) ||
		    (timeout_ms >= 0 && left <= 0)) {
			if (e == ENOENT || e == ECONNREFUSED)
				return husk_error(err, HUSK_E_UNAVAILABLE,
						  "connect `%s`: %s", path,
						  strerror(e));
			return husk_error_sys(err, e, "connect `%s`", path);
		}
		/* The server may still be starting: try again shortly. */
		poll(NULL, 0, (timeout_ms < 0 || left > 20) ? 20 : (int)left);
	}
}
