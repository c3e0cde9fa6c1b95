// SPDX-License-Identifier: GPL-2.0-only
/*
 * scxd test bed: a C loader for the scx_flash BPF scheduler of sched-ext/scx v1.1.0 and,
 * built with -DSCX_FLASHYSPARK, for its fork scx_flashyspark (esot0/scx, branch scx_spark,
 * commit 1bd93fe9; scx_flash 1.0.14 plus --dsq-mode, -H, -G, -W, -K).
 *
 * Mirrors scheds/rust/scx_flash/src/main.rs (resp. the fork's main.rs) step by step:
 *   flags → assert slice_us >= slice_us_min (a panic, exit 101) → topology → idle resume
 *   latency → NUMA/SMT decisions → primary domain → open → every rodata field (the BPF
 *   defaults differ: builtin_idle is false in the object, true on the command line;
 *   flashyspark's dsq_mode is 0 = per-CPU in the object, "shared" on the command line) →
 *   ops flags and SCX_PICK_IDLE_IN_NODE from kernel BTF → load → enable_primary_cpu() (the
 *   fork: enable_cpu() for the primary, big, little and turbo masks) → cpufreq level →
 *   SMT, L2 and L3 sibling masks → attach → wait, feeding cpu_util from /proc/stat every
 *   second while --cpu-busy-thresh is auto → "EXIT: ..." → restart on request.
 *
 * Known differences from the upstream binaries, on purpose:
 *   - scx_flashyspark: upstream calls bpf_program__set_autoload(false) on the nvidia
 *     kprobes *after* loading (libbpf refuses that), so its attach always fails on a host
 *     without nvidia.ko, with or without -G.  Here the kprobes are disabled before the load
 *     unless -G is given (the fork's intent); with -G the attach fails without nvidia.ko.
 *   - no scx_stats server (--stats prints the same line from this process; --monitor is
 *     refused), no libbpf-rs "Libbpf Options", no power-profiles-daemon D-Bus query.
 * -T/--tickless loads only on kernels with the kfunc scx_bpf_cpu_curr (6.12 rejects the
 * write to rq->curr->scx.slice): that is the BPF program's limit, reproduced as is.
 */
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <scx/common.h>

#include "intf.h"
#include "loader.h"

#ifdef SCX_FLASHYSPARK
#include "scx_flashyspark.bpf.skel.h"
#define SCHEDULER_NAME "scx_flashyspark"
#define BPF_VERSION "1.0.11"
#define BPF_ORIGIN "esot0/scx scx_spark 1bd93fe9"
#define SKEL scx_flashyspark
#define OPS flashyspark_ops
#define SKEL_OPEN scx_flashyspark__open
#define SKEL_LOAD scx_flashyspark__load
#define SKEL_DESTROY scx_flashyspark__destroy
#else
#include "scx_flash.bpf.skel.h"
#define SCHEDULER_NAME "scx_flash"
#define BPF_VERSION "1.1.0"
#define BPF_ORIGIN "sched-ext/scx v1.1.0"
#define SKEL scx_flash
#define OPS flash_ops
#define SKEL_OPEN scx_flash__open
#define SKEL_LOAD scx_flash__load
#define SKEL_DESTROY scx_flash__destroy
#endif

static struct {
	uint32_t exit_dump_len;
	uint64_t slice_us, slice_us_min, slice_us_lag, run_us_lag, max_avg_nvcsw, throttle_us;
	int64_t cpu_busy_thresh, idle_resume_us;
	bool slice_lag_scaling, tickless, rr_sched, no_builtin_idle, local_pcpu,
		direct_dispatch, sticky_cpu, native_priority, local_kthreads, no_wake_sync;
	bool disable_l2, disable_l3, disable_smt, disable_numa, cpufreq, debug, verbose,
		version, help_stats;
	bool stay_with_kthread, aggressive_gpu_tasks, workload_aware_scheduling, timer_kick;
	const char *primary_domain, *dsq_mode;
	double stats, monitor;
} opts;

static struct opt_spec opt_table[] = {
	{ "exit-dump-len", 0, OPT_U32, "0", "Exit debug dump buffer length. 0 indicates default",
	  &opts.exit_dump_len },
	{ "slice-us", 's', OPT_U64, "4096", "Maximum scheduling slice duration in microseconds",
	  &opts.slice_us },
	{ "slice-us-min", 'S', OPT_U64, "128",
	  "Minimum scheduling slice duration in microseconds", &opts.slice_us_min },
	{ "slice-us-lag", 'l', OPT_U64, "4096",
	  "Maximum runtime budget a task can accumulate while sleeping (in microseconds)",
	  &opts.slice_us_lag },
	{ "slice-lag-scaling", 'L', OPT_FLAG, NULL,
	  "Scale the maximum sleep budget with the CPU utilization", &opts.slice_lag_scaling },
	{ "run-us-lag", 'r', OPT_U64, "32768",
	  "Maximum runtime penalty a task can accumulate while running (in microseconds)",
	  &opts.run_us_lag },
	{ "max-avg-nvcsw", 'c', OPT_U64, "128", "Maximum rate of voluntary context switches "
	  "(0 = disable voluntary context switch prioritization)", &opts.max_avg_nvcsw },
	{ "cpu-busy-thresh", 'C', OPT_I64, "-1",
	  "Utilization percentage to consider a CPU as busy (-1 = auto)",
	  &opts.cpu_busy_thresh, .allow_hyphen = true },
	{ "throttle-us", 't', OPT_U64, "0", "Throttle the running CPUs by injecting idle cycles "
	  "periodically (0 = disable)", &opts.throttle_us },
	{ "idle-resume-us", 'I', OPT_I64, "32",
	  "Set CPU idle QoS resume latency in microseconds (-1 = disabled)",
	  &opts.idle_resume_us, .allow_hyphen = true },
	{ "tickless", 'T', OPT_FLAG, NULL, "Enable tickless mode (infinite slices, preemption "
	  "only on contention; needs the kfunc scx_bpf_cpu_curr)", &opts.tickless },
	{ "rr-sched", 'R', OPT_FLAG, NULL, "Enable round-robin scheduling", &opts.rr_sched },
	{ "no-builtin-idle", 'b', OPT_FLAG, NULL,
	  "Disable in-kernel idle CPU selection policy", &opts.no_builtin_idle },
	{ "local-pcpu", 'p', OPT_FLAG, NULL, "Enable per-CPU tasks prioritization",
	  &opts.local_pcpu },
#ifdef SCX_FLASHYSPARK
	{ "dsq-mode", 0, OPT_STR, "shared", "DSQ dispatch mode: cpu (per-CPU DSQs) or shared "
	  "(one shared DSQ)", &opts.dsq_mode },
#endif
	{ "direct-dispatch", 'D', OPT_FLAG, NULL, "Always allow direct dispatch to idle CPUs",
	  &opts.direct_dispatch },
	{ "sticky-cpu", 'y', OPT_FLAG, NULL, "Enable CPU stickiness", &opts.sticky_cpu },
#ifdef SCX_FLASHYSPARK
	{ "stay-with-kthread", 'H', OPT_FLAG, NULL, "Keep tasks on CPUs where kthreads are "
	  "running (EXPERIMENTAL; no effect: the BPF side never marks a CPU as running one)",
	  &opts.stay_with_kthread },
#endif
	{ "native-priority", 'n', OPT_FLAG, NULL, "Use the native Linux priority range "
	  "(no normalization of task weights)", &opts.native_priority },
	{ "local-kthreads", 'k', OPT_FLAG, NULL, "Enable per-CPU kthread prioritization",
	  &opts.local_kthreads },
	{ "no-wake-sync", 'w', OPT_FLAG, NULL,
	  "Disable direct dispatch during synchronous wakeups", &opts.no_wake_sync },
	{ "primary-domain", 'm', OPT_STR, "auto",
	  "CPUs used first, as a hex bitmask (e.g. 0xff), until the system is saturated.\n\n"
	  "Special values: auto (from the power profile), turbo (the CPUs with the highest\n"
	  "max frequency), performance (the fastest CPUs), powersave (the slowest CPUs),\n"
	  "all (every CPU), none (no preference)", &opts.primary_domain },
	{ "disable-l2", 0, OPT_FLAG, NULL, "Disable L2 cache awareness", &opts.disable_l2 },
	{ "disable-l3", 0, OPT_FLAG, NULL, "Disable L3 cache awareness", &opts.disable_l3 },
	{ "disable-smt", 0, OPT_FLAG, NULL, "Disable SMT awareness", &opts.disable_smt },
	{ "disable-numa", 0, OPT_FLAG, NULL, "Disable NUMA rebalancing", &opts.disable_numa },
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
#ifdef SCX_FLASHYSPARK
	{ "aggressive-gpu-tasks", 'G', OPT_FLAG, NULL, "Only GPU tasks use big/performance cores "
	  "(kprobes on nvidia_poll/open/mmap: needs nvidia.ko)", &opts.aggressive_gpu_tasks },
	{ "workload-aware-scheduling", 'W', OPT_FLAG, NULL, "Workload-aware CPU selection "
	  "(no effect: the BPF side never reads it)", &opts.workload_aware_scheduling },
	{ "timer-kick", 'K', OPT_FLAG, NULL, "Kick CPUs from a BPF timer instead of "
	  "scx_bpf_kick_cpu()", &opts.timer_kick },
#endif
	{ "help-stats", 0, OPT_FLAG, NULL, "Show descriptions for statistics", &opts.help_stats },
};

static struct cli cli = {
	.name = SCHEDULER_NAME,
	.version = BPF_VERSION " (scxd C loader for the " BPF_ORIGIN " BPF scheduler; not the "
		   "upstream Rust binary)",
	.about = "A deadline-based scheduler focused on fairness and performance predictability.",
	.long_about = "This is scxd's C loader for the BPF side of " SCHEDULER_NAME " ("
		      BPF_ORIGIN "): same flags,\ndefaults and BPF settings as the Rust loader; "
		      "--monitor is not supported."
#ifdef SCX_FLASHYSPARK
		      "\nThe nvidia kprobes are loaded only with -G (upstream fails without "
		      "nvidia.ko either way)."
#endif
	,
	.opts = opt_table,
	.nr_opts = sizeof(opt_table) / sizeof(opt_table[0]),
};

static struct topology topo;
static struct { uint64_t user, nice, total; bool valid; } prev_cputime;

static bool flash_exited(void *skel)
{
	return UEI_EXITED((struct SKEL *)skel, uei);
}

static void flash_stats(void *p, struct sched_stats *out)
{
	struct SKEL *skel = p;

	out->nr_running = skel->bss->nr_running;
	out->nr_cpus = skel->bss->nr_online_cpus;
	out->nr_kthread_dispatches = skel->bss->nr_kthread_dispatches;
	out->nr_direct_dispatches = skel->bss->nr_direct_dispatches;
	out->nr_shared_dispatches = skel->bss->nr_shared_dispatches;
}

/* The first line of /proc/stat: user, nice and the sum of the first eight fields. */
static bool read_cpu_times(uint64_t *user, uint64_t *nice, uint64_t *total)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[8] = { 0 };
	int n;

	if (!f)
		return false;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return false;
	*user = v[0];
	*nice = v[1];
	*total = 0;
	for (int i = 0; i < n; i++)
		*total += v[i];
	return true;
}

/* Each loop of run(): user+nice share of CPU time since the last loop, scaled to 1024,
 * into bss.cpu_util (only while --cpu-busy-thresh is -1, "auto"). */
static void flash_tick(void *p)
{
	struct SKEL *skel = p;
	uint64_t user, nice, total;

	if (opts.cpu_busy_thresh >= 0 || !read_cpu_times(&user, &nice, &total))
		return;
	if (prev_cputime.valid && total > prev_cputime.total) {
		uint64_t dt = total - prev_cputime.total;
		uint64_t du = (user + nice) - (prev_cputime.user + prev_cputime.nice);

		skel->bss->cpu_util = (uint64_t)((double)du / (double)dt * 1024.0 + 0.5);
	}
	prev_cputime.user = user;
	prev_cputime.nice = nice;
	prev_cputime.total = total;
	prev_cputime.valid = true;
}

static void set_cpufreq_level(void *p)
{
	struct SKEL *skel = p;
	int64_t lvl = !strcmp(opts.primary_domain, "powersave") ? 0 : opts.cpufreq ? -1 : 1024;

	log_info("cpufreq performance level: %s", lvl == 1024 ? "max" : lvl == 0 ? "min" :
		 "auto");
	skel->bss->cpufreq_perf_lvl = lvl;
}

#ifdef SCX_FLASHYSPARK
enum { MASK_PRIMARY = 0 };

/* enable_cpu(): cpu < 0 clears the mask of @mask_type. */
static int enable_cpu(struct SKEL *skel, int cpu, int mask_type)
{
	struct cpu_arg arg = { .cpu_id = cpu, .mask_type = mask_type };

	return syscall_prog_retval(bpf_program__fd(skel->progs.enable_cpu), &arg, sizeof(arg));
}

static int enable_sibling(struct SKEL *skel, int lvl, int cpu, int sibling, int core_type)
{
	struct domain_arg arg = { .lvl_id = lvl, .cpu_id = cpu, .sibling_cpu_id = sibling,
				  .core_type = core_type };

	return syscall_prog_retval(bpf_program__fd(skel->progs.enable_sibling_cpu), &arg,
				   sizeof(arg));
}

/* init_big_cpu_domain()/init_little_cpu_domain(): failures are only warnings; returns the
 * number of CPUs of that type. */
static int init_core_type_domain(struct SKEL *skel, int mask_type, const char *what)
{
	char list[512] = "";
	int n = 0;

	for (int cpu = 0; cpu < topo.nr_cpu_ids; cpu++) {
		const struct topo_cpu *c = &topo.cpus[cpu];
		bool take = mask_type == CORE_TYPE_LITTLE ? c->core_type == CORE_LITTLE :
			    mask_type == CORE_TYPE_TURBO ? c->core_type == CORE_BIG_TURBO :
							   c->core_type != CORE_LITTLE;

		if (!c->present || !take)
			continue;
		if (!n++ && enable_cpu(skel, -1, mask_type))
			log_warn("failed to reset %s domain", what);
		if (enable_cpu(skel, cpu, mask_type))
			log_warn("failed to add CPU %d to %s domain", cpu, what);
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", n > 1 ? ", " : "",
			 cpu);
	}
	if (mask_type == CORE_TYPE_TURBO) {
		/* the fork prints this one with println!, on stdout */
		printf("Turbo CPUs: [%s]\n", list);
		fflush(stdout);
	}
	if (n)
		log_info("%s cores detected: [%s]", what, list);
	else if (mask_type != CORE_TYPE_TURBO)
		log_info("No %s cores detected in the system", what);
	return n;
}
#else
enum { MASK_PRIMARY = 0 };

static int enable_cpu(struct SKEL *skel, int cpu, int mask_type)
{
	struct cpu_arg arg = { .cpu_id = cpu };

	(void)mask_type;
	return syscall_prog_retval(bpf_program__fd(skel->progs.enable_primary_cpu), &arg,
				   sizeof(arg));
}

static int enable_sibling(struct SKEL *skel, int lvl, int cpu, int sibling, int core_type)
{
	struct domain_arg arg = { .lvl_id = lvl, .cpu_id = cpu, .sibling_cpu_id = sibling };

	(void)core_type;
	return syscall_prog_retval(bpf_program__fd(skel->progs.enable_sibling_cpu), &arg,
				   sizeof(arg));
}
#endif

/* are_smt_siblings(): one CPU, or all CPUs of @cpus are SMT siblings of the first. */
static bool are_smt_siblings(const int *cpus, int n)
{
	for (int i = 1; i < n; i++) {
		int first = cpus[0], cpu = cpus[i];

		if (!(cpu == first || topo.sibling[cpu] == first ||
		      (topo.sibling[first] >= 0 && topo.sibling[first] == cpu)))
			return false;
	}
	return true;
}

/* init_cache_domains(): CPUs grouped by L2 id (level 2) or LLC (level 3); a group of one
 * CPU, or of SMT siblings only, is skipped; every CPU gets every group member as sibling. */
static void init_cache_domains(struct SKEL *skel, int lvl)
{
	int *cpus = malloc(sizeof(int) * (size_t)topo.nr_cpu_ids);
	bool *done = calloc((size_t)topo.nr_cpu_ids, sizeof(bool));

	if (!cpus || !done)
		fail_panic("out of memory");
	for (int lead = 0; lead < topo.nr_cpu_ids; lead++) {
		long id;
		int n = 0;
		char list[512] = "";

		if (!topo.cpus[lead].present || done[lead])
			continue;
		id = lvl == 2 ? topo.cpus[lead].l2_id : topo.cpus[lead].llc_id;
		for (int cpu = lead; cpu < topo.nr_cpu_ids; cpu++) {
			if (!topo.cpus[cpu].present ||
			    (lvl == 2 ? topo.cpus[cpu].l2_id : topo.cpus[cpu].llc_id) != id)
				continue;
			done[cpu] = true;
			cpus[n++] = cpu;
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d",
				 n > 1 ? ", " : "", cpu);
		}
		if (n <= 1 || are_smt_siblings(cpus, n))
			continue;
#ifdef SCX_FLASHYSPARK
		log_info("L%d cache ID %ld: all sibling CPUs: [%s]", lvl, id, list);
#else
		log_info("L%d cache ID %ld: sibling CPUs: [%s]", lvl, id, list);
#endif
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n; j++)
				if (enable_sibling(skel, lvl, cpus[i], cpus[j], 0))
					log_warn("L%d cache ID %ld: failed to set CPU %d sibling %d",
						 lvl, id, cpus[i], cpus[j]);
#ifdef SCX_FLASHYSPARK
		/* The fork compares the cache *id* with 3 where it means the level: the big and
		 * little sibling masks are set only for a cache whose id happens to be 3. */
		if (id == 3) {
			for (int kind = 0; kind < 2; kind++) {
				int m = 0, sub[1024];

				for (int i = 0; i < n && m < 1024; i++)
					if ((topo.cpus[cpus[i]].core_type == CORE_LITTLE) == (kind == 1))
						sub[m++] = cpus[i];
				if (m <= 1)
					continue;
				for (int i = 0; i < m; i++)
					for (int j = 0; j < m; j++) {
						enum core_type t = topo.cpus[sub[j]].core_type;
						int ct = kind ? CORE_TYPE_LITTLE : t == CORE_BIG_TURBO ?
							 CORE_TYPE_TURBO : CORE_TYPE_BIG;

						if (enable_sibling(skel, lvl, sub[i], sub[j], ct))
							log_warn("L%d cache ID %ld: failed to set CPU %d "
								 "sibling %d", lvl, id, sub[i], sub[j]);
					}
			}
		}
#endif
	}
	free(cpus);
	free(done);
}

static bool run_once(int argc, char **argv, int *status)
{
	struct SKEL *skel;
	struct bpf_link *link;
	struct cpumask_bits domain;
	char err[256], mask_text[80];
	bool smt_enabled, numa_disabled, user_restart, restart, idle_set;

	raise_memlock_rlimit();
	if (opts.slice_us < opts.slice_us_min)
		fail_panic("assertion failed: opts.slice_us >= opts.slice_us_min");
#ifdef SCX_FLASHYSPARK
	if (strcmp(opts.dsq_mode, "cpu") && strcmp(opts.dsq_mode, "shared"))
		fail_panic("Invalid DSQ mode: '%s'. Valid options: cpu, shared", opts.dsq_mode);
#endif
	if (topology_read(&topo))
		fail_panic("called `Result::unwrap()` on an `Err` value: topology: %s",
			   strerror(errno));
	smt_enabled = !opts.disable_smt && topo.smt_active;
	log_start(SCHEDULER_NAME, BPF_VERSION, smt_enabled, argc, argv);
	idle_set = idle_resume_latency_apply(&topo, opts.idle_resume_us);
	log_info("NUMA nodes: %d", topo.nr_nodes);
	numa_disabled = opts.disable_numa || topo.nr_nodes == 1;
	if (numa_disabled)
		log_info("Disabling NUMA optimizations");
	primary_domain_or_fail(opts.primary_domain, &topo, true, true, &domain);

	libbpf_verbose(opts.verbose);
	skel = LOADER_OPEN(SKEL_OPEN, OPS, opts.exit_dump_len);

	/* every field, defaults included: the BPF object's own defaults differ */
	skel->rodata->debug = opts.debug;
	skel->rodata->smt_enabled = smt_enabled;
	skel->rodata->numa_disabled = numa_disabled;
	skel->rodata->rr_sched = opts.rr_sched;
	skel->rodata->local_pcpu = opts.local_pcpu;
	skel->rodata->direct_dispatch = opts.direct_dispatch;
	skel->rodata->sticky_cpu = opts.sticky_cpu;
	skel->rodata->no_wake_sync = opts.no_wake_sync;
	skel->rodata->tickless_sched = opts.tickless;
	skel->rodata->native_priority = opts.native_priority;
	skel->rodata->slice_lag_scaling = opts.slice_lag_scaling;
	skel->rodata->builtin_idle = !opts.no_builtin_idle;
	skel->rodata->slice_max = opts.slice_us * 1000;
	skel->rodata->slice_min = opts.slice_us_min * 1000;
	skel->rodata->slice_lag = opts.slice_us_lag * 1000;
	skel->rodata->run_lag = opts.run_us_lag * 1000;
	skel->rodata->throttle_ns = opts.throttle_us * 1000;
	skel->rodata->max_avg_nvcsw = opts.max_avg_nvcsw;
	skel->rodata->primary_all = cpumask_weight(&domain) == topo.nr_cpu_ids;
#ifdef SCX_FLASHYSPARK
	skel->rodata->dsq_mode = !strcmp(opts.dsq_mode, "cpu") ? DSQ_MODE_CPU : DSQ_MODE_SHARED;
	skel->rodata->aggressive_gpu_tasks = opts.aggressive_gpu_tasks;
	skel->rodata->workload_aware_scheduling = opts.workload_aware_scheduling;
	skel->rodata->stay_with_kthread = opts.stay_with_kthread;
	skel->rodata->timer_kick = opts.timer_kick;
	/* never set by the fork's loader; written so the object's default is not relied on */
	skel->rodata->enable_gpu_support = false;
#endif
	/* normalised to [0, 1024]; negative means auto */
	skel->rodata->cpu_busy_thresh = opts.cpu_busy_thresh < 0 ? opts.cpu_busy_thresh :
				       opts.cpu_busy_thresh * 1024 / 100;
	/* throttling never holds back per-CPU kthreads */
	skel->rodata->local_kthreads = opts.local_kthreads || opts.throttle_us > 0;
	skel->rodata->__COMPAT_SCX_PICK_IDLE_IN_NODE = SCX_PICK_IDLE_IN_NODE;
	skel->struct_ops.OPS->flags = SCX_OPS_ENQ_EXITING | SCX_OPS_ENQ_LAST |
		SCX_OPS_ENQ_MIGRATION_DISABLED | SCX_OPS_ALLOW_QUEUED_WAKEUP |
		(numa_disabled ? 0 : SCX_OPS_BUILTIN_IDLE_PER_NODE);
	log_info("scheduler flags: %#llx", (unsigned long long)skel->struct_ops.OPS->flags);
#ifdef SCX_FLASHYSPARK
	if (!opts.aggressive_gpu_tasks) {
		bpf_program__set_autoload(skel->progs.kprobe_nvidia_poll, false);
		bpf_program__set_autoload(skel->progs.kprobe_nvidia_open, false);
		bpf_program__set_autoload(skel->progs.kprobe_nvidia_mmap, false);
	}
#endif

	UEI_SET_SIZE(skel, OPS, uei);
	if (SKEL_LOAD(skel))
		fail_error("Failed to load BPF program", strerror(errno));

	cpumask_format(&domain, mask_text, sizeof(mask_text));
	log_info("primary CPU domain = %s", mask_text);
	if (enable_cpu(skel, -1, MASK_PRIMARY)) {
		snprintf(err, sizeof(err), "failed to reset primary domain");
		fail_error("failed to initialize primary domain", err);
	}
	for (int cpu = 0; cpu < topo.nr_cpu_ids; cpu++) {
		int rc;

		if (!cpumask_test(&domain, cpu))
			continue;
		rc = enable_cpu(skel, cpu, MASK_PRIMARY);
		if (rc) {
			snprintf(err, sizeof(err), "failed to add CPU %d to primary domain: error %d",
				 cpu, rc);
			fail_error("failed to initialize primary domain", err);
		}
	}
#ifdef SCX_FLASHYSPARK
	/* the fork looks for turbo CPUs only when there are big ones */
	if (init_core_type_domain(skel, CORE_TYPE_BIG, "Big"))
		init_core_type_domain(skel, CORE_TYPE_TURBO, "Turbo");
	init_core_type_domain(skel, CORE_TYPE_LITTLE, "Little");
#endif
	set_cpufreq_level(skel);
	if (smt_enabled)
		for (int cpu = 0; cpu < topo.nr_possible; cpu++)
			if (enable_sibling(skel, 0, cpu, topo.sibling[cpu], 0))
				fail_panic("called `Result::unwrap()` on an `Err` value: enable sibling "
					   "CPU %d of CPU %d", topo.sibling[cpu], cpu);
	if (!opts.disable_l2)
		init_cache_domains(skel, 2);
	if (!opts.disable_l3)
		init_cache_domains(skel, 3);
	link = attach_or_fail(skel->skeleton, skel->maps.OPS);

	prev_cputime.valid = false;
	flash_tick(skel);
	user_restart = run_until_exit(&(struct run_hooks){
		.skel = skel, .exited = flash_exited, .tick = flash_tick, .read_stats = flash_stats,
		.profile_changed = set_cpufreq_level, .name = SCHEDULER_NAME,
		.primary_domain = opts.primary_domain, .stats_interval = opts.stats,
	});
	bpf_link__destroy(link);
	restart = end_of_run(&UEI_VIEW(skel), SCHEDULER_NAME, idle_set ? &topo : NULL,
			     user_restart, status);
	SKEL_DESTROY(skel);
	cpumask_free(&domain);
	topology_free(&topo);
	return restart;
}

int main(int argc, char **argv)
{
	return loader_main(&cli, argc, argv, &opts.help_stats, &opts.monitor, run_once);
}
