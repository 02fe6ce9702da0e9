/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The MatrixRTC session glue: follows one slot of one room through the
 * client's sync loop (MrtcCallState does the thinking) and manages our own
 * membership with a leave guarantee: a delayed leave (MSC4140) scheduled
 * before the join and restarted on a timer, rescheduled on M_NOT_FOUND and
 * fired on a clean leave. Everything but the blocking entry points runs on
 * the client's thread. */

#include "mrtcsession.h"

#include <string.h>

#define NOTIFICATION_LIFETIME_MS 30000
#define REFRESH_RETRY_MIN_MS 1000
#define REFRESH_RETRY_MAX_MS 30000

typedef struct _Op Op;

struct _MrtcSession
{
  GObject parent;

  MrtcClient *client;
  gchar *room_id;
  gchar *slot_id;
  MrtcSessionConfig config;

  /* client thread */
  MrtcCallState *state;
  gulong sync_handler;
  gulong sync_error_handler;
  gboolean holds_sync;
  gboolean started;
  gboolean torn_down;
  GCancellable *cancel;
  GSource *expiry_timer;
  GSource *restart_timer;
  GSource *refresh_timer;
  guint refresh_failures;
  gboolean restart_in_flight;
  gboolean joining;
  gboolean leaving;
  gboolean delayed_legacy_form;
  /* Bumped by every join, rejoin, leave and stop: a completion whose
   * generation is not the current one is stale and only cleans up after
   * itself (cancels the delayed leave it created). */
  guint gen;
  Op *pending_leave;   /* a leave asked for while a join was in flight */
  gint64 max_delay_ms; /* the homeserver's delayed-event limit, or 0 */
  gchar *own_user;     /* our identity as of the join */
  gchar *own_device;
  gchar *state_key;  /* legacy */
  gint64 created_ts; /* legacy: time of our first send */
  gint64 last_send_ts;
  gchar *own_event_id;

  /* snapshots, under lock */
  GMutex lock;
  GPtrArray *members;
  gboolean joined;
  MrtcMembershipFormat joined_format;
  gchar *member_id;
  gchar *delay_id;
  MrtcSlotStatus slot_status;
  guint restart_count;
  guint reschedule_count;
  guint rejoin_count;
};

enum
{
  SIGNAL_MEMBER_JOINED,
  SIGNAL_MEMBER_UPDATED,
  SIGNAL_MEMBER_LEFT,
  SIGNAL_LEFT,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (MrtcSession, mrtc_session, G_TYPE_OBJECT);

GQuark
mrtc_session_error_quark (void)
{
  return g_quark_from_static_string ("mrtc-session-error-quark");
}

void
mrtc_session_config_init (MrtcSessionConfig *config)
{
  memset (config, 0, sizeof (*config));
  config->format = MRTC_MEMBERSHIP_FORMAT_AUTO;
  config->delayed_leave_ms = 18000;
  config->delayed_leave_restart_ms = 4000;
  config->restart_timeout_ms = 2000;
  config->sticky_duration_ms = MRTC_STICKY_MAX_DURATION_MS;
  config->legacy_expires_ms = MRTC_LEGACY_DEFAULT_EXPIRES_MS;
}

void
mrtc_session_config_clear (MrtcSessionConfig *config)
{
  g_clear_pointer (&config->call_intent, g_free);
  g_clear_pointer (&config->notification_type, g_free);
  g_clear_pointer (&config->transport, json_object_unref);
}

static void
config_copy (MrtcSessionConfig *dst, const MrtcSessionConfig *src)
{
  mrtc_session_config_clear (dst);
  *dst = *src;
  dst->call_intent = g_strdup (src->call_intent);
  dst->notification_type = g_strdup (src->notification_type);
  dst->transport
      = src->transport != NULL ? json_object_ref (src->transport) : NULL;
}

static void
destroy_source (GSource **source)
{
  if (*source != NULL) {
    g_source_destroy (*source);
    g_source_unref (*source);
    *source = NULL;
  }
}

static void
mrtc_session_init (MrtcSession *session)
{
  g_mutex_init (&session->lock);
  session->members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_member_unref);
  session->cancel = g_cancellable_new ();
  mrtc_session_config_init (&session->config);
}

static gboolean stop_cb (gpointer data);
static Op *op_new (MrtcSession *session, gboolean blocking);
static gboolean op_run (Op *op, GSourceFunc func, GError **error);

/* Everything the client's thread may still call into (timers, signal
 * handlers) goes away on that thread, before the last reference does: a
 * session dropped on another thread must not race its own callbacks. */
static void
mrtc_session_dispose (GObject *object)
{
  MrtcSession *session = MRTC_SESSION (object);

  if (!session->torn_down && session->client != NULL) {
    if (g_main_context_is_owner (mrtc_client_get_context (session->client)))
      stop_cb (op_new (session, FALSE));
    else
      op_run (op_new (session, TRUE), stop_cb, NULL);
  }
  G_OBJECT_CLASS (mrtc_session_parent_class)->dispose (object);
}

static void
mrtc_session_finalize (GObject *object)
{
  MrtcSession *session = MRTC_SESSION (object);

  g_cancellable_cancel (session->cancel);
  g_object_unref (session->cancel);
  g_object_unref (session->client);
  mrtc_call_state_free (session->state);
  mrtc_session_config_clear (&session->config);
  g_free (session->room_id);
  g_free (session->slot_id);
  g_free (session->own_user);
  g_free (session->own_device);
  g_free (session->state_key);
  g_free (session->own_event_id);
  g_ptr_array_unref (session->members);
  g_free (session->member_id);
  g_free (session->delay_id);
  g_mutex_clear (&session->lock);
  G_OBJECT_CLASS (mrtc_session_parent_class)->finalize (object);
}

static void
mrtc_session_class_init (MrtcSessionClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->dispose = mrtc_session_dispose;
  gobject_class->finalize = mrtc_session_finalize;

  /**
   * MrtcSession::member-joined:
   * @member: the member (MrtcMember: user, device, member id, transports and
   *   LiveKit identity)
   */
  signals[SIGNAL_MEMBER_JOINED] = g_signal_new ("member-joined",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 1, MRTC_TYPE_MEMBER);
  /**
   * MrtcSession::member-updated:
   * @member: the member's new membership
   */
  signals[SIGNAL_MEMBER_UPDATED] = g_signal_new ("member-updated",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 1, MRTC_TYPE_MEMBER);
  /**
   * MrtcSession::member-left:
   * @member: the membership that ended
   * @reason: its leave reason code, "expired", "slot_closed", "not_in_room"
   *   or "left"
   */
  signals[SIGNAL_MEMBER_LEFT] = g_signal_new ("member-left",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, MRTC_TYPE_MEMBER, G_TYPE_STRING);
  /**
   * MrtcSession::left:
   * @reason: why our own membership ended: the reason given to
   *   mrtc_session_leave() ("leave" by default), "slot_closed", "kicked" /
   *   "banned" (our room membership ended), "forbidden" (the homeserver
   *   refuses our membership), "logged_out" (M_UNKNOWN_TOKEN)
   */
  signals[SIGNAL_LEFT] = g_signal_new ("left", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static gint64
session_clock (gpointer data)
{
  return g_get_real_time () / 1000;
}

MrtcSession *
mrtc_session_new (
    MrtcClient *client, const gchar *room_id, const gchar *slot_id)
{
  MrtcSession *session;

  g_return_val_if_fail (MRTC_IS_CLIENT (client), NULL);
  g_return_val_if_fail (room_id != NULL, NULL);

  session = g_object_new (MRTC_TYPE_SESSION, NULL);
  session->client = g_object_ref (client);
  session->room_id = g_strdup (room_id);
  session->slot_id
      = g_strdup (slot_id != NULL ? slot_id : MRTC_DEFAULT_SLOT_ID);
  session->state
      = mrtc_call_state_new (room_id, session->slot_id, session_clock, NULL);
  return session;
}

typedef struct
{
  MrtcSession *session;
  MrtcSessionConfig config;
} ConfigUpdate;

static void
config_update_free (ConfigUpdate *cu)
{
  mrtc_session_config_clear (&cu->config);
  g_object_unref (cu->session);
  g_free (cu);
}

static gboolean
apply_config (gpointer data)
{
  ConfigUpdate *cu = data;

  config_copy (&cu->session->config, &cu->config);
  return G_SOURCE_REMOVE;
}

void
mrtc_session_set_config (MrtcSession *session, const MrtcSessionConfig *config)
{
  ConfigUpdate *cu;

  g_return_if_fail (MRTC_IS_SESSION (session));
  g_return_if_fail (config != NULL);
  /* The config is read on the client's thread only: apply it there, in
   * order with the joins and updates posted after it. */
  cu = g_new0 (ConfigUpdate, 1);
  cu->session = g_object_ref (session);
  config_copy (&cu->config, config);
  if (g_main_context_is_owner (mrtc_client_get_context (session->client))) {
    apply_config (cu);
    config_update_free (cu);
    return;
  }
  mrtc_client_invoke (
      session->client, apply_config, cu, (GDestroyNotify)config_update_free);
}

/* Blocking operations: run @func on the client's thread, wait for
 * op_complete(). */

struct _Op
{
  MrtcSession *session;
  GMutex lock;
  GCond cond;
  gboolean done;
  gboolean blocking;
  GError *error;
  gchar *reason;
  gboolean open;
  JsonArray *room_state;
  guint gen; /* the membership generation it works for */
};

static Op *
op_new (MrtcSession *session, gboolean blocking)
{
  Op *op = g_new0 (Op, 1);

  op->session = g_object_ref (session);
  op->blocking = blocking;
  g_mutex_init (&op->lock);
  g_cond_init (&op->cond);
  return op;
}

static void
op_free (Op *op)
{
  g_object_unref (op->session);
  g_mutex_clear (&op->lock);
  g_cond_clear (&op->cond);
  g_clear_error (&op->error);
  g_free (op->reason);
  if (op->room_state != NULL)
    json_array_unref (op->room_state);
  g_free (op);
}

/* Takes @error. Blocking ops wake their caller (who frees); the others are
 * freed here. Nothing may touch @op (or rely on the caller's reference to
 * the session) afterwards. */
static void
op_complete (Op *op, GError *error)
{
  if (!op->blocking) {
    if (error != NULL)
      g_info ("%s", error->message);
    g_clear_error (&error);
    op_free (op);
    return;
  }
  g_mutex_lock (&op->lock);
  op->error = error;
  op->done = TRUE;
  g_cond_signal (&op->cond);
  g_mutex_unlock (&op->lock);
}

static gboolean
op_run (Op *op, GSourceFunc func, GError **error)
{
  MrtcSession *session = op->session;
  gboolean ok;

  mrtc_client_invoke (session->client, func, op, NULL);
  g_mutex_lock (&op->lock);
  while (!op->done)
    g_cond_wait (&op->cond, &op->lock);
  g_mutex_unlock (&op->lock);
  ok = op->error == NULL;
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&op->error));
  op_free (op);
  return ok;
}

static gboolean
check_thread (MrtcSession *session, GError **error)
{
  if (g_main_context_is_owner (mrtc_client_get_context (session->client))) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_WRONG_THREAD,
        "blocking session call on the client's thread");
    return FALSE;
  }
  return TRUE;
}

static void
call (MrtcSession *session, MrtcRequest *req, GAsyncReadyCallback cb,
    gpointer data)
{
  mrtc_client_call_async (session->client, req, session->cancel, cb, data);
}

/* A completion of the membership machinery: the session and the generation
 * it was started for. */
typedef struct
{
  MrtcSession *session;
  guint gen;
} Pending;

static Pending *
pending_new (MrtcSession *session)
{
  Pending *p = g_new0 (Pending, 1);

  p->session = g_object_ref (session);
  p->gen = session->gen;
  return p;
}

static void
pending_free (Pending *p)
{
  g_object_unref (p->session);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Pending, pending_free);

static void
on_ignore (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);

  if (node == NULL
      && !g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED))
    g_info ("%s failed: %s", (const gchar *)data, error->message);
}

/* Cancels a delayed leave we no longer want (not tied to session->cancel:
 * it must go out even when the session stops). */
static void
cancel_delayed (MrtcSession *session, const gchar *delay_id)
{
  if (delay_id == NULL)
    return;
  mrtc_client_call_async (session->client,
      mrtc_request_delayed_event (
          delay_id, "cancel", session->delayed_legacy_form),
      NULL, on_ignore, (gpointer) "cancelling a delayed leave");
}

/* The delay of our delayed leave, within the homeserver's limit. */
static gint64
delayed_leave_ms (MrtcSession *session)
{
  gint64 ms = session->config.delayed_leave_ms;

  if (session->max_delay_ms > 0)
    ms = MIN (ms, session->max_delay_ms);
  return ms;
}

/* M_MAX_DELAY_EXCEEDED: learns the limit (the server's, else half of what
 * we asked). Returns TRUE when a shorter delay is worth a try. */
static gboolean
learn_max_delay (MrtcSession *session, const GError *error)
{
  gint64 asked = delayed_leave_ms (session);
  const gchar *p;
  gint64 limit = asked / 2;

  if (!g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_MAX_DELAY_EXCEEDED))
    return FALSE;
  p = strstr (error->message, "[max_delay ");
  if (p != NULL)
    limit = g_ascii_strtoll (p + strlen ("[max_delay "), NULL, 10);
  if (limit <= 0 || limit >= asked)
    return FALSE;
  g_info ("room %s: the homeserver allows delayed events of at most "
          "%" G_GINT64_FORMAT " ms; using that for our delayed leave",
      session->room_id, limit);
  session->max_delay_ms = limit;
  return TRUE;
}

/* Member tracking */

static void schedule_expiry (MrtcSession *session);
static gboolean member_present (MrtcSession *session);
static void rejoin (MrtcSession *session);
static void leave_async (MrtcSession *session, const gchar *reason, Op *op);
static void end_membership (MrtcSession *session, const gchar *reason);

static gboolean
is_own_member (MrtcSession *session, MrtcMember *m)
{
  return session->own_user != NULL
         && g_strcmp0 (m->user_id, session->own_user) == 0
         && g_strcmp0 (m->device_id, session->own_device) == 0;
}

/* Whether the slot is closed for our membership: closed in our reading, or
 * (sticky) hidden by js-sdk 43's reading. */
static gboolean
slot_closed_for_us (MrtcSession *session)
{
  if (mrtc_call_state_get_slot_status (session->state) == MRTC_SLOT_CLOSED)
    return TRUE;
  return session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY
         && mrtc_call_state_get_slot_status_jssdk (session->state)
                == MRTC_SLOT_CLOSED;
}

static void
process_update (MrtcSession *session)
{
  g_autoptr (GPtrArray) changes = NULL;
  GPtrArray *members;
  MrtcSlotStatus slot;
  gboolean joined, lost_own = FALSE;
  const gchar *membership;
  guint i;

  if (session->torn_down)
    return;
  /* Handlers may drop their references: keep ours until the end. */
  g_object_ref (session);
  changes = mrtc_call_state_update (session->state);
  members = mrtc_call_state_get_members (session->state);
  slot = mrtc_call_state_get_slot_status (session->state);

  g_mutex_lock (&session->lock);
  g_ptr_array_set_size (session->members, 0);
  for (i = 0; i < members->len; i++)
    g_ptr_array_add (
        session->members, mrtc_member_ref (g_ptr_array_index (members, i)));
  session->slot_status = slot;
  g_mutex_unlock (&session->lock);

  for (i = 0; i < changes->len; i++) {
    MrtcMemberChange *c = g_ptr_array_index (changes, i);

    g_debug ("room %s: %s %s (%s)", session->room_id,
        c->kind == MRTC_MEMBER_CHANGE_JOINED    ? "joined"
        : c->kind == MRTC_MEMBER_CHANGE_UPDATED ? "updated"
                                                : "left",
        c->member->user_id, c->member->device_id);
    switch (c->kind) {
      case MRTC_MEMBER_CHANGE_JOINED:
        g_signal_emit (session, signals[SIGNAL_MEMBER_JOINED], 0, c->member);
        break;
      case MRTC_MEMBER_CHANGE_UPDATED:
        g_signal_emit (session, signals[SIGNAL_MEMBER_UPDATED], 0, c->member);
        break;
      case MRTC_MEMBER_CHANGE_LEFT:
        if (is_own_member (session, c->member))
          lost_own = TRUE;
        g_signal_emit (
            session, signals[SIGNAL_MEMBER_LEFT], 0, c->member, c->reason);
        break;
    }
  }
  if (session->torn_down)
    goto out; /* a handler stopped us */

  g_mutex_lock (&session->lock);
  joined = session->joined;
  g_mutex_unlock (&session->lock);

  /* We are no longer in the room (kicked, banned): the call is over for
   * us, whatever our membership event says. */
  membership = session->own_user != NULL ? mrtc_call_state_get_membership (
                   session->state, session->own_user)
                                         : NULL;
  if (joined && !session->leaving && membership != NULL
      && strcmp (membership, "join") != 0) {
    g_info (
        "room %s: our room membership is now %s", session->room_id, membership);
    end_membership (
        session, strcmp (membership, "ban") == 0 ? "banned" : "kicked");
    goto out;
  }

  /* Our membership vanished while we mean to be in the call (our delayed
   * leave fired, e.g. after a network outage): join again. */
  if (lost_own && joined && !session->leaving && !session->joining
      && !slot_closed_for_us (session) && !member_present (session))
    rejoin (session);

  /* The slot closed under us: leave (after a join in flight). */
  if (joined && !session->leaving && slot_closed_for_us (session)
      && session->pending_leave == NULL) {
    g_info (
        "slot %s in %s closed: leaving", session->slot_id, session->room_id);
    leave_async (session, "slot_closed", op_new (session, FALSE));
  }
  schedule_expiry (session);
out:
  g_object_unref (session);
}

static gboolean
expiry_cb (gpointer data)
{
  MrtcSession *session = data;

  g_clear_pointer (&session->expiry_timer, g_source_unref);
  process_update (session);
  return G_SOURCE_REMOVE;
}

static void
schedule_expiry (MrtcSession *session)
{
  gint64 deadline = mrtc_call_state_next_deadline (session->state);
  gint64 now = session_clock (NULL);

  destroy_source (&session->expiry_timer);
  if (deadline == G_MAXINT64 || session->torn_down)
    return;
  /* At least 10 ms: a deadline in the past is handled by the next update,
   * never by a busy loop. */
  session->expiry_timer = g_timeout_source_new (
      (guint)CLAMP (deadline - now + 1, 10, (gint64)G_MAXUINT));
  g_source_set_callback (session->expiry_timer, expiry_cb, session, NULL);
  g_source_attach (
      session->expiry_timer, mrtc_client_get_context (session->client));
}

static void
feed_array (MrtcSession *session, JsonArray *events)
{
  guint i;

  for (i = 0; events != NULL && i < json_array_get_length (events); i++) {
    JsonNode *n = json_array_get_element (events, i);

    if (JSON_NODE_HOLDS_OBJECT (n))
      mrtc_call_state_handle_event (session->state, json_node_get_object (n));
  }
}

static void
on_sync (MrtcClient *client, JsonObject *resp, gpointer data)
{
  MrtcSession *session = data;
  JsonObject *rooms, *room, *sticky;

  rooms = mrtc_json_get_object (resp, "rooms");
  room = mrtc_json_get_object (
      mrtc_json_get_object (rooms, "join"), session->room_id);
  if (room == NULL) {
    /* We left the room or were removed from it: its last state (our
     * m.room.member leave or ban) comes in rooms.leave. */
    room = mrtc_json_get_object (
        mrtc_json_get_object (rooms, "leave"), session->room_id);
  }
  if (room == NULL) {
    /* expiry is handled by the timer */
    return;
  }
  feed_array (session,
      mrtc_json_get_array (mrtc_json_get_object (room, "state"), "events"));
  feed_array (session,
      mrtc_json_get_array (mrtc_json_get_object (room, "timeline"), "events"));
  sticky = mrtc_json_get_object (room, "msc4354_sticky");
  if (sticky == NULL)
    sticky = mrtc_json_get_object (room, "sticky");
  feed_array (session, mrtc_json_get_array (sticky, "events"));
  process_update (session);
}

static void
on_sync_error (MrtcClient *client, GError *error, gpointer data)
{
  MrtcSession *session = data;

  if (!g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNKNOWN_TOKEN))
    return;
  /* The sync loop stops: we can neither follow the room nor keep our
   * membership alive. */
  g_info ("room %s: logged out (%s)", session->room_id, error->message);
  if (mrtc_session_is_joined (session) && !session->leaving)
    end_membership (session, "logged_out");
}

typedef struct
{
  MrtcSession *session;
  JsonObject *event;
} FeedData;

static void
feed_data_free (FeedData *fd)
{
  g_object_unref (fd->session);
  json_object_unref (fd->event);
  g_free (fd);
}

static gboolean
feed_cb (gpointer data)
{
  FeedData *fd = data;
  MrtcSession *session = fd->session;
  gint64 expires;

  if (!session->started || session->torn_down)
    return G_SOURCE_REMOVE;
  /* A sticky event the client saw (e.g. encrypted) keeps the expiry it had
   * then, whatever TTL its copy carries. */
  expires = mrtc_client_get_sticky_expiry (
      session->client, mrtc_json_get_string (fd->event, "event_id"));
  if (expires >= 0) {
    g_autoptr (JsonObject) copy = mrtc_sticky_event_with_ttl (
        fd->event, expires - session_clock (NULL));

    mrtc_call_state_handle_event (session->state, copy);
  } else {
    mrtc_call_state_handle_event (session->state, fd->event);
  }
  process_update (session);
  return G_SOURCE_REMOVE;
}

void
mrtc_session_feed_event (MrtcSession *session, JsonObject *event)
{
  FeedData *fd = g_new0 (FeedData, 1);

  g_return_if_fail (MRTC_IS_SESSION (session));
  g_return_if_fail (event != NULL);
  fd->session = g_object_ref (session);
  fd->event = json_object_ref (event);
  mrtc_client_invoke (
      session->client, feed_cb, fd, (GDestroyNotify)feed_data_free);
}

/* start */

static gboolean
start_cb (gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  g_autoptr (GPtrArray) sticky = NULL;
  guint i;

  if (session->started) {
    op_complete (op, NULL);
    return G_SOURCE_REMOVE;
  }
  if (g_cancellable_is_cancelled (session->cancel)) {
    /* started again after a stop */
    g_object_unref (session->cancel);
    session->cancel = g_cancellable_new ();
  }
  session->started = TRUE;
  session->torn_down = FALSE;
  g_free (session->own_user);
  g_free (session->own_device);
  session->own_user = mrtc_client_dup_user_id (session->client);
  session->own_device = mrtc_client_dup_device_id (session->client);
  feed_array (session, op->room_state);
  /* Stored sticky events go in with the time they have left. */
  sticky = mrtc_client_dup_sticky_events (session->client, session->room_id);
  for (i = 0; i < sticky->len; i++)
    mrtc_call_state_handle_event (
        session->state, g_ptr_array_index (sticky, i));
  session->sync_handler = g_signal_connect (
      session->client, "sync", G_CALLBACK (on_sync), session);
  session->sync_error_handler = g_signal_connect (
      session->client, "sync-error", G_CALLBACK (on_sync_error), session);
  if (!session->holds_sync) {
    mrtc_client_hold_sync (session->client, 10000);
    session->holds_sync = TRUE;
  }
  process_update (session);
  op_complete (op, NULL);
  return G_SOURCE_REMOVE;
}

gboolean
mrtc_session_start (MrtcSession *session, GError **error)
{
  Op *op;
  JsonArray *room_state;

  if (!check_thread (session, error))
    return FALSE;
  if (!mrtc_client_fetch_versions (session->client, error))
    return FALSE;
  room_state
      = mrtc_client_get_room_state (session->client, session->room_id, error);
  if (room_state == NULL) {
    g_prefix_error (error, "cannot read the state of %s: ", session->room_id);
    return FALSE;
  }
  op = op_new (session, TRUE);
  op->room_state = room_state;
  return op_run (op, start_cb, error);
}

/* Client thread: nothing of the session runs on it afterwards. */
static gboolean
stop_cb (gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;

  session->gen++;
  session->started = FALSE;
  session->torn_down = TRUE;
  session->joining = FALSE;
  session->restart_in_flight = FALSE;
  destroy_source (&session->expiry_timer);
  destroy_source (&session->restart_timer);
  destroy_source (&session->refresh_timer);
  if (session->sync_handler != 0) {
    g_signal_handler_disconnect (session->client, session->sync_handler);
    session->sync_handler = 0;
  }
  if (session->sync_error_handler != 0) {
    g_signal_handler_disconnect (session->client, session->sync_error_handler);
    session->sync_error_handler = 0;
  }
  if (session->holds_sync) {
    mrtc_client_release_sync (session->client);
    session->holds_sync = FALSE;
  }
  if (session->pending_leave != NULL)
    op_complete (g_steal_pointer (&session->pending_leave), NULL);
  g_cancellable_cancel (session->cancel);
  op_complete (op, NULL);
  return G_SOURCE_REMOVE;
}

void
mrtc_session_stop (MrtcSession *session)
{
  if (!check_thread (session, NULL)) {
    Op *op = op_new (session, FALSE);

    stop_cb (op);
    return;
  }
  op_run (op_new (session, TRUE), stop_cb, NULL);
}

/* Our membership */

static JsonObject *
own_join_content (MrtcSession *session)
{
  const gchar *user = session->own_user;
  const gchar *device = session->own_device;

  if (session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY)
    return mrtc_build_sticky_join (user, device, session->member_id,
        session->slot_id, session->config.transport,
        session->config.call_intent);
  else {
    gint64 now = g_get_real_time () / 1000;
    gint64 expires = session->config.legacy_expires_ms;

    /* re-sends keep created_ts and grow expires past now */
    if (session->created_ts > 0)
      expires += now - session->created_ts;
    return mrtc_build_legacy_join (user, device, session->slot_id,
        session->config.transport, expires,
        session->last_send_ts > 0 ? session->created_ts : 0,
        session->config.call_intent);
  }
}

static JsonObject *
own_leave_content (MrtcSession *session, const gchar *reason)
{
  if (session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY)
    return mrtc_build_sticky_leave (
        session->member_id, session->slot_id, reason);
  return mrtc_build_legacy_leave ();
}

static MrtcRequest *
own_membership_request (
    MrtcSession *session, JsonObject *content, gint64 delay_ms)
{
  if (session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY)
    return mrtc_request_send_event (session->client, session->room_id,
        MRTC_EVENT_RTC_MEMBER, content, session->config.sticky_duration_ms,
        delay_ms);
  return mrtc_request_send_state (session->room_id, MRTC_EVENT_LEGACY_MEMBER,
      session->state_key, content, -1, delay_ms);
}

static void
set_delay_id (MrtcSession *session, const gchar *delay_id)
{
  g_mutex_lock (&session->lock);
  g_free (session->delay_id);
  session->delay_id = g_strdup (delay_id);
  g_mutex_unlock (&session->lock);
}

static void
set_joined (MrtcSession *session, gboolean joined)
{
  g_mutex_lock (&session->lock);
  session->joined = joined;
  g_mutex_unlock (&session->lock);
}

static void send_join (MrtcSession *session, Op *op);

/* A leave asked for while a join was in flight goes now. */
static void
run_pending_leave (MrtcSession *session)
{
  Op *op = g_steal_pointer (&session->pending_leave);

  if (op != NULL)
    leave_async (session, NULL, op);
}

/* Delayed leave scheduling (join, rejoin) */

static void schedule_delayed_leave (MrtcSession *session, Op *op);

static void
on_delayed_scheduled (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  const gchar *delay_id = NULL;

  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    delay_id = mrtc_json_get_string (json_node_get_object (node), "delay_id");
  if (op->gen != session->gen) {
    /* stopped meanwhile: drop what we scheduled */
    cancel_delayed (session, delay_id);
    op_complete (
        op, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED,
                "the session stopped while joining"));
    return;
  }
  if (delay_id != NULL) {
    set_delay_id (session, delay_id);
  } else if (error != NULL
             && g_error_matches (
                 error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED)) {
    session->joining = FALSE;
    op_complete (op, g_steal_pointer (&error));
    run_pending_leave (session);
    return;
  } else if (learn_max_delay (session, error)) {
    schedule_delayed_leave (session, op);
    return;
  } else {
    /* No leave guarantee, but we can still take part. */
    g_message ("room %s: no delayed leave (%s): a crash will leave a stale "
               "membership until it expires",
        session->room_id,
        error != NULL ? error->message : "no delay_id in the response");
    set_delay_id (session, NULL);
  }
  send_join (session, op);
}

static void
schedule_delayed_leave (MrtcSession *session, Op *op)
{
  g_autoptr (JsonObject) content = own_leave_content (session, NULL);

  op->gen = session->gen;
  call (session,
      own_membership_request (session, content, delayed_leave_ms (session)),
      on_delayed_scheduled, op);
}

/* Timers while joined */

static void schedule_refresh (MrtcSession *session, gint64 delay_ms);

static void
on_rescheduled (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr (Pending) p = data;
  MrtcSession *session = p->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  const gchar *delay_id = NULL;

  session->restart_in_flight = FALSE;
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    delay_id = mrtc_json_get_string (json_node_get_object (node), "delay_id");
  if (delay_id == NULL) {
    if (error != NULL && !learn_max_delay (session, error)
        && !g_error_matches (
            error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED))
      g_info ("rescheduling the delayed leave failed: %s", error->message);
    return;
  }
  /* A leave, a rejoin or a stop came first: this delayed leave belongs to
   * nobody, and left alone it would fire later. */
  if (p->gen != session->gen || !session->joined || session->leaving
      || session->joining) {
    cancel_delayed (session, delay_id);
    return;
  }
  set_delay_id (session, delay_id);
  g_mutex_lock (&session->lock);
  session->reschedule_count++;
  g_mutex_unlock (&session->lock);
  /* If the old delayed leave fired, our membership is gone: send it again. */
  if (!member_present (session)) {
    g_info ("room %s: our membership is gone, joining again", session->room_id);
    send_join (session, op_new (session, FALSE));
  }
}

static void
reschedule (MrtcSession *session)
{
  g_autoptr (JsonObject) content = own_leave_content (session, NULL);

  session->restart_in_flight = TRUE;
  call (session,
      own_membership_request (session, content, delayed_leave_ms (session)),
      on_rescheduled, pending_new (session));
}

static void
on_restarted (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr (Pending) p = data;
  MrtcSession *session = p->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  gboolean current = p->gen == session->gen && session->joined
                     && !session->leaving && !session->joining;

  session->restart_in_flight = FALSE;
  if (node != NULL) {
    g_mutex_lock (&session->lock);
    session->restart_count++;
    g_mutex_unlock (&session->lock);
  } else if (current
             && g_error_matches (
                 error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNRECOGNIZED)
             && !session->delayed_legacy_form) {
    g_autofree gchar *delay_id = mrtc_session_dup_delay_id (session);

    session->delayed_legacy_form = TRUE;
    if (delay_id != NULL) {
      session->restart_in_flight = TRUE;
      call (session, mrtc_request_delayed_event (delay_id, "restart", TRUE),
          on_restarted, pending_new (session));
    }
  } else if (current
             && g_error_matches (
                 error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NOT_FOUND)) {
    g_info ("room %s: delayed leave gone (%s), scheduling a new one",
        session->room_id, error->message);
    set_delay_id (session, NULL);
    reschedule (session);
  } else if (current
             && g_error_matches (
                 error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNKNOWN_TOKEN)) {
    /* logged out: nothing keeps our membership alive any more */
    end_membership (session, "logged_out");
  } else if (error != NULL
             && !g_error_matches (
                 error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED)) {
    g_info ("restarting the delayed leave failed: %s", error->message);
  }
}

static gboolean
restart_cb (gpointer data)
{
  MrtcSession *session = data;
  g_autofree gchar *delay_id = NULL;
  MrtcRequest *req;

  if (!session->joined || session->leaving || session->joining
      || session->restart_in_flight)
    return G_SOURCE_CONTINUE;
  delay_id = mrtc_session_dup_delay_id (session);
  if (delay_id == NULL) {
    reschedule (session);
    return G_SOURCE_CONTINUE;
  }
  session->restart_in_flight = TRUE;
  req = mrtc_request_delayed_event (
      delay_id, "restart", session->delayed_legacy_form);
  req->timeout_ms = session->config.restart_timeout_ms;
  req->max_rate_limit_retries = 0;
  call (session, req, on_restarted, pending_new (session));
  return G_SOURCE_CONTINUE;
}

/* How long a send of our membership keeps it valid. */
static gint64
membership_lifetime_ms (MrtcSession *session)
{
  return session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY
             ? session->config.sticky_duration_ms
             : session->config.legacy_expires_ms;
}

static gint64
refresh_interval_ms (MrtcSession *session)
{
  /* 5 s before the membership runs out (sticky: 1 h; legacy: at least
   * hourly, as js-sdk does). */
  gint64 ms = session->joined_format == MRTC_MEMBERSHIP_FORMAT_STICKY
                  ? session->config.sticky_duration_ms
                  : MIN (session->config.legacy_expires_ms, 3600000);

  return MAX (ms - 5000, 1000);
}

static void
on_refreshed (GObject *source, GAsyncResult *result, gpointer data)
{
  g_autoptr (Pending) p = data;
  MrtcSession *session = p->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  gint64 now = session_clock (NULL), retry;

  if (p->gen != session->gen || !session->joined || session->leaving)
    return;
  if (node != NULL) {
    session->last_send_ts = now;
    session->refresh_failures = 0;
    schedule_refresh (session, refresh_interval_ms (session));
    return;
  }
  if (g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED))
    return;
  if (g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FORBIDDEN)) {
    g_info ("room %s: refreshing our membership refused: %s", session->room_id,
        error->message);
    end_membership (session, "forbidden");
    return;
  }
  /* Retry (as js-sdk does) until the membership would have run out. */
  session->refresh_failures++;
  retry = MIN (REFRESH_RETRY_MIN_MS << MIN (session->refresh_failures, 5),
      REFRESH_RETRY_MAX_MS);
  if (now + retry < session->last_send_ts + membership_lifetime_ms (session)) {
    g_info (
        "refreshing our membership failed (%s): retrying in %" G_GINT64_FORMAT
        " ms",
        error->message, retry);
    schedule_refresh (session, retry);
  } else {
    g_info (
        "refreshing our membership failed (%s): it expires", error->message);
  }
}

static gboolean
refresh_cb (gpointer data)
{
  MrtcSession *session = data;
  g_autoptr (JsonObject) content = NULL;

  g_clear_pointer (&session->refresh_timer, g_source_unref);
  if (!session->joined || session->leaving)
    return G_SOURCE_REMOVE;
  content = own_join_content (session);
  call (session, own_membership_request (session, content, -1), on_refreshed,
      pending_new (session));
  return G_SOURCE_REMOVE;
}

static void
schedule_refresh (MrtcSession *session, gint64 delay_ms)
{
  destroy_source (&session->refresh_timer);
  if (session->torn_down)
    return;
  session->refresh_timer = g_timeout_source_new ((guint)MAX (delay_ms, 100));
  g_source_set_callback (session->refresh_timer, refresh_cb, session, NULL);
  g_source_attach (
      session->refresh_timer, mrtc_client_get_context (session->client));
}

static void
start_timers (MrtcSession *session)
{
  destroy_source (&session->restart_timer);
  if (session->torn_down)
    return;
  session->restart_timer = g_timeout_source_new (
      MAX (session->config.delayed_leave_restart_ms, 100));
  g_source_set_callback (session->restart_timer, restart_cb, session, NULL);
  g_source_attach (
      session->restart_timer, mrtc_client_get_context (session->client));
  session->refresh_failures = 0;
  schedule_refresh (session, refresh_interval_ms (session));
}

/* Our membership ended without a leave of ours (kicked, logged out, the
 * homeserver refuses it): stop the machinery and say so. */
static void
end_membership (MrtcSession *session, const gchar *reason)
{
  g_autofree gchar *delay_id = mrtc_session_dup_delay_id (session);

  g_info ("room %s: our membership ended (%s)", session->room_id, reason);
  session->gen++;
  destroy_source (&session->restart_timer);
  destroy_source (&session->refresh_timer);
  /* Best effort: a delayed leave left behind would write later. */
  if (g_strcmp0 (reason, "logged_out") != 0)
    cancel_delayed (session, delay_id);
  set_delay_id (session, NULL);
  session->joining = FALSE;
  session->leaving = FALSE;
  set_joined (session, FALSE);
  g_object_ref (session);
  if (!session->torn_down)
    g_signal_emit (session, signals[SIGNAL_LEFT], 0, reason);
  if (session->pending_leave != NULL)
    op_complete (g_steal_pointer (&session->pending_leave), NULL);
  g_object_unref (session);
}

/* Join */

static gboolean
member_present (MrtcSession *session)
{
  GPtrArray *members = mrtc_call_state_get_members (session->state);
  guint i;

  for (i = 0; i < members->len; i++) {
    if (is_own_member (session, g_ptr_array_index (members, i)))
      return TRUE;
  }
  return FALSE;
}

static void
send_notification (MrtcSession *session)
{
  JsonObject *content = json_object_new ();
  JsonObject *mentions = json_object_new ();
  JsonObject *rel = json_object_new ();
  gboolean sticky
      = mrtc_client_has_feature (session->client, "org.matrix.msc4354");
  MrtcRequest *req;

  json_object_set_string_member (content, "slot_id", session->slot_id);
  json_object_set_array_member (mentions, "user_ids", json_array_new ());
  json_object_set_boolean_member (mentions, "room", TRUE);
  json_object_set_object_member (content, "m.mentions", mentions);
  json_object_set_string_member (
      content, "notification_type", session->config.notification_type);
  if (session->own_event_id != NULL) {
    json_object_set_string_member (rel, "rel_type", "m.reference");
    json_object_set_string_member (rel, "event_id", session->own_event_id);
    json_object_set_object_member (content, "m.relates_to", rel);
  } else {
    json_object_unref (rel);
  }
  json_object_set_int_member (content, "sender_ts", g_get_real_time () / 1000);
  json_object_set_int_member (content, "lifetime", NOTIFICATION_LIFETIME_MS);
  if (session->config.call_intent != NULL)
    json_object_set_string_member (
        content, "m.call.intent", session->config.call_intent);
  json_object_set_string_member (
      content, "msc4354_sticky_key", session->slot_id);
  req = mrtc_request_send_event (session->client, session->room_id,
      MRTC_EVENT_RTC_NOTIFICATION, content,
      sticky ? NOTIFICATION_LIFETIME_MS + 20000 : -1, -1);
  json_object_unref (content);
  call (session, req, on_ignore, (gpointer) "sending the call notification");
}

/* Errors after which sending our membership again cannot help. */
static const gchar *
fatal_reason (const GError *error)
{
  if (g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FORBIDDEN))
    return "forbidden";
  if (g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_UNKNOWN_TOKEN))
    return "logged_out";
  return NULL;
}

static void
on_joined (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  gboolean first, was_joined;

  if (op->gen != session->gen) {
    /* stopped meanwhile: nothing to start */
    op_complete (
        op, g_error_new (MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED,
                "the session stopped while joining"));
    return;
  }
  session->joining = FALSE;
  g_mutex_lock (&session->lock);
  was_joined = session->joined;
  g_mutex_unlock (&session->lock);
  if (node == NULL) {
    g_autofree gchar *delay_id = mrtc_session_dup_delay_id (session);
    const gchar *fatal = fatal_reason (error);

    g_prefix_error (
        &error, "sending our membership to %s failed: ", session->room_id);
    if (was_joined && fatal != NULL) {
      /* A rejoin or an update the homeserver refuses for good (kicked,
       * banned, power levels, logged out). */
      op_complete (op, g_steal_pointer (&error));
      end_membership (session, fatal);
      return;
    }
    /* Drop the delayed leave we scheduled for nothing; while joined, the
     * restart timer schedules a new one and sends the membership again. */
    if (!g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED)
        && (!was_joined || !member_present (session))) {
      cancel_delayed (session, delay_id);
      set_delay_id (session, NULL);
    }
    op_complete (op, g_steal_pointer (&error));
    run_pending_leave (session);
    return;
  }
  g_free (session->own_event_id);
  session->own_event_id
      = JSON_NODE_HOLDS_OBJECT (node) ? g_strdup (
            mrtc_json_get_string (json_node_get_object (node), "event_id"))
                                      : NULL;
  session->last_send_ts = g_get_real_time () / 1000;
  if (session->created_ts == 0)
    session->created_ts = session->last_send_ts;

  first = !was_joined;
  set_joined (session, TRUE);
  if (first) {
    start_timers (session);
    if (session->config.notification_type != NULL
        && mrtc_call_state_get_members (session->state)->len == 0)
      send_notification (session);
  }
  op_complete (op, NULL);
  run_pending_leave (session);
}

static void
send_join (MrtcSession *session, Op *op)
{
  g_autoptr (JsonObject) content = own_join_content (session);

  session->joining = TRUE;
  op->gen = session->gen;
  call (session, own_membership_request (session, content, -1), on_joined, op);
}

static void
rejoin (MrtcSession *session)
{
  g_autofree gchar *old = mrtc_session_dup_delay_id (session);

  g_info ("room %s: our membership is gone, joining again", session->room_id);
  g_mutex_lock (&session->lock);
  session->rejoin_count++;
  g_mutex_unlock (&session->lock);
  session->gen++;
  cancel_delayed (session, old);
  set_delay_id (session, NULL);
  session->joining = TRUE;
  /* a new leave guarantee first, then the membership */
  schedule_delayed_leave (session, op_new (session, FALSE));
}

static gboolean
join_cb (gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  MrtcClient *client = session->client;
  MrtcMembershipFormat format;
  g_autofree gchar *user = mrtc_client_dup_user_id (client);
  g_autofree gchar *device = mrtc_client_dup_device_id (client);
  gboolean jssdk_closed;

  if (!session->started || user == NULL || device == NULL) {
    op_complete (op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_STATE,
                         "the session is not started or the "
                         "client not logged in"));
    return G_SOURCE_REMOVE;
  }
  if (session->joined || session->joining) {
    op_complete (op,
        g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_STATE,
            "already in slot %s of %s", session->slot_id, session->room_id));
    return G_SOURCE_REMOVE;
  }
  if (mrtc_call_state_get_slot_status (session->state) == MRTC_SLOT_CLOSED) {
    op_complete (
        op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_SLOT_CLOSED,
                "cannot join: slot %s in %s is "
                "closed",
                session->slot_id, session->room_id));
    return G_SOURCE_REMOVE;
  }

  /* auto: sticky where the homeserver has sticky events, except in
   * encrypted rooms (there sticky members must be Megolm-encrypted, which
   * this session does not do, while legacy state events are never
   * encrypted and every Element Call lists them) and in slots js-sdk 43
   * reads as closed (the seed form): it would hide our sticky member. */
  jssdk_closed = mrtc_call_state_get_slot_status_jssdk (session->state)
                 == MRTC_SLOT_CLOSED;
  format = session->config.format;
  if (format == MRTC_MEMBERSHIP_FORMAT_AUTO)
    format = mrtc_client_has_feature (client, "org.matrix.msc4354")
                     && !mrtc_call_state_is_encrypted (session->state)
                     && !jssdk_closed
                 ? MRTC_MEMBERSHIP_FORMAT_STICKY
                 : MRTC_MEMBERSHIP_FORMAT_LEGACY;
  if (format == MRTC_MEMBERSHIP_FORMAT_STICKY && jssdk_closed) {
    op_complete (
        op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_SLOT_CLOSED,
                "cannot join slot %s of %s in the sticky format: its slot "
                "event has no \"status\":\"open\", so Element Call "
                "(matrix-js-sdk) reads the slot as closed and would not see "
                "us (use the legacy or auto format)",
                session->slot_id, session->room_id));
    return G_SOURCE_REMOVE;
  }

  if (format == MRTC_MEMBERSHIP_FORMAT_LEGACY
      && !mrtc_call_state_can_send_state (
          session->state, user, MRTC_EVENT_LEGACY_MEMBER)) {
    op_complete (
        op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_PERMISSION,
                "cannot join %s in the legacy "
                "format: the room's power levels do not let %s send %s state "
                "events",
                session->room_id, user, MRTC_EVENT_LEGACY_MEMBER));
    return G_SOURCE_REMOVE;
  }

  g_free (session->own_user);
  g_free (session->own_device);
  session->own_user = g_strdup (user);
  session->own_device = g_strdup (device);
  g_mutex_lock (&session->lock);
  session->joined_format = format;
  g_free (session->member_id);
  session->member_id = format == MRTC_MEMBERSHIP_FORMAT_STICKY
                           ? mrtc_new_member_id ()
                           : mrtc_legacy_identity (user, device);
  g_mutex_unlock (&session->lock);
  g_free (session->state_key);
  session->state_key = mrtc_legacy_state_key (user, device, session->slot_id,
      mrtc_call_state_get_room_version (session->state));
  session->created_ts = 0;
  session->last_send_ts = 0;
  session->joining = TRUE;
  session->leaving = FALSE;
  session->delayed_legacy_form = FALSE;
  session->gen++;
  g_info ("joining slot %s of %s as %s (%s)", session->slot_id,
      session->room_id, user,
      format == MRTC_MEMBERSHIP_FORMAT_STICKY ? "sticky" : "legacy");

  /* The leave guarantee comes first. */
  schedule_delayed_leave (session, op);
  return G_SOURCE_REMOVE;
}

gboolean
mrtc_session_join (MrtcSession *session, GError **error)
{
  if (!check_thread (session, error))
    return FALSE;
  return op_run (op_new (session, TRUE), join_cb, error);
}

static gboolean
update_cb (gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;

  if (!session->joined || session->leaving || session->joining) {
    op_complete (
        op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_STATE,
                "not in slot %s of %s", session->slot_id, session->room_id));
    return G_SOURCE_REMOVE;
  }
  send_join (session, op);
  return G_SOURCE_REMOVE;
}

gboolean
mrtc_session_update (MrtcSession *session, GError **error)
{
  if (!check_thread (session, error))
    return FALSE;
  return op_run (op_new (session, TRUE), update_cb, error);
}

/* Leave */

static void
finish_leave (Op *op, GError *error)
{
  MrtcSession *session = op->session;
  g_autofree gchar *reason = g_strdup (op->reason);

  set_joined (session, FALSE);
  session->leaving = FALSE;
  set_delay_id (session, NULL);
  /* "left" first: a caller woken by op_complete() may drop the session
   * right away. The op holds a reference until then. */
  if (!session->torn_down) /* no signals after mrtc_session_stop() */
    g_signal_emit (session, signals[SIGNAL_LEFT], 0, reason);
  op_complete (op, error);
}

static void
on_leave_sent (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);

  if (node == NULL)
    g_prefix_error (&error, "sending our leave failed: ");
  finish_leave (op, g_steal_pointer (&error));
}

static void
send_leave_content (Op *op)
{
  MrtcSession *session = op->session;
  g_autoptr (JsonObject) content = own_leave_content (
      session, g_strcmp0 (op->reason, "leave") == 0 ? NULL : op->reason);

  call (op->session, own_membership_request (session, content, -1),
      on_leave_sent, op);
}

static void
on_delayed_fired (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);

  if (node != NULL) {
    finish_leave (op, NULL);
    return;
  }
  if (g_error_matches (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_CANCELLED)) {
    finish_leave (op, g_steal_pointer (&error));
    return;
  }
  g_info ("firing the delayed leave failed (%s): sending the leave",
      error->message);
  send_leave_content (op);
}

/* @reason NULL keeps op->reason. */
static void
leave_async (MrtcSession *session, const gchar *reason, Op *op)
{
  g_autofree gchar *delay_id = NULL;

  if (reason != NULL) {
    g_free (op->reason);
    op->reason = g_strdup (reason);
  }
  if (op->reason == NULL)
    op->reason = g_strdup ("leave");
  if (session->joining && !session->torn_down) {
    /* A join or rejoin is in flight: leave once it is done, so that its
     * completion cannot undo the leave. */
    if (session->pending_leave != NULL) {
      op_complete (op, NULL);
      return;
    }
    g_info ("room %s: leaving after the join in flight", session->room_id);
    session->pending_leave = op;
    return;
  }
  if (!session->joined || session->leaving) {
    op_complete (op, NULL);
    return;
  }
  session->leaving = TRUE;
  session->gen++;
  destroy_source (&session->restart_timer);
  destroy_source (&session->refresh_timer);
  g_info ("leaving slot %s of %s (%s)", session->slot_id, session->room_id,
      op->reason);

  delay_id = mrtc_session_dup_delay_id (session);
  if (delay_id != NULL && strcmp (op->reason, "leave") == 0) {
    /* The prepared leave: fire it. */
    call (session,
        mrtc_request_delayed_event (
            delay_id, "send", session->delayed_legacy_form),
        on_delayed_fired, op);
    return;
  }
  cancel_delayed (session, delay_id);
  send_leave_content (op);
}

static gboolean
leave_cb (gpointer data)
{
  Op *op = data;

  leave_async (op->session, NULL, op);
  return G_SOURCE_REMOVE;
}

gboolean
mrtc_session_leave (MrtcSession *session, const gchar *reason, GError **error)
{
  Op *op;

  if (!check_thread (session, error))
    return FALSE;
  op = op_new (session, TRUE);
  op->reason = g_strdup (reason);
  return op_run (op, leave_cb, error);
}

/* Slot */

static void
on_slot_sent (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);

  if (node == NULL) {
    if (g_error_matches (
            error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FORBIDDEN)) {
      op_complete (
          op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_PERMISSION,
                  "the homeserver refused to %s "
                  "slot %s: %s",
                  op->open ? "open" : "close", op->session->slot_id,
                  error->message));
      return;
    }
    op_complete (op, g_steal_pointer (&error));
    return;
  }
  op_complete (op, NULL);
}

/* The content to send: the slot event in force (@existing, nullable) with
 * its status set, everything else it carries kept (the application's
 * fields, e.g. a slot-shared key reference "m.shared_key_event", and its
 * encryption); what a fresh slot has (application type, per-member
 * encryption in encrypted rooms) only fills in what is missing. */
static JsonObject *
merge_slot_content (JsonObject *existing, JsonObject *fresh, gboolean open)
{
  JsonObject *content, *application;
  GList *names, *l;

  if (existing == NULL)
    return json_object_ref (fresh);
  {
    /* A deep copy (json_node_copy() shares nested objects). */
    g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
    g_autofree gchar *text = NULL;
    g_autoptr (JsonNode) copy = NULL;

    json_node_set_object (node, existing);
    text = json_to_string (node, FALSE);
    copy = json_from_string (text, NULL);
    if (copy == NULL || !JSON_NODE_HOLDS_OBJECT (copy))
      return json_object_ref (fresh);
    content = json_node_dup_object (copy);
  }
  json_object_set_string_member (
      content, "status", mrtc_json_get_string (fresh, "status"));
  names = json_object_get_members (fresh);
  for (l = names; l != NULL; l = l->next) {
    const gchar *name = l->data;
    JsonObject *have = mrtc_json_get_object (content, name);
    JsonObject *want = mrtc_json_get_object (fresh, name);

    if (g_str_equal (name, "status"))
      continue;
    /* An application that is no object cannot be an open slot's. */
    if (!json_object_has_member (content, name)
        || (g_str_equal (name, "application") && have == NULL)) {
      json_object_set_member (
          content, name, json_node_copy (json_object_get_member (fresh, name)));
    } else if (have != NULL && want != NULL) {
      /* e.g. application: keep its fields, add the missing ones (type) */
      GList *inner = json_object_get_members (want), *k;

      for (k = inner; k != NULL; k = k->next) {
        if (!json_object_has_member (have, k->data))
          json_object_set_member (have, k->data,
              json_node_copy (json_object_get_member (want, k->data)));
      }
      g_list_free (inner);
      /* the slot's application type, so that the slot parses as open */
      if (g_str_equal (name, "application")
          && g_strcmp0 (mrtc_json_get_string (have, "type"),
                 mrtc_json_get_string (want, "type"))
                 != 0)
        json_object_set_string_member (
            have, "type", mrtc_json_get_string (want, "type"));
    }
  }
  g_list_free (names);
  /* A closed slot names no slot-shared key: reopened, it gets a new one
   * (never the key from before it closed). */
  application = mrtc_json_get_object (content, "application");
  if (!open && application != NULL)
    json_object_remove_member (application, "m.shared_key_event");
  return content;
}

static void
on_slot_read (GObject *source, GAsyncResult *result, gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node
      = mrtc_client_call_finish (MRTC_CLIENT (source), result, &error);
  g_autoptr (JsonObject) fresh = NULL;
  g_autoptr (JsonObject) content = NULL;
  JsonObject *existing = NULL;

  if (node == NULL
      && !g_error_matches (
          error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NOT_FOUND)) {
    op_complete (op, g_steal_pointer (&error));
    return;
  }
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    existing = json_node_get_object (node);
  fresh = mrtc_build_slot (session->slot_id, op->open,
      mrtc_call_state_is_encrypted (session->state));
  content = merge_slot_content (existing, fresh, op->open);
  call (session,
      mrtc_request_send_state (session->room_id, MRTC_EVENT_RTC_SLOT,
          session->slot_id, content, -1, -1),
      on_slot_sent, op);
}

static gboolean
slot_cb (gpointer data)
{
  Op *op = data;
  MrtcSession *session = op->session;
  g_autofree gchar *user = mrtc_client_dup_user_id (session->client);
  g_autofree gchar *room = NULL, *type = NULL, *key = NULL, *path = NULL;
  MrtcRequest *req;

  if (!mrtc_call_state_can_send_state (
          session->state, user, MRTC_EVENT_RTC_SLOT)) {
    op_complete (
        op, g_error_new (MRTC_SESSION_ERROR, MRTC_SESSION_ERROR_PERMISSION,
                "%s lacks the power level to %s "
                "slot %s in %s (a moderator must do it)",
                user, op->open ? "open" : "close", session->slot_id,
                session->room_id));
    return G_SOURCE_REMOVE;
  }
  /* The slot event in force, read right before the update so that the
   * fields others put there are kept (not from the sync: it may lag). */
  room = g_uri_escape_string (session->room_id, NULL, FALSE);
  type = g_uri_escape_string (MRTC_EVENT_RTC_SLOT, NULL, FALSE);
  key = g_uri_escape_string (session->slot_id, NULL, FALSE);
  path = g_strdup_printf (
      "/_matrix/client/v3/rooms/%s/state/%s/%s", room, type, key);
  req = mrtc_request_new ("GET", path);
  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  call (session, req, on_slot_read, op);
  return G_SOURCE_REMOVE;
}

gboolean
mrtc_session_set_slot_open (MrtcSession *session, gboolean open, GError **error)
{
  Op *op;

  if (!check_thread (session, error))
    return FALSE;
  op = op_new (session, TRUE);
  op->open = open;
  return op_run (op, slot_cb, error);
}

/* Snapshots */

GPtrArray *
mrtc_session_dup_members (MrtcSession *session)
{
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_member_unref);
  guint i;

  g_mutex_lock (&session->lock);
  for (i = 0; i < session->members->len; i++)
    g_ptr_array_add (
        out, mrtc_member_ref (g_ptr_array_index (session->members, i)));
  g_mutex_unlock (&session->lock);
  return out;
}

gboolean
mrtc_session_is_joined (MrtcSession *session)
{
  gboolean ret;

  g_mutex_lock (&session->lock);
  ret = session->joined;
  g_mutex_unlock (&session->lock);
  return ret;
}

MrtcMembershipFormat
mrtc_session_get_joined_format (MrtcSession *session)
{
  MrtcMembershipFormat ret;

  g_mutex_lock (&session->lock);
  ret = session->joined_format;
  g_mutex_unlock (&session->lock);
  return ret;
}

gchar *
mrtc_session_dup_member_id (MrtcSession *session)
{
  gchar *ret;

  g_mutex_lock (&session->lock);
  ret = g_strdup (session->member_id);
  g_mutex_unlock (&session->lock);
  return ret;
}

gchar *
mrtc_session_dup_delay_id (MrtcSession *session)
{
  gchar *ret;

  g_mutex_lock (&session->lock);
  ret = g_strdup (session->delay_id);
  g_mutex_unlock (&session->lock);
  return ret;
}

MrtcSlotStatus
mrtc_session_get_slot_status (MrtcSession *session)
{
  MrtcSlotStatus ret;

  g_mutex_lock (&session->lock);
  ret = session->slot_status;
  g_mutex_unlock (&session->lock);
  return ret;
}

guint
mrtc_session_get_restart_count (MrtcSession *session)
{
  guint ret;

  g_mutex_lock (&session->lock);
  ret = session->restart_count;
  g_mutex_unlock (&session->lock);
  return ret;
}

guint
mrtc_session_get_rejoin_count (MrtcSession *session)
{
  guint ret;

  g_mutex_lock (&session->lock);
  ret = session->rejoin_count;
  g_mutex_unlock (&session->lock);
  return ret;
}

guint
mrtc_session_get_reschedule_count (MrtcSession *session)
{
  guint ret;

  g_mutex_lock (&session->lock);
  ret = session->reschedule_count;
  g_mutex_unlock (&session->lock);
  return ret;
}
