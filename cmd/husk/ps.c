/*
 * husk ps: the container's processes as ps(1) would show them.  The
 * guest has no ps, and one in the container would see its own pid
 * namespace: husk-agent lists the container's cgroup from the guest's
 * /proc and this file lays the records out as procps does for the
 * options given (runc's default is -ef).  Everything from the guest is
 * untrusted text: control characters are escaped before printing.
 */
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "husk.h"
#include "ps.h"
#include "libhusk/cleanup.h"
#include "libhusk/util.h"
#include "libipc/proto_agent.h"

enum col_kind {
	K_PID, K_PPID, K_UID, K_USER, K_GID, K_GROUP, K_STAT, K_TTY, K_TIME,
	K_BSDTIME, K_ETIME, K_STIME, K_C, K_PCPU, K_VSZ, K_RSS, K_COMM,
	K_ARGS,
};

struct keyword {
	const char *names;      /* space-separated aliases */
	enum col_kind kind;
	const char *header;
	bool right;
};

static const struct keyword keywords[] = {
	{ "pid tgid", K_PID, "PID", true },
	{ "ppid", K_PPID, "PPID", true },
	{ "uid euid", K_UID, "UID", true },
	{ "user euser uname", K_USER, "USER", false },
	{ "gid egid", K_GID, "GID", true },
	{ "group egroup", K_GROUP, "GROUP", false },
	{ "stat", K_STAT, "STAT", false },
	{ "s state", K_STAT, "S", false },
	{ "tty tt tname", K_TTY, "TT", false },
	{ "time cputime", K_TIME, "TIME", true },
	{ "bsdtime", K_BSDTIME, "TIME", true },
	{ "etime", K_ETIME, "ELAPSED", true },
	{ "stime start_time", K_STIME, "STIME", false },
	{ "start", K_STIME, "START", false },
	{ "c cp", K_C, "C", true },
	{ "pcpu %cpu", K_PCPU, "%CPU", true },
	{ "vsz vsize", K_VSZ, "VSZ", true },
	{ "rss rssize rsz", K_RSS, "RSS", true },
	{ "comm ucomm ucmd", K_COMM, "COMMAND", false },
	{ "args cmd command", K_ARGS, "COMMAND", false },
};


static const struct keyword *keyword_find(const char *name, size_t len)
{
	for (size_t i = 0; i < HUSK_ARRAY_SIZE(keywords); i++) {
		const char *p = keywords[i].names;

		while (*p) {
			size_t l = strcspn(p, " ");

			if (l == len && !strncmp(p, name, len))
				return &keywords[i];
			p += l + (p[l] == ' ');
		}
	}
	return NULL;
}

static int add_col(struct layout *l, const char *name, const char *header,
		   struct husk_err **err)
{
	const struct keyword *kw = keyword_find(name, strlen(name));

	if (!kw)
		return husk_usage_error(err, "ps: format keyword '%s' is not "
					"supported by husk (see husk(8))",
					name);
	if (l->n == MAX_COLS)
		return husk_usage_error(err, "ps: more than %d columns",
					MAX_COLS);
	l->cols[l->n].kw = kw;
	l->cols[l->n].header = husk_xstrdup(header ? header : kw->header);
	l->n++;
	return 0;
}

/* Where a NAME=HEADER's header ends: at a comma that starts another
 * keyword (procps reads "pid=,args=" as two empty headers), else at
 * the end of the list (a header may hold commas and spaces). */
static size_t header_len(const char *h)
{
	for (const char *c = strchr(h, ','); c; c = strchr(c + 1, ',')) {
		size_t n = strcspn(c + 1, ",=");

		if (keyword_find(c + 1, n))
			return (size_t)(c - h);
	}
	return strlen(h);
}

/* "pid,user=WHO args": procps' -o list. */
static int add_format(struct layout *l, const char *list,
		      struct husk_err **err)
{
	cleanup_free char *s = husk_xstrdup(list);
	size_t len = strlen(s), i = 0, n, next;

	l->custom = true;
	while (i < len) {
		char *hdr = NULL;

		n = strcspn(s + i, ", =");
		next = i + n + 1;
		if (s[i + n] == '=') {
			size_t h;

			hdr = s + i + n + 1;
			h = header_len(hdr);
			next = i + n + 1 + h + 1;
			hdr[h] = '\0';
		}
		s[i + n] = '\0';
		if (n && add_col(l, s + i, hdr, err) < 0)
			return -1;
		i = next;
	}
	return 0;
}

static int unsupported(char opt, bool dash, struct husk_err **err)
{
	return husk_usage_error(err, "ps: option '%s%c' is not supported by "
				"husk (it lists every process of the "
				"container; formats: -f, -o, u, x, see "
				"husk(8))", dash ? "-" : "", opt);
}

/* procps' three styles: -ef (UNIX), aux (BSD), --format (GNU). */
int parse_ps_args(int argc, char **argv, struct layout *l,
		  struct husk_err **err)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool dash = a[0] == '-';

		if (!strcmp(a, "--format") || !strcmp(a, "-o") ||
		    !strcmp(a, "o")) {
			if (i + 1 == argc)
				return husk_usage_error(err, "ps: %s needs a "
							"format", a);
			if (add_format(l, argv[++i], err) < 0)
				return -1;
			continue;
		}
		if (!strncmp(a, "--format=", 9)) {
			if (add_format(l, a + 9, err) < 0)
				return -1;
			continue;
		}
		if (!strncmp(a, "--", 2))
			return husk_usage_error(err, "ps: option '%s' is not "
						"supported by husk", a);
		for (const char *p = a + dash; *p; p++) {
			switch (*p) {
			case 'e': case 'A': case 'a': case 'd': case 'w':
				/* Selections: every process of the
				 * container is shown anyway. */
				if (!dash && *p == 'e')
					return unsupported(*p, dash, err);
				break;
			case 'x':
				l->bsd = true;
				break;
			case 'f': case 'F':
				if (!dash)
					return unsupported(*p, dash, err);
				l->full = true;
				break;
			case 'u':
				if (dash)
					return unsupported(*p, dash, err);
				l->bsd = l->user = true;
				break;
			case 'o':
				if (!p[1] && i + 1 == argc)
					return husk_usage_error(err, "ps: -o "
						"needs a format");
				if (add_format(l, p[1] ? p + 1 : argv[++i],
					       err) < 0)
					return -1;
				p += strlen(p) - 1;
				break;
			default:
				return unsupported(*p, dash, err);
			}
		}
		if (!dash)
			l->bsd = true;
	}
	return 0;
}

int default_layout(struct layout *l, struct husk_err **err)
{
	const char *fmt;

	if (l->custom)
		return 0;
	if (l->user)
		fmt = "user,pid,%cpu,vsz,rss,tty=TTY,stat,start,bsdtime,args";
	else if (l->full)
		fmt = "user=UID,pid,ppid,c,stime,tty=TTY,time,args=CMD";
	else if (l->bsd)
		fmt = "pid,tty=TTY,stat,bsdtime,args";
	else
		fmt = "pid,tty=TTY,time,comm=CMD";
	/* add_format's NAME=HEADER runs to the end: one at a time. */
	for (const char *p = fmt; *p;) {
		size_t n = strcspn(p, ",");
		cleanup_free char *one = husk_xasprintf("%.*s", (int)n, p);

		if (add_format(l, one, err) < 0)
			return -1;
		p += n + (p[n] == ',');
	}
	l->custom = false;
	return 0;
}

/*
 * Guest text made inert: C0 and C1 controls, DEL and bytes that are
 * not UTF-8 become \xNN (\n, \t and \r by name); valid UTF-8 stays.
 */
void put_escaped(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned cp, len;

		if (*p < 0x80) {
			if (*p == '\n' || *p == '\t' || *p == '\r')
				fprintf(out, "\\%c", *p == '\n' ? 'n' :
					*p == '\t' ? 't' : 'r');
			else if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out);
			p++;
			continue;
		}
		len = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
		      (*p & 0xf8) == 0xf0 ? 4 : 0;
		cp = len == 2 ? *p & 0x1f : len == 3 ? *p & 0x0f : *p & 0x07;
		for (unsigned i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80) {
				len = 0;
				break;
			}
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (len == 0 || (len == 2 && cp < 0x80) ||
		    (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f)) {
			fprintf(out, "\\x%02x", *p);
			p++;
			continue;
		}
		fwrite(p, 1, len, out);
		p += len;
	}
}

/* The proxy hands bytes that are not UTF-8 over as {"base64": ...}:
 * decoded, so that put_escaped shows them (a NUL as the text \x00). */
char *guest_text(const json_t *v)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789+/";
	const char *b = json_string_value(json_object_get(v, "base64"));
	uint32_t acc = 0;
	size_t n = 0, bits = 0;
	char *out;

	if (json_is_string(v))
		return husk_xstrdup(json_string_value(v));
	if (!b)
		return husk_xstrdup("?");
	out = husk_xcalloc(1, strlen(b) * 4 + 1);
	for (; *b && *b != '='; b++) {
		const char *c = strchr(tab, *b);

		if (!c)
			break;
		acc = (acc << 6) | (uint32_t)(c - tab);
		bits += 6;
		if (bits >= 8) {
			unsigned char byte = (unsigned char)(acc >>
							     (bits - 8));

			bits -= 8;
			if (byte)
				out[n++] = (char)byte;
			else
				n += (size_t)sprintf(out + n, "\\x00");
		}
	}
	out[n] = '\0';
	return out;
}

static long long jint(const json_t *p, const char *k)
{
	return json_integer_value(json_object_get(p, k));
}

char *fmt_tty(long long nr)
{
	unsigned major = (unsigned)(nr >> 8) & 0xfff;
	unsigned minor = ((unsigned)nr & 0xff) |
			 (((unsigned)nr >> 12) & 0xfff00);

	if (nr <= 0)
		return husk_xstrdup("?");
	if (major >= 136 && major <= 143)
		return husk_xasprintf("pts/%u", (major - 136) * 256 + minor);
	if (major == 4 && minor < 64)
		return husk_xasprintf("tty%u", minor);
	if (major == 4)
		return husk_xasprintf("ttyS%u", minor - 64);
	if (major == 5 && minor == 1)
		return husk_xstrdup("console");
	return husk_xasprintf("%u:%u", major, minor);
}

char *fmt_time(long long ms, bool bsd)
{
	long long s = ms > 0 ? ms / 1000 : 0;

	if (bsd)
		return husk_xasprintf("%lld:%02lld", s / 60, s % 60);
	if (s >= 86400)
		return husk_xasprintf("%lld-%02lld:%02lld:%02lld", s / 86400,
				      s / 3600 % 24, s / 60 % 60, s % 60);
	return husk_xasprintf("%02lld:%02lld:%02lld", s / 3600, s / 60 % 60,
			      s % 60);
}

/* procps' ELAPSED: [[DD-]hh:]mm:ss. */
char *fmt_etime(long long ms)
{
	long long s = ms / 1000;

	if (s >= 86400)
		return husk_xasprintf("%lld-%02lld:%02lld:%02lld", s / 86400,
				      s / 3600 % 24, s / 60 % 60, s % 60);
	if (s >= 3600)
		return husk_xasprintf("%02lld:%02lld:%02lld", s / 3600,
				      s / 60 % 60, s % 60);
	return husk_xasprintf("%02lld:%02lld", s / 60, s % 60);
}

/* procps' STIME: the time today, else the day this year, else the year. */
char *fmt_stime(long long start, time_t now)
{
	time_t t = (time_t)start;
	struct tm tm, tn;
	char buf[32];

	if (start <= 0 || !localtime_r(&t, &tm) || !localtime_r(&now, &tn))
		return husk_xstrdup("?");
	if (now - t < 86400 && tm.tm_yday == tn.tm_yday)
		strftime(buf, sizeof(buf), "%H:%M", &tm);
	else if (tm.tm_year == tn.tm_year)
		strftime(buf, sizeof(buf), "%b%d", &tm);
	else
		strftime(buf, sizeof(buf), "%Y", &tm);
	return husk_xstrdup(buf);
}

static char *fmt_args(const json_t *p)
{
	json_t *args = json_object_get(p, "args"), *a;
	char *out = NULL, *next;
	size_t i;

	if (!json_array_size(args)) {
		cleanup_free char *comm = guest_text(json_object_get(p,
								     "comm"));

		return husk_xasprintf("[%s]", comm);
	}
	json_array_foreach(args, i, a) {
		cleanup_free char *t = guest_text(a);

		next = husk_xasprintf("%s%s%s", out ? out : "", out ? " " : "",
				      t);
		free(out);
		out = next;
	}
	return out;
}

static char *cell(const struct keyword *kw, const json_t *p, time_t now)
{
	long long start = jint(p, "start"), cpu = jint(p, "cpu_ms");
	long long el = start > 0 && now > start ? (now - start) * 1000 : 0;
	struct passwd *pw;
	struct group *gr;

	switch (kw->kind) {
	case K_PID: return husk_xasprintf("%lld", jint(p, "pid"));
	case K_PPID: return husk_xasprintf("%lld", jint(p, "ppid"));
	case K_UID: return husk_xasprintf("%lld", jint(p, "uid"));
	case K_GID: return husk_xasprintf("%lld", jint(p, "gid"));
	/* Names as runc's ps shows them: the host's, like its pids. */
	case K_USER:
		pw = getpwuid((uid_t)jint(p, "uid"));
		return pw ? husk_xstrdup(pw->pw_name) :
			    husk_xasprintf("%lld", jint(p, "uid"));
	case K_GROUP:
		gr = getgrgid((gid_t)jint(p, "gid"));
		return gr ? husk_xstrdup(gr->gr_name) :
			    husk_xasprintf("%lld", jint(p, "gid"));
	case K_STAT:
		return husk_xstrdup(json_string_value(
			json_object_get(p, "state")) ?: "?");
	case K_TTY: return fmt_tty(jint(p, "tty"));
	case K_TIME: return fmt_time(cpu, false);
	case K_BSDTIME: return fmt_time(cpu, true);
	case K_ETIME: return fmt_etime(el);
	case K_STIME: return fmt_stime(start, now);
	case K_C:
		return husk_xasprintf("%lld", el > 0 ? cpu * 100 / el : 0);
	case K_PCPU:
		return husk_xasprintf("%.1f", el > 0 ? (double)cpu * 100 /
						       (double)el : 0.0);
	case K_VSZ: return husk_xasprintf("%lld", jint(p, "vsz_kb"));
	case K_RSS: return husk_xasprintf("%lld", jint(p, "rss_kb"));
	case K_COMM: return guest_text(json_object_get(p, "comm"));
	case K_ARGS: return fmt_args(p);
	}
	return husk_xstrdup("?");
}

/* Columns as wide as their widest cell; the last one is not padded. */
static void print_table(const struct layout *l, const json_t *procs)
{
	size_t rows = json_array_size(procs), w[MAX_COLS];
	cleanup_strv char **cells = husk_xcalloc((rows + 1) * l->n + 1,
						 sizeof(*cells));
	time_t now = time(NULL);
	bool header = false;

	/* procps leaves the header out when every column's is empty. */
	for (size_t c = 0; c < l->n; c++)
		header |= l->cols[c].header[0] != '\0';
	for (size_t c = 0; c < l->n; c++) {
		cells[c] = husk_xstrdup(l->cols[c].header);
		w[c] = strlen(cells[c]);
		for (size_t r = 0; r < rows; r++) {
			char *v = cell(l->cols[c].kw,
				       json_array_get(procs, r), now);

			cells[(r + 1) * l->n + c] = v;
			if (strlen(v) > w[c])
				w[c] = strlen(v);
		}
	}
	for (size_t r = header ? 0 : 1; r <= rows; r++) {
		for (size_t c = 0; c < l->n; c++) {
			const char *v = cells[r * l->n + c];
			size_t pad = w[c] - strlen(v);
			bool last = c + 1 == l->n;

			if (c)
				fputc(' ', stdout);
			if (l->cols[c].kw->right)
				printf("%*s", (int)pad, "");
			put_escaped(stdout, v);
			if (!l->cols[c].kw->right && !last)
				printf("%*s", (int)pad, "");
		}
		fputc('\n', stdout);
	}
}

int cmd_ps(struct husk_ctx *ctx, int argc, char **argv,
	   struct husk_err **err)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = "table";
	struct layout l = { .n = 0 };
	struct husk_entry e;
	struct husk_container c;
	json_t *res = NULL, *procs;
	size_t i;
	int ch, rc = -1, live;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long_only(argc, argv, "+f:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			format = optarg;
			break;
		case 'h':
			husk_cmd_usage(husk_cmd_find("ps"), stdout);
			return 0;
		default:
			return husk_bad_option(err, "ps", argv[optind - 1]);
		}
	}
	if (strcmp(format, "table") && strcmp(format, "json"))
		return husk_usage_error(err, "ps --format: '%s' is not table "
					"or json", format);
	if (optind >= argc || argv[optind][0] == '-')
		return husk_usage_error(err, "ps needs a container id (then "
					"ps options)");
	if (!strcmp(format, "table")) {
		/* runc runs `ps -ef` when given no ps options. */
		char *ef[] = { "-ef" };

		if (optind + 1 < argc)
			rc = parse_ps_args(argc - optind - 1,
					   argv + optind + 1, &l, err);
		else
			rc = parse_ps_args(1, ef, &l, err);
		if (rc == 0)
			rc = default_layout(&l, err);
		if (rc < 0)
			goto out;
		rc = -1;
	}
	if (husk_open_container(ctx, argv[optind], HUSK_LOCK_SHARED, &e, &c,
				err) < 0)
		goto out;
	live = husk_live_status(&c);
	if (!strcmp(format, "json")) {
		/* runc prints host pids, and engines look them up on the
		 * host (`docker top` runs ps(1) there and keeps the rows
		 * with those pids): the guest's pids would pick unrelated
		 * host processes.  The host process standing for the
		 * container is its shim; a stopped one has none. */
		if (live == HUSK_ST_STOPPED)
			printf("[]\n");
		else
			printf("[%d]\n", (int)c.shim.pid);
		husk_container_free(&c);
		husk_entry_close(&e);
		rc = 0;
		goto out;
	}
	/* A stopped container has no processes: an empty list, as runc. */
	if (live == HUSK_ST_STOPPED)
		res = json_pack("{s:[]}", "processes");
	else if (husk_agent_call(ctx->root, c.sandbox_id,
				 AGENT_M_LIST_PROCESSES,
				 json_pack("{s:s}", "container_id", c.id),
				 10000, &res, err) < 0)
		res = NULL;
	husk_container_free(&c);
	husk_entry_close(&e);
	if (!res)
		goto out;
	procs = json_object_get(res, "processes");
	print_table(&l, json_is_array(procs) ? procs : NULL);
	json_decref(res);
	rc = 0;
out:
	for (i = 0; i < l.n; i++)
		free(l.cols[i].header);
	return rc;
}
