/*
 * Task events to containerd: each event is wrapped in an Envelope
 * (timestamp, namespace, topic, Any) and sent with
 * containerd.services.events.ttrpc.v1.Events/Forward to TTRPC_ADDRESS,
 * one at a time and in order.  Events wait in a bounded queue while
 * containerd is away (restarting) and are retried with a back-off; an
 * event containerd refuses is logged and dropped, as is a new event
 * when the queue is full.
 */
#ifndef HUSK_SHIMV2_EVENTS_H
#define HUSK_SHIMV2_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "libhusk/err.h"
#include "shimv2/proto/events.pb-c.h"

struct ev_loop;
struct events_pub;

#define EVENTS_QUEUE_MAX	1024
#define EVENTS_RETRY_MIN_MS	50
#define EVENTS_RETRY_MAX_MS	2000
/* A Forward unanswered this long is retried on a new connection
 * (containerd hung, or restarted without closing). */
#define EVENTS_CALL_TIMEOUT_S	10.0

#define EVENTS_SERVICE	"containerd.services.events.ttrpc.v1.Events"
#define EVENTS_METHOD	"Forward"

/*
 * address: containerd's ttrpc socket (TTRPC_ADDRESS; "unix://" allowed),
 * ns: the namespace of every envelope.  max 0 means EVENTS_QUEUE_MAX.
 * Nothing is connected before the first event.
 */
struct events_pub *events_pub_new(struct ev_loop *loop, const char *address,
				  const char *ns, size_t max,
				  struct husk_err **err);
/* Drops what is still queued (with a log line if anything is). */
void events_pub_free(struct events_pub *p);

/*
 * Queue one event: an Events__Task* message (TaskCreate, TaskStart,
 * TaskDelete, TaskExit, TaskOOM, TaskExecAdded, TaskExecStarted,
 * TaskPaused, TaskResumed); its topic ("/tasks/create") and type URL
 * ("containerd.events.TaskCreate") follow from its type.  The message
 * is packed now, so the caller keeps ownership of ev.  -1 when the
 * type is not an event or the queue is full (logged).
 */
int events_publish(struct events_pub *p, const ProtobufCMessage *ev,
		   struct husk_err **err);
/* The same with any topic and type URL, and the event already packed. */
int events_publish_raw(struct events_pub *p, const char *topic,
		       const char *type_url, const void *data, size_t n,
		       struct husk_err **err);

/* The topic and type URL of an event type, or NULL if not an event. */
const char *events_topic(const ProtobufCMessageDescriptor *d);
const char *events_type_url(const ProtobufCMessageDescriptor *d);

/* Events queued or in flight. */
size_t events_pending(const struct events_pub *p);
/* cb runs once when nothing is pending (now, from the loop, if nothing
 * is): lets the shim send its last events before it exits. */
void events_on_drained(struct events_pub *p,
		       void (*cb)(struct events_pub *, void *), void *arg);
/* Events given up: queue full, refused by containerd, or freed unsent. */
size_t events_dropped(const struct events_pub *p);
/* Another bound than EVENTS_CALL_TIMEOUT_S (tests); 0: the default. */
void events_set_call_timeout(struct events_pub *p, double secs);

#endif
