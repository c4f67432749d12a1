/*
 * A QEMU that lies to husk-hypervisor (hypervisor.bats): run as the
 * driver's --qemu, it runs no VM and speaks QMP on descriptor 3.  It
 * answers every command with an empty return, and before answering an
 * object-add for a DIMM's backend ("mem-<id>") it reports the DIMM
 * itself deleted: a device the driver is still adding, which no real
 * QEMU reports.  Asked to "stop" (the driver's pause), it floods first:
 * FLOOD_PAIRS times STOP then RESUME.  "quit" or the end of the
 * monitor ends it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define FLOOD_PAIRS 50000

static void say(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s) {
		fprintf(stdout, "%s\r\n", s);
		fflush(stdout);
	}
	free(s);
	json_decref(o);
}

int main(void)
{
	char line[65536];
	FILE *in;

	if (dup2(3, STDOUT_FILENO) < 0 || !(in = fdopen(3, "r")))
		return 1;
	say(json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version",
		      "qemu", "major", 7, "minor", 2, "micro", 0, "package",
		      "lying", "capabilities"));
	while (fgets(line, sizeof(line), in)) {
		json_t *cmd = json_loads(line, 0, NULL);
		const char *name = NULL, *obj = NULL;
		json_t *id = NULL;

		if (json_unpack(cmd, "{s:s, s?o, s?{s?s}}", "execute", &name,
				"id", &id, "arguments", "id", &obj) < 0) {
			json_decref(cmd);
			continue;
		}
		if (!strcmp(name, "object-add") && obj &&
		    !strncmp(obj, "mem-", 4))
			say(json_pack("{s:s, s:{s:s, s:s}, s:{s:i, s:i}}",
				      "event", "DEVICE_DELETED", "data",
				      "device", obj + 4, "path",
				      "/machine/peripheral/lie", "timestamp",
				      "seconds", 0, "microseconds", 0));
		if (!strcmp(name, "stop"))
			for (int i = 0; i < 2 * FLOOD_PAIRS; i++)
				say(json_pack("{s:s, s:{s:i, s:i}}", "event",
					      i % 2 ? "RESUME" : "STOP",
					      "timestamp", "seconds", 0,
					      "microseconds", 0));
		say(id ? json_pack("{s:{}, s:O}", "return", "id", id) :
		    json_pack("{s:{}}", "return"));
		if (!strcmp(name, "quit"))
			return 0;
		json_decref(cmd);
	}
	return 0;
}
