// SPDX-License-Identifier: GPL-2.0-only
/*
 * scxd test bed: a C loader for the scx_bpfland BPF scheduler of sched-ext/scx v1.1.0.
 *
 * Mirrors scheds/rust/scx_bpfland/src/main.rs of that release step by step (the BPF side is
 * the upstream main.bpf.c, built from the source tree the test bed is given):
 *   flags (names, short flags, types, defaults) → topology → SMT/NUMA decisions → primary
 *   domain → idle resume latency → open → every rodata field → ops flags from kernel BTF →
 *   load → enable_primary_cpu() per CPU of the domain → cpufreq level (bss) → SMT siblings →
 *   attach → wait → "EXIT: ..." → restart when the kernel's exit code asks for it.
 * The BPF defaults differ from the command line's (sticky_tasks, local_kthreads and
 * local_pcpu are true in the BPF object), so every field is written, defaults included.
 *
 * Not reproduced: the scx_stats server (--stats prints the same line from this process;
 * --monitor has no server to talk to), libbpf-rs' extra "Libbpf Options", and the
 * power-profiles-daemon D-Bus query (the energy_performance_preference file is read).
 */
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <scx/common.h>

#include "intf.h"
#include "loader.h"
#include "scx_bpfland.bpf.skel.h"

#define SCHEDULER_NAME "scx_bpfland"
#define BPF_VERSION "1.1.0"
#define MAX_CPUS 1024

static struct {
	uint32_t exit_dump_len;
	uint64_t slice_us, slice_min_us, slice_us_lag, throttle_us;
	int64_t idle_resume_us;
	bool local_pcpu, local_kthreads, no_wake_sync, sticky_tasks, preferred_idle_scan;
	bool disable_smt, disable_numa, cpufreq, debug, verbose, version, help_stats;
	const char *primary_domain;
	double stats, monitor;
} opts;

static struct opt_spec opt_table[] = {
	{ "exit-dump-len", 0, OPT_U32, "0", "Exit debug dump buffer length. 0 indicates default",
	  &opts.exit_dump_len },
	{ "slice-us", 's', OPT_U64, "1000", "Maximum scheduling slice duration in microseconds",
	  &opts.slice_us },
	{ "slice-min-us", 'L', OPT_U64, "0",
	  "Minimum scheduling slice duration in microseconds (0 = no minimum time slice)",
	  &opts.slice_min_us },
	{ "slice-us-lag", 'l', OPT_U64, "40000", "Maximum time slice lag in microseconds.\n\n"
	  "A larger lag favours interactive tasks at the cost of more uneven performance.",
	  &opts.slice_us_lag },
	{ "throttle-us", 't', OPT_U64, "0", "Throttle the running CPUs by injecting idle cycles "
	  "periodically (0 = disable)", &opts.throttle_us },
	{ "idle-resume-us", 'I', OPT_I64, "-1",
	  "Set CPU idle QoS resume latency in microseconds (-1 = disabled)",
	  &opts.idle_resume_us, .allow_hyphen = true },
	{ "local-pcpu", 'p', OPT_FLAG, NULL, "Enable per-CPU tasks prioritization",
	  &opts.local_pcpu },
	{ "local-kthreads", 'k', OPT_FLAG, NULL, "Enable kthreads prioritization (EXPERIMENTAL)",
	  &opts.local_kthreads },
	{ "no-wake-sync", 'w', OPT_FLAG, NULL,
	  "Disable direct dispatch during synchronous wakeups", &opts.no_wake_sync },
	{ "sticky-tasks", 'S', OPT_FLAG, NULL, "Enable sticky tasks (tasks with a high enqueue "
	  "rate stay on their CPU)", &opts.sticky_tasks },
	{ "primary-domain", 'm', OPT_STR, "auto",
	  "CPUs used first, as a hex bitmask (e.g. 0xff), until the system is saturated.\n\n"
	  "Special values: auto (from the power profile), performance (the fastest CPUs),\n"
	  "powersave (the slowest CPUs), all (every CPU), none (no preference)",
	  &opts.primary_domain },
	{ "preferred-idle-scan", 'P', OPT_FLAG, NULL,
	  "Enable preferred idle CPU scanning (higher-capacity CPUs first)",
	  &opts.preferred_idle_scan },
	{ "disable-smt", 0, OPT_FLAG, NULL, "Disable SMT awareness", &opts.disable_smt },
	{ "disable-numa", 0, OPT_FLAG, NULL, "Disable NUMA awareness", &opts.disable_numa },
	{ "cpufreq", 'f', OPT_FLAG, NULL,
	  "Enable CPU frequency control (only with schedutil governor)", &opts.cpufreq },
	{ "stats", 0, OPT_F64, NULL, "Enable stats monitoring with the specified interval",
	  &opts.stats },
	{ "monitor", 0, OPT_F64, NULL, "Run in stats monitoring mode with the specified interval "
	  "(not supported by this C loader: there is no stats server)", &opts.monitor },
	{ "debug", 'd', OPT_FLAG, NULL,
	  "Enable BPF debugging via /sys/kernel/tracing/trace_pipe", &opts.debug },
	{ "verbose", 'v', OPT_FLAG, NULL, "Enable verbose output, including libbpf details",
	  &opts.verbose },
	{ "version", 'V', OPT_FLAG, NULL, "Print scheduler version and exit", &opts.version },
	{ "help-stats", 0, OPT_FLAG, NULL, "Show descriptions for statistics", &opts.help_stats },
};

static struct cli cli = {
	.name = SCHEDULER_NAME,
	.version = BPF_VERSION " (scxd C loader for the sched-ext/scx v" BPF_VERSION " BPF "
		   "scheduler; not the upstream Rust binary)",
	.about = "scx_bpfland: a vruntime-based sched_ext scheduler that prioritizes interactive "
		 "workloads.",
	.long_about = "This is scxd's C loader for the BPF side of scx_bpfland "
		      BPF_VERSION ": same flags,\ndefaults and BPF settings as the Rust loader; "
		      "--monitor is not supported.",
	.opts = opt_table,
	.nr_opts = sizeof(opt_table) / sizeof(opt_table[0]),
};

static struct topology topo;

static bool bpfland_exited(void *skel)
{
	return UEI_EXITED((struct scx_bpfland *)skel, uei);
}

static void bpfland_stats(void *p, struct sched_stats *out)
{
	struct scx_bpfland *skel = p;

	out->nr_running = skel->bss->nr_running;
	out->nr_cpus = skel->bss->nr_online_cpus;
	out->nr_kthread_dispatches = skel->bss->nr_kthread_dispatches;
	out->nr_direct_dispatches = skel->bss->nr_direct_dispatches;
	out->nr_shared_dispatches = skel->bss->nr_shared_dispatches;
}

/* init_cpufreq_perf(): powersave → minimum, --cpufreq → automatic, else maximum. */
static void set_cpufreq_level(void *p)
{
	struct scx_bpfland *skel = p;
	int64_t lvl = !strcmp(opts.primary_domain, "powersave") ? 0 : opts.cpufreq ? -1 : 1024;

	log_info("cpufreq performance level: %s", lvl == 1024 ? "max" : lvl == 0 ? "min" :
		 "auto");
	skel->bss->cpufreq_perf_lvl = lvl;
}

static void enable_primary_cpu(struct scx_bpfland *skel, int cpu)
{
	struct cpu_arg arg = { .cpu_id = cpu };
	int rc = syscall_prog_retval(bpf_program__fd(skel->progs.enable_primary_cpu), &arg,
				     sizeof(arg));

	if (rc) {
		char msg[96];

		if (cpu < 0)
			snprintf(msg, sizeof(msg), "failed to reset primary domain: error %d", rc);
		else
			snprintf(msg, sizeof(msg), "failed to add CPU %d to primary domain: error %d",
				 cpu, rc);
		fail_error("failed to initialize primary domain", msg);
	}
}

/* One Scheduler::init() + run(); returns true when the loop in main() should start over. */
static bool run_once(int argc, char **argv, int *status)
{
	struct scx_bpfland *skel;
	struct bpf_link *link;
	struct cpumask_bits domain;
	char mask_text[80];
	bool smt_enabled, numa_enabled, user_restart, restart, idle_set;
	int order[MAX_CPUS], n = 0;

	raise_memlock_rlimit();
	if (topology_read(&topo))
		fail_panic("called `Result::unwrap()` on an `Err` value: topology: %s",
			   strerror(errno));
	smt_enabled = !opts.disable_smt && topo.smt_active;
	log_info("NUMA nodes: %d", topo.nr_nodes);
	numa_enabled = !opts.disable_numa && topo.nr_nodes > 1;
	if (!numa_enabled)
		log_info("Disabling NUMA optimizations");
	primary_domain_or_fail(opts.primary_domain, &topo, false, false, &domain);
	log_start(SCHEDULER_NAME, BPF_VERSION, smt_enabled, argc, argv);

	idle_set = idle_resume_latency_apply(&topo, opts.idle_resume_us);

	libbpf_verbose(opts.verbose);
	skel = LOADER_OPEN(scx_bpfland__open, bpfland_ops, opts.exit_dump_len);

	/* every field, defaults included: the BPF object's own defaults differ */
	skel->rodata->debug = opts.debug;
	skel->rodata->smt_enabled = smt_enabled;
	skel->rodata->numa_enabled = numa_enabled;
	skel->rodata->local_pcpu = opts.local_pcpu;
	skel->rodata->no_wake_sync = opts.no_wake_sync;
	skel->rodata->sticky_tasks = opts.sticky_tasks;
	skel->rodata->slice_max = opts.slice_us * 1000;
	skel->rodata->slice_min = opts.slice_min_us * 1000;
	skel->rodata->slice_lag = opts.slice_us_lag * 1000;
	skel->rodata->throttle_ns = opts.throttle_us * 1000;
	skel->rodata->primary_all = cpumask_weight(&domain) == topo.nr_cpu_ids;

	/* CPUs by capacity, highest first (a stable sort of the CPUs in id order) */
	for (int cpu = 0; cpu < topo.nr_cpu_ids && n < MAX_CPUS; cpu++)
		if (topo.cpus[cpu].present)
			order[n++] = cpu;
	for (int i = 1; i < n; i++) {
		int v = order[i], j = i;

		while (j > 0 && topo.cpus[order[j - 1]].capacity < topo.cpus[v].capacity) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (int i = 0; i < n; i++) {
		if (order[i] < MAX_CPUS)
			skel->rodata->cpu_capacity[order[i]] = topo.cpus[order[i]].capacity;
		skel->rodata->preferred_cpus[i] = (u64)order[i];
	}
	if (opts.preferred_idle_scan) {
		char list[512] = "";

		for (int i = 0; i < n && strlen(list) + 8 < sizeof(list); i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d",
				 i ? ", " : "", order[i]);
		log_info("Preferred CPUs: [%s]", list);
	}
	skel->rodata->preferred_idle_scan = opts.preferred_idle_scan;
	/* throttling never holds back per-CPU kthreads */
	skel->rodata->local_kthreads = opts.local_kthreads || opts.throttle_us > 0;

	skel->struct_ops.bpfland_ops->flags = SCX_OPS_ENQ_EXITING | SCX_OPS_ENQ_LAST |
		SCX_OPS_ENQ_MIGRATION_DISABLED | SCX_OPS_ALLOW_QUEUED_WAKEUP |
		(numa_enabled ? SCX_OPS_BUILTIN_IDLE_PER_NODE : 0);
	log_info("scheduler flags: %#llx",
		 (unsigned long long)skel->struct_ops.bpfland_ops->flags);

	UEI_SET_SIZE(skel, bpfland_ops, uei);
	if (scx_bpfland__load(skel))
		fail_error("Failed to load BPF program", strerror(errno));

	cpumask_format(&domain, mask_text, sizeof(mask_text));
	log_info("primary CPU domain = %s", mask_text);
	enable_primary_cpu(skel, -1);
	for (int cpu = 0; cpu < topo.nr_cpu_ids; cpu++)
		if (cpumask_test(&domain, cpu))
			enable_primary_cpu(skel, cpu);
	set_cpufreq_level(skel);
	if (smt_enabled) {
		for (int cpu = 0; cpu < topo.nr_possible; cpu++) {
			struct domain_arg arg = { .cpu_id = cpu, .sibling_cpu_id = topo.sibling[cpu] };

			if (syscall_prog_retval(bpf_program__fd(skel->progs.enable_sibling_cpu), &arg,
						sizeof(arg)))
				fail_panic("called `Result::unwrap()` on an `Err` value: enable "
					   "sibling CPU %d of CPU %d", topo.sibling[cpu], cpu);
		}
	}
	link = attach_or_fail(skel->skeleton, skel->maps.bpfland_ops);

	user_restart = run_until_exit(&(struct run_hooks){
		.skel = skel, .exited = bpfland_exited, .read_stats = bpfland_stats,
		.profile_changed = set_cpufreq_level, .name = SCHEDULER_NAME,
		.primary_domain = opts.primary_domain, .stats_interval = opts.stats,
	});
	bpf_link__destroy(link);
	restart = end_of_run(&UEI_VIEW(skel), SCHEDULER_NAME, idle_set ? &topo : NULL,
			     user_restart, status);
	scx_bpfland__destroy(skel);
	cpumask_free(&domain);
	topology_free(&topo);
	return restart;
}

int main(int argc, char **argv)
{
	return loader_main(&cli, argc, argv, &opts.help_stats, &opts.monitor, run_once);
}
