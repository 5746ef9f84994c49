#include "net/timer_wheel.h"

#include <assert.h>

static void list_init(struct fw_timer_entry *head) { head->prev = head->next = head; }

static void list_push(struct fw_timer_entry *head, struct fw_timer_entry *entry) {
  entry->prev = head->prev;
  entry->next = head;
  head->prev->next = entry;
  head->prev = entry;
}

static void list_remove(struct fw_timer_entry *entry) {
  entry->prev->next = entry->next;
  entry->next->prev = entry->prev;
  entry->prev = entry->next = NULL;
}

void fw_timer_wheel_init(struct fw_timer_wheel *wheel, uint64_t tick_ms, uint64_t now_ms) {
  assert(tick_ms > 0);
  wheel->tick_ms = tick_ms;
  wheel->origin_ms = now_ms;
  wheel->current_tick = 0;
  wheel->count = 0;
  for (size_t i = 0; i < FW_TIMER_WHEEL_SLOTS; i++)
    list_init(&wheel->slots[i]);
}

bool fw_timer_wheel_is_scheduled(const struct fw_timer_entry *entry) { return entry->next != NULL; }

void fw_timer_wheel_cancel(struct fw_timer_wheel *wheel, struct fw_timer_entry *entry) {
  if (!fw_timer_wheel_is_scheduled(entry))
    return;
  list_remove(entry);
  wheel->count--;
}

static uint64_t tick_of(const struct fw_timer_wheel *wheel, uint64_t ms) {
  return ms <= wheel->origin_ms ? 0 : (ms - wheel->origin_ms) / wheel->tick_ms;
}

void fw_timer_wheel_schedule(struct fw_timer_wheel *wheel, struct fw_timer_entry *entry,
                             uint64_t now_ms, uint64_t delay_ms, fw_timer_fire_cb fire) {
  assert(fire);
  fw_timer_wheel_cancel(wheel, entry);
  /* Round up so that an entry never fires early, and never into a slot already passed. */
  uint64_t deadline = tick_of(wheel, now_ms + delay_ms + wheel->tick_ms - 1);
  if (deadline <= wheel->current_tick)
    deadline = wheel->current_tick + 1;
  entry->deadline_tick = deadline;
  entry->fire = fire;
  list_push(&wheel->slots[deadline % FW_TIMER_WHEEL_SLOTS], entry);
  wheel->count++;
}

size_t fw_timer_wheel_advance(struct fw_timer_wheel *wheel, uint64_t now_ms) {
  uint64_t target = tick_of(wheel, now_ms);
  size_t fired = 0;
  /* After a long stall one pass over every slot is enough: each slot is visited once and
   * fires everything due in it. */
  uint64_t first = wheel->current_tick + 1;
  if (target >= first + FW_TIMER_WHEEL_SLOTS)
    first = target - FW_TIMER_WHEEL_SLOTS + 1;
  for (uint64_t tick = first; tick <= target; tick++) {
    wheel->current_tick = tick;
    struct fw_timer_entry *head = &wheel->slots[tick % FW_TIMER_WHEEL_SLOTS];
    /* Detach the slot first: callbacks may schedule into this very slot or cancel
     * entries that are still waiting in the detached list. */
    struct fw_timer_entry pending;
    list_init(&pending);
    if (head->next != head) {
      pending.next = head->next;
      pending.prev = head->prev;
      pending.next->prev = &pending;
      pending.prev->next = &pending;
      list_init(head);
    }
    while (pending.next != &pending) {
      struct fw_timer_entry *entry = pending.next;
      list_remove(entry);
      if (entry->deadline_tick <= target) {
        wheel->count--;
        fired++;
        entry->fire(entry);
      } else {
        list_push(head, entry);
      }
    }
  }
  if (target > wheel->current_tick)
    wheel->current_tick = target;
  return fired;
}
