// podnet CNI shim: the executable a container runtime runs as the `podnet` plugin.
//
// It hands ADD, DEL and CHECK to the node's agent over a unix socket (the agent already holds the
// modules, the API connection and the netlink sockets, so the request costs a few ms instead of a
// Node start), prints the agent's answer and exits with the agent's exit code. Whenever the agent
// does not take the request (no socket, connection refused, no acceptance within a bounded time,
// the agent declining it, or the connection closing before the answer) it execs the standalone
// Node plugin beside it with the same environment and stdin, as if it had been run directly. Every
// other command (VERSION, STATUS, GC) goes to the standalone plugin at once.
//
// Wire format (agent side: packages/agent/src/cni-server.ts, codec: packages/cni/src/shim-protocol.ts):
//   preamble = "podnet-cni-fds/1\0" and one byte saying which descriptors ride with it (SCM_RIGHTS,
//              in this order): 1 = the pod's namespace (open(CNI_NETNS)), 2 = a NETLINK_ROUTE socket
//              created inside it (after setns; a netlink socket stays in the namespace it was made
//              in), 4 = the node's /proc/sys/net directory (this process's /proc is writable). The
//              agent then needs neither CAP_SYS_ADMIN nor a writable /proc/sys nor a view of
//              /var/run/netns: this shim, root with the runtime's privileges, did the opening. A
//              descriptor that cannot be opened is left out (the agent then declines as before).
//   request  = records, each a NUL-terminated string: "podnet-cni-shim/1", then "pid=<pid>",
//              "start=<field 22 of /proc/self/stat>", "netns=<st_dev>:<st_ino>" (empty when
//              CNI_NETNS cannot be stat'ed), "runtime=<parent's executable>", then every CNI_*
//              variable as "NAME=value"; an empty record ends them; then the network
//              configuration (stdin) until the shim shuts its side down.
//   answer   = 'A' (accepted) then "<exit code>\n<stdout>" until EOF, or 'D' then a reason until EOF.
//
// Environment: PODNET_CNI_SOCKET (default /var/run/podnet/cni.sock; "none" skips the agent),
// PODNET_CNI_ACCEPT_TIMEOUT_MS (default 2000: connect, send and acceptance), PODNET_CNI_ANSWER_TIMEOUT_MS
// (default 120000: the agent's answer after acceptance), PODNET_CNI_FALLBACK (the standalone plugin;
// default podnet-standalone beside this executable). The standalone plugin gets
// PODNET_CNI_FALLBACK_REASON saying why it runs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "podnet-cni-shim/1"
#define FDS_MAGIC "podnet-cni-fds/1"
#define FD_NETNS 1
#define FD_NETLINK 2
#define FD_SYSCTL 4
#define DEFAULT_SOCKET "/var/run/podnet/cni.sock"
#define FALLBACK_NAME "podnet-standalone"
#define MAX_STDIN (16 << 20)
#define MAX_ANSWER (16 << 20)

extern char **environ;

struct buf {
  char *p;
  size_t len, cap;
};

static int put(struct buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

static int put_record(struct buf *b, const char *key, const char *value) {
  if (put(b, key, strlen(key)) < 0) return -1;
  if (value && put(b, value, strlen(value)) < 0) return -1;
  return put(b, "", 1);
}

static long env_ms(const char *name, long dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  long n = strtol(v, &end, 10);
  return (*end || n <= 0) ? dflt : n;
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline passes; returns 1 when ready, 0 otherwise. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 0;
  }
}

/* The configuration read from stdin, handed to the standalone plugin again if it must run. */
static struct buf conf;
static int conf_read;

/* Execs the standalone plugin with this process's environment and the same stdin. Never returns. */
static void fallback(const char *reason) {
  setenv("PODNET_CNI_FALLBACK_REASON", reason, 1);
  if (conf_read) {
    int fd = memfd_create("podnet-cni-conf", 0);
    if (fd >= 0) {
      size_t off = 0;
      while (off < conf.len) {
        ssize_t w = write(fd, conf.p + off, conf.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
      }
      if (off != conf.len || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        fd = -1;
      }
    }
    if (fd < 0) {
      /* No memfd: a pipe holds the configuration if it fits the pipe's buffer. */
      int pfd[2];
      if (pipe(pfd) == 0 && fcntl(pfd[1], F_SETFL, O_NONBLOCK) == 0 &&
          write(pfd[1], conf.p, conf.len) == (ssize_t)conf.len) {
        close(pfd[1]);
        fd = pfd[0];
      }
    }
    if (fd < 0 || dup2(fd, 0) < 0) {
      printf("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"podnet shim: cannot hand the configuration to the standalone plugin: %s\"}\n",
             strerror(errno));
      exit(1);
    }
    if (fd != 0) close(fd);
  }
  char path[PATH_MAX];
  const char *target = getenv("PODNET_CNI_FALLBACK");
  if (!target || !*target) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - sizeof(FALLBACK_NAME) - 1);
    if (n <= 0) {
      printf("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"podnet shim: cannot find its own directory: %s\"}\n",
             strerror(errno));
      exit(1);
    }
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, FALLBACK_NAME);
    target = path;
  }
  char *argv[] = {(char *)target, NULL};
  execve(target, argv, environ);
  printf("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"podnet shim: cannot run the standalone plugin %s: %s\"}\n",
         target, strerror(errno));
  exit(1);
}

static void read_stdin(void) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      printf("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"podnet shim: reading stdin: %s\"}\n", strerror(errno));
      exit(1);
    }
    if (n == 0) break;
    if (conf.len + (size_t)n > MAX_STDIN || put(&conf, chunk, (size_t)n) < 0) {
      printf("{\"cniVersion\":\"1.0.0\",\"code\":6,\"msg\":\"podnet shim: the network configuration on stdin is larger than %d bytes\"}\n",
             MAX_STDIN);
      exit(1);
    }
  }
  conf_read = 1;
}

/* Field 22 of /proc/self/stat: the process's start time, so a reused pid is not mistaken for it. */
static void start_time(char *out, size_t size) {
  out[0] = 0;
  char s[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, s, sizeof(s) - 1);
  close(fd);
  if (n <= 0) return;
  s[n] = 0;
  char *p = strrchr(s, ')');
  if (!p) return;
  /* After ") " comes field 3; the start time is field 22. */
  int field = 2;
  for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
    if (++field == 22) {
      snprintf(out, size, "%s", tok);
      return;
    }
  }
}

/*
 * Opens what the agent cannot open itself (see "preamble" above). Returns the mask of descriptors
 * put in fds[]. Exits when it cannot return to its own namespace (nothing after that may run in
 * the pod's).
 */
static int open_handed(const char *netns, int fds[3], int *count) {
  int mask = 0;
  *count = 0;
  if (netns && *netns) {
    int ns = open(netns, O_RDONLY | O_CLOEXEC);
    if (ns >= 0) {
      fds[(*count)++] = ns;
      mask |= FD_NETNS;
      int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
      if (self >= 0 && setns(ns, CLONE_NEWNET) == 0) {
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */);
        if (setns(self, CLONE_NEWNET) != 0) {
          printf("{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"podnet shim: cannot return from %s to its own network namespace: %s\"}\n",
                 netns, strerror(errno));
          exit(1);
        }
        if (nl >= 0) {
          fds[(*count)++] = nl;
          mask |= FD_NETLINK;
        }
      }
      if (self >= 0) close(self);
    }
  }
  int sys = open("/proc/sys/net", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sys >= 0) {
    fds[(*count)++] = sys;
    mask |= FD_SYSCTL;
  }
  return mask;
}

/* Sends the preamble and the descriptors in one sendmsg; returns 0 or -1. */
static int send_handed(int fd, int mask, const int *fds, int count, long long deadline) {
  char pre[sizeof(FDS_MAGIC) + 1];
  memcpy(pre, FDS_MAGIC, sizeof(FDS_MAGIC));
  pre[sizeof(FDS_MAGIC)] = (char)mask;
  union {
    char buf[CMSG_SPACE(sizeof(int) * 3)];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof(ctl));
  struct iovec iov = {.iov_base = pre, .iov_len = sizeof(pre)};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (count > 0) {
    m.msg_control = ctl.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)count);
  }
  for (;;) {
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w == (ssize_t)sizeof(pre)) return 0;
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline)) continue;
    return -1;
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *cmd = getenv("CNI_COMMAND");
  if (!cmd || (strcmp(cmd, "ADD") && strcmp(cmd, "DEL") && strcmp(cmd, "CHECK"))) fallback("not-forwarded");
  const char *sock_path = getenv("PODNET_CNI_SOCKET");
  if (!sock_path || !*sock_path) sock_path = DEFAULT_SOCKET;
  if (!strcmp(sock_path, "none")) fallback("disabled");
  read_stdin();

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock_path) >= sizeof(addr.sun_path)) fallback("socket-path-too-long");
  strcpy(addr.sun_path, sock_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fallback("socket");
  long long deadline = now_ms() + env_ms("PODNET_CNI_ACCEPT_TIMEOUT_MS", 2000);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    /* A full backlog answers EAGAIN on a non-blocking unix socket: the agent is busy or stuck. */
    fallback(errno == ENOENT ? "no-socket" : errno == ECONNREFUSED ? "refused" : "connect");
  }

  int handed[3], handed_count;
  int mask = open_handed(getenv("CNI_NETNS"), handed, &handed_count);
  int sent = send_handed(fd, mask, handed, handed_count, deadline);
  for (int i = 0; i < handed_count; i++) close(handed[i]);
  if (sent < 0) fallback("send");

  struct buf req = {0};
  char num[64], ns[64], start[32], runtime[PATH_MAX];
  snprintf(num, sizeof(num), "%d", (int)getpid());
  start_time(start, sizeof(start));
  ns[0] = 0;
  const char *netns = getenv("CNI_NETNS");
  struct stat st;
  if (netns && *netns && stat(netns, &st) == 0)
    snprintf(ns, sizeof(ns), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  char exe[64];
  snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)getppid());
  ssize_t rl = readlink(exe, runtime, sizeof(runtime) - 1);
  if (rl > 0) runtime[rl] = 0;
  else snprintf(runtime, sizeof(runtime), "unknown (parent pid %d)", (int)getppid());
  int bad = put_record(&req, MAGIC, NULL) < 0 || put_record(&req, "pid=", num) < 0 ||
            put_record(&req, "start=", start) < 0 || put_record(&req, "netns=", ns) < 0 ||
            put_record(&req, "runtime=", runtime) < 0;
  for (char **e = environ; !bad && *e; e++)
    if (!strncmp(*e, "CNI_", 4)) bad = put_record(&req, *e, NULL) < 0;
  if (bad || put(&req, "", 1) < 0 || put(&req, conf.p ? conf.p : "", conf.len) < 0) fallback("out-of-memory");

  size_t off = 0;
  while (off < req.len) {
    ssize_t w = send(fd, req.p + off, req.len - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline)) continue;
    fallback("send");
  }
  shutdown(fd, SHUT_WR);

  struct buf ans = {0};
  int accepted = 0;
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline)) fallback(accepted ? "answer-timeout" : "accept-timeout");
    char chunk[65536];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) fallback("read");
    if (n == 0) break;
    if (ans.len + (size_t)n > MAX_ANSWER || put(&ans, chunk, (size_t)n) < 0) fallback("answer-too-large");
    if (!accepted && ans.len > 0) {
      if (ans.p[0] != 'A') continue; /* 'D': read the reason until EOF. */
      accepted = 1;
      deadline = now_ms() + env_ms("PODNET_CNI_ANSWER_TIMEOUT_MS", 120000);
    }
  }
  close(fd);
  if (ans.len == 0) fallback("closed");
  if (ans.p[0] == 'D') {
    put(&ans, "", 1);
    char reason[256];
    snprintf(reason, sizeof(reason), "declined: %s", ans.p + 1);
    fallback(reason);
  }
  if (ans.p[0] != 'A') fallback("bad-answer");
  /* "<exit code>\n<stdout>"; without the newline the agent went away mid-answer. */
  char *nl = memchr(ans.p + 1, '\n', ans.len - 1);
  if (!nl) fallback("closed-before-answer");
  *nl = 0;
  char *end;
  long code = strtol(ans.p + 1, &end, 10);
  if (*end || end == ans.p + 1 || code < 0 || code > 255) fallback("bad-answer");
  size_t out_len = ans.len - (size_t)(nl + 1 - ans.p);
  for (size_t o = 0; o < out_len;) {
    ssize_t w = write(1, nl + 1 + o, out_len - o);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 1;
    o += (size_t)w;
  }
  return (int)code;
}
