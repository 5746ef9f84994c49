#include "cli/client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/time.h"

/* The request line and headers we send, and the head we accept, are at most this big. */
#define HEAD_MAX (64u * 1024u)

/* ---- URLs ---- */

int fw_cli_url_parse(const char *text, struct fw_cli_url *url, char *error, size_t error_len) {
  memset(url, 0, sizeof *url);
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    if (*c <= 0x20 || *c == 0x7f) {
      snprintf(error, error_len, "the URL must not contain spaces or control characters");
      return FW_EINVAL;
    }
  }
  if (strncasecmp(text, "https://", 8) == 0) {
    snprintf(error, error_len,
             "https is not supported: use an http:// URL (behind a TLS-terminating proxy, "
             "give the proxy's plain-HTTP side)");
    return FW_EINVAL;
  }
  if (strncasecmp(text, "http://", 7) != 0) {
    snprintf(error, error_len, "the URL must start with http:// ('%.200s')", text);
    return FW_EINVAL;
  }
  const char *authority = text + 7;
  size_t authority_len = strcspn(authority, "/?#");
  const char *path = authority + authority_len;
  if (strpbrk(path, "?#")) {
    snprintf(error, error_len, "the URL must not have a query or a fragment");
    return FW_EINVAL;
  }
  if (memchr(authority, '@', authority_len)) {
    snprintf(error, error_len, "the URL must not hold a user name or password");
    return FW_EINVAL;
  }
  if (authority_len == 0 || authority_len >= sizeof url->authority) {
    snprintf(error, error_len, "the URL must name a host (of at most %zu bytes)",
             sizeof url->host - 1);
    return FW_EINVAL;
  }
  memcpy(url->authority, authority, authority_len);

  /* host, [v6-literal], then an optional :port */
  const char *host = authority, *after_host;
  size_t host_len;
  if (authority[0] == '[') {
    const char *close = memchr(authority, ']', authority_len);
    if (!close) {
      snprintf(error, error_len, "the URL's IPv6 address lacks its closing ']'");
      return FW_EINVAL;
    }
    host = authority + 1;
    host_len = (size_t)(close - host);
    after_host = close + 1;
  } else {
    host_len = strcspn(authority, ":/");
    if (host_len > authority_len)
      host_len = authority_len;
    after_host = authority + host_len;
  }
  if (host_len == 0 || host_len >= sizeof url->host) {
    snprintf(error, error_len, "the URL must name a host (of at most %zu bytes)",
             sizeof url->host - 1);
    return FW_EINVAL;
  }
  memcpy(url->host, host, host_len);
  snprintf(url->port, sizeof url->port, "80");
  if (after_host < path) {
    size_t digits = (size_t)(path - after_host) - 1;
    unsigned long port = 0;
    bool valid = after_host[0] == ':' && digits >= 1 && digits <= 5;
    for (size_t i = 1; valid && i <= digits; i++) {
      valid = after_host[i] >= '0' && after_host[i] <= '9';
      port = port * 10 + (unsigned long)(after_host[i] - '0');
    }
    if (!valid || port == 0 || port > 65535) {
      snprintf(error, error_len, "the URL's port must be a number from 1 to 65535");
      return FW_EINVAL;
    }
    snprintf(url->port, sizeof url->port, "%lu", port);
  }

  size_t base_len = strlen(path);
  while (base_len > 0 && path[base_len - 1] == '/')
    base_len--;
  if (base_len >= sizeof url->base) {
    snprintf(error, error_len, "the URL's path is longer than %zu bytes", sizeof url->base - 1);
    return FW_EINVAL;
  }
  memcpy(url->base, path, base_len);
  return FW_OK;
}

/* ---- connecting ---- */

/* Milliseconds left until `deadline`, at most `cap`; 0 once it has passed. */
static int remaining_ms(uint64_t deadline, int cap) {
  uint64_t now = fw_time_mono_ms();
  if (now >= deadline)
    return 0;
  uint64_t left = deadline - now;
  return left < (uint64_t)cap ? (int)left : cap;
}

/* Waits until `fd` is ready for `events`; false on timeout (errno ETIMEDOUT) or error. */
static bool wait_ready(int fd, short events, int timeout_ms) {
  struct pollfd pfd = {.fd = fd, .events = events};
  for (;;) {
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready > 0)
      return true;
    if (ready == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR)
      return false;
  }
}

/* One non-blocking connect, bounded by `timeout_ms`; the socket or -1 with errno set. */
static int connect_one(const struct addrinfo *ai, int timeout_ms) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0)
    return -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return fd;
  int err = errno;
  if (err == EINPROGRESS) {
    socklen_t len = sizeof err;
    if (!wait_ready(fd, POLLOUT, timeout_ms) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
      err = errno;
    if (err == 0)
      return fd;
  }
  close(fd);
  errno = err;
  return -1;
}

/* Tries every address of the host in turn (a name may resolve to ::1 first while the
 * server listens on 127.0.0.1 only). */
static int connect_to(const struct fw_cli_url *url, uint64_t deadline, char *error,
                      size_t error_len) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *list = NULL;
  int gai = getaddrinfo(url->host, url->port, &hints, &list);
  if (gai != 0) {
    snprintf(error, error_len, "cannot resolve '%s': %s", url->host,
             gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    return -1;
  }
  int fd = -1, err = ETIMEDOUT;
  for (const struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
    int timeout = remaining_ms(deadline, FW_CLI_CONNECT_TIMEOUT_MS);
    if (timeout == 0)
      break;
    fd = connect_one(ai, timeout);
    if (fd < 0)
      err = errno;
  }
  freeaddrinfo(list);
  if (fd < 0)
    snprintf(error, error_len, "cannot connect to %s: %s", url->authority, strerror(err));
  return fd;
}

/* ---- the exchange ---- */

/* Sends all of `data`; false with errno set on failure or timeout. */
static bool send_all(int fd, const char *data, size_t len, uint64_t deadline) {
  while (len > 0) {
    ssize_t sent = send(fd, data, len, MSG_NOSIGNAL);
    if (sent > 0) {
      data += sent;
      len -= (size_t)sent;
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_ready(fd, POLLOUT, remaining_ms(deadline, FW_CLI_EXCHANGE_TIMEOUT_MS)))
        return false;
    } else {
      return false;
    }
  }
  return true;
}

/* Whether the header line [line, end) is `name: ...`; the value, trimmed, in *value. */
static bool header_is(const char *line, const char *end, const char *name, const char **value,
                      size_t *value_len) {
  size_t name_len = strlen(name);
  if ((size_t)(end - line) <= name_len || strncasecmp(line, name, name_len) != 0 ||
      line[name_len] != ':')
    return false;
  const char *v = line + name_len + 1;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  const char *v_end = end;
  while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
    v_end--;
  *value = v;
  *value_len = (size_t)(v_end - v);
  return true;
}

/* What the head of a response says about its body. */
struct head_info {
  int status;
  bool has_length;
  size_t length;
};

/* Parses the head [head, head + len) (ending in the blank line). */
static int parse_head(const char *head, size_t len, struct head_info *info, char *error,
                      size_t error_len) {
  memset(info, 0, sizeof *info);
  if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' || head[9] < '1' ||
      head[9] > '5' || head[10] < '0' || head[10] > '9' || head[11] < '0' || head[11] > '9') {
    snprintf(error, error_len, "the answer is not HTTP/1.x");
    return FW_EINVAL;
  }
  info->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
  const char *end = head + len;
  const char *line = memchr(head, '\n', len);
  while (line && ++line < end) {
    const char *line_end = memchr(line, '\n', (size_t)(end - line));
    if (!line_end)
      break;
    const char *text_end = line_end > line && line_end[-1] == '\r' ? line_end - 1 : line_end;
    const char *value;
    size_t value_len;
    if (header_is(line, text_end, "Transfer-Encoding", &value, &value_len)) {
      snprintf(error, error_len, "the answer uses Transfer-Encoding '%.*s', which is not read here",
               (int)(value_len < 40 ? value_len : 40), value);
      return FW_EINVAL;
    }
    if (header_is(line, text_end, "Content-Length", &value, &value_len)) {
      size_t length = 0;
      bool valid = value_len > 0 && value_len <= 12;
      for (size_t i = 0; valid && i < value_len; i++) {
        valid = value[i] >= '0' && value[i] <= '9';
        length = length * 10 + (size_t)(value[i] - '0');
      }
      if (!valid || (info->has_length && info->length != length)) {
        snprintf(error, error_len, "the answer has an invalid Content-Length");
        return FW_EINVAL;
      }
      info->has_length = true;
      info->length = length;
    }
    line = line_end;
  }
  return FW_OK;
}

/* Builds the request line and headers. */
static int build_head(struct fw_buf *head, const struct fw_cli_url *url,
                      const struct fw_cli_request *req) {
  int rc = fw_buf_appendf(head,
                          "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flagwire/" FLAGWIRE_VERSION
                          "\r\nAccept: application/json\r\nConnection: close\r\n",
                          req->method, url->base, req->target, url->authority);
  if (!rc && req->token)
    rc = fw_buf_appendf(head, "Authorization: Bearer %s\r\n", req->token);
  if (!rc && req->content_type)
    rc = fw_buf_appendf(head, "Content-Type: %s\r\nContent-Length: %zu\r\n", req->content_type,
                        req->body_len);
  if (!rc)
    rc = fw_buf_append_str(head, "\r\n");
  return rc;
}

/* Reads the response into `wire` until its body is complete (by Content-Length) or the
 * server closes; then leaves only the body in `wire`. */
static int read_response(int fd, uint64_t deadline, struct fw_buf *wire, int *status, char *error,
                         size_t error_len) {
  struct head_info info = {0};
  size_t head_len = 0;
  for (;;) {
    if (head_len && info.has_length && wire->len - head_len >= info.length)
      break;
    if (!wait_ready(fd, POLLIN, remaining_ms(deadline, FW_CLI_EXCHANGE_TIMEOUT_MS))) {
      snprintf(error, error_len, "no complete answer: %s", strerror(errno));
      return FW_EIO;
    }
    char chunk[16384];
    ssize_t got = recv(fd, chunk, sizeof chunk, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (got < 0) {
      snprintf(error, error_len, "reading the answer failed: %s", strerror(errno));
      return FW_EIO;
    }
    if (got <= 0)
      break;
    int rc = fw_buf_append(wire, chunk, (size_t)got);
    if (rc == FW_ETOOBIG)
      snprintf(error, error_len, "the answer is larger than %u bytes", FW_CLI_RESPONSE_MAX);
    else if (rc)
      snprintf(error, error_len, "reading the answer failed: %s", fw_strerror(rc));
    if (rc)
      return rc;
    if (!head_len) {
      const char *blank = memmem(wire->data, wire->len, "\r\n\r\n", 4);
      if (!blank && wire->len > HEAD_MAX) {
        snprintf(error, error_len, "the answer's head is larger than %u bytes", HEAD_MAX);
        return FW_EINVAL;
      }
      if (blank) {
        head_len = (size_t)(blank - wire->data) + 4;
        rc = parse_head(wire->data, head_len, &info, error, error_len);
        if (rc)
          return rc;
      }
    }
  }
  if (!head_len) {
    snprintf(error, error_len, "the server closed the connection without a complete answer");
    return wire->len ? FW_EINVAL : FW_EIO;
  }
  size_t body_len = wire->len - head_len;
  if (info.has_length && body_len < info.length) {
    snprintf(error, error_len, "the connection closed %zu bytes into an answer of %zu", body_len,
             info.length);
    return FW_EIO;
  }
  if (info.has_length)
    body_len = info.length;
  memmove(wire->data, wire->data + head_len, body_len);
  wire->len = body_len;
  wire->data[body_len] = '\0';
  *status = info.status;
  return FW_OK;
}

int fw_cli_exchange(const struct fw_cli_url *url, const struct fw_cli_request *req,
                    struct fw_cli_response *res, char *error, size_t error_len) {
  res->status = 0;
  fw_buf_init(&res->body, FW_CLI_RESPONSE_MAX);
  struct fw_buf head;
  fw_buf_init(&head, HEAD_MAX);
  int rc = build_head(&head, url, req);
  if (rc) {
    fw_buf_free(&head);
    snprintf(error, error_len, "the request cannot be built: %s", fw_strerror(rc));
    return rc;
  }
  uint64_t deadline = fw_time_mono_ms() + FW_CLI_EXCHANGE_TIMEOUT_MS;
  int fd = connect_to(url, deadline, error, error_len);
  if (fd < 0) {
    fw_buf_free(&head);
    return FW_EIO;
  }
  /* A failed send is not the end: the server may have answered already (a 413, say) and
   * closed, and its answer explains more than our errno would. */
  bool sent = send_all(fd, head.data, head.len, deadline) &&
              send_all(fd, req->body, req->body_len, deadline);
  int send_errno = errno;
  fw_buf_free(&head);
  rc = read_response(fd, deadline, &res->body, &res->status, error, error_len);
  close(fd);
  if (rc && !sent)
    snprintf(error, error_len, "sending the request failed: %s", strerror(send_errno));
  return rc;
}

void fw_cli_response_free(struct fw_cli_response *res) { fw_buf_free(&res->body); }
