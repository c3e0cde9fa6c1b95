/* scxd_sched.bpf.c — scheduling telemetry for scxd, aggregated in the kernel (bcc).
 *
 * What is measured (all times in nanoseconds of bpf_ktime_get_ns, CLOCK_MONOTONIC):
 *   - runqueue latency, split by why the task was waiting (one log2 histogram + sum each):
 *       wakeup latency   — it slept and was woken (sched_wakeup) → sched_switch puts it on
 *                          a CPU: what an interactive or periodic task feels;
 *       preemption wait  — it was switched out while still runnable (preempted or
 *                          yielding) → back on a CPU: the time-sharing of CPU hogs,
 *                          expected under load and mostly harmless;
 *       new-task wait    — sched_wakeup_new → first switch in (the response time below).
 *     Their sum is the classic runqueue latency (bcc runqlat), which mixes the two kinds.
 *     Wakeups issued from interrupt context — an expiring hrtimer or timer, a device
 *     interrupt, a softirq (network receive, block completion) — are *external*: the task
 *     was waiting for the outside world (a period, input, a packet, IO), not for another
 *     task of its own pipeline.  They are also counted apart (histogram EXT, per task), as
 *     what periodic and interactive tasks feel.  Interrupt context is tracked with a
 *     per-CPU depth counter on timer:hrtimer_expire_*, timer:timer_expire_*,
 *     irq:irq_handler_* and irq:softirq_*.  Not seen as external: a wakeup the kernel
 *     defers to the target CPU's IPI (ttwu wake list), which happens for remote wakeups
 *     of tasks whose CPU is idle.
 *   - response time of a new task: sched_wakeup_new → its first sched_switch in.
 *   - turnaround time of a task born while we watch: sched_wakeup_new → sched_process_exit.
 *   - per task, cumulative on-CPU and runqueue-wait time, and the wakeup part of that wait
 *     with its count (table `tasks`); user space diffs it once per window for the fairness
 *     figure (CV of CPU time among tasks that waited).
 *   - context switches, split like the kernel's nvcsw/nivcsw: voluntary (prev went to
 *     sleep) and involuntary (prev still runnable: preempted or yielding), all threads.
 *   - per exited task, one ring-buffer record: pid, tgid, comm, birth, first run, exit,
 *     on-CPU and wait totals (and the wakeup part of the wait, with its count).  Exits are rare next to switches, so this stays cheap.
 *
 * Probes: tracepoints sched:sched_wakeup, sched:sched_wakeup_new, sched:sched_switch,
 * sched:sched_process_exit (and the timer/irq entry/exit pairs above, which read no field),
 * read through TRACEPOINT_PROBE, i.e. from the fields the running
 * kernel's tracefs format declares.  No task_struct field is read: headers from another
 * kernel version would give wrong offsets (stock runqlat-bpfcc prints an empty histogram on
 * such a host for exactly that reason).
 *
 * Aggregates are monotonic counters in one per-CPU array (no atomics, no cross-CPU cache
 * traffic); user space reads them once per sample and subtracts the previous reading, which
 * loses no event between a read and a clear.
 *
 * Caveats:
 *   - Tasks already alive when the program loads have no known birth: they get latency and
 *     fairness accounting but no response/turnaround figure (flag BORN_SEEN clear).
 *   - Histogram slot i holds values v with slot_of(v) == i: slot 0 is v == 0, slot i ≥ 1
 *     is 2^(i-1) ≤ v ≤ 2^i − 1 (inclusive upper bound 2^i − 1).  The last slot also holds
 *     everything larger (its upper bound is +Inf).
 *   - A preempted task is recognised from prev_state: the tracepoint reports
 *     TASK_REPORT_MAX (no bit under SLEEP_STATE_MASK) for a preemption and 0 for
 *     TASK_RUNNING; any bit under the mask means the task went to sleep.
 *   - The per-task table is direct-mapped: task pid lives in slot pid % MAX_TASKS, tagged
 *     with the pid.  A hash map would be exact but costs ≈70 ns more per lookup here, and
 *     every event does one or two.  Two live tasks whose pids are equal modulo MAX_TASKS
 *     share a slot: the newcomer evicts the other (counted in C_TABLE_EVICTIONS), whose
 *     pending wait is then lost — never attributed to the wrong task.  With L live tasks a
 *     new task collides with probability ≈ L / MAX_TASKS.  Concurrent claims of one slot
 *     from two CPUs can mix one event's fields; such a race needs two colliding pids at
 *     the same instant and is left unguarded to keep the fast path lock-free.
 *   - The table is BPF_F_MMAPABLE: user space maps it read-only and reads per-task CPU and
 *     wait totals once per window without a syscall per entry.
 *
 * Parameters (-D cflags set by scxd/telemetry/bpf.py): MAX_TASKS (a power of two), RINGBUF_PAGES, HIST_SLOTS,
 * SLEEP_STATE_MASK, and the index of each counter (C_*) and histogram base (H_*_BASE) in the
 * `stats` array, so the Python reader and this program share one layout.
 */

#ifndef MAX_TASKS
#error "MAX_TASKS must be set with -D (see scxd/telemetry/bpf.py)"
#endif

#define BORN_SEEN 1
#define READY_PREEMPTED 2   /* ready_ts was stamped by a preemption, not a wakeup */
#define READY_EXTERNAL 4    /* ... by a wakeup from interrupt context (timer, IRQ, softirq) */

struct task_acct {
    u32 pid;            /* tag: which task owns this slot; 0 = empty */
    u32 flags;
    u64 ready_ts;       /* when it last became runnable; 0 while it runs or sleeps (a
                         * wakeup that races the task's own switch-out may leave a stamp
                         * while it runs: every switch-out overwrites or clears it) */
    u64 born_ts;        /* sched_wakeup_new time, 0 when born before we loaded */
    u64 first_run_ts;   /* first switch-in after birth, 0 until then */
    u64 oncpu_ns;       /* cumulative time on a CPU since we first saw it */
    u64 wait_ns;        /* cumulative runqueue wait since we first saw it */
    u64 wake_wait_ns;   /* the part of wait_ns spent waiting after wakeups */
    u64 wakes;          /* wakeup waits counted in wake_wait_ns */
    u64 ext_wait_ns;    /* the part of wake_wait_ns after external wakeups */
    u64 ext_wakes;      /* external wakeup waits counted in ext_wait_ns */
};

struct cpu_cur {
    u64 since;          /* when `pid` was switched in on this CPU */
    u64 pid;
    u64 irq_depth;      /* nesting of timer/IRQ/softirq handlers running on this CPU */
};

struct exit_event {
    u32 pid;
    u32 tgid;
    u64 born_ts;
    u64 first_run_ts;
    u64 exit_ts;
    u64 oncpu_ns;
    u64 wait_ns;
    u64 flags;
    char comm[16];
    u64 wake_wait_ns;
    u64 wakes;
    u64 ext_wait_ns;
    u64 ext_wakes;
};

BPF_F_TABLE("array", u32, struct task_acct, tasks, MAX_TASKS, BPF_F_MMAPABLE);
BPF_PERCPU_ARRAY(cpu_state, struct cpu_cur, 1);
BPF_PERCPU_ARRAY(stats, u64, STATS_SLOTS);
BPF_RINGBUF_OUTPUT(exits, RINGBUF_PAGES);

/* floor(log2(v)) + 1 for v > 0, 0 for v == 0; clamped to the last slot. */
static __always_inline u32 slot_of(u64 v)
{
    u32 r = 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8)  { v >>= 8;  r += 8; }
    if (v >> 4)  { v >>= 4;  r += 4; }
    if (v >> 2)  { v >>= 2;  r += 2; }
    if (v >> 1)  { r += 1; v >>= 1; }
    r += (u32)v;            /* v is now 1 (add the +1) or 0 (input was 0) */
    return r < HIST_SLOTS ? r : HIST_SLOTS - 1;
}

static __always_inline void add(u32 idx, u64 delta)
{
    u64 *slot = stats.lookup(&idx);
    if (slot)
        *slot += delta;
}

/* The count of a histogram is the sum of its slots: no separate counter to keep. */
static __always_inline void observe(u32 hist_base, u32 sum_idx, u64 v)
{
    add(hist_base + slot_of(v), 1);
    add(sum_idx, v);
}

static __always_inline struct task_acct *slot_for(u32 pid)
{
    u32 idx = pid & (MAX_TASKS - 1);
    return tasks.lookup(&idx);
}

/* The task's entry, or NULL when its slot holds another task (or nothing). */
static __always_inline struct task_acct *find(u32 pid)
{
    struct task_acct *t = slot_for(pid);
    return (t && t->pid == pid) ? t : NULL;
}

/* The task's entry, taking over (and resetting) its slot when someone else holds it. */
static __always_inline struct task_acct *claim(u32 pid)
{
    struct task_acct *t = slot_for(pid);
    if (!t || t->pid == pid)
        return t;
    if (t->pid)
        add(C_TABLE_EVICTIONS, 1);
    t->pid = pid;
    t->flags = 0;
    t->ready_ts = 0;
    t->born_ts = 0;
    t->first_run_ts = 0;
    t->oncpu_ns = 0;
    t->wait_ns = 0;
    t->wake_wait_ns = 0;
    t->wakes = 0;
    t->ext_wait_ns = 0;
    t->ext_wakes = 0;
    return t;
}

static __always_inline int in_interrupt_handler(void)
{
    u32 zero = 0;
    struct cpu_cur *cur = cpu_state.lookup(&zero);
    return cur && cur->irq_depth > 0;
}

static __always_inline void irq_enter_exit(int enter)
{
    u32 zero = 0;
    struct cpu_cur *cur = cpu_state.lookup(&zero);
    if (!cur)
        return;
    if (enter)
        cur->irq_depth += 1;
    else if (cur->irq_depth > 0)    /* an exit whose entry came before we loaded */
        cur->irq_depth -= 1;
}

static __always_inline void mark_woken(u32 pid, u64 now)
{
    struct task_acct *t = claim(pid);
    if (t && !t->ready_ts) {
        t->ready_ts = now;
        t->flags &= ~(READY_PREEMPTED | READY_EXTERNAL);
        if (in_interrupt_handler())
            t->flags |= READY_EXTERNAL;
    }
}

TRACEPOINT_PROBE(timer, hrtimer_expire_entry) { irq_enter_exit(1); return 0; }
TRACEPOINT_PROBE(timer, hrtimer_expire_exit) { irq_enter_exit(0); return 0; }
TRACEPOINT_PROBE(timer, timer_expire_entry) { irq_enter_exit(1); return 0; }
TRACEPOINT_PROBE(timer, timer_expire_exit) { irq_enter_exit(0); return 0; }
TRACEPOINT_PROBE(irq, irq_handler_entry) { irq_enter_exit(1); return 0; }
TRACEPOINT_PROBE(irq, irq_handler_exit) { irq_enter_exit(0); return 0; }
TRACEPOINT_PROBE(irq, softirq_entry) { irq_enter_exit(1); return 0; }
TRACEPOINT_PROBE(irq, softirq_exit) { irq_enter_exit(0); return 0; }

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    u32 pid = args->pid;
    if (pid == 0)
        return 0;
    mark_woken(pid, bpf_ktime_get_ns());
    add(C_WAKEUPS, 1);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    u32 pid = args->pid;
    if (pid == 0)
        return 0;
    struct task_acct *t = claim(pid);
    if (t) {
        /* A recycled pid may find its own stale entry: a new task starts fresh. */
        u64 now = bpf_ktime_get_ns();
        t->flags = BORN_SEEN;   /* and not READY_PREEMPTED */
        t->ready_ts = now;
        t->born_ts = now;
        t->first_run_ts = 0;
        t->oncpu_ns = 0;
        t->wait_ns = 0;
        t->wake_wait_ns = 0;
        t->wakes = 0;
        t->ext_wait_ns = 0;
        t->ext_wakes = 0;
    }
    add(C_NEW_TASKS, 1);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid;
    u32 next = args->next_pid;
    u32 zero = 0;
    struct cpu_cur *cur = cpu_state.lookup(&zero);
    u64 ran = 0;

    if (cur && cur->pid == prev && cur->since && prev != 0)
        ran = now - cur->since;
    add(C_SWITCHES, 1);

    if (prev != 0) {
        int runnable = (args->prev_state & SLEEP_STATE_MASK) == 0;
        struct task_acct *p = runnable ? claim(prev) : find(prev);
        if (p) {
            p->oncpu_ns += ran;
            if (runnable) {
                p->ready_ts = now;
                p->flags |= READY_PREEMPTED;
            } else {
                p->ready_ts = 0;
            }
        }
        add(runnable ? C_PREEMPTIONS : C_VOLUNTARY, 1);
    }

    if (next != 0) {
        struct task_acct *n = find(next);
        if (n && n->ready_ts) {
            u64 waited = now - n->ready_ts;
            n->ready_ts = 0;
            n->wait_ns += waited;
            /* One histogram per wait, by its cause; a new task's first wait is its
             * response time (ready_ts == born_ts then). */
            if (n->flags & READY_PREEMPTED) {
                observe(H_PREEMPT_BASE, C_PREEMPT_SUM_NS, waited);
            } else if ((n->flags & BORN_SEEN) && !n->first_run_ts) {
                n->first_run_ts = now;
                observe(H_RESP_BASE, C_RESP_SUM_NS, now - n->born_ts);
            } else {
                n->wake_wait_ns += waited;
                n->wakes += 1;
                observe(H_WAKE_BASE, C_WAKE_SUM_NS, waited);
                if (n->flags & READY_EXTERNAL) {
                    n->ext_wait_ns += waited;
                    n->ext_wakes += 1;
                    observe(H_EXT_BASE, C_EXT_SUM_NS, waited);
                }
            }
        }
    }

    if (cur) {
        cur->pid = next;
        cur->since = now;
        /* No interrupt handler is running across a context switch: a depth left over by an
         * entry probe attached before its exit probe (or any missed exit) ends here. */
        cur->irq_depth = 0;
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 now = bpf_ktime_get_ns();
    u32 pid = args->pid;
    u32 zero = 0;
    struct task_acct *t = find(pid);
    struct cpu_cur *cur = cpu_state.lookup(&zero);
    u64 running = 0;

    if (pid == 0)
        return 0;
    /* The exiting task is on this CPU: count the slice it is still in. */
    if (cur && cur->pid == pid && cur->since)
        running = now - cur->since;
    add(C_EXITS, 1);
    if (t && (t->flags & BORN_SEEN))
        observe(H_TURN_BASE, C_TURN_SUM_NS, now - t->born_ts);

    struct exit_event *e = exits.ringbuf_reserve(sizeof(struct exit_event));
    if (e) {
        e->pid = pid;
        e->tgid = bpf_get_current_pid_tgid() >> 32;
        e->exit_ts = now;
        e->born_ts = t ? t->born_ts : 0;
        e->first_run_ts = t ? t->first_run_ts : 0;
        e->oncpu_ns = (t ? t->oncpu_ns : 0) + running;
        e->wait_ns = t ? t->wait_ns : 0;
        e->flags = t ? t->flags : 0;
        e->wake_wait_ns = t ? t->wake_wait_ns : 0;
        e->wakes = t ? t->wakes : 0;
        e->ext_wait_ns = t ? t->ext_wait_ns : 0;
        e->ext_wakes = t ? t->ext_wakes : 0;
        bpf_probe_read_kernel(&e->comm, sizeof(e->comm), args->comm);
        exits.ringbuf_submit(e, 0);
    } else {
        add(C_EXIT_DROPS, 1);
    }
    if (t)
        t->pid = 0;
    return 0;
}
