// SPDX-License-Identifier: GPL-2.0-only
/*
 * scxd test bed: shared parts of the C loaders (see loader.h for the why).
 *
 * Behaviour follows the Rust crates the upstream loaders use — clap 4 (argument syntax,
 * help layout, error texts, exit code 2), scx_utils (Topology, Cpumask, autopower, pm,
 * UserExitInfo) and anyhow (the "Error: ..." report, exit code 1) — so that a caller such
 * as scxd sees the same interface from these binaries as from the Rust ones.
 */
#define _GNU_SOURCE
#include "loader.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define SYSFS_CPU "/sys/devices/system/cpu"
#define SYSFS_NODE "/sys/devices/system/node"

/* The topology whose idle resume latency this process changed: restored on every exit path
 * (upstream leaves it changed when the start fails after setting it). */
static const struct topology *latency_changed;

static void restore_latency_on_exit(void)
{
	if (latency_changed) {
		idle_resume_latency_restore(latency_changed);
		latency_changed = NULL;
	}
}

/* -- logging ----------------------------------------------------------------------------- */
static void vlog(const char *level, const char *fmt, va_list ap)
{
	fprintf(stderr, "[%s] ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("INFO", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("WARN", fmt, ap);
	va_end(ap);
}

void fail_error(const char *context, const char *cause)
{
	restore_latency_on_exit();
	fprintf(stderr, "Error: %s\n", context);
	if (cause && *cause)
		fprintf(stderr, "\nCaused by:\n    %s\n", cause);
	exit(1);
}

void fail_panic(const char *fmt, ...)
{
	va_list ap;

	restore_latency_on_exit();
	fputs("thread 'main' panicked:\n", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
	      stderr);
	exit(101);
}

/* -- command line ------------------------------------------------------------------------ */
static void value_name(const struct opt_spec *o, char *buf, size_t len)
{
	size_t i;

	for (i = 0; o->long_name[i] && i + 1 < len; i++)
		buf[i] = o->long_name[i] == '-' ? '_' : (char)toupper((unsigned char)o->long_name[i]);
	buf[i] = '\0';
}

static void opt_label(const struct opt_spec *o, char *buf, size_t len)
{
	char vn[64];

	value_name(o, vn, sizeof(vn));
	if (o->kind == OPT_FLAG)
		snprintf(buf, len, "--%s", o->long_name);
	else
		snprintf(buf, len, "--%s <%s>", o->long_name, vn);
}

static void usage_error(const struct cli *cli, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));

static void usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\nUsage: %s [OPTIONS]\n\nFor more information, try '--help'.\n",
		cli->name);
	exit(2);
}

/* Rust's integer FromStr: optional sign, digits only, range checked. */
static const char *parse_int(const char *s, bool is_signed, int64_t min, uint64_t max,
			     uint64_t *out_u, int64_t *out_s)
{
	bool neg = false;
	unsigned __int128 v = 0;

	if (*s == '+' || (*s == '-' && is_signed)) {
		neg = *s == '-';
		s++;
	}
	if (!*s)
		return "cannot parse integer from empty string";
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return "invalid digit found in string";
		v = v * 10 + (unsigned)(*s - '0');
		if (v > (unsigned __int128)max + (neg ? 1 : 0))
			return neg ? "number too small to fit in target type" :
				     "number too large to fit in target type";
	}
	if (is_signed) {
		__int128 sv = neg ? -(__int128)v : (__int128)v;

		if (sv < min)
			return "number too small to fit in target type";
		if (sv > (__int128)max)
			return "number too large to fit in target type";
		*out_s = (int64_t)sv;
	} else {
		*out_u = (uint64_t)v;
	}
	return NULL;
}

static void store_value(const struct cli *cli, struct opt_spec *o, const char *text)
{
	const char *problem = NULL;
	char label[128];
	uint64_t u = 0;
	int64_t s = 0;

	switch (o->kind) {
	case OPT_U64:
		problem = parse_int(text, false, 0, UINT64_MAX, &u, &s);
		if (!problem)
			*(uint64_t *)o->dest = u;
		break;
	case OPT_U32:
		problem = parse_int(text, false, 0, UINT32_MAX, &u, &s);
		if (!problem)
			*(uint32_t *)o->dest = (uint32_t)u;
		break;
	case OPT_I64:
		problem = parse_int(text, true, INT64_MIN, INT64_MAX, &u, &s);
		if (!problem)
			*(int64_t *)o->dest = s;
		break;
	case OPT_F64: {
		char *end;
		double d;

		errno = 0;
		d = strtod(text, &end);
		if (!*text || *end || errno)
			problem = "invalid float literal";
		else
			*(double *)o->dest = d;
		break;
	}
	case OPT_STR:
		*(const char **)o->dest = text;
		break;
	case OPT_FLAG:
		*(bool *)o->dest = true;
		break;
	}
	if (problem) {
		opt_label(o, label, sizeof(label));
		fprintf(stderr, "error: invalid value '%s' for '%s': %s\n\n"
			"For more information, try '--help'.\n", text, label, problem);
		exit(2);
	}
	(void)cli;
}

static struct opt_spec *find_long(struct cli *cli, const char *name, size_t len)
{
	for (int i = 0; i < cli->nr_opts; i++)
		if (strlen(cli->opts[i].long_name) == len &&
		    !strncmp(cli->opts[i].long_name, name, len))
			return &cli->opts[i];
	return NULL;
}

static struct opt_spec *find_short(struct cli *cli, char c)
{
	for (int i = 0; i < cli->nr_opts; i++)
		if (cli->opts[i].short_name == c)
			return &cli->opts[i];
	return NULL;
}

static bool looks_like_number(const char *s)
{
	if (*s == '-')
		s++;
	return isdigit((unsigned char)*s) || *s == '.';
}

static void mark_present(struct cli *cli, struct opt_spec *o)
{
	char label[128];

	if (o->present) {
		opt_label(o, label, sizeof(label));
		usage_error(cli, "the argument '%s' cannot be used multiple times", label);
	}
	o->present = true;
}

/* The value of an option that takes one: inline (--x=v, -sv) or the next word. */
static const char *take_value(struct cli *cli, struct opt_spec *o, const char *inline_val,
			      int argc, char **argv, int *i)
{
	char label[128];

	if (inline_val)
		return inline_val;
	if (*i + 1 < argc) {
		const char *next = argv[*i + 1];

		if (next[0] != '-' || next[1] == '\0' ||
		    (o->allow_hyphen && looks_like_number(next))) {
			(*i)++;
			return next;
		}
	}
	opt_label(o, label, sizeof(label));
	fprintf(stderr, "error: a value is required for '%s' but none was supplied\n\n"
		"For more information, try '--help'.\n", label);
	exit(2);
}

static void print_version(const struct cli *cli)
{
	printf("%s %s\n", cli->name, cli->version);
}

void cli_parse(struct cli *cli, int argc, char **argv)
{
	bool want_help = false, short_help = false;

	for (int n = 0; n < cli->nr_opts; n++) {
		struct opt_spec *o = &cli->opts[n];

		o->present = false;
		if (o->default_str)
			store_value(cli, o, o->default_str);
	}
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "--help")) {
			want_help = true;
			continue;
		}
		if (!strcmp(arg, "-h")) {
			want_help = short_help = true;
			continue;
		}
		if (!strncmp(arg, "--", 2) && arg[2]) {
			const char *name = arg + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			struct opt_spec *o = find_long(cli, name, len);

			if (!o)
				usage_error(cli, "unexpected argument '%s' found", arg);
			mark_present(cli, o);
			if (o->kind == OPT_FLAG) {
				if (eq)
					usage_error(cli, "unexpected value '%s' for '--%s' found; no "
						    "more were expected", eq + 1, o->long_name);
				*(bool *)o->dest = true;
			} else {
				store_value(cli, o, take_value(cli, o, eq ? eq + 1 : NULL, argc,
							       argv, &i));
			}
			continue;
		}
		if (arg[0] == '-' && arg[1] && arg[1] != '-') {
			/* a cluster of short flags, the last one may take a value: -pk, -s5000 */
			for (const char *c = arg + 1; *c; c++) {
				struct opt_spec *o = find_short(cli, *c);

				if (!o)
					usage_error(cli, "unexpected argument '-%c' found", *c);
				mark_present(cli, o);
				if (o->kind == OPT_FLAG) {
					*(bool *)o->dest = true;
					continue;
				}
				store_value(cli, o, take_value(cli, o, c[1] ? c + 1 : NULL, argc,
							       argv, &i));
				break;
			}
			continue;
		}
		usage_error(cli, "unexpected argument '%s' found", arg);
	}
	if (want_help) {
		if (short_help) {
			/* clap's -h: one line per option */
			printf("%s\n\nUsage: %s [OPTIONS]\n\nOptions:\n", cli->about, cli->name);
			for (int n = 0; n < cli->nr_opts; n++) {
				const struct opt_spec *o = &cli->opts[n];
				char label[160], vn[64];
				const char *nl = strchr(o->help, '\n');
				int summary = nl ? (int)(nl - o->help) : (int)strlen(o->help);

				value_name(o, vn, sizeof(vn));
				snprintf(label, sizeof(label), "%c%c%c --%s%s%s%s",
					 o->short_name ? '-' : ' ', o->short_name ? o->short_name : ' ',
					 o->short_name ? ',' : ' ', o->long_name,
					 o->kind == OPT_FLAG ? "" : " <", o->kind == OPT_FLAG ? "" : vn,
					 o->kind == OPT_FLAG ? "" : ">");
				printf("  %-42s %.*s", label, summary, o->help);
				if (o->default_str && o->kind != OPT_FLAG)
					printf(" [default: %s]", o->default_str);
				putchar('\n');
			}
			printf("  %-42s %s\n  %-42s %s\n", "-h, --help",
			       "Print help (see more with '--help')", "", "");
		} else {
			cli_print_help(cli, stdout);
		}
		exit(0);
	}
	for (int n = 0; n < cli->nr_opts; n++) {
		const struct opt_spec *o = &cli->opts[n];

		if (o->kind == OPT_FLAG && !strcmp(o->long_name, "version") && *(bool *)o->dest) {
			print_version(cli);
			exit(0);
		}
	}
}

void cli_print_help(const struct cli *cli, FILE *out)
{
	fprintf(out, "%s\n", cli->about);
	if (cli->long_about)
		fprintf(out, "\n%s\n", cli->long_about);
	fprintf(out, "\nUsage: %s [OPTIONS]\n\nOptions:\n", cli->name);
	for (int n = 0; n < cli->nr_opts; n++) {
		const struct opt_spec *o = &cli->opts[n];
		char vn[64];

		value_name(o, vn, sizeof(vn));
		if (o->short_name)
			fprintf(out, "  -%c, --%s", o->short_name, o->long_name);
		else
			fprintf(out, "      --%s", o->long_name);
		if (o->kind != OPT_FLAG)
			fprintf(out, " <%s>", vn);
		fputs("\n          ", out);
		for (const char *c = o->help; *c; c++) {
			fputc(*c, out);
			if (*c == '\n')
				fputs("          ", out);
		}
		if (o->default_str && o->kind != OPT_FLAG)
			fprintf(out, "\n          \n          [default: %s]", o->default_str);
		fputs("\n\n", out);
	}
	fputs("  -h, --help\n          Print help (see a summary with '-h')\n", out);
}

/* -- small sysfs readers ----------------------------------------------------------------- */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return buf;
}

/* scx_utils::misc::read_file_usize: the whole (trimmed) file must be a number. */
static bool read_ulong(const char *path, unsigned long *out)
{
	char *text = read_text(path), *end;
	bool ok = false;

	if (text && *text) {
		errno = 0;
		*out = strtoul(text, &end, 10);
		ok = !*end && !errno && text[0] != '-';
	}
	free(text);
	return ok;
}

static bool cpu_file_ulong(int cpu, const char *rel, unsigned long *out)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), SYSFS_CPU "/cpu%d/%s", cpu, rel);
	return read_ulong(path, out);
}

/* A "0-3,8,10-11" CPU list into a byte-per-CPU array. */
static void parse_cpulist(const char *text, bool *set, int nr)
{
	const char *p = text;

	while (p && *p) {
		char *end;
		long a = strtol(p, &end, 10), b = a;

		if (end == p)
			break;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long c = a; c <= b && c < nr; c++)
			if (c >= 0)
				set[c] = true;
		p = *end == ',' ? end + 1 : NULL;
	}
}

static bool name_number(const char *name, const char *prefix, long *out)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(name, prefix, n) || !isdigit((unsigned char)name[n]))
		return false;
	*out = strtol(name + n, &end, 10);
	return !*end;
}

/* -- topology ---------------------------------------------------------------------------- */
/* Cache ids keyed by shared_cpu_list, like scx_utils' TopoCtx: the sysfs id when there is
 * one, else the order of first appearance.  -1 when the cache level is not described. */
struct cache_map {
	char *keys[256];
	long ids[256];
	int n;
};

static long cache_id(struct cache_map *map, int cpu, int index)
{
	char path[PATH_MAX], *key;
	unsigned long id;

	snprintf(path, sizeof(path), SYSFS_CPU "/cpu%d/cache/index%d/shared_cpu_list", cpu, index);
	key = read_text(path);
	if (!key)
		return -1;
	for (int i = 0; i < map->n; i++) {
		if (!strcmp(map->keys[i], key)) {
			free(key);
			return map->ids[i];
		}
	}
	snprintf(path, sizeof(path), SYSFS_CPU "/cpu%d/cache/index%d/id", cpu, index);
	if (!read_ulong(path, &id))
		id = (unsigned long)map->n;
	if (map->n < 256) {
		map->keys[map->n] = key;
		map->ids[map->n++] = (long)id;
	} else {
		free(key);
	}
	return (long)id;
}

static void cache_map_free(struct cache_map *map)
{
	for (int i = 0; i < map->n; i++)
		free(map->keys[i]);
}

/* Index of a (a, b, c) key in a growing table: unique core and LLC numbering. */
struct key_table {
	long (*keys)[3];
	int n, cap;
};

static int key_index(struct key_table *t, long a, long b, long c)
{
	for (int i = 0; i < t->n; i++)
		if (t->keys[i][0] == a && t->keys[i][1] == b && t->keys[i][2] == c)
			return i;
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 64;
		t->keys = realloc(t->keys, sizeof(*t->keys) * (size_t)t->cap);
		if (!t->keys)
			fail_panic("out of memory");
	}
	t->keys[t->n][0] = a;
	t->keys[t->n][1] = b;
	t->keys[t->n][2] = c;
	return t->n++;
}

/* The most precise capacity source that cpu0 has (scx_utils' cpu_capacity_source). */
static const char *capacity_source(void)
{
	static const char *const sources[] = {
		"cpufreq/amd_pstate_highest_perf", "acpi_cppc/highest_perf", "cpu_capacity",
		"cpufreq/cpuinfo_max_freq",
	};
	unsigned long v;

	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++)
		if (cpu_file_ulong(0, sources[i], &v) && v > 0)
			return sources[i];
	return NULL;
}

int topology_read(struct topology *topo)
{
	struct cache_map l2 = { 0 }, l3 = { 0 };
	struct key_table cores = { 0 }, llcs = { 0 };
	bool *online = NULL, *node_has_cpu = NULL;
	int *node_of = NULL, max_id = -1, nr_node_ids = 1;
	unsigned long max_rcap = 0, top_max_freq = 0, base_sum = 0, base_n = 0;
	const char *cap_src;
	long clusters[2] = { -1, -1 };
	bool big_little = false;
	char *text;
	DIR *d;
	struct dirent *e;

	memset(topo, 0, sizeof(*topo));
	d = opendir(SYSFS_CPU);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		long id;

		if (name_number(e->d_name, "cpu", &id) && id > max_id)
			max_id = (int)id;
	}
	closedir(d);
	if (max_id < 0)
		return -ENOENT;
	topo->nr_cpu_ids = max_id + 1;
	topo->nr_possible = libbpf_num_possible_cpus();
	if (topo->nr_possible < topo->nr_cpu_ids)
		topo->nr_possible = topo->nr_cpu_ids;
	topo->cpus = calloc((size_t)topo->nr_cpu_ids, sizeof(*topo->cpus));
	topo->sibling = malloc(sizeof(int) * (size_t)topo->nr_possible);
	online = calloc((size_t)topo->nr_cpu_ids, sizeof(bool));
	node_of = calloc((size_t)topo->nr_cpu_ids, sizeof(int));
	if (!topo->cpus || !topo->sibling || !online || !node_of)
		fail_panic("out of memory");
	for (int i = 0; i < topo->nr_possible; i++)
		topo->sibling[i] = -1;

	text = read_text(SYSFS_CPU "/online");
	if (!text)
		return -errno;
	parse_cpulist(text, online, topo->nr_cpu_ids);
	free(text);

	/* NUMA: CPUs belong to the node directory that lists them; without CONFIG_NUMA there is
	 * a single node 0 */
	d = opendir(SYSFS_NODE);
	if (d) {
		while ((e = readdir(d))) {
			long node;
			char path[PATH_MAX];
			DIR *nd;
			struct dirent *ne;

			if (!name_number(e->d_name, "node", &node))
				continue;
			if (node + 1 > nr_node_ids)
				nr_node_ids = (int)node + 1;
			snprintf(path, sizeof(path), SYSFS_NODE "/%s", e->d_name);
			nd = opendir(path);
			while (nd && (ne = readdir(nd))) {
				long cpu;

				if (name_number(ne->d_name, "cpu", &cpu) && cpu < topo->nr_cpu_ids)
					node_of[cpu] = (int)node;
			}
			if (nd)
				closedir(nd);
		}
		closedir(d);
	}
	node_has_cpu = calloc((size_t)nr_node_ids, sizeof(bool));
	if (!node_has_cpu)
		fail_panic("out of memory");

	cap_src = capacity_source();
	for (int cpu = 0; cap_src && cpu < topo->nr_cpu_ids; cpu++) {
		unsigned long v;

		if (cpu_file_ulong(cpu, cap_src, &v) && v > max_rcap)
			max_rcap = v;
	}
	for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++) {
		unsigned long maxf = 0, basef, cl = 0;

		cpu_file_ulong(cpu, "cpufreq/scaling_max_freq", &maxf);
		if (!cpu_file_ulong(cpu, "cpufreq/base_frequency", &basef))
			basef = maxf;
		if (basef > 0) {
			if (maxf > top_max_freq)
				top_max_freq = maxf;
			base_sum += basef;
			base_n++;
		}
		/* big.LITTLE is assumed when the CPUs span more than one cluster */
		cpu_file_ulong(cpu, "topology/cluster_id", &cl);
		if (clusters[0] < 0)
			clusters[0] = (long)cl;
		else if ((long)cl != clusters[0])
			big_little = true;
	}

	for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++) {
		struct topo_cpu *c = &topo->cpus[cpu];
		unsigned long core_kid, pkg, rcap, v;
		long llc_kid;

		if (!online[cpu])
			continue;
		if (!cpu_file_ulong(cpu, "topology/core_id", &core_kid) ||
		    !cpu_file_ulong(cpu, "topology/physical_package_id", &pkg))
			return -ENOENT;
		c->present = true;
		c->node = node_of[cpu];
		node_has_cpu[c->node] = true;
		c->l2_id = cache_id(&l2, cpu, 2);
		c->l3_id = cache_id(&l3, cpu, 3);
		llc_kid = c->l3_id >= 0 ? c->l3_id : c->l2_id;
		c->llc_id = key_index(&llcs, c->node, (long)pkg, llc_kid);
		c->core = key_index(&cores, c->node, (long)pkg, (long)core_kid);
		c->max_freq = 0;
		cpu_file_ulong(cpu, "cpufreq/scaling_max_freq", &c->max_freq);
		if (!cpu_file_ulong(cpu, "cpufreq/base_frequency", &c->base_freq))
			c->base_freq = c->max_freq;
		if (cap_src && max_rcap) {
			if (!cpu_file_ulong(cpu, cap_src, &rcap))
				rcap = max_rcap;
			c->capacity = rcap * 1024 / max_rcap;
		} else {
			c->capacity = 1024;
		}
		if (!big_little || !base_n) {
			c->core_type = CORE_BIG;
		} else if (c->max_freq == top_max_freq) {
			c->core_type = CORE_BIG_TURBO;
		} else if (c->base_freq >= base_sum / base_n) {
			c->core_type = CORE_BIG;
		} else {
			c->core_type = CORE_LITTLE;
		}
		c->pm_qos_resume_latency_us =
			cpu_file_ulong(cpu, "power/pm_qos_resume_latency_us", &v) ? (long)v : 0;
	}
	topo->nr_cores = cores.n;
	for (int n = 0; n < nr_node_ids; n++)
		topo->nr_nodes += node_has_cpu[n];

	/* Topology::sibling_cpus(): the first two CPUs of each core point at each other */
	for (int core = 0; core < topo->nr_cores; core++) {
		int first = -1;

		for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++) {
			if (!topo->cpus[cpu].present || topo->cpus[cpu].core != core)
				continue;
			if (first < 0) {
				first = cpu;
			} else {
				topo->sibling[first] = cpu;
				topo->sibling[cpu] = first;
				break;
			}
		}
	}
	{
		unsigned long active;

		topo->smt_active = read_ulong(SYSFS_CPU "/smt/active", &active) && active == 1;
	}

	cache_map_free(&l2);
	cache_map_free(&l3);
	free(cores.keys);
	free(llcs.keys);
	free(online);
	free(node_of);
	free(node_has_cpu);
	return 0;
}

void topology_free(struct topology *topo)
{
	free(topo->cpus);
	free(topo->sibling);
	memset(topo, 0, sizeof(*topo));
}

/* -- cpumasks ---------------------------------------------------------------------------- */
static int cpumask_alloc(struct cpumask_bits *mask, int nr)
{
	mask->nr = nr;
	mask->bits = calloc((size_t)(nr + 7) / 8, 1);
	return mask->bits ? 0 : -ENOMEM;
}

int cpumask_parse(const char *text, int nr_cpu_ids, struct cpumask_bits *mask, char *err,
		  size_t errlen)
{
	size_t len;
	int bit = 0;

	if (cpumask_alloc(mask, nr_cpu_ids))
		return -ENOMEM;
	if (!strcmp(text, "none"))
		return 0;
	if (!strcmp(text, "all")) {
		for (int c = 0; c < nr_cpu_ids; c++)
			mask->bits[c / 8] |= (uint8_t)(1u << (c % 8));
		return 0;
	}
	if (!strncmp(text, "0x", 2))
		text += 2;
	len = strlen(text);
	if (!len) {
		snprintf(err, errlen, "Failed to parse cpumask: %s", text);
		return -EINVAL;
	}
	/* from the least significant hex digit up; '_' separates groups */
	for (size_t i = len; i-- > 0;) {
		int v;

		if (text[i] == '_')
			continue;
		if (!isxdigit((unsigned char)text[i])) {
			snprintf(err, errlen, "Failed to parse cpumask: %s", text);
			return -EINVAL;
		}
		v = isdigit((unsigned char)text[i]) ? text[i] - '0' :
						      tolower((unsigned char)text[i]) - 'a' + 10;
		for (int b = 0; b < 4; b++, bit++) {
			if (!(v & (1 << b)))
				continue;
			if (bit >= nr_cpu_ids) {
				snprintf(err, errlen, "Found cpu (%d) in cpumask (%s) which is larger "
					 "than the number of cpus on the machine (%d)", bit, text,
					 nr_cpu_ids);
				return -EINVAL;
			}
			mask->bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
		}
	}
	return 0;
}

bool cpumask_test(const struct cpumask_bits *mask, int cpu)
{
	return cpu >= 0 && cpu < mask->nr && (mask->bits[cpu / 8] >> (cpu % 8)) & 1;
}

int cpumask_weight(const struct cpumask_bits *mask)
{
	int n = 0;

	for (int c = 0; c < mask->nr; c++)
		n += cpumask_test(mask, c);
	return n;
}

void cpumask_format(const struct cpumask_bits *mask, char *buf, size_t len)
{
	int top = mask->nr - 1;
	size_t at = 0;

	while (top > 0 && !cpumask_test(mask, top))
		top--;
	at += (size_t)snprintf(buf, len, "0x");
	for (int nib = top / 4; nib >= 0 && at + 1 < len; nib--) {
		int v = 0;

		for (int b = 0; b < 4; b++)
			v |= cpumask_test(mask, nib * 4 + b) << b;
		buf[at++] = "0123456789abcdef"[v];
	}
	buf[at < len ? at : len - 1] = '\0';
}

void cpumask_free(struct cpumask_bits *mask)
{
	free(mask->bits);
	mask->bits = NULL;
}

enum powermode { PM_TURBO, PM_PERFORMANCE, PM_POWERSAVE, PM_ANY };

/* get_primary_cpus() then epp_to_cpumask(): an empty selection falls back to every CPU. */
static void primary_cpus(const struct topology *topo, enum powermode mode, bool allow_turbo,
			 struct cpumask_bits *out)
{
	int n = 0;

	for (int pass = 0; pass < 2 && !n; pass++) {
		for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++) {
			const struct topo_cpu *c = &topo->cpus[cpu];
			bool take;

			if (!c->present)
				continue;
			switch (pass ? PM_ANY : mode) {
			case PM_TURBO:
				/* bpfland's get_primary_cpus() has no Turbo arm: nothing matches */
				take = allow_turbo && c->core_type == CORE_BIG_TURBO;
				break;
			case PM_PERFORMANCE:
				take = c->core_type != CORE_LITTLE;
				break;
			case PM_POWERSAVE:
				take = c->core_type == CORE_LITTLE;
				break;
			default:
				take = true;
			}
			if (take) {
				out->bits[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
				n++;
			}
		}
	}
}

int resolve_primary_domain(const char *spec, const struct topology *topo, bool allow_turbo,
			   bool balanced_power_is_powersave, struct cpumask_bits *out, char *err,
			   size_t errlen)
{
	enum powermode mode;

	if (!strcmp(spec, "powersave")) {
		mode = PM_POWERSAVE;
	} else if (!strcmp(spec, "performance")) {
		mode = PM_PERFORMANCE;
	} else if (!strcmp(spec, "turbo")) {
		mode = PM_TURBO;
	} else if (!strcmp(spec, "auto")) {
		enum power_profile pp = power_profile_read();

		mode = pp == PP_POWERSAVE ||
		       (balanced_power_is_powersave && pp == PP_BALANCED_POWER) ?
			       PM_POWERSAVE : PM_ANY;
	} else if (!strcmp(spec, "all")) {
		mode = PM_ANY;
	} else {
		return cpumask_parse(spec, topo->nr_cpu_ids, out, err, errlen);
	}
	if (cpumask_alloc(out, topo->nr_cpu_ids))
		return -ENOMEM;
	primary_cpus(topo, mode, allow_turbo, out);
	return 0;
}

/* -- power profile ----------------------------------------------------------------------- */
enum power_profile power_profile_read(void)
{
	char *epp = read_text(SYSFS_CPU "/cpufreq/policy0/energy_performance_preference");
	enum power_profile pp = PP_UNKNOWN;

	if (!epp)
		return PP_UNKNOWN;
	if (!strcmp(epp, "power"))
		pp = PP_POWERSAVE;
	else if (!strcmp(epp, "balance_power"))
		pp = PP_BALANCED_POWER;
	else if (!strcmp(epp, "balance_performance"))
		pp = PP_BALANCED_PERF;
	else if (!strcmp(epp, "performance"))
		pp = PP_PERFORMANCE;
	free(epp);
	return pp;
}

const char *power_profile_name(enum power_profile pp)
{
	switch (pp) {
	case PP_POWERSAVE:
		return "powersave";
	case PP_BALANCED_POWER:
		return "balanced (power)";
	case PP_BALANCED_PERF:
		return "balanced (performance)";
	case PP_PERFORMANCE:
		return "performance";
	default:
		return "unknown";
	}
}

/* -- CPU idle resume latency -------------------------------------------------------------- */
bool idle_resume_latency_supported(void)
{
	return access(SYSFS_CPU "/cpu0/power/pm_qos_resume_latency_us", F_OK) == 0;
}

static int write_latency(int cpu, long us)
{
	char path[PATH_MAX];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), SYSFS_CPU "/cpu%d/power/pm_qos_resume_latency_us", cpu);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	rc = fprintf(f, "%ld", us) < 0 ? -EIO : 0;
	if (fclose(f) && !rc)
		rc = -errno;
	return rc;
}

int idle_resume_latency_set(const struct topology *topo, int64_t us)
{
	for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++) {
		int rc;

		if (!topo->cpus[cpu].present)
			continue;
		latency_changed = topo;
		rc = write_latency(cpu, (long)us);
		if (rc)
			return rc;
	}
	return 0;
}

void idle_resume_latency_restore(const struct topology *topo)
{
	latency_changed = NULL;
	for (int cpu = 0; cpu < topo->nr_cpu_ids; cpu++)
		if (topo->cpus[cpu].present &&
		    write_latency(cpu, topo->cpus[cpu].pm_qos_resume_latency_us))
			log_warn("failed to restore the idle resume latency of CPU %d", cpu);
}

/* -- runtime ------------------------------------------------------------------------------ */
volatile int exit_requested;

static void on_signal(int sig)
{
	(void)sig;
	exit_requested = 1;
}

void install_signal_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	/* no SA_RESTART: the 1 s wait returns at once, so SIGINT acts without delay */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

void wait_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	if (!exit_requested)
		nanosleep(&ts, NULL);
}

void raise_memlock_rlimit(void)
{
	struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };

	/* try_set_rlimit_infinity(): failure is not fatal */
	setrlimit(RLIMIT_MEMLOCK, &r);
}

int read_hotplug_seq(uint64_t *seq)
{
	unsigned long v;

	if (!read_ulong("/sys/kernel/sched_ext/hotplug_seq", &v))
		return -ENOENT;
	*seq = v;
	return 0;
}

bool sched_ext_enabled(void)
{
	char *state = read_text("/sys/kernel/sched_ext/state");
	bool enabled = state && !strcmp(state, "enabled");

	free(state);
	return enabled;
}

int run_syscall_prog(int prog_fd, void *ctx, size_t ctx_size, int *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = ctx, .ctx_size_in = (__u32)ctx_size);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);

	if (err)
		return -errno;
	*retval = (int)opts.retval;
	return 0;
}

/* -- exit report -------------------------------------------------------------------------- */
enum { EXIT_KIND_UNREG_KERN = 66 };
#define ECODE_ACT_RESTART (1ULL << 48)
#define ECODE_ACT_MASK (((1ULL << 16) - 1) << 48)

bool uei_report_rust(const struct uei_view *uei)
{
	if (uei->kind == 0)
		return false;
	if (uei->dump && uei->dump[0]) {
		fputs("\nDEBUG DUMP\n", stderr);
		fputs("================================================================================"
		      "\n\n", stderr);
		fprintf(stderr, "%s\n", uei->dump);
		fputs("================================================================================"
		      "\n\n", stderr);
	}
	if (uei->kind > EXIT_KIND_UNREG_KERN)
		fputs("Error: ", stderr);
	if (uei->msg && uei->msg[0])
		fprintf(stderr, "EXIT: %s (%s)\n", uei->reason, uei->msg);
	else
		fprintf(stderr, "EXIT: %s\n", uei->reason);
	return uei->kind > EXIT_KIND_UNREG_KERN;
}

int uei_finish(const struct uei_view *uei, const char *name, const struct topology *topo)
{
	bool error = uei->kind > EXIT_KIND_UNREG_KERN;

	if (!error)
		uei_report_rust(uei);
	log_info("Unregister %s scheduler", name);
	if (topo)
		idle_resume_latency_restore(topo);
	if (error)
		uei_report_rust(uei);
	return error ? 1 : 0;
}

bool idle_resume_latency_apply(const struct topology *topo, int64_t us)
{
	if (us < 0)
		return false;
	if (!idle_resume_latency_supported()) {
		log_warn("idle resume latency not supported");
		return false;
	}
	log_info("Setting idle QoS to %lld us", (long long)us);
	if (idle_resume_latency_set(topo, us))
		fail_error("failed to set the CPU idle resume latency", strerror(errno));
	return true;
}

void primary_domain_or_fail(const char *spec, const struct topology *topo, bool allow_turbo,
			    bool balanced_power_is_powersave, struct cpumask_bits *out)
{
	char err[256], ctx[320];

	if (!resolve_primary_domain(spec, topo, allow_turbo, balanced_power_is_powersave, out,
				    err, sizeof(err)))
		return;
	snprintf(ctx, sizeof(ctx), "failed to resolve primary domain '%s': %s", spec, err);
	fail_error(ctx, NULL);
}

bool end_of_run(const struct uei_view *uei, const char *name, const struct topology *topo,
		bool user_restart, int *status)
{
	*status = uei_finish(uei, name, topo);
	return !*status && (uei_should_restart(uei) || user_restart);
}

void log_start(const char *name, const char *version, bool smt, int argc, char **argv)
{
	char cmdline[1024] = "";

	log_info("%s %s (scxd C loader) %s", name, version, smt ? "SMT on" : "SMT off");
	for (int i = 0; i < argc; i++) {
		strncat(cmdline, argv[i], sizeof(cmdline) - strlen(cmdline) - 2);
		if (i + 1 < argc)
			strcat(cmdline, " ");
	}
	log_info("scheduler options: %s", cmdline);
}

int loader_main(struct cli *cli, int argc, char **argv, const bool *help_stats,
		const double *monitor, bool (*run_once)(int argc, char **argv, int *status))
{
	int status = 0;
	char msg[160];

	cli_parse(cli, argc, argv);
	if (*help_stats) {
		stats_describe(stdout);
		return 0;
	}
	if (*monitor > 0) {
		snprintf(msg, sizeof(msg), "--monitor needs the scx_stats server of the Rust %s; "
			 "this C loader has none (use --stats)", cli->name);
		fail_error(msg, NULL);
	}
	install_signal_handlers();
	while (run_once(argc, argv, &status) && !exit_requested)
		;
	return status;
}

bool uei_should_restart(const struct uei_view *uei)
{
	return ((uint64_t)uei->exit_code & ECODE_ACT_MASK) == ECODE_ACT_RESTART;
}

/* -- statistics --------------------------------------------------------------------------- */
void stats_print(const char *name, const struct sched_stats *now, struct sched_stats *prev)
{
	printf("[%s] tasks -> r: %2llu/%-2llu | dispatch -> k: %-5llu d: %-5llu s: %-5llu\n", name,
	       (unsigned long long)now->nr_running, (unsigned long long)now->nr_cpus,
	       (unsigned long long)(now->nr_kthread_dispatches - prev->nr_kthread_dispatches),
	       (unsigned long long)(now->nr_direct_dispatches - prev->nr_direct_dispatches),
	       (unsigned long long)(now->nr_shared_dispatches - prev->nr_shared_dispatches));
	fflush(stdout);
	*prev = *now;
}

void stats_describe(FILE *out)
{
	fputs("nr_running            Number of running tasks\n"
	      "nr_cpus               Number of online CPUs\n"
	      "nr_kthread_dispatches Number of kthread direct dispatches\n"
	      "nr_direct_dispatches  Number of task direct dispatches\n"
	      "nr_shared_dispatches  Number of regular task dispatches\n", out);
}

/* -- lifecycle ---------------------------------------------------------------------------- */
void require_sched_ext(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool ok = false;
	int tid;

	if (btf) {
		tid = btf__find_by_name_kind(btf, "sched_ext_ops", BTF_KIND_STRUCT);
		if (tid >= 0) {
			const struct btf_type *t = btf__type_by_id(btf, (__u32)tid);
			const struct btf_member *m = btf_members(t);

			for (int i = 0; i < btf_vlen(t) && !ok; i++)
				ok = !strcmp(btf__name_by_offset(btf, m[i].name_off), "dump");
		}
		btf__free(btf);
	}
	if (!ok)
		fail_error("sched_ext_ops.dump() missing, kernel too old?", NULL);
}

uint64_t hotplug_seq_or_fail(void)
{
	uint64_t seq;

	if (read_hotplug_seq(&seq))
		fail_error("Failed to open or read file \"/sys/kernel/sched_ext/hotplug_seq\"",
			   NULL);
	return seq;
}

void timeout_ms_from_env(uint32_t *ms)
{
	const char *s = getenv("SCX_TIMEOUT_MS");
	uint64_t v;
	int64_t unused;
	const char *problem;

	if (!s)
		return;
	problem = parse_int(s, false, 0, UINT32_MAX, &v, &unused);
	if (problem)
		fail_error("SCX_TIMEOUT_MS has invalid value", problem);
	log_info("Setting timeout_ms to %llu based on environment", (unsigned long long)v);
	*ms = (uint32_t)v;
}

static int libbpf_print_all(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

void libbpf_verbose(bool verbose)
{
	libbpf_set_print(verbose ? libbpf_print_all : NULL);
}

struct bpf_link *attach_or_fail(struct bpf_object_skeleton *skel, struct bpf_map *ops_map)
{
	struct bpf_link *link;
	int err;

	if (sched_ext_enabled())
		fail_error("another sched_ext scheduler is already running", NULL);
	/* libbpf >= 1.5 would also auto-attach the struct_ops map: keep it for the step below */
	bpf_map__set_autoattach(ops_map, false);
	err = bpf_object__attach_skeleton(skel);
	if (err)
		fail_error("Failed to attach non-struct_ops BPF programs", strerror(-err));
	link = bpf_map__attach_struct_ops(ops_map);
	if (!link)
		fail_error("Failed to attach struct_ops BPF programs", strerror(errno));
	return link;
}

int syscall_prog_retval(int prog_fd, void *ctx, size_t ctx_size)
{
	int retval = 0, err = run_syscall_prog(prog_fd, ctx, ctx_size, &retval);

	if (err)
		fail_panic("called `Result::unwrap()` on an `Err` value: test_run: %s",
			   strerror(-err));
	return retval;
}

bool run_until_exit(const struct run_hooks *h)
{
	enum power_profile profile = power_profile_read();
	struct sched_stats prev = { 0 }, now;
	struct timespec last = { 0 }, t;

	if (h->stats_interval > 0 && h->read_stats)
		h->read_stats(h->skel, &prev);
	clock_gettime(CLOCK_MONOTONIC, &last);
	while (!exit_requested && !h->exited(h->skel)) {
		/* refresh_sched_domain(): only a known profile is watched */
		if (profile != PP_UNKNOWN) {
			enum power_profile pp = power_profile_read();

			if (pp != profile) {
				profile = pp;
				if (!strcmp(h->primary_domain, "auto"))
					return true;
				if (h->profile_changed)
					h->profile_changed(h->skel);
			}
		}
		if (h->tick)
			h->tick(h->skel);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (h->stats_interval > 0 && h->read_stats &&
		    (double)(t.tv_sec - last.tv_sec) + (double)(t.tv_nsec - last.tv_nsec) / 1e9 >=
			    h->stats_interval) {
			h->read_stats(h->skel, &now);
			stats_print(h->name, &now, &prev);
			last = t;
		}
		wait_ms(h->stats_interval > 0 && h->stats_interval < 1.0 ?
				(unsigned int)(h->stats_interval * 1000) : 1000);
	}
	return false;
}
