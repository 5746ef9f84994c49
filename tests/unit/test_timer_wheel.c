#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "net/timer_wheel.h"

#define TICK 100

struct probe {
  struct fw_timer_entry entry;
  int fired;
  uint64_t fired_at;
};

static uint64_t clock_now;
static struct fw_timer_wheel wheel;

static void on_fire(struct fw_timer_entry *entry) {
  struct probe *p = (struct probe *)entry;
  p->fired++;
  p->fired_at = clock_now;
}

static int setup(void **state) {
  (void)state;
  clock_now = 1000;
  fw_timer_wheel_init(&wheel, TICK, clock_now);
  return 0;
}

static void advance_to(uint64_t ms) {
  clock_now = ms;
  fw_timer_wheel_advance(&wheel, ms);
}

static void fires_no_earlier_and_at_most_a_tick_late(void **state) {
  (void)state;
  struct probe p = {0};
  fw_timer_wheel_schedule(&wheel, &p.entry, clock_now, 250, on_fire);
  for (uint64_t t = 1000; t < 1250; t += 10) {
    advance_to(t);
    assert_int_equal(p.fired, 0);
  }
  for (uint64_t t = 1250; t <= 1400; t += 10)
    advance_to(t);
  assert_int_equal(p.fired, 1);
  assert_true(p.fired_at >= 1250 && p.fired_at <= 1350);
  assert_false(fw_timer_wheel_is_scheduled(&p.entry));
  assert_int_equal(wheel.count, 0);
}

static void cancel_and_reschedule(void **state) {
  (void)state;
  struct probe a = {0}, b = {0};
  fw_timer_wheel_schedule(&wheel, &a.entry, clock_now, 100, on_fire);
  fw_timer_wheel_schedule(&wheel, &b.entry, clock_now, 100, on_fire);
  fw_timer_wheel_cancel(&wheel, &a.entry);
  fw_timer_wheel_cancel(&wheel, &a.entry); /* harmless twice */
  fw_timer_wheel_schedule(&wheel, &b.entry, clock_now, 5000, on_fire);
  advance_to(2000);
  assert_int_equal(a.fired, 0);
  assert_int_equal(b.fired, 0);
  advance_to(6200);
  assert_int_equal(b.fired, 1);
}

static void long_delays_wait_for_their_round(void **state) {
  (void)state;
  /* Longer than one revolution of the wheel: the entry shares a slot with earlier ticks. */
  uint64_t delay = (uint64_t)FW_TIMER_WHEEL_SLOTS * TICK * 2 + 300;
  struct probe p = {0};
  fw_timer_wheel_schedule(&wheel, &p.entry, clock_now, delay, on_fire);
  for (uint64_t t = clock_now; t < 1000 + delay; t += TICK) {
    advance_to(t);
    assert_int_equal(p.fired, 0);
  }
  advance_to(1000 + delay + TICK);
  assert_int_equal(p.fired, 1);
}

static void a_stall_fires_everything_due_once(void **state) {
  (void)state;
  struct probe probes[50];
  memset(probes, 0, sizeof probes);
  for (int i = 0; i < 50; i++)
    fw_timer_wheel_schedule(&wheel, &probes[i].entry, clock_now, (uint64_t)(i + 1) * 997, on_fire);
  advance_to(1000 + 200000); /* far more than one revolution at once */
  for (int i = 0; i < 50; i++)
    assert_int_equal(probes[i].fired, 1);
  assert_int_equal(wheel.count, 0);
}

static struct probe chained;
static struct probe victim;

static void on_fire_cancel_victim(struct fw_timer_entry *entry) {
  on_fire(entry);
  fw_timer_wheel_cancel(&wheel, &victim.entry);
  fw_timer_wheel_schedule(&wheel, entry, clock_now, 100, on_fire);
}

static void callbacks_may_cancel_and_reschedule(void **state) {
  (void)state;
  memset(&chained, 0, sizeof chained);
  memset(&victim, 0, sizeof victim);
  /* Same deadline: the victim waits in the same detached slot when the first fires. */
  fw_timer_wheel_schedule(&wheel, &chained.entry, clock_now, 100, on_fire_cancel_victim);
  fw_timer_wheel_schedule(&wheel, &victim.entry, clock_now, 100, on_fire);
  advance_to(1200);
  assert_int_equal(chained.fired, 1);
  assert_int_equal(victim.fired, 0);
  assert_true(fw_timer_wheel_is_scheduled(&chained.entry));
  advance_to(1400);
  assert_int_equal(chained.fired, 2);
  fw_timer_wheel_cancel(&wheel, &chained.entry);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(fires_no_earlier_and_at_most_a_tick_late, setup),
      cmocka_unit_test_setup(cancel_and_reschedule, setup),
      cmocka_unit_test_setup(long_delays_wait_for_their_round, setup),
      cmocka_unit_test_setup(a_stall_fires_everything_due_once, setup),
      cmocka_unit_test_setup(callbacks_may_cancel_and_reschedule, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
