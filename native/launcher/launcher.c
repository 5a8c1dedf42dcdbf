/*
 * containerd-shim-tsrun-v1: the native launcher (native/launcher/PROTOCOL.md).
 *
 * containerd runs the shim binary for `start`, `delete`, `-info` and `-v` and waits for
 * it; Node needs about 130 ms to boot. This program forwards what containerd gave it
 * (argv, environment, cwd, parent pid, stdin) to the long-lived tsrun manager over its
 * control socket and writes back the manager's answer. It holds no policy: every
 * decision about the request is the manager's (or the Node CLI's).
 *
 * Paths through main():
 *   no action (a group daemon) or TSRUN_MANAGER=0   -> execv(node, entry.cjs, argv...)
 *   start, delete, -info, -v, any other action        -> forward to the manager
 *   anything failing before a response arrived        -> the same execv, stdin bytes
 *                                                        already read given back (memfd)
 *
 * Process hygiene: every fd is O_CLOEXEC; EINTR and partial reads/writes are handled;
 * every wait is bounded (lock and manager boot 3 s, request/response 30 s). The manager
 * is started with a double fork (fork, setsid, fork, the middle process exits at once and
 * is reaped here), so it is never our child: nothing is left to reap when we exit or exec
 * the Node CLI (libuv would never reap a child it did not start).
 *
 * stderr stays silent unless we fail: containerd reads `start`'s stdout and stderr
 * together (CombinedOutput), so a warning would corrupt the address it parses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TSRUN_DEFAULT_NODE
#error "define TSRUN_DEFAULT_NODE: the absolute path of node (binding.gyp does)"
#endif
#ifndef TSRUN_DEFAULT_MAIN
#error "define TSRUN_DEFAULT_MAIN: the absolute path of build/shim/entry.cjs (binding.gyp does)"
#endif

#define PROGRAM "containerd-shim-tsrun-v1"
#define CONTROL_DIR "/run/tsrun"
#define MAGIC 0x54535231u              /* "TSR1" */
#define FRAME_MAX (16u * 1024u * 1024u) /* a frame's length field, at most */
#define POLL_INTERVAL_MS 5              /* lock and connect polling while a manager boots */
#define MANAGER_BOOT_MS 3000            /* how long the lock holder waits for the manager */
#define LOCK_WAIT_MS (MANAGER_BOOT_MS + 1000)
#define EXCHANGE_MS 30000 /* send the request and read the response */

extern char **environ;

/* ---- time ---- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec left = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&left, &left) < 0 && errno == EINTR) {
  }
}

/* ---- byte buffers and frames ---- */

struct buf {
  unsigned char *data;
  size_t len;
  size_t cap;
};

/* Makes room for `more` bytes. -1 (nothing changed) when that would pass FRAME_MAX + 4
 * (no frame can hold it) or memory is short. */
static int buf_reserve(struct buf *b, size_t more) {
  if (b->len > (size_t)FRAME_MAX + 4 || more > (size_t)FRAME_MAX + 4 - b->len) return -1;
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap != 0 ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  unsigned char *data = realloc(b->data, cap);
  if (data == NULL) return -1;
  b->data = data;
  b->cap = cap;
  return 0;
}

static void be32_store(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static uint32_t be32_load(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int put_u32(struct buf *b, uint32_t v) {
  if (buf_reserve(b, 4) < 0) return -1;
  be32_store(b->data + b->len, v);
  b->len += 4;
  return 0;
}

/* A protocol string: u32 length, then the bytes. */
static int put_string(struct buf *b, const void *bytes, size_t n) {
  if (n > FRAME_MAX || put_u32(b, (uint32_t)n) < 0 || buf_reserve(b, n) < 0) return -1;
  if (n != 0) memcpy(b->data + b->len, bytes, n);
  b->len += n;
  return 0;
}

/* ---- I/O that survives EINTR, partial transfers and O_NONBLOCK fds ---- */

/* Waits until `fd` is ready for `events`, at most until `deadline` (ms, CLOCK_MONOTONIC;
 * -1 = no deadline). 0 when ready, -1 on timeout (errno ETIMEDOUT) or error. */
static int wait_ready(int fd, short events, int64_t deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
      }
      timeout = (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    int n = poll(&p, 1, timeout);
    if (n > 0) return 0; /* ready, or POLLHUP/POLLERR: the next read/write says which */
    if (n < 0 && errno != EINTR) return -1;
  }
}

/* Writes all of `data` to `fd` (a socket gets MSG_NOSIGNAL: a manager that hung up must
 * not kill us with SIGPIPE before we can fall back). 0, or -1 with errno. */
static int write_all(int fd, const unsigned char *data, size_t n, int is_socket, int64_t deadline) {
  while (n > 0) {
    ssize_t w = is_socket ? send(fd, data, n, MSG_NOSIGNAL) : write(fd, data, n);
    if (w > 0) {
      data += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_ready(fd, POLLOUT, deadline) < 0) return -1;
    } else {
      if (w == 0) errno = EIO;
      return -1;
    }
  }
  return 0;
}

/* Reads exactly `n` bytes. 0, or -1 with errno (end of file before `n` bytes: EPIPE). */
static int read_exact(int fd, unsigned char *data, size_t n, int64_t deadline) {
  while (n > 0) {
    ssize_t r = read(fd, data, n);
    if (r > 0) {
      data += r;
      n -= (size_t)r;
    } else if (r == 0) {
      errno = EPIPE;
      return -1;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_ready(fd, POLLIN, deadline) < 0) return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/* Appends everything `fd` holds until end of file. 0 at EOF; -1 on a read error or when
 * the bytes could not fit in one frame (what was read stays in `b`, the rest in `fd`). */
static int read_to_eof(int fd, struct buf *b) {
  for (;;) {
    size_t room = (size_t)FRAME_MAX + 4 - b->len; /* never negative: reads stop at the limit */
    if (room == 0 || buf_reserve(b, room < 65536 ? room : 65536) < 0) return -1;
    if (room > b->cap - b->len) room = b->cap - b->len;
    ssize_t r = read(fd, b->data + b->len, room);
    if (r > 0) {
      b->len += (size_t)r;
    } else if (r == 0) {
      return 0;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_ready(fd, POLLIN, -1) < 0) return -1;
    } else {
      return -1;
    }
  }
}

/* ---- SHA-256 (FIPS 180-4), for the control socket's name ---- */

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, int n) { return x >> n | x << (32 - n); }

static void sha256_block(uint32_t h[8], const unsigned char block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = be32_load(block + 4 * i);
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = k + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
    uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha256(const unsigned char *data, size_t n, unsigned char out[32]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char tail[128] = {0};
  size_t full = n - n % 64;
  for (size_t i = 0; i < full; i += 64) sha256_block(h, data + i);
  size_t rest = n - full;
  if (rest != 0) memcpy(tail, data + full, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest < 56 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
  for (size_t i = 0; i < tail_len; i += 64) sha256_block(h, tail + i);
  for (int i = 0; i < 8; i++) be32_store(out + 4 * i, h[i]);
}

/* ---- the command line (Go `flag` rules, as shim/flags.ts parses it) ---- */

struct command {
  const char *address; /* -address, "" when absent */
  int action_index;    /* argv index of the action, or argc when there is none */
  int version;         /* -v */
  int info;            /* -info */
};

enum parsed { PARSED, USAGE_ERROR, UNKNOWN_FLAG };

static const char *const string_flags[] = {"namespace", "address", "publish-binary", "id", "bundle", "socket", "debug-socket"};
static const char *const bool_flags[] = {"debug", "info", "v"};

static int flag_index(const char *const *names, size_t count, const char *name, size_t len) {
  for (size_t i = 0; i < count; i++) {
    if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0) return (int)i;
  }
  return -1;
}

/* Go's strconv.ParseBool: 1 true, 0 false, -1 invalid. */
static int parse_bool(const char *v) {
  static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
  static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
  for (size_t i = 0; i < 6; i++) {
    if (strcmp(v, yes[i]) == 0) return 1;
    if (strcmp(v, no[i]) == 0) return 0;
  }
  return -1;
}

/* Finds -address, -v, -info and the action. A malformed command line is a usage error
 * (the sentence goes to `err`, the words are shim/flags.ts's). A flag we do not know
 * is UNKNOWN_FLAG: we cannot tell whether it takes a value, so the Node CLI, which owns
 * the flag table, decides (a flag added there keeps working through the slow path). */
static enum parsed parse_command_line(int argc, char **argv, struct command *cmd, char *err, size_t err_len) {
  *cmd = (struct command){.address = "", .action_index = argc, .version = 0, .info = 0};
  int i = 1;
  for (; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      i++;
      break;
    }
    if (strlen(arg) < 2 || arg[0] != '-') break;
    const char *body = arg[1] == '-' ? arg + 2 : arg + 1;
    if (body[0] == '\0' || body[0] == '-' || body[0] == '=') {
      snprintf(err, err_len, "bad flag syntax: %s", arg);
      return USAGE_ERROR;
    }
    const char *eq = strchr(body, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - body) : strlen(body);
    int b = flag_index(bool_flags, sizeof bool_flags / sizeof bool_flags[0], body, name_len);
    if (b >= 0) {
      int value = eq != NULL ? parse_bool(eq + 1) : 1;
      if (value < 0) {
        snprintf(err, err_len, "invalid boolean value \"%s\" for -%s: use true or false", eq + 1, bool_flags[b]);
        return USAGE_ERROR;
      }
      if (strcmp(bool_flags[b], "info") == 0) cmd->info = value;
      if (strcmp(bool_flags[b], "v") == 0) cmd->version = value;
      continue;
    }
    int s = flag_index(string_flags, sizeof string_flags / sizeof string_flags[0], body, name_len);
    if (s < 0) return UNKNOWN_FLAG;
    const char *value = eq != NULL ? eq + 1 : argv[i + 1];
    if (value == NULL) {
      snprintf(err, err_len, "flag needs an argument: -%s", string_flags[s]);
      return USAGE_ERROR;
    }
    if (eq == NULL) i++;
    if (strcmp(string_flags[s], "address") == 0) cmd->address = value;
  }
  cmd->action_index = i;
  return PARSED;
}

/* ---- the Node CLI (daemon path and fallback) ---- */

/* Gives `bytes`, then whatever stdin still holds (when we stopped early), back to the
 * Node CLI as its stdin. A memfd, not a pipe: it holds any size without a writer
 * process, and `readFileSync(0)` reads a regular file the same. */
static int replace_stdin(const struct buf *bytes, int drain_rest) {
  int fd = memfd_create("tsrun-stdin", MFD_CLOEXEC);
  if (fd < 0) return -1;
  int ok = write_all(fd, bytes->data, bytes->len, 0, -1) == 0;
  while (ok && drain_rest) {
    unsigned char chunk[65536];
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ok = wait_ready(0, POLLIN, -1) == 0;
      continue;
    }
    if (r <= 0) break; /* end of file, or the error that stopped us before: the CLI gets what there was */
    ok = write_all(fd, chunk, (size_t)r, 0, -1) == 0;
  }
  ok = ok && lseek(fd, 0, SEEK_SET) == 0 && dup2(fd, 0) == 0;
  close(fd);
  return ok ? 0 : -1;
}

/* Whether `entry` ("KEY=value") is one of Node's own variables, NODE_*. */
static int is_node_variable(const char *entry) { return strncmp(entry, "NODE_", 5) == 0; }

/* execv(node, args) for every Node this program starts (the Node CLI, the manager, the
 * first spare), with the environment minus every NODE_* variable: those configure Node
 * itself, not tsrun, and a containerd started from a developer's shell may carry them.
 * NODE_EXTRA_CA_CERTS is read and parsed at every boot (with Debian's 225 KB bundle an
 * empty `node -e 0` takes 76 ms here, 27 ms without; no tsrun process makes a TLS
 * connection); NODE_OPTIONS=--require of a missing file stops Node, --inspect and
 * NODE_DEBUG write to stderr, which containerd reads together with `start`'s address.
 * The manager still gets them in the request's environment: that is containerd's,
 * forwarded unchanged. Without memory for the copy, Node gets the environment as it is.
 * Returns only on failure. */
static void exec_node(const char *node, char **args) {
  size_t n = 0;
  while (environ[n] != NULL) n++;
  char **env = calloc(n + 1, sizeof *env);
  if (env == NULL) {
    execv(node, args);
    return;
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_node_variable(environ[i])) env[kept++] = environ[i];
  }
  execve(node, args, env);
  free(env);
}

/* execv(node, [node, main, argv[1..]]). `stdin_bytes` (or NULL: fd 0 untouched) are
 * the bytes already taken from stdin; `drain_rest` when fd 0 may hold more. Returns
 * only to report a failure, exit code 1. */
static int exec_node_cli(const char *node, const char *main_js, int argc, char **argv, const struct buf *stdin_bytes,
                         int drain_rest) {
  if (stdin_bytes != NULL && replace_stdin(stdin_bytes, drain_rest) < 0) {
    fprintf(stderr, PROGRAM ": cannot hand stdin to the Node CLI: %s\n", strerror(errno));
    return 1;
  }
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (args == NULL) {
    fprintf(stderr, PROGRAM ": out of memory\n");
    return 1;
  }
  args[0] = (char *)node;
  args[1] = (char *)main_js;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  exec_node(node, args);
  fprintf(stderr, PROGRAM ": cannot run %s %s: %s (rebuild with `npm install`, or set TSRUN_NODE and TSRUN_MAIN)\n",
          node, main_js, strerror(errno));
  free(args);
  return 1;
}

/* ---- the manager: control socket, lock, start ---- */

/* /run/tsrun/<first 16 hex digits of sha256(address)>.sock */
static void control_socket_path(const char *address, char *out, size_t out_len) {
  unsigned char digest[32];
  sha256((const unsigned char *)address, strlen(address), digest);
  snprintf(out, out_len, CONTROL_DIR "/%02x%02x%02x%02x%02x%02x%02x%02x.sock", digest[0], digest[1], digest[2],
           digest[3], digest[4], digest[5], digest[6], digest[7]);
}

/* Creates CONTROL_DIR (0700) if needed. We trust it only when we own it and nobody
 * else may write to it: anyone who can plant a socket there would get our requests. */
static int control_dir_ready(void) {
  if (mkdir(CONTROL_DIR, 0700) < 0 && errno != EEXIST) return -1;
  struct stat st;
  if (lstat(CONTROL_DIR, &st) < 0) return -1;
  return S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 022) == 0 ? 0 : -1;
}

/* One connect attempt. The socket is non-blocking so a manager that stopped accepting
 * cannot hold us: a full backlog is EAGAIN, which is retried until `deadline`. Returns
 * the fd, or -1 with *error set (ENOENT or ECONNREFUSED: no manager listens). */
static int connect_manager(const char *path, int64_t deadline, int *error) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *error = errno;
      return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc < 0 && errno == EINPROGRESS) {
      int so_error = 0;
      socklen_t len = sizeof so_error;
      rc = wait_ready(fd, POLLOUT, deadline) < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0 ? -1 : 0;
      if (rc == 0 && so_error != 0) rc = -1, errno = so_error;
    }
    if (rc == 0) {
      /* The listener must be us (same uid): the directory check covers this, the
       * kernel's word on the peer makes it independent of the directory. */
      struct ucred peer;
      socklen_t len = sizeof peer;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.uid == geteuid()) return fd;
      close(fd);
      *error = EPERM;
      return -1;
    }
    *error = errno;
    close(fd);
    if ((*error != EAGAIN && *error != EINTR) || now_ms() >= deadline) return -1;
    sleep_ms(1);
  }
}

static int no_manager(int error) { return error == ENOENT || error == ECONNREFUSED; }

/* `fd` as `target`, inherited across exec: dup2 (which clears close-on-exec on the copy),
 * or, when it already is `target`, clearing close-on-exec itself. -1 on failure. */
static int keep_as(int fd, int target) {
  if (fd == target) return fcntl(fd, F_SETFD, 0);
  if (dup2(fd, target) < 0) return -1;
  close(fd);
  return 0;
}

/* The first spare, forked by the manager-to-be just before it execs the manager, so that
 * both Nodes boot at once instead of one after the other (the manager would otherwise
 * boot its spare only once it serves: on the very first start that is a second boot in
 * a row on containerd's path). `channel` becomes its fd 3, as a spare the manager spawns
 * gets it (shim/spare.ts); it gets a session of its own like those. Never returns. */
static void exec_first_spare(const char *node, const char *main_js, const char *address, int channel, int other) {
  close(other);
  if (setsid() < 0 || keep_as(channel, 3) < 0) _exit(127);
  char *args[] = {(char *)node, (char *)main_js, "-spare", "-address", (char *)address, NULL};
  exec_node(node, args);
  _exit(127);
}

/* In the manager process, before exec: a clean daemon that shares nothing with the
 * launcher or containerd but the environment, and its first spare booting beside it
 * (unless TSRUN_MANAGER_SPARE=0), its child, told to the manager as `-spare-pid <pid>`
 * with the spare's channel on fd 3. Without a socketpair or a fork the manager boots
 * its spare itself. Never returns. */
static void exec_manager(const char *node, const char *main_js, const char *address) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL); /* SIGKILL/SIGSTOP fail: harmless */
  if (chdir("/") < 0) _exit(127); /* not the bundle: it is removed while we run */
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC); /* dup2 leaves 0-2 inheritable */
  if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0) _exit(127);
  /* Every other fd: the lock, the stdin containerd gave this `start`, whatever else a
   * parent leaked. containerd waits for every holder of start's stdout to close it. */
  if (close_range(3, ~0u, 0) < 0) {
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 1024); fd++) close((int)fd);
  }
  char spare_pid[16] = "";
  const char *no_spare = getenv("TSRUN_MANAGER_SPARE");
  int pair[2];
  if ((no_spare == NULL || strcmp(no_spare, "0") != 0) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
    pid_t spare = fork();
    if (spare == 0) exec_first_spare(node, main_js, address, pair[1], pair[0]);
    close(pair[1]);
    if (spare > 0 && keep_as(pair[0], 3) == 0) {
      snprintf(spare_pid, sizeof spare_pid, "%d", (int)spare);
    } else {
      close(pair[0]); /* a forked spare sees end of file on its channel and exits */
    }
  }
  char *args[] = {(char *)node, (char *)main_js, "-manager", "-address", (char *)address, NULL, NULL, NULL};
  if (spare_pid[0] != '\0') {
    args[5] = "-spare-pid";
    args[6] = spare_pid;
  }
  exec_node(node, args);
  _exit(127);
}

/* Starts a manager that is not our child: fork; the child calls setsid (a session of
 * its own: no controlling terminal, no signals aimed at containerd's process group),
 * forks the manager, sends us its pid and exits at once; we reap that child here, so
 * the manager is reaped by init (or the nearest subreaper) when it exits, never left to
 * us or to the Node CLI we may exec. Returns a pidfd of the manager, readable once it
 * has exited (so a manager that dies while booting costs us no 3 s wait), -2 when it was
 * started but no pidfd could be had, or -1 when it could not be started. */
static int start_manager(const char *node, const char *main_js, const char *address) {
  int pid_pipe[2];
  if (pipe2(pid_pipe, O_CLOEXEC) < 0) return -1;
  pid_t child = fork();
  if (child < 0) {
    close(pid_pipe[0]);
    close(pid_pipe[1]);
    return -1;
  }
  if (child == 0) {
    close(pid_pipe[0]);
    if (setsid() < 0) _exit(1);
    pid_t manager = fork();
    if (manager == 0) exec_manager(node, main_js, address);
    _exit(manager < 0 || write(pid_pipe[1], &manager, sizeof manager) != sizeof manager ? 1 : 0);
  }
  close(pid_pipe[1]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t manager = 0;
  int got_pid = read_exact(pid_pipe[0], (unsigned char *)&manager, sizeof manager, -1) == 0;
  close(pid_pipe[0]);
  if (!got_pid) return -1; /* the middle process failed before forking the manager */
  /* The pid cannot be reused before we open it: it would take the manager's exit, its
   * reaping by someone else and a wrap of the pid space in these microseconds. */
  int pidfd = pidfd_open(manager, 0);
  if (pidfd >= 0) return pidfd;
  return errno == ESRCH ? -1 : -2;
}

/* A connection to the manager, starting it if no one listens. -1 when there is no
 * manager to talk to in time: the caller falls back to the Node CLI. */
static int reach_manager(const char *node, const char *main_js, const char *address) {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char lock_path[sizeof path + 8];
  int error = 0;
  if (control_dir_ready() < 0) return -1;
  control_socket_path(address, path, sizeof path);
  int fd = connect_manager(path, now_ms() + MANAGER_BOOT_MS, &error);
  if (fd >= 0 || !no_manager(error)) return fd;

  /* No manager. The launcher that takes the lock at once starts it; the others wait
   * for the socket (or the lock, bounded a little above the holder's MANAGER_BOOT_MS).
   * A launcher that had to wait never starts one itself: the holder just tried, and a
   * manager that failed or is still booting must not be started twice, nor twenty
   * times in a row by a queue of launchers. It falls back to the Node CLI instead. */
  snprintf(lock_path, sizeof lock_path, "%s.lock", path);
  int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0) return -1;
  int contended = 0;
  int64_t lock_deadline = now_ms() + LOCK_WAIT_MS;
  while (flock(lock, LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) goto out;
    contended = 1;
    fd = connect_manager(path, now_ms() + MANAGER_BOOT_MS, &error);
    if (fd >= 0 || !no_manager(error) || now_ms() >= lock_deadline) goto out;
    sleep_ms(POLL_INTERVAL_MS);
  }
  /* Holding the lock: someone may have started it between our first try and now. */
  fd = connect_manager(path, now_ms() + MANAGER_BOOT_MS, &error);
  if (fd >= 0 || !no_manager(error) || contended) goto out;
  int pidfd = start_manager(node, main_js, address);
  if (pidfd == -1) goto out;
  int64_t boot_deadline = now_ms() + MANAGER_BOOT_MS;
  for (;;) {
    fd = connect_manager(path, boot_deadline, &error);
    if (fd >= 0 || !no_manager(error) || now_ms() >= boot_deadline) break;
    if (pidfd < 0) {
      sleep_ms(POLL_INTERVAL_MS);
    } else if (wait_ready(pidfd, POLLIN, now_ms() + POLL_INTERVAL_MS) == 0) {
      fd = connect_manager(path, boot_deadline, &error); /* it may have listened, then exited */
      break; /* the manager exited */
    }
  }
  if (pidfd >= 0) close(pidfd);
out:
  close(lock); /* releases the flock */
  return fd;
}

/* ---- one request, one response ---- */

struct response {
  unsigned char *frame;
  uint32_t exit_code;
  const unsigned char *out, *err;
  size_t out_len, err_len;
};

/* Sends the request frame and reads the response within EXCHANGE_MS. 0 with `res`
 * filled, or -1 (a response that does not parse exactly is a failure too). */
static int exchange(int sock, int argc, char **argv, const struct buf *in, struct response *res) {
  struct buf req = {0};
  char cwd[4096];
  size_t envc = 0;
  int ok = getcwd(cwd, sizeof cwd) != NULL && put_u32(&req, 0) == 0 && put_u32(&req, MAGIC) == 0 &&
           put_u32(&req, (uint32_t)(argc - 1)) == 0;
  for (int i = 1; ok && i < argc; i++) ok = put_string(&req, argv[i], strlen(argv[i])) == 0;
  while (environ[envc] != NULL) envc++;
  ok = ok && put_u32(&req, (uint32_t)envc) == 0;
  for (size_t i = 0; ok && i < envc; i++) ok = put_string(&req, environ[i], strlen(environ[i])) == 0;
  ok = ok && put_string(&req, cwd, strlen(cwd)) == 0 && put_u32(&req, (uint32_t)getppid()) == 0 &&
       put_string(&req, in->data, in->len) == 0 && req.len - 4 <= FRAME_MAX;
  int64_t deadline = now_ms() + EXCHANGE_MS;
  if (ok) be32_store(req.data, (uint32_t)(req.len - 4));
  ok = ok && write_all(sock, req.data, req.len, 1, deadline) == 0;
  free(req.data);

  unsigned char head[4];
  if (!ok || read_exact(sock, head, 4, deadline) < 0) return -1;
  uint32_t n = be32_load(head);
  if (n < 16 || n > FRAME_MAX || (res->frame = malloc(n)) == NULL) return -1;
  if (read_exact(sock, res->frame, n, deadline) < 0) return -1;
  const unsigned char *p = res->frame, *end = res->frame + n;
  if (be32_load(p) != MAGIC) return -1;
  res->exit_code = be32_load(p + 4);
  res->out_len = be32_load(p + 8);
  p += 12;
  if (res->exit_code > 255 || res->out_len > (size_t)(end - p) - 4) return -1;
  res->out = p;
  p += res->out_len;
  res->err_len = be32_load(p);
  p += 4;
  if (res->err_len != (size_t)(end - p)) return -1; /* nothing missing, nothing extra */
  res->err = p;
  return 0;
}

/* An override from the environment; empty counts as unset. */
static const char *env_or(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value != NULL && value[0] != '\0' ? value : fallback;
}

int main(int argc, char **argv) {
  const char *node = env_or("TSRUN_NODE", TSRUN_DEFAULT_NODE);
  const char *main_js = env_or("TSRUN_MAIN", TSRUN_DEFAULT_MAIN);
  const char *manager = getenv("TSRUN_MANAGER");
  struct command cmd;
  char err[512];

  switch (parse_command_line(argc, argv, &cmd, err, sizeof err)) {
    case USAGE_ERROR:
      fprintf(stderr, PROGRAM ": %s\n", err);
      return 2;
    case UNKNOWN_FLAG:
      return exec_node_cli(node, main_js, argc, argv, NULL, 0);
    case PARSED:
      break;
  }
  int is_daemon = cmd.action_index >= argc && !cmd.version && !cmd.info;
  /* A manager serves one containerd: without -address (a `-v` typed by hand, a script
   * checking the version) there is none to start, and one would idle for minutes. */
  int no_containerd = cmd.address == NULL || cmd.address[0] == '\0';
  if (is_daemon || no_containerd || (manager != NULL && strcmp(manager, "0") == 0)) return exec_node_cli(node, main_js, argc, argv, NULL, 0);

  /* containerd writes the runtime options on stdin for start and -info, then closes it.
   * Not from a terminal: `-info` typed by hand would wait for ^D (the Node CLI agrees). */
  struct buf in = {0};
  int stdin_taken = 0;
  int is_start = cmd.action_index < argc && strcmp(argv[cmd.action_index], "start") == 0;
  if ((is_start || cmd.info) && !isatty(0)) {
    stdin_taken = 1;
    if (read_to_eof(0, &in) < 0) return exec_node_cli(node, main_js, argc, argv, &in, 1);
  }

  int sock = reach_manager(node, main_js, cmd.address);
  struct response res = {0};
  if (sock < 0 || exchange(sock, argc, argv, &in, &res) < 0) {
    /* No answer: the manager did not run the request, or we cannot know it did. Running
     * it again is safe (start reuses a group daemon that answers; delete of a deleted
     * task succeeds), so the Node CLI does the whole job. */
    if (sock >= 0) close(sock);
    return exec_node_cli(node, main_js, argc, argv, stdin_taken ? &in : NULL, 0);
  }
  close(sock);
  write_all(2, res.err, res.err_len, 0, -1);
  if (write_all(1, res.out, res.out_len, 0, -1) < 0) return 1; /* containerd did not get the answer */
  return (int)res.exit_code;
}
