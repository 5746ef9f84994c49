#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define CAPTURE_MAX (64 * 1024)
#define RESPONSE_MAX (4 * 1024 * 1024)
#define MAX_BUFFERED_FDS 1024

extern char **environ;

uint64_t fwt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fwt_sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Clears inherited FLAGWIRE_* variables so that a test sees only what it sets, then adds
 * `env`. Runs in the child between fork and exec. */
static void child_environment(const char *const *env) {
  for (;;) {
    char **entry = environ;
    while (*entry && strncmp(*entry, "FLAGWIRE_", 9) != 0)
      entry++;
    if (!*entry)
      break;
    char name[256];
    size_t len = strcspn(*entry, "=");
    if (len >= sizeof name)
      _exit(127);
    memcpy(name, *entry, len);
    name[len] = '\0';
    unsetenv(name);
  }
  for (size_t i = 0; env && env[i]; i++)
    if (putenv((char *)env[i]) != 0)
      _exit(127);
}

static size_t count_args(const char *const *args) {
  size_t n = 0;
  while (args && args[n])
    n++;
  return n;
}

static char *read_file_text(const char *path) {
  FILE *file = fopen(path, "rb");
  if (!file)
    return strdup("");
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
    if (len + got + 1 > cap) {
      cap = (len + got + 1) * 2;
      text = realloc(text, cap);
      assert_non_null(text);
    }
    memcpy(text + len, chunk, got);
    len += got;
  }
  fclose(file);
  if (!text)
    return strdup("");
  text[len] = '\0';
  return text;
}

char *fwt_server_log(const struct fwt_server *server) { return read_file_text(server->log_path); }

static void start_process(struct fwt_server *server, bool ephemeral_port, const char *const *args,
                          const char *const *env) {
  memset(server, 0, sizeof *server);
  snprintf(server->dir, sizeof server->dir, "/tmp/flagwire-test-XXXXXX");
  assert_non_null(mkdtemp(server->dir));
  snprintf(server->data_dir, sizeof server->data_dir, "%s/data", server->dir);
  snprintf(server->log_path, sizeof server->log_path, "%s/server.log", server->dir);

  const char *fixed[] = {FLAGWIRE_BINARY, "serve",  "--data",    server->data_dir, "--log-format",
                         "json",          "--host", "127.0.0.1", "--port",         "0"};
  size_t fixed_count = sizeof fixed / sizeof fixed[0] - (ephemeral_port ? 0 : 4);
  size_t extra = count_args(args);
  const char **argv = calloc(fixed_count + extra + 1, sizeof *argv);
  assert_non_null(argv);
  memcpy(argv, fixed, fixed_count * sizeof fixed[0]);
  for (size_t i = 0; i < extra; i++)
    argv[fixed_count + i] = args[i];

  int out[2];
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  int log_fd = open(server->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  assert_true(log_fd >= 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    child_environment(env);
    execv(FLAGWIRE_BINARY, (char *const *)argv);
    _exit(127);
  }
  free(argv);
  close(out[1]);
  close(log_fd);
  server->pid = pid;

  /* Standard output carries the first admin token (on an empty store), then the
   * listening line. */
  char output[1024];
  size_t len = 0;
  output[0] = '\0';
  const char *prefix = "flagwire listening on http://127.0.0.1:";
  uint64_t deadline = fwt_now_ms() + FWT_WAIT_MS;
  const char *at = NULL;
  while (!(at = strstr(output, prefix)) || !strchr(at, '\n')) {
    int left = (int)(deadline - fwt_now_ms());
    struct pollfd pfd = {.fd = out[0], .events = POLLIN};
    if (left <= 0 || poll(&pfd, 1, left) <= 0)
      break;
    ssize_t got = read(out[0], output + len, sizeof output - 1 - len);
    if (got <= 0)
      break;
    len += (size_t)got;
    output[len] = '\0';
  }
  close(out[0]);
  if (!at || !strchr(at, '\n')) {
    char *log = fwt_server_log(server);
    char excerpt[4096];
    snprintf(excerpt, sizeof excerpt, "%s", log);
    free(log);
    fail_msg("the server did not start; stdout: '%s'; log:\n%s", output, excerpt);
  }
  const char *token = strstr(output, "fw_adm_");
  if (token)
    snprintf(server->admin_token, sizeof server->admin_token, "%.*s", (int)strcspn(token, "\n"),
             token);
  server->port = (uint16_t)atoi(at + strlen(prefix));
  assert_true(server->port > 0);
}

void fwt_server_start(struct fwt_server *server, const char *const *args, const char *const *env) {
  start_process(server, true, args, env);
}

void fwt_server_start_bare(struct fwt_server *server, const char *const *args,
                           const char *const *env) {
  start_process(server, false, args, env);
}

int fwt_server_wait(struct fwt_server *server, int timeout_ms) {
  if (server->pid <= 0)
    return -1;
  uint64_t deadline = fwt_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int status;
    pid_t done = waitpid(server->pid, &status, WNOHANG);
    if (done == server->pid) {
      server->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (fwt_now_ms() >= deadline)
      return -1;
    fwt_sleep_ms(10);
  }
}

int fwt_server_signal_and_wait(struct fwt_server *server, int sig, int timeout_ms) {
  assert_true(server->pid > 0);
  assert_int_equal(kill(server->pid, sig), 0);
  int status = fwt_server_wait(server, timeout_ms);
  if (status < 0)
    fail_msg("the server did not exit within %d ms of signal %d", timeout_ms, sig);
  return status;
}

static void remove_tree(const char *path) {
  DIR *dir = opendir(path);
  if (dir) {
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
      if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
        continue;
      char child[1024];
      snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
      remove_tree(child);
    }
    closedir(dir);
    rmdir(path);
  } else {
    unlink(path);
  }
}

void fwt_server_cleanup(struct fwt_server *server) {
  if (server->pid > 0) {
    kill(server->pid, SIGTERM);
    if (fwt_server_wait(server, FWT_WAIT_MS) < 0) {
      kill(server->pid, SIGKILL);
      waitpid(server->pid, NULL, 0);
      server->pid = 0;
    }
  }
  if (server->dir[0])
    remove_tree(server->dir);
}

/* Appends what `fd` has to `text` (capped); returns false at EOF. */
static bool capture_some(int fd, char *text, size_t *len) {
  char chunk[4096];
  ssize_t got = read(fd, chunk, sizeof chunk);
  if (got <= 0)
    return false;
  size_t take = (size_t)got;
  if (*len + take > CAPTURE_MAX)
    take = CAPTURE_MAX - *len;
  memcpy(text + *len, chunk, take);
  *len += take;
  return true;
}

int fwt_run(const char *const *argv, const char *const *env, char **out, char **err) {
  size_t count = count_args(argv);
  const char **full = calloc(count + 2, sizeof *full);
  assert_non_null(full);
  full[0] = FLAGWIRE_BINARY;
  for (size_t i = 0; i < count; i++)
    full[i + 1] = argv[i];

  int out_pipe[2], err_pipe[2];
  assert_int_equal(pipe2(out_pipe, O_CLOEXEC), 0);
  assert_int_equal(pipe2(err_pipe, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    child_environment(env);
    execv(FLAGWIRE_BINARY, (char *const *)full);
    _exit(127);
  }
  free(full);
  close(out_pipe[1]);
  close(err_pipe[1]);

  char *out_text = calloc(1, CAPTURE_MAX + 1), *err_text = calloc(1, CAPTURE_MAX + 1);
  assert_non_null(out_text);
  assert_non_null(err_text);
  size_t out_len = 0, err_len = 0;
  struct pollfd fds[2] = {{.fd = out_pipe[0], .events = POLLIN},
                          {.fd = err_pipe[0], .events = POLLIN}};
  uint64_t deadline = fwt_now_ms() + FWT_WAIT_MS;
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    int left = (int)(deadline - fwt_now_ms());
    if (left <= 0 || poll(fds, 2, left) <= 0)
      break;
    if (fds[0].revents && !capture_some(out_pipe[0], out_text, &out_len))
      fds[0].fd = -1;
    if (fds[1].revents && !capture_some(err_pipe[0], err_text, &err_len))
      fds[1].fd = -1;
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  struct fwt_server process = {.pid = pid};
  int status = fwt_server_wait(&process, FWT_WAIT_MS);
  if (status < 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("flagwire %s did not exit", argv[0] ? argv[0] : "");
  }
  *out = out_text;
  *err = err_text;
  return status;
}

int fwt_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    fail_msg("connect to port %u: %s", port, strerror(errno));
  struct timeval timeout = {.tv_sec = FWT_WAIT_MS / 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void fwt_send(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t sent = send(fd, data, len, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR)
      continue;
    if (sent <= 0)
      fail_msg("send: %s", strerror(errno));
    data += sent;
    len -= (size_t)sent;
  }
}

void fwt_sendf(int fd, const char *fmt, ...) {
  char text[16384];
  va_list args;
  va_start(args, fmt);
  int len = vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  assert_true(len >= 0 && (size_t)len < sizeof text);
  fwt_send(fd, text, (size_t)len);
}

/* Bytes read from a connection but not yet returned as a response: pipelined responses
 * arrive together. Indexed by descriptor. */
struct pending_input {
  char *data;
  size_t len;
};
static struct pending_input pending[MAX_BUFFERED_FDS];

static struct pending_input *pending_for(int fd) {
  assert_true(fd >= 0 && fd < MAX_BUFFERED_FDS);
  return &pending[fd];
}

/* Reads more bytes into the pending input; returns false at EOF or reset. Fails the
 * test on timeout. */
static bool read_more(int fd) {
  struct pending_input *in = pending_for(fd);
  char chunk[16384];
  ssize_t got;
  do {
    got = recv(fd, chunk, sizeof chunk, 0);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    fail_msg("no response within %d ms", FWT_WAIT_MS);
  if (got <= 0)
    return false;
  assert_true(in->len + (size_t)got <= RESPONSE_MAX);
  in->data = realloc(in->data, in->len + (size_t)got + 1);
  assert_non_null(in->data);
  memcpy(in->data + in->len, chunk, (size_t)got);
  in->len += (size_t)got;
  in->data[in->len] = '\0';
  return true;
}

static void consume(struct pending_input *in, size_t count) {
  memmove(in->data, in->data + count, in->len - count);
  in->len -= count;
  in->data[in->len] = '\0';
}

static bool head_value(const char *head, const char *name, char *out, size_t out_len) {
  size_t name_len = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    const char *start = line + 2;
    if (!strncasecmp(start, name, name_len) && start[name_len] == ':') {
      const char *value = start + name_len + 1;
      while (*value == ' ')
        value++;
      size_t len = strcspn(value, "\r");
      if (len >= out_len)
        len = out_len - 1;
      memcpy(out, value, len);
      out[len] = '\0';
      return true;
    }
  }
  return false;
}

bool fwt_read_response(int fd, struct fwt_response *res, bool head_only) {
  memset(res, 0, sizeof *res);
  struct pending_input *in = pending_for(fd);
  char *end = NULL;
  while (!in->data || !(end = strstr(in->data, "\r\n\r\n"))) {
    if (!read_more(fd)) {
      if (in->len == 0)
        return false;
      fail_msg("connection closed inside a response head: '%.*s'", (int)in->len, in->data);
    }
  }
  size_t head_len = (size_t)(end - in->data) + 4;
  res->head = strndup(in->data, head_len);
  assert_non_null(res->head);
  if (sscanf(res->head, "HTTP/1.%*d %d", &res->status) != 1)
    fail_msg("malformed status line: '%s'", res->head);
  consume(in, head_len);

  char length_text[32];
  bool bodiless = head_only || res->status < 200 || res->status == 204 || res->status == 304;
  if (bodiless) {
    res->body = strdup("");
  } else if (head_value(res->head, "Content-Length", length_text, sizeof length_text)) {
    size_t length = strtoul(length_text, NULL, 10);
    while (in->len < length)
      if (!read_more(fd))
        fail_msg("connection closed inside a body of %zu bytes", length);
    res->body = strndup(in->data, length);
    res->body_len = length;
    consume(in, length);
  } else {
    while (read_more(fd)) {
    }
    res->body = strndup(in->data ? in->data : "", in->len);
    res->body_len = in->len;
    if (in->len)
      consume(in, in->len);
  }
  assert_non_null(res->body);
  return true;
}

void fwt_response_free(struct fwt_response *res) {
  free(res->head);
  free(res->body);
  memset(res, 0, sizeof *res);
}

bool fwt_header(const struct fwt_response *res, const char *name, char *out, size_t out_len) {
  return head_value(res->head, name, out, out_len);
}

void fwt_close(int fd) {
  struct pending_input *in = pending_for(fd);
  free(in->data);
  in->data = NULL;
  in->len = 0;
  close(fd);
}

void fwt_exchange(uint16_t port, const char *request, struct fwt_response *res) {
  int fd = fwt_connect(port);
  fwt_send(fd, request, strlen(request));
  assert_true(fwt_read_response(fd, res, !strncmp(request, "HEAD ", 5)));
  fwt_close(fd);
}

void fwt_request(uint16_t port, const char *method, const char *path, const char *token,
                 const char *headers, const char *body, struct fwt_response *res) {
  int fd = fwt_connect(port);
  char auth[256] = "";
  if (token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  fwt_sendf(fd, "%s %s HTTP/1.1\r\nHost: x\r\n%s%s", method, path, auth, headers ? headers : "");
  if (body)
    fwt_sendf(
        fd, "%sContent-Length: %zu\r\n\r\n",
        headers && strcasestr(headers, "Content-Type:") ? "" : "Content-Type: application/json\r\n",
        strlen(body));
  else
    fwt_sendf(fd, "\r\n");
  if (body)
    fwt_send(fd, body, strlen(body));
  assert_true(fwt_read_response(fd, res, !strcmp(method, "HEAD")));
  fwt_close(fd);
}

bool fwt_wait_closed(int fd, int timeout_ms, char *got, size_t got_len) {
  struct pending_input *in = pending_for(fd);
  size_t used = 0;
  if (got && got_len) {
    used = in->len < got_len - 1 ? in->len : got_len - 1;
    if (used)
      memcpy(got, in->data, used);
    got[used] = '\0';
  }
  uint64_t deadline = fwt_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int left = (int)(deadline - fwt_now_ms());
    if (left <= 0)
      return false;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, left);
    if (ready <= 0)
      return false;
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0)
      return n == 0 || errno == ECONNRESET;
    if (got && used + 1 < got_len) {
      size_t take = (size_t)n < got_len - 1 - used ? (size_t)n : got_len - 1 - used;
      memcpy(got + used, chunk, take);
      used += take;
      got[used] = '\0';
    }
  }
}

uint16_t fwt_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  socklen_t len = sizeof addr;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}
