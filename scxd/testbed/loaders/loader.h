/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * scxd test bed: what the project's C loaders for the scx Rust schedulers share.
 *
 * The upstream loaders of scx_bpfland, scx_flash (sched-ext/scx v1.1.0) and scx_flashyspark
 * (esot0/scx) are Rust (clap, libbpf-rs, scx_utils) and cannot be built here: crates.io is
 * unreachable.  These loaders drive the *same* BPF programs through libbpf skeletons and
 * reproduce what each main.rs does, in order: parse the same flags (names, short flags,
 * types, defaults, clap-style errors and exit code 2), read the topology the way scx_utils
 * does, set every rodata field, take ops flags from kernel BTF, load, run the topology
 * syscall programs, attach, then wait for a signal or an exit of the BPF side, report it
 * with the same "EXIT: ..." line and exit status, and restart when the kernel asks for it.
 *
 * This header holds the pieces that do not depend on a skeleton: the option table and its
 * parser/help printer, sysfs topology, cpumask strings, power profile, CPU idle resume
 * latency, the exit-info report, signal handling and the 1 s wait.
 */
#ifndef SCXD_LOADER_H
#define SCXD_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* -- logging in the format of the Rust loaders (simplelog, no time stamp below Error) --- */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* anyhow's report of an error returned from main(): "Error: CONTEXT\n\nCaused by:..." */
void fail_error(const char *context, const char *cause) __attribute__((noreturn));
/* a Rust panic (assert!, unwrap()): message on stderr, exit code 101 */
void fail_panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* -- command line: clap's behaviour for the flag types these schedulers use ------------- */
enum opt_kind { OPT_FLAG, OPT_U64, OPT_I64, OPT_U32, OPT_F64, OPT_STR };

struct opt_spec {
	const char *long_name;   /* without the leading "--" */
	char short_name;         /* 0: none */
	enum opt_kind kind;
	const char *default_str; /* clap's default_value; NULL: none (Option<...>) */
	const char *help;        /* first line = summary; "\n\n" separates paragraphs */
	void *dest;              /* bool / uint64_t / int64_t / uint32_t / double / const char * */
	bool allow_hyphen;       /* clap's allow_hyphen_values (negative numbers) */
	bool present;            /* set by the parser */
};

struct cli {
	const char *name;        /* scx_bpfland */
	const char *version;     /* printed by -V/--version */
	const char *about;       /* first line of --help */
	const char *long_about;  /* extra --help text (may be NULL) */
	struct opt_spec *opts;
	int nr_opts;
};

/* Parse argv into the option destinations (defaults applied first).  Prints help (exit 0)
 * or a clap-style error (exit 2) and does not return in those cases. */
void cli_parse(struct cli *cli, int argc, char **argv);
void cli_print_help(const struct cli *cli, FILE *out);

/* -- topology, as scx_utils::Topology reads it from sysfs ------------------------------- */
enum core_type { CORE_BIG = 0, CORE_BIG_TURBO = 1, CORE_LITTLE = 2 };

struct topo_cpu {
	bool present;            /* listed in /sys/devices/system/cpu and online */
	int node;
	int core;                /* unique core index (node, package, core_id) */
	long l2_id, l3_id, llc_id;
	unsigned long capacity;  /* scaled to 1024 */
	unsigned long max_freq, base_freq;
	enum core_type core_type;
	long pm_qos_resume_latency_us;
};

struct topology {
	int nr_cpu_ids;          /* highest cpuN in sysfs + 1 */
	int nr_possible;         /* libbpf_num_possible_cpus() */
	int nr_cores;
	int nr_nodes;            /* NUMA nodes with at least one online CPU */
	bool smt_active;         /* /sys/devices/system/cpu/smt/active */
	struct topo_cpu *cpus;   /* nr_cpu_ids entries */
	int *sibling;            /* nr_possible entries, -1 without a sibling */
};

int topology_read(struct topology *topo);
void topology_free(struct topology *topo);

/* -- cpumasks as strings (scx_utils::Cpumask) ------------------------------------------- */
struct cpumask_bits {
	int nr;                  /* number of CPU ids */
	uint8_t *bits;
};

/* "none", "all" or a hex mask ("0x3", "f_ff"); returns 0 or fills err. */
int cpumask_parse(const char *text, int nr_cpu_ids, struct cpumask_bits *mask, char *err,
		  size_t errlen);
bool cpumask_test(const struct cpumask_bits *mask, int cpu);
int cpumask_weight(const struct cpumask_bits *mask);
void cpumask_format(const struct cpumask_bits *mask, char *buf, size_t len);
void cpumask_free(struct cpumask_bits *mask);

/* The primary-domain resolution shared by bpfland and flash: a special name or a mask.
 * @balanced_power_is_powersave: flash treats EPP "balance_power" like powersave in auto. */
int resolve_primary_domain(const char *spec, const struct topology *topo,
			   bool allow_turbo, bool balanced_power_is_powersave,
			   struct cpumask_bits *out, char *err, size_t errlen);

/* -- power profile (scx_utils::autopower, energy_performance_preference) ---------------- */
enum power_profile { PP_UNKNOWN, PP_POWERSAVE, PP_BALANCED_POWER, PP_BALANCED_PERF,
		     PP_PERFORMANCE };
enum power_profile power_profile_read(void);

/* -- CPU idle resume latency (scx_utils::pm) --------------------------------------------- */
bool idle_resume_latency_supported(void);
int idle_resume_latency_set(const struct topology *topo, int64_t us);
void idle_resume_latency_restore(const struct topology *topo);

/* -- runtime ----------------------------------------------------------------------------- */
extern volatile int exit_requested;
void install_signal_handlers(void);
/* Sleep up to @ms; returns early when a signal arrives. */
void wait_ms(unsigned int ms);
void raise_memlock_rlimit(void);
int read_hotplug_seq(uint64_t *seq);
/* Is another BPF scheduler enabled (/sys/kernel/sched_ext/state)? */
bool sched_ext_enabled(void);
/* Run a SEC("syscall") program with @ctx as its input; returns the program's return value
 * in *retval; the function's own return is 0 or -errno. */
int run_syscall_prog(int prog_fd, void *ctx, size_t ctx_size, int *retval);
const char *power_profile_name(enum power_profile pp);

/* The exit report of scx_utils::UserExitInfo::report(): nothing for kind 0; the debug dump;
 * "EXIT: reason (msg)" on stderr for kinds up to UNREG_KERN (a clean exit, status 0);
 * "Error: EXIT: ..." and status 1 for sysrq, runtime errors and stalls. */
struct uei_view {
	int kind;
	int64_t exit_code;
	const char *reason;
	const char *msg;
	const char *dump;
};
/* Returns true when the caller should exit with status 1 (an error exit). */
bool uei_report_rust(const struct uei_view *uei);
bool uei_should_restart(const struct uei_view *uei);
/* The end of one run in the order of the Rust loaders: on a clean exit the report, then
 * Drop ("Unregister ...", idle latency restored when @topo); on an error exit Drop first,
 * then anyhow's "Error: EXIT: ...".  Returns the exit status (0 or 1). */
int uei_finish(const struct uei_view *uei, const char *name, const struct topology *topo);
/* The struct_ops link is gone: the skeleton's exit info (UEI_DEFINE(uei) in the BPF). */
#define UEI_VIEW(skel)                                                                     \
	((struct uei_view){ (skel)->data->uei.kind, (skel)->data->uei.exit_code,          \
			    (skel)->data->uei.reason, (skel)->data->uei.msg,               \
			    (skel)->data_uei_dump->uei_dump })
/* End of one run: the report (uei_finish) into *status; true when main() should start
 * over (the kernel asked for a restart, or the power profile changed under "auto"). */
bool end_of_run(const struct uei_view *uei, const char *name, const struct topology *topo,
		bool user_restart, int *status);
/* --idle-resume-us: written to sysfs when >= 0 and supported (else a warning); returns
 * whether it was changed (restored at the end of the run). */
bool idle_resume_latency_apply(const struct topology *topo, int64_t us);
/* resolve_primary_domain(), or the Rust loaders' error exit naming the value. */
void primary_domain_or_fail(const char *spec, const struct topology *topo, bool allow_turbo,
			    bool balanced_power_is_powersave, struct cpumask_bits *out);
/* scx_ops_open!: kernel check, open, ops.hotplug_seq, SCX_TIMEOUT_MS, the kernel's enum
 * values into rodata, then --exit-dump-len. */
#define LOADER_OPEN(__open, __ops, __exit_dump_len)                                        \
	({                                                                                 \
		typeof(__open()) __skel;                                                   \
		require_sched_ext();                                                       \
		__skel = __open();                                                         \
		if (!__skel)                                                               \
			fail_error("Failed to open BPF program", strerror(errno));         \
		__skel->struct_ops.__ops->hotplug_seq = hotplug_seq_or_fail();             \
		timeout_ms_from_env(&__skel->struct_ops.__ops->timeout_ms);                \
		SCX_ENUM_INIT(__skel);                                                     \
		__skel->struct_ops.__ops->exit_dump_len = (__exit_dump_len);               \
		__skel;                                                                    \
	})
/* "[INFO] NAME VERSION SMT on|off" and "[INFO] scheduler options: ARGV". */
void log_start(const char *name, const char *version, bool smt, int argc, char **argv);
/* main() of every loader: parse, --help-stats, --monitor refused, then run_once() until it
 * asks for no restart. */
int loader_main(struct cli *cli, int argc, char **argv, const bool *help_stats,
		const double *monitor, bool (*run_once)(int argc, char **argv, int *status));

/* Per-interval statistics line of the Rust loaders' --stats (scx_stats Metrics::format). */
struct sched_stats {
	uint64_t nr_running, nr_cpus, nr_kthread_dispatches, nr_direct_dispatches,
		nr_shared_dispatches;
};
void stats_print(const char *name, const struct sched_stats *now, struct sched_stats *prev);
void stats_describe(FILE *out);

/* -- the lifecycle steps of scx_ops_open!/scx_ops_attach! and Scheduler::run() ----------- */
struct bpf_map;
struct bpf_link;
struct bpf_object_skeleton;

/* compat::check_min_requirements(): the kernel has sched_ext (sched_ext_ops.dump in BTF). */
void require_sched_ext(void);
/* ops.hotplug_seq from /sys/kernel/sched_ext/hotplug_seq (an error exit when unreadable). */
uint64_t hotplug_seq_or_fail(void);
/* SCX_TIMEOUT_MS from the environment into *ms; unset leaves it; invalid is an error exit. */
void timeout_ms_from_env(uint32_t *ms);
/* libbpf's own messages only with --verbose, like libbpf-rs' ObjectBuilder::debug(). */
void libbpf_verbose(bool verbose);
/* The other programs (kprobes, timers need none), then the struct_ops map; error exits. */
struct bpf_link *attach_or_fail(struct bpf_object_skeleton *skel, struct bpf_map *ops_map);
/* Run a syscall program; a failing syscall is a panic, like the Rust test_run().unwrap(). */
int syscall_prog_retval(int prog_fd, void *ctx, size_t ctx_size);

struct run_hooks {
	void *skel;
	bool (*exited)(void *skel);                  /* UEI_EXITED */
	void (*tick)(void *skel);                    /* once per loop (flash: cpu_util) */
	void (*read_stats)(void *skel, struct sched_stats *out);
	void (*profile_changed)(void *skel);         /* refresh the cpufreq level */
	const char *name;
	const char *primary_domain;
	double stats_interval;                       /* --stats SECONDS, 0 = off */
};

/* Loop until a signal, an exit of the BPF side, or (primary domain "auto") a change of the
 * power profile; returns true for the last case (the Rust loaders' user_restart). */
bool run_until_exit(const struct run_hooks *hooks);

#endif /* SCXD_LOADER_H */
