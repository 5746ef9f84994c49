/* A hashed timing wheel: every per-connection timeout of a loop (request deadlines,
 * idle keep-alive, lingering close, later heartbeats) lives here, so a loop runs one
 * libuv timer however many connections it holds. Scheduling and cancelling are O(1).
 *
 * Thread: a wheel belongs to one loop; every call happens on that loop's thread.
 * The wheel knows nothing of libuv: its owner calls fw_timer_wheel_advance with the
 * loop's clock, which keeps the wheel testable with a fake clock. */
#ifndef FW_NET_TIMER_WHEEL_H
#define FW_NET_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_TIMER_WHEEL_SLOTS 512

struct fw_timer_entry;
typedef void (*fw_timer_fire_cb)(struct fw_timer_entry *entry);

/* Embedded in the object it times; zero-initialised means "not scheduled". */
struct fw_timer_entry {
  struct fw_timer_entry *prev, *next;
  uint64_t deadline_tick;
  fw_timer_fire_cb fire;
};

struct fw_timer_wheel {
  uint64_t tick_ms;
  uint64_t origin_ms;
  uint64_t current_tick; /* every slot up to this tick has been processed */
  size_t count;
  struct fw_timer_entry slots[FW_TIMER_WHEEL_SLOTS]; /* list heads (sentinels) */
};

/* Starts an empty wheel whose ticks are `tick_ms` long, with `now_ms` as tick 0. */
void fw_timer_wheel_init(struct fw_timer_wheel *wheel, uint64_t tick_ms, uint64_t now_ms);

/* Arms `entry` to fire once, no earlier than `delay_ms` after `now_ms` and at most one
 * tick later. Re-arms it if it was already scheduled. `fire` runs on the loop's thread
 * from fw_timer_wheel_advance, after the entry has been unscheduled; it may schedule or
 * cancel any entry, itself included. */
void fw_timer_wheel_schedule(struct fw_timer_wheel *wheel, struct fw_timer_entry *entry,
                             uint64_t now_ms, uint64_t delay_ms, fw_timer_fire_cb fire);

/* Unschedules `entry`; harmless if it is not scheduled. */
void fw_timer_wheel_cancel(struct fw_timer_wheel *wheel, struct fw_timer_entry *entry);

bool fw_timer_wheel_is_scheduled(const struct fw_timer_entry *entry);

/* Fires every entry whose deadline is at or before `now_ms`. Returns how many fired. */
size_t fw_timer_wheel_advance(struct fw_timer_wheel *wheel, uint64_t now_ms);

#endif
