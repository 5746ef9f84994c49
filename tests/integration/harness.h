/* Integration harness: starts the real flagwire binary on an ephemeral loopback port and
 * talks to it over plain sockets, so the tests see exactly what a client sees.
 *
 * Every wait is bounded: reads and process waits take a timeout and fail the test
 * rather than hang. */
#ifndef FW_TESTS_HARNESS_H
#define FW_TESTS_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Upper bound for any single wait in a test. */
#define FWT_WAIT_MS 10000

struct fwt_server {
  pid_t pid;
  uint16_t port;
  char dir[256];         /* scratch directory, removed by fwt_server_cleanup */
  char data_dir[300];    /* dir/data, the store */
  char log_path[300];    /* dir/server.log: the server's standard error */
  char admin_token[128]; /* the first admin token, when the server printed one */
};

/* Starts `flagwire serve --host 127.0.0.1 --port 0 --data <scratch> --log-format json`
 * followed by `args` (NULL-terminated, may be NULL), with `env` (NULL-terminated
 * "NAME=value" strings, may be NULL) added to the environment. Waits for the "listening"
 * line on standard output. Fails the test if the server does not come up. */
void fwt_server_start(struct fwt_server *server, const char *const *args, const char *const *env);

/* Like fwt_server_start but passes only `--data <scratch> --log-format json` before
 * `args`, leaving host and port to the defaults, the environment and the config file. */
void fwt_server_start_bare(struct fwt_server *server, const char *const *args,
                           const char *const *env);

/* Sends `sig` and waits for the process to end; returns its exit status (or 128 + signal
 * if it was killed). Fails the test if it does not end within `timeout_ms`. */
int fwt_server_signal_and_wait(struct fwt_server *server, int sig, int timeout_ms);

/* Waits for the process to end within `timeout_ms`; returns its exit status, or -1 if
 * it is still running. */
int fwt_server_wait(struct fwt_server *server, int timeout_ms);

/* Stops the server with SIGTERM if it still runs and removes its scratch directory. */
void fwt_server_cleanup(struct fwt_server *server);

/* The server's log so far, NUL-terminated; the caller frees it. */
char *fwt_server_log(const struct fwt_server *server);

/* Runs the flagwire binary with `argv` (NULL-terminated, without the program name) and
 * `env` added; collects standard output and error (each capped at 64 KiB, caller frees)
 * and returns the exit status. */
int fwt_run(const char *const *argv, const char *const *env, char **out, char **err);

/* A blocking loopback connection with a receive timeout of FWT_WAIT_MS. */
int fwt_connect(uint16_t port);
/* Sends all of `data`; fails the test on error. */
void fwt_send(int fd, const char *data, size_t len);
void fwt_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct fwt_response {
  int status;
  char *head; /* status line and headers, NUL-terminated */
  char *body; /* NUL-terminated */
  size_t body_len;
};

/* Reads one response (Content-Length framed; a HEAD response or 1xx/204/304 has no
 * body: pass `head_only` for HEAD). Returns false on EOF before any byte. Fails the
 * test on timeout or a malformed response. Bytes after the response stay buffered in
 * the connection's reader, so pipelined responses are read one by one. */
bool fwt_read_response(int fd, struct fwt_response *res, bool head_only);
void fwt_response_free(struct fwt_response *res);

/* The value of a response header (case-insensitive name), copied into `out`; false when
 * absent. */
bool fwt_header(const struct fwt_response *res, const char *name, char *out, size_t out_len);

/* One request on a fresh connection: `request` is the raw bytes. */
void fwt_exchange(uint16_t port, const char *request, struct fwt_response *res);

/* One request on a fresh connection, built from parts: `token` (may be NULL) goes in
 * `Authorization: Bearer`, `body` (may be NULL) is sent as application/json. Extra
 * header lines (each ending in \r\n) may come in `headers` (may be NULL). */
void fwt_request(uint16_t port, const char *method, const char *path, const char *token,
                 const char *headers, const char *body, struct fwt_response *res);

/* Whether the peer closes the connection (EOF or reset) within `timeout_ms`, with any
 * data received before the close appended to `got` (may be NULL). */
bool fwt_wait_closed(int fd, int timeout_ms, char *got, size_t got_len);

/* Forgets what fwt_read_response buffered for `fd` and closes it. */
void fwt_close(int fd);

/* Milliseconds from a monotonic clock. */
uint64_t fwt_now_ms(void);
void fwt_sleep_ms(unsigned ms);

/* A free TCP port on 127.0.0.1 (bound then released; good enough for one test). */
uint16_t fwt_free_port(void);

#endif
