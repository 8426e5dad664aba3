/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hand-off: two threads pass one cache line back and forth, each
 * spinning until the other's store reaches it. Returns the ns of one round
 * trip (-1 when a thread cannot be started). It is what every message that
 * crosses threads pays at least once; on the project's 2-core VM it read
 * 110-140 ns or 420-560 ns, minutes at a time, and bench_bus's two modes
 * followed it (bench/README.md, "2026-12-07 (10:19-)").
 */
#ifndef AH_BENCH_HANDOFF_H
#define AH_BENCH_HANDOFF_H

double ah_bench_handoff_ns(void);

#endif
