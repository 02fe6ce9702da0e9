/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * The slot-shared media key over the device crypto driver: the schedule of
 * mrtcolmslotkeyschedule.c fed from the slot state (sync and the state
 * API), the machine's decrypted room events, fetched key events and key
 * request answers. Runs on the machine's worker thread, except the sync
 * handler (the client's thread: it only queues) and the blocking calls.
 * Never logs key bytes.
 *
 * A fetched key event goes to the machine with
 * mrtc_olm_machine_feed_room_event(): decrypted there like a timeline
 * event (room-event), now or when its Megolm session comes.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmslotkey.h"

#include <string.h>

#include "mrtcjson.h"
#include "mrtcmember.h"

#define SYNC_TIMEOUT_MS 10000
/* A rotation whose event id gives an index in use tries again. */
#define MAX_ROTATE_ATTEMPTS 8
/* Our own key events remembered for key requests. */
#define MAX_OWN_EVENTS 64
/* At most one answer per requesting device this often. */
#define ANSWER_INTERVAL_US (G_USEC_PER_SEC / 2)
/* The room state read for who may send the slot event, reused this long. */
#define STATE_CACHE_US (5 * G_USEC_PER_SEC)
/* Key events whose origin_server_ts we remember. */
#define MAX_EVENT_TS 256

enum
{
  SIGNAL_KEY_CHANGED,
  SIGNAL_KEY_KNOWN,
  SIGNAL_KEY_EXPIRED,
  SIGNAL_KEY_STATUS,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_QUARK (
    mrtc - olm - slot - key - error - quark, mrtc_olm_slot_key_error);

typedef struct
{
  gchar *event_id;
  gchar *session_id;
} OwnEvent;

struct _MrtcOlmSlotKey
{
  GObject parent;

  MrtcOlmMachine *machine;
  MrtcClient *client;
  gchar *room_id;
  gchar *slot_id;

  /* Worker thread only. */
  MrtcOlmSlotKeySchedule *schedule;
  GSource *timer;
  gulong room_event_handler;
  gulong decrypted_handler;
  gulong clear_handler;
  GHashTable *envelopes;   /* event id -> encrypted event (JsonObject) */
  GQueue own_events;       /* OwnEvent, oldest first */
  GHashTable *answered;    /* "user SEP device" -> gint64 monotonic µs */
  gboolean seen_slot[2];   /* a slot event of that type came by sync */
  gchar *fetched_for;      /* the last reference fetched right away */
  GHashTable *superseded;  /* slot event ids replaced by a later one */
  gchar *slot_event_id[2]; /* the slot events in effect (by type) */
  gboolean stopped;
  GHashTable *event_ts;   /* key event id -> gint64 origin_server_ts */
  JsonArray *state_cache; /* room state, for the power levels */
  gint64 state_cache_at;  /* monotonic µs */

  /* Any thread. */
  GMutex rotate_lock; /* held through a rotation */
  gint stopping;      /* atomic: stop() began */
  gint64 grace_ms;    /* under lock */

  /* Client thread. */
  gulong sync_handler;
  gboolean holding_sync;
  gboolean started;

  /* Under lock: what the frame crypto reads. */
  GMutex lock;
  GHashTable *keys; /* index -> GBytes */
  GBytes *current_key;
  guint current_index;
  gchar *current_event_id;
  MrtcOlmSlotKeyStatus status;
  gchar *status_message;

  gint requests_sent;
  gint dropped;
};

G_DEFINE_TYPE (MrtcOlmSlotKey, mrtc_olm_slot_key, G_TYPE_OBJECT);

static void
own_event_free (OwnEvent *o)
{
  g_free (o->event_id);
  g_free (o->session_id);
  g_free (o);
}

static gint64
monotonic_ms (gpointer data)
{
  return g_get_monotonic_time () / 1000;
}

/* ------------------------------------------------------------------------ */
/* Processing (worker) */

static void process (MrtcOlmSlotKey *sk);
static void note_event_ts (MrtcOlmSlotKey *sk, JsonObject *event);

static gboolean
on_timer (gpointer data)
{
  MrtcOlmSlotKey *sk = data;

  g_clear_pointer (&sk->timer, g_source_unref);
  process (sk);
  return G_SOURCE_REMOVE;
}

static void
schedule_timer (MrtcOlmSlotKey *sk)
{
  gint64 deadline = mrtc_olm_slot_key_schedule_next_deadline (sk->schedule);

  if (sk->timer != NULL) {
    g_source_destroy (sk->timer);
    g_clear_pointer (&sk->timer, g_source_unref);
  }
  if (deadline < 0 || sk->stopped)
    return;
  sk->timer = g_timeout_source_new (
      (guint)CLAMP (deadline - monotonic_ms (NULL) + 1, 1, G_MAXINT));
  g_source_set_callback (sk->timer, on_timer, sk, NULL);
  g_source_attach (sk->timer, mrtc_olm_machine_get_context (sk->machine));
}

/* GET the key event (blocking, worker). */
static void
fetch_key_event (MrtcOlmSlotKey *sk, const gchar *event_id)
{
  g_autofree gchar *room = g_uri_escape_string (sk->room_id, NULL, FALSE);
  g_autofree gchar *ev = g_uri_escape_string (event_id, NULL, FALSE);
  g_autofree gchar *path
      = g_strdup_printf ("/_matrix/client/v3/rooms/%s/event/%s", room, ev);
  MrtcRequest *req = mrtc_request_new ("GET", path);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *event, *content;
  const gchar *type;

  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  node = mrtc_client_call (sk->client, req, &error);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node)) {
    g_message ("cannot fetch key event %s of %s: %s (retrying)", event_id,
        sk->room_id, error != NULL ? error->message : "not an object");
    return;
  }
  event = json_node_get_object (node);
  type = mrtc_olm_json_get_string (event, "type");
  content = mrtc_olm_json_get_object (event, "content");
  if (g_strcmp0 (mrtc_olm_json_get_string (event, "event_id"), event_id) != 0) {
    g_message (
        "fetched key event %s: the server answered another event", event_id);
    return;
  }
  if (g_strcmp0 (type, "m.room.encrypted") != 0) {
    /* A key in clear is no secret: never use it. */
    g_message ("key event %s of %s is not encrypted (%s): refusing it",
        event_id, sk->room_id, type != NULL ? type : "no type");
    g_atomic_int_inc (&sk->dropped);
    mrtc_olm_slot_key_schedule_reject (sk->schedule, event_id,
        "it is not Megolm-encrypted (a key sent in clear is no secret)");
    return;
  }
  if (g_strcmp0 (mrtc_olm_json_get_string (content, "algorithm"),
          MRTC_OLM_ALGORITHM_MEGOLM)
          != 0
      || mrtc_olm_json_get_string (content, "session_id") == NULL
      || mrtc_olm_json_get_string (content, "sender_key") == NULL
      || mrtc_olm_json_get_string (event, "sender") == NULL) {
    g_atomic_int_inc (&sk->dropped);
    mrtc_olm_slot_key_schedule_reject (sk->schedule, event_id,
        "it is not a Megolm event (" MRTC_OLM_ALGORITHM_MEGOLM ")");
    return;
  }
  /* Only named key events are fetched: a handful per call. */
  if (g_hash_table_size (sk->envelopes) >= MAX_OWN_EVENTS)
    g_hash_table_remove_all (sk->envelopes);
  g_hash_table_replace (
      sk->envelopes, g_strdup (event_id), json_object_ref (event));
  note_event_ts (sk, event);
  g_debug ("fetched key event %s of %s: handing it to the machine", event_id,
      sk->room_id);
  mrtc_olm_machine_feed_room_event (sk->machine, sk->room_id, event);
}

/* m.room_key_request to the key event's sender device (worker). */
static void
request_key (MrtcOlmSlotKey *sk, const gchar *event_id)
{
  JsonObject *event = g_hash_table_lookup (sk->envelopes, event_id);
  JsonObject *content = mrtc_olm_json_get_object (event, "content");
  const gchar *sender = mrtc_olm_json_get_string (event, "sender");
  const gchar *device = mrtc_olm_json_get_string (content, "device_id");
  JsonObject *messages, *per_user, *req, *body;
  g_autofree gchar *request_id = NULL;
  g_autoptr (GError) error = NULL;

  if (event == NULL) {
    fetch_key_event (sk, event_id);
    event = g_hash_table_lookup (sk->envelopes, event_id);
    if (event == NULL)
      return;
    content = mrtc_olm_json_get_object (event, "content");
    sender = mrtc_olm_json_get_string (event, "sender");
    device = mrtc_olm_json_get_string (content, "device_id");
  }
  body = json_object_new ();
  json_object_set_string_member (body, "algorithm", MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_string_member (body, "room_id", sk->room_id);
  json_object_set_string_member (
      body, "sender_key", mrtc_olm_json_get_string (content, "sender_key"));
  json_object_set_string_member (
      body, "session_id", mrtc_olm_json_get_string (content, "session_id"));
  req = json_object_new ();
  json_object_set_string_member (req, "action", "request");
  json_object_set_object_member (req, "body", body);
  request_id = g_uuid_string_random ();
  json_object_set_string_member (req, "request_id", request_id);
  json_object_set_string_member (req, "requesting_device_id",
      mrtc_olm_machine_get_device_id (sk->machine));
  per_user = json_object_new ();
  json_object_set_object_member (per_user, device != NULL ? device : "*", req);
  messages = json_object_new ();
  json_object_set_object_member (messages, sender, per_user);
  {
    /* One owner (the request, freed on the client's thread), as the
     * machine does for its own /sendToDevice. */
    g_autofree gchar *txn = mrtc_client_new_txn_id (sk->client);
    g_autofree gchar *path = g_strdup_printf (
        "/_matrix/client/v3/sendToDevice/m.room_key_request/%s", txn);
    MrtcRequest *put = mrtc_request_new ("PUT", path);
    JsonObject *put_body = json_object_new ();
    g_autoptr (JsonNode) resp = NULL;

    json_object_set_object_member (put_body, "messages", messages);
    mrtc_request_set_body_object (put, put_body);
    resp = mrtc_client_call (sk->client, put, &error);
    if (resp == NULL)
      g_message (
          "key request for %s failed: %s (retrying)", event_id, error->message);
    else
      g_debug ("requested the key of %s from %s %s", event_id, sender,
          device != NULL ? device : "*");
  }
  g_atomic_int_inc (&sk->requests_sent);
}

static void
apply_change (MrtcOlmSlotKey *sk, MrtcOlmSlotKeyChange *c)
{
  switch (c->kind) {
    case MRTC_OLM_SLOT_KEY_CHANGE_KEY: {
      g_autoptr (GBytes) key = g_bytes_new (c->key, sizeof (c->key));

      g_mutex_lock (&sk->lock);
      g_hash_table_replace (
          sk->keys, GUINT_TO_POINTER (c->index), g_bytes_ref (key));
      g_clear_pointer (&sk->current_key, g_bytes_unref);
      sk->current_key = g_bytes_ref (key);
      sk->current_index = c->index;
      g_free (sk->current_event_id);
      sk->current_event_id = g_strdup (c->event_id);
      g_mutex_unlock (&sk->lock);
      g_info ("slot %s of %s: shared key of %s now current at index %u",
          sk->slot_id, sk->room_id, c->event_id, c->index);
      g_signal_emit (
          sk, signals[SIGNAL_KEY_CHANGED], 0, c->index, key, c->event_id);
      break;
    }
    case MRTC_OLM_SLOT_KEY_CHANGE_EXPIRED:
      g_mutex_lock (&sk->lock);
      g_hash_table_remove (sk->keys, GUINT_TO_POINTER (c->index));
      g_mutex_unlock (&sk->lock);
      g_debug ("slot %s of %s: key %u (%s) left its grace period", sk->slot_id,
          sk->room_id, c->index, c->event_id);
      g_signal_emit (sk, signals[SIGNAL_KEY_EXPIRED], 0, c->index, c->event_id);
      break;
    case MRTC_OLM_SLOT_KEY_CHANGE_STATUS:
      g_mutex_lock (&sk->lock);
      sk->status = c->status;
      g_free (sk->status_message);
      sk->status_message = g_strdup (c->message);
      g_mutex_unlock (&sk->lock);
      g_info ("slot %s of %s: key status %s: %s", sk->slot_id, sk->room_id,
          mrtc_olm_slot_key_status_name (c->status), c->message);
      g_signal_emit (sk, signals[SIGNAL_KEY_STATUS], 0, (guint)c->status,
          c->event_id, c->message);
      break;
  }
}

static void
drain_changes (MrtcOlmSlotKey *sk)
{
  MrtcOlmSlotKeyChange *c;

  while ((c = mrtc_olm_slot_key_schedule_pop_change (sk->schedule)) != NULL) {
    apply_change (sk, c);
    mrtc_olm_slot_key_change_free (c);
  }
}

static void
process (MrtcOlmSlotKey *sk)
{
  const gchar *ref;
  gchar *request;

  if (sk->stopped)
    return;
  mrtc_olm_slot_key_schedule_update (sk->schedule);
  drain_changes (sk);
  ref = mrtc_olm_slot_key_schedule_get_reference (sk->schedule);
  if (mrtc_olm_slot_key_schedule_get_status (sk->schedule)
          == MRTC_OLM_SLOT_KEY_STATUS_WAITING
      && ref != NULL && !g_hash_table_contains (sk->envelopes, ref)
      && g_strcmp0 (ref, sk->fetched_for) != 0) {
    g_autofree gchar *id = g_strdup (ref);

    /* Not in the timeline, or waiting for its room key: fetch it once now
     * (then again with each key request, with their back-off, until it
     * comes). */
    g_free (sk->fetched_for);
    sk->fetched_for = g_strdup (id);
    fetch_key_event (sk, id);
    mrtc_olm_slot_key_schedule_update (sk->schedule);
    drain_changes (sk);
  }
  while ((request = mrtc_olm_slot_key_schedule_take_request (sk->schedule))
         != NULL) {
    request_key (sk, request);
    g_free (request);
    mrtc_olm_slot_key_schedule_update (sk->schedule);
    drain_changes (sk);
  }
  schedule_timer (sk);
}

/* ------------------------------------------------------------------------ */
/* Inputs (worker) */

/* A key event's key was learned (worker): receivers may take frames at its
 * index before the slot names it, so that members whose sync lags behind
 * the sender's switch lose nothing. */
static void
note_event_ts (MrtcOlmSlotKey *sk, JsonObject *event)
{
  const gchar *id = mrtc_olm_json_get_string (event, "event_id");
  JsonNode *n = event != NULL
                    ? json_object_get_member (event, "origin_server_ts")
                    : NULL;
  gint64 *ts;

  if (id == NULL || n == NULL || !JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_INT64)
    return;
  if (g_hash_table_size (sk->event_ts) >= MAX_EVENT_TS)
    g_hash_table_remove_all (sk->event_ts);
  ts = g_new (gint64, 1);
  *ts = json_node_get_int (n);
  g_hash_table_replace (sk->event_ts, g_strdup (id), ts);
}

/* Whether @user_id may change the slot event (worker; the room state is
 * read at most every STATE_CACHE_US). */
static gboolean
sender_may_set_slot (MrtcOlmSlotKey *sk, const gchar *user_id)
{
  const gchar *type = mrtc_olm_slot_key_schedule_get_slot_type (sk->schedule);
  gint64 now = g_get_monotonic_time ();

  if (user_id == NULL)
    return FALSE;
  if (sk->state_cache == NULL || now - sk->state_cache_at > STATE_CACHE_US) {
    g_autoptr (GError) error = NULL;
    JsonArray *state
        = mrtc_client_get_room_state (sk->client, sk->room_id, &error);

    if (state == NULL) {
      g_message ("cannot read the power levels of %s: %s", sk->room_id,
          error->message);
      return FALSE;
    }
    g_clear_pointer (&sk->state_cache, json_array_unref);
    sk->state_cache = state;
    sk->state_cache_at = now;
  }
  return mrtc_olm_slot_key_can_send_state (
      sk->state_cache, user_id, type != NULL ? type : MRTC_OLM_SLOT_EVENT_TYPE);
}

/* Announces a key event's key ahead of the slot naming it, only when it
 * may become the slot's key: sent by someone allowed to change the slot
 * event (@sender; NULL: our own rotation) and newer than the key event the
 * slot names now. Anyone in the room can send a key event; only these
 * reach the decryptors early. */
static void
announce_known (MrtcOlmSlotKey *sk, const gchar *event_id, const guint8 *key,
    const gchar *sender)
{
  const gchar *ref = mrtc_olm_slot_key_schedule_get_reference (sk->schedule);
  g_autoptr (GBytes) bytes = NULL;

  if (g_strcmp0 (ref, event_id) == 0)
    return; /* named already: key-changed */
  if (sender != NULL) {
    gint64 *ts = g_hash_table_lookup (sk->event_ts, event_id);
    gint64 *ref_ts
        = ref != NULL ? g_hash_table_lookup (sk->event_ts, ref) : NULL;

    if (ref_ts != NULL && (ts == NULL || *ts <= *ref_ts)) {
      g_debug ("key event %s is not newer than %s: not installed ahead",
          event_id, ref);
      return;
    }
    if (!sender_may_set_slot (sk, sender)) {
      g_debug ("key event %s from %s, who may not change the slot: not "
               "installed ahead",
          event_id, sender);
      return;
    }
  }
  bytes = g_bytes_new (key, MRTC_OLM_SLOT_KEY_LEN);
  g_signal_emit (sk, signals[SIGNAL_KEY_KNOWN], 0,
      mrtc_olm_slot_key_index_for_event (event_id), bytes, event_id);
}

static gboolean
is_key_event_type (const gchar *type)
{
  return g_strcmp0 (type, MRTC_OLM_SLOT_KEY_EVENT_TYPE) == 0
         || g_strcmp0 (type, MRTC_OLM_SLOT_KEY_EVENT_TYPE_STABLE) == 0;
}

static void
on_room_event (MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event,
    gpointer data)
{
  MrtcOlmSlotKey *sk = data;
  const gchar *event_id = mrtc_olm_json_get_string (event, "event_id");
  guint8 key[MRTC_OLM_SLOT_KEY_LEN];
  g_autoptr (GError) error = NULL;

  if (sk->stopped || g_strcmp0 (room_id, sk->room_id) != 0
      || !is_key_event_type (mrtc_olm_json_get_string (event, "type")))
    return;
  note_event_ts (sk, event);
  if (!mrtc_olm_slot_key_content_parse (
          mrtc_olm_json_get_object (event, "content"), key, &error)
      || !mrtc_olm_slot_key_schedule_add_key (
          sk->schedule, event_id, key, sizeof (key), &error)) {
    g_message ("dropping shared key event %s in %s from %s: %s",
        event_id != NULL ? event_id : "(no id)", room_id,
        mrtc_olm_json_get_string (event, "sender"), error->message);
    g_atomic_int_inc (&sk->dropped);
    if (error->code == MRTC_OLM_ERROR_INVALID)
      mrtc_olm_slot_key_schedule_reject (
          sk->schedule, event_id, error->message);
  } else {
    g_debug ("decrypted shared key event %s in %s", event_id, room_id);
    announce_known (
        sk, event_id, key, mrtc_olm_json_get_string (event, "sender"));
  }
  mrtc_olm_wipe (key, sizeof (key));
  process (sk);
}

/* An answer to our key request: accepted only from the device that sent
 * the key event (the Olm-verified sender and its Curve25519 key must be
 * those of the Megolm envelope). */
static void
on_decrypted (MrtcOlmMachine *machine, gpointer data, gpointer user_data)
{
  MrtcOlmDecrypted *d = data;
  MrtcOlmSlotKey *sk = user_data;
  const gchar *event_id;
  JsonObject *envelope, *env_content;
  guint8 key[MRTC_OLM_SLOT_KEY_LEN];
  g_autoptr (GError) error = NULL;

  if (sk->stopped || g_strcmp0 (d->type, MRTC_OLM_SLOT_KEY_FORWARD_TYPE) != 0
      || g_strcmp0 (
             mrtc_olm_json_get_string (d->content, "room_id"), sk->room_id)
             != 0)
    return;
  event_id = mrtc_olm_json_get_string (d->content, "event_id");
  envelope
      = event_id != NULL ? g_hash_table_lookup (sk->envelopes, event_id) : NULL;
  env_content = mrtc_olm_json_get_object (envelope, "content");
  if (envelope == NULL
      || g_strcmp0 (mrtc_olm_json_get_string (envelope, "sender"), d->sender)
             != 0
      || g_strcmp0 (mrtc_olm_json_get_string (env_content, "sender_key"),
             d->sender_device->curve25519)
             != 0
      || g_strcmp0 (mrtc_olm_json_get_string (env_content, "session_id"),
             mrtc_olm_json_get_string (d->content, "session_id"))
             != 0) {
    g_message ("ignoring a shared key from %s %s: not the sender of a key "
               "event we asked for",
        d->sender, d->sender_device->device_id);
    g_atomic_int_inc (&sk->dropped);
    return;
  }
  if (!mrtc_olm_slot_key_content_parse (d->content, key, &error)
      || !mrtc_olm_slot_key_schedule_add_key (
          sk->schedule, event_id, key, sizeof (key), &error)) {
    g_message ("ignoring a shared key from %s %s: %s", d->sender,
        d->sender_device->device_id, error->message);
    g_atomic_int_inc (&sk->dropped);
  } else {
    g_debug ("got the key of %s from %s %s", event_id, d->sender,
        d->sender_device->device_id);
    note_event_ts (sk, envelope);
    announce_known (sk, event_id, key, d->sender);
  }
  mrtc_olm_wipe (key, sizeof (key));
  process (sk);
}

static gboolean
is_joined (MrtcOlmSlotKey *sk, const gchar *user_id)
{
  g_autofree gchar *room = g_uri_escape_string (sk->room_id, NULL, FALSE);
  g_autofree gchar *user = g_uri_escape_string (user_id, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf (
      "/_matrix/client/v3/rooms/%s/state/m.room.member/%s", room, user);
  MrtcRequest *req = mrtc_request_new ("GET", path);
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (GError) error = NULL;

  req->max_response_bytes = MRTC_CLIENT_MAX_RESPONSE_SMALL;
  node = mrtc_client_call (sk->client, req, &error);
  return node != NULL && JSON_NODE_HOLDS_OBJECT (node)
         && g_strcmp0 (mrtc_olm_json_get_string (
                           json_node_get_object (node), "membership"),
                "join")
                == 0;
}

/* Someone asks for the Megolm session of a key event we sent: answer with
 * the key itself (Olm-encrypted to the requesting device), when the
 * requester is in the room. */
static void
on_clear_to_device (MrtcOlmMachine *machine, JsonObject *event, gpointer data)
{
  MrtcOlmSlotKey *sk = data;
  JsonObject *content = mrtc_olm_json_get_object (event, "content");
  JsonObject *body = mrtc_olm_json_get_object (content, "body");
  const gchar *sender = mrtc_olm_json_get_string (event, "sender");
  const gchar *device
      = mrtc_olm_json_get_string (content, "requesting_device_id");
  const gchar *session_id = mrtc_olm_json_get_string (body, "session_id");
  g_autofree gchar *own_curve = NULL;
  g_autofree gchar *who = NULL;
  gint64 now = g_get_monotonic_time ();
  gpointer last;
  GList *l;

  if (sk->stopped
      || g_strcmp0 (
             mrtc_olm_json_get_string (event, "type"), "m.room_key_request")
             != 0
      || g_strcmp0 (mrtc_olm_json_get_string (content, "action"), "request")
             != 0
      || g_strcmp0 (mrtc_olm_json_get_string (body, "room_id"), sk->room_id)
             != 0
      || sender == NULL || device == NULL || session_id == NULL)
    return;
  own_curve = mrtc_olm_machine_dup_curve25519 (machine);
  if (g_strcmp0 (mrtc_olm_json_get_string (body, "sender_key"), own_curve) != 0)
    return;
  who = g_strconcat (sender, MRTC_OLM_SEP, device, NULL);
  last = g_hash_table_lookup (sk->answered, who);
  if (last != NULL && now - *(gint64 *)last < ANSWER_INTERVAL_US)
    return;

  for (l = sk->own_events.head; l != NULL; l = l->next) {
    OwnEvent *o = l->data;
    guint8 key[MRTC_OLM_SLOT_KEY_LEN];
    g_autoptr (JsonObject) answer = NULL;
    g_autoptr (GPtrArray) to = NULL;
    g_autoptr (GError) error = NULL;

    if (g_strcmp0 (o->session_id, session_id) != 0
        || !mrtc_olm_slot_key_schedule_has_key (sk->schedule, o->event_id))
      continue;
    /* The current slot's key only: older ones protect nothing now. */
    if (g_strcmp0 (o->event_id,
            mrtc_olm_slot_key_schedule_get_reference (sk->schedule))
        != 0)
      continue;
    if (!is_joined (sk, sender)) {
      g_message ("not answering a key request from %s %s: not in %s", sender,
          device, sk->room_id);
      break;
    }
    {
      gint64 *stamp = g_new (gint64, 1);

      *stamp = now;
      g_hash_table_replace (sk->answered, g_strdup (who), stamp);
    }
    if (!mrtc_olm_slot_key_schedule_get_current (sk->schedule, NULL, key)
        || g_strcmp0 (mrtc_olm_slot_key_schedule_get_current (
                          sk->schedule, NULL, NULL),
               o->event_id)
               != 0)
      break;
    answer = mrtc_olm_slot_key_content_build (key);
    mrtc_olm_wipe (key, sizeof (key));
    json_object_set_string_member (answer, "room_id", sk->room_id);
    json_object_set_string_member (answer, "event_id", o->event_id);
    json_object_set_string_member (answer, "session_id", session_id);
    to = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
    g_ptr_array_add (to, mrtc_olm_member_new (sender, device, NULL, NULL, 0));
    if (mrtc_olm_machine_send_to_members (
            machine, to, MRTC_OLM_SLOT_KEY_FORWARD_TYPE, answer, NULL, &error)
        <= 0)
      g_message ("cannot answer the key request of %s %s: %s", sender, device,
          error != NULL ? error->message : "device unreachable");
    else
      g_debug ("sent the key of %s to %s %s", o->event_id, sender, device);
    break;
  }
}

typedef struct
{
  MrtcOlmSlotKey *sk;
  gchar *text; /* {"state": [slot events], "timeline": [...]} */
  gboolean from_sync;
} SlotArgs;

static void
slot_args_free (gpointer data)
{
  SlotArgs *a = data;

  g_object_unref (a->sk);
  g_free (a->text);
  g_free (a);
}

/* Remembers which slot events a newer one replaced (Synapse's
 * unsigned.replaces_state, and what we saw replaced). */
static void
note_superseded (MrtcOlmSlotKey *sk, guint which, JsonObject *ev)
{
  const gchar *id = mrtc_olm_json_get_string (ev, "event_id");
  const gchar *replaces = mrtc_olm_json_get_string (
      mrtc_olm_json_get_object (ev, "unsigned"), "replaces_state");

  if (g_hash_table_size (sk->superseded) > 4096)
    g_hash_table_remove_all (sk->superseded);
  if (replaces != NULL)
    g_hash_table_add (sk->superseded, g_strdup (replaces));
  if (sk->slot_event_id[which] != NULL
      && g_strcmp0 (sk->slot_event_id[which], id) != 0)
    g_hash_table_add (sk->superseded, g_strdup (sk->slot_event_id[which]));
  g_free (sk->slot_event_id[which]);
  sk->slot_event_id[which] = g_strdup (id);
}

static void
handle_slot_events (
    MrtcOlmSlotKey *sk, JsonArray *events, gboolean from_sync, gboolean state)
{
  guint i;

  for (i = 0; events != NULL && i < json_array_get_length (events); i++) {
    JsonNode *n = json_array_get_element (events, i);
    const gchar *id;
    JsonObject *ev;
    guint which;

    if (!JSON_NODE_HOLDS_OBJECT (n))
      continue;
    ev = json_node_get_object (n);
    id = mrtc_olm_json_get_string (ev, "event_id");
    which = g_strcmp0 (
                mrtc_olm_json_get_string (ev, "type"), MRTC_OLM_SLOT_EVENT_TYPE)
                    == 0
                ? 0
                : 1;
    /* The state snapshot only fills in what no sync told us (sync carries
     * every change after the snapshot was asked for). */
    if (!from_sync && sk->seen_slot[which])
      continue;
    /* Never go back to a replaced slot event: a sync's state section
     * (the state before its timeline) can be older than what we know, and
     * a sync can replay older responses. */
    if (id != NULL && g_hash_table_contains (sk->superseded, id)) {
      g_debug ("%s: ignoring replaced slot event %s",
          mrtc_olm_machine_get_user_id (sk->machine), id);
      continue;
    }
    if (!mrtc_olm_slot_key_schedule_handle_slot_event (sk->schedule, ev))
      continue;
    note_superseded (sk, which, ev);
    if (from_sync)
      sk->seen_slot[which] = TRUE;
    g_debug ("%s: slot %s of %s (event %s, %s) now names %s",
        mrtc_olm_machine_get_user_id (sk->machine), sk->slot_id, sk->room_id,
        id, from_sync ? (state ? "sync state" : "sync timeline") : "state API",
        mrtc_olm_slot_key_schedule_get_reference (sk->schedule) != NULL
            ? mrtc_olm_slot_key_schedule_get_reference (sk->schedule)
            : "no key event");
  }
}

static JsonArray *
array_member (JsonObject *object, const gchar *name)
{
  JsonNode *n = object != NULL ? json_object_get_member (object, name) : NULL;

  return n != NULL && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n)
                                                : NULL;
}

static gboolean
slot_job (gpointer data)
{
  SlotArgs *a = data;
  MrtcOlmSlotKey *sk = a->sk;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) sections = NULL;

  if (sk->stopped)
    return G_SOURCE_REMOVE;
  sections = mrtc_json_object_from_string (a->text, -1,
      MRTC_CLIENT_MAX_RESPONSE_LARGE, MRTC_JSON_MAX_DEPTH_ANY, &error);
  if (sections == NULL)
    return G_SOURCE_REMOVE;
  handle_slot_events (
      sk, array_member (sections, "state"), a->from_sync, a->from_sync);
  handle_slot_events (
      sk, array_member (sections, "timeline"), a->from_sync, FALSE);
  process (sk);
  return G_SOURCE_REMOVE;
}

static gboolean
is_our_slot_event (MrtcOlmSlotKey *sk, JsonObject *ev)
{
  const gchar *type = mrtc_olm_json_get_string (ev, "type");

  return (g_strcmp0 (type, MRTC_OLM_SLOT_EVENT_TYPE) == 0
             || g_strcmp0 (type, MRTC_OLM_SLOT_EVENT_TYPE_STABLE) == 0)
         && g_strcmp0 (mrtc_olm_json_get_string (ev, "state_key"), sk->slot_id)
                == 0;
}

static void
collect (MrtcOlmSlotKey *sk, JsonArray *out, JsonObject *section)
{
  JsonNode *n
      = section != NULL ? json_object_get_member (section, "events") : NULL;
  JsonArray *events;
  guint i;

  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n))
    return;
  events = json_node_get_array (n);
  for (i = 0; i < json_array_get_length (events); i++) {
    JsonNode *e = json_array_get_element (events, i);

    if (JSON_NODE_HOLDS_OBJECT (e)
        && is_our_slot_event (sk, json_node_get_object (e)))
      json_array_add_element (out, json_node_copy (e));
  }
}

/* Takes @state and @timeline (nullable). */
static void
queue_slot_events (MrtcOlmSlotKey *sk, JsonArray *state, JsonArray *timeline,
    gboolean from_sync)
{
  SlotArgs *a = g_new0 (SlotArgs, 1);
  g_autoptr (JsonObject) sections = json_object_new ();

  if (state != NULL)
    json_object_set_array_member (sections, "state", state);
  if (timeline != NULL)
    json_object_set_array_member (sections, "timeline", timeline);
  a->sk = g_object_ref (sk);
  a->text = mrtc_olm_json_object_to_string (sections);
  a->from_sync = from_sync;
  mrtc_olm_machine_run_async (sk->machine, slot_job, a, slot_args_free);
}

/* Client thread: the slot events of our room, in order. */
static void
on_sync (MrtcClient *client, JsonObject *resp, gpointer data)
{
  MrtcOlmSlotKey *sk = data;
  JsonObject *room = mrtc_olm_json_get_object (
      mrtc_olm_json_get_object (
          mrtc_olm_json_get_object (resp, "rooms"), "join"),
      sk->room_id);
  JsonArray *state, *timeline;

  if (room == NULL)
    return;
  state = json_array_new ();
  timeline = json_array_new ();
  collect (sk, state, mrtc_olm_json_get_object (room, "state"));
  collect (sk, timeline, mrtc_olm_json_get_object (room, "timeline"));
  if (json_array_get_length (state) + json_array_get_length (timeline) > 0) {
    queue_slot_events (sk, state, timeline, TRUE);
  } else {
    json_array_unref (state);
    json_array_unref (timeline);
  }
}

/* ------------------------------------------------------------------------ */
/* API */

static gboolean
connect_job (gpointer data)
{
  MrtcOlmSlotKey *sk = data;

  sk->room_event_handler = g_signal_connect (
      sk->machine, "room-event", G_CALLBACK (on_room_event), sk);
  sk->decrypted_handler = g_signal_connect (
      sk->machine, "decrypted", G_CALLBACK (on_decrypted), sk);
  sk->clear_handler = g_signal_connect (sk->machine, "unencrypted-to-device",
      G_CALLBACK (on_clear_to_device), sk);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_slot_key_new:
 * @machine: the device crypto driver (its client logged in)
 * @room_id: an encrypted room we joined
 * @slot_id: (nullable): the slot (NULL: m.call#ROOM)
 *
 * Listens to the machine's decrypted key events from now on; follows the
 * slot after mrtc_olm_slot_key_start().
 *
 * Returns: (transfer full): the slot key.
 */
MrtcOlmSlotKey *
mrtc_olm_slot_key_new (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *slot_id)
{
  MrtcOlmSlotKey *sk = g_object_new (MRTC_OLM_TYPE_SLOT_KEY, NULL);

  sk->machine = g_object_ref (machine);
  sk->client = g_object_ref (mrtc_olm_machine_get_client (machine));
  sk->room_id = g_strdup (room_id);
  sk->slot_id = g_strdup (slot_id != NULL ? slot_id : "m.call#ROOM");
  sk->schedule
      = mrtc_olm_slot_key_schedule_new (sk->slot_id, monotonic_ms, NULL);
  mrtc_olm_machine_run_sync (machine, connect_job, sk);
  return sk;
}

typedef struct
{
  MrtcOlmSlotKey *sk;
  gint64 a, b;
} SetArgs;

static gboolean
set_grace_job (gpointer data)
{
  SetArgs *s = data;

  mrtc_olm_slot_key_schedule_set_grace (s->sk->schedule, s->a);
  return G_SOURCE_REMOVE;
}

static gboolean
set_backoff_job (gpointer data)
{
  SetArgs *s = data;

  mrtc_olm_slot_key_schedule_set_request_backoff (s->sk->schedule, s->a, s->b);
  return G_SOURCE_REMOVE;
}

/* How long the previous key stays usable (default 10 s). */
void
mrtc_olm_slot_key_set_grace (MrtcOlmSlotKey *sk, gint64 grace_ms)
{
  SetArgs s = { sk, grace_ms, 0 };

  g_mutex_lock (&sk->lock);
  sk->grace_ms = grace_ms;
  g_mutex_unlock (&sk->lock);
  mrtc_olm_machine_run_sync (sk->machine, set_grace_job, &s);
}

/* The grace period in force (ms). */
gint64
mrtc_olm_slot_key_get_grace (MrtcOlmSlotKey *sk)
{
  gint64 grace;

  g_mutex_lock (&sk->lock);
  grace = sk->grace_ms;
  g_mutex_unlock (&sk->lock);
  return grace;
}

/* The key event the slot names now (worker thread only: from the
 * key-changed, key-known, key-status handlers or a source on the
 * machine's context). */
gchar *
mrtc_olm_slot_key_dup_reference (MrtcOlmSlotKey *sk)
{
  return g_strdup (mrtc_olm_slot_key_schedule_get_reference (sk->schedule));
}

/* Key request back-off (default 500 ms doubling up to 30 s). */
void
mrtc_olm_slot_key_set_request_backoff (
    MrtcOlmSlotKey *sk, gint64 initial_ms, gint64 max_ms)
{
  SetArgs s = { sk, initial_ms, max_ms };

  mrtc_olm_machine_run_sync (sk->machine, set_backoff_job, &s);
}

static gboolean
connect_sync_cb (gpointer data)
{
  MrtcOlmSlotKey *sk = data;

  if (sk->sync_handler == 0)
    sk->sync_handler
        = g_signal_connect (sk->client, "sync", G_CALLBACK (on_sync), sk);
  if (!sk->holding_sync) {
    mrtc_client_hold_sync (sk->client, SYNC_TIMEOUT_MS);
    sk->holding_sync = TRUE;
  }
  return G_SOURCE_REMOVE;
}

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean done;
  GSourceFunc func;
  gpointer data;
} ClientCall;

static gboolean
client_call_cb (gpointer data)
{
  ClientCall *c = data;

  c->func (c->data);
  g_mutex_lock (&c->lock);
  c->done = TRUE;
  g_cond_signal (&c->cond);
  g_mutex_unlock (&c->lock);
  return G_SOURCE_REMOVE;
}

/* Runs @func on the client's thread and waits. */
static void
run_on_client (MrtcOlmSlotKey *sk, GSourceFunc func)
{
  ClientCall c = { 0 };

  /* Already there (e.g. the last reference dropped in a client callback). */
  if (g_main_context_is_owner (mrtc_client_get_context (sk->client))) {
    func (sk);
    return;
  }
  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  c.func = func;
  c.data = sk;
  mrtc_client_invoke (sk->client, client_call_cb, &c, NULL);
  g_mutex_lock (&c.lock);
  while (!c.done)
    g_cond_wait (&c.cond, &c.lock);
  g_mutex_unlock (&c.lock);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

/**
 * mrtc_olm_slot_key_start:
 * @slot_key: the slot key
 * @error: return location for an error
 *
 * Follows the slot from the client's sync (held running) and reads the
 * room state once for the slot as it is now. Blocking; not on the
 * client's or the machine's thread.
 */
gboolean
mrtc_olm_slot_key_start (MrtcOlmSlotKey *sk, GError **error)
{
  g_autoptr (JsonArray) state = NULL;
  g_autoptr (JsonArray) events = NULL;
  guint i;

  /* Under the rotation lock: a stop() at the same time either sees us
   * started (and disconnects) or makes us refuse. */
  g_mutex_lock (&sk->rotate_lock);
  if (sk->started || g_atomic_int_get (&sk->stopping)) {
    g_mutex_unlock (&sk->rotate_lock);
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_STATE,
        sk->started ? "already started" : "stopped");
    return FALSE;
  }
  sk->started = TRUE;
  run_on_client (sk, connect_sync_cb);
  g_mutex_unlock (&sk->rotate_lock);
  state = mrtc_client_get_room_state (sk->client, sk->room_id, error);
  if (state == NULL)
    return FALSE;
  events = json_array_new ();
  for (i = 0; i < json_array_get_length (state); i++) {
    JsonNode *n = json_array_get_element (state, i);

    if (JSON_NODE_HOLDS_OBJECT (n)
        && is_our_slot_event (sk, json_node_get_object (n)))
      json_array_add_element (events, json_node_copy (n));
  }
  queue_slot_events (sk, g_steal_pointer (&events), NULL, FALSE);
  mrtc_olm_machine_flush (sk->machine);
  return TRUE;
}

typedef struct
{
  MrtcOlmSlotKey *sk;
  const gchar *event_id;
  const gchar *session_id;
  const guint8 *key;
  gboolean in_use;
  GError **error;
  gboolean ok;
} RecordArgs;

static gboolean
check_index_job (gpointer data)
{
  RecordArgs *r = data;

  r->in_use = mrtc_olm_slot_key_schedule_index_in_use (
      r->sk->schedule, mrtc_olm_slot_key_index_for_event (r->event_id));
  return G_SOURCE_REMOVE;
}

static gboolean
record_job (gpointer data)
{
  RecordArgs *r = data;
  MrtcOlmSlotKey *sk = r->sk;
  OwnEvent *o;

  r->ok = mrtc_olm_slot_key_schedule_add_key (
      sk->schedule, r->event_id, r->key, MRTC_OLM_SLOT_KEY_LEN, r->error);
  if (!r->ok)
    return G_SOURCE_REMOVE;
  announce_known (sk, r->event_id, r->key, NULL);
  o = g_new0 (OwnEvent, 1);
  o->event_id = g_strdup (r->event_id);
  o->session_id = g_strdup (r->session_id);
  g_queue_push_tail (&sk->own_events, o);
  while (g_queue_get_length (&sk->own_events) > MAX_OWN_EVENTS)
    own_event_free (g_queue_pop_head (&sk->own_events));
  return G_SOURCE_REMOVE;
}

/* The current slot event (type and content) from the room state. */
static gboolean
read_slot (
    MrtcOlmSlotKey *sk, JsonArray *state, gchar **type, JsonObject **content)
{
  g_autoptr (MrtcOlmSlotKeySchedule) tmp
      = mrtc_olm_slot_key_schedule_new (sk->slot_id, NULL, NULL);
  guint i;

  for (i = 0; i < json_array_get_length (state); i++) {
    JsonNode *n = json_array_get_element (state, i);

    if (JSON_NODE_HOLDS_OBJECT (n))
      mrtc_olm_slot_key_schedule_handle_slot_event (
          tmp, json_node_get_object (n));
  }
  if (mrtc_olm_slot_key_schedule_get_slot_type (tmp) == NULL)
    return FALSE;
  *type = g_strdup (mrtc_olm_slot_key_schedule_get_slot_type (tmp));
  *content
      = json_object_ref (mrtc_olm_slot_key_schedule_get_slot_content (tmp));
  return TRUE;
}

static gboolean
room_is_encrypted (JsonArray *state)
{
  guint i;

  for (i = 0; i < json_array_get_length (state); i++) {
    JsonNode *n = json_array_get_element (state, i);

    if (JSON_NODE_HOLDS_OBJECT (n)
        && g_strcmp0 (
               mrtc_olm_json_get_string (json_node_get_object (n), "type"),
               "m.room.encryption")
               == 0
        && mrtc_olm_json_get_string (
               mrtc_olm_json_get_object (json_node_get_object (n), "content"),
               "algorithm")
               != NULL)
      return TRUE;
  }
  return FALSE;
}

/* Sends one Megolm-encrypted key event; returns its event id. */
static gchar *
send_key_event (
    MrtcOlmSlotKey *sk, const guint8 *key, gchar **session_id, GError **error)
{
  g_autoptr (JsonObject) content = mrtc_olm_slot_key_content_build (key);
  JsonObject *encrypted;
  g_autoptr (JsonNode) resp = NULL;
  MrtcRequest *req;
  const gchar *event_id;

  encrypted = mrtc_olm_machine_encrypt_room_event (
      sk->machine, sk->room_id, MRTC_OLM_SLOT_KEY_EVENT_TYPE, content, error);
  /* The plaintext copy goes now (json-glib cannot wipe it in place). */
  json_object_remove_member (content, "key");
  if (encrypted == NULL)
    return NULL;
  *session_id = g_strdup (mrtc_olm_json_get_string (encrypted, "session_id"));
  req = mrtc_request_send_event (
      sk->client, sk->room_id, "m.room.encrypted", encrypted, -1, -1);
  json_object_unref (encrypted);
  resp = mrtc_client_call (sk->client, req, error);
  if (resp == NULL)
    return NULL;
  event_id = JSON_NODE_HOLDS_OBJECT (resp) ? mrtc_olm_json_get_string (
                 json_node_get_object (resp), "event_id")
                                           : NULL;
  if (!mrtc_olm_slot_key_event_id_is_valid (event_id)) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "send key event: response without a valid event_id");
    return NULL;
  }
  return g_strdup (event_id);
}

/**
 * mrtc_olm_slot_key_rotate:
 * @slot_key: the slot key (started)
 * @error: return location for an error
 *
 * The moderator action: checks that our user may change the slot event
 * (else %MRTC_OLM_SLOT_KEY_ERROR_PERMISSION and nothing is sent), sends a
 * new Megolm-encrypted key event (16 bytes from OpenSSL's CSPRNG) and
 * updates the slot event to name it, keeping the rest of its content.
 * Everyone (we too) switches when the slot update comes back through
 * sync: with concurrent rotations, the slot event the room's state keeps
 * decides. Blocking; not on the client's or the machine's thread.
 *
 * Returns: (transfer full) (nullable): the new key event's id.
 */
gchar *
mrtc_olm_slot_key_rotate (MrtcOlmSlotKey *sk, GError **error)
{
  g_autoptr (JsonArray) state = NULL;
  g_autofree gchar *slot_type = NULL;
  g_autoptr (JsonObject) slot_content = NULL;
  g_autoptr (JsonObject) new_content = NULL;
  g_autofree gchar *user = mrtc_client_dup_user_id (sk->client);
  g_autofree gchar *event_id = NULL;
  g_autofree gchar *sent = NULL;
  guint8 key[MRTC_OLM_SLOT_KEY_LEN];
  g_autoptr (GMutexLocker) rotating = NULL;
  GError *local = NULL;
  guint attempt;

  /* Held through the rotation: stop() waits for it. */
  rotating = g_mutex_locker_new (&sk->rotate_lock);
  if (!sk->started || g_atomic_int_get (&sk->stopping)) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_STATE,
        "the slot key is not started");
    return NULL;
  }
  state = mrtc_client_get_room_state (sk->client, sk->room_id, error);
  if (state == NULL)
    return NULL;
  if (!read_slot (sk, state, &slot_type, &slot_content)) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
        MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT,
        "cannot rotate the key of slot %s in %s: there is no slot event "
        "(open the slot first)",
        sk->slot_id, sk->room_id);
    return NULL;
  }
  if (mrtc_slot_parse (slot_content, sk->slot_id) != MRTC_SLOT_OPEN) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
        MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT,
        "cannot rotate the key of slot %s in %s: the slot is closed (open "
        "it first)",
        sk->slot_id, sk->room_id);
    return NULL;
  }
  if (!mrtc_olm_slot_key_can_send_state (state, user, slot_type)) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
        MRTC_OLM_SLOT_KEY_ERROR_PERMISSION,
        "%s lacks the power level to change %s of slot %s in %s: a "
        "moderator must rotate the slot key",
        user, slot_type, sk->slot_id, sk->room_id);
    return NULL;
  }
  if (!room_is_encrypted (state)) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
        MRTC_OLM_SLOT_KEY_ERROR_NOT_ENCRYPTED,
        "%s is not encrypted: a slot-shared key must be sent Megolm-encrypted",
        sk->room_id);
    return NULL;
  }
  /* Fails before anything is sent when the slot is not open. */
  new_content
      = mrtc_olm_slot_key_reference_set (slot_content, "$placeholder", &local);
  if (new_content == NULL) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
        MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT, "slot %s in %s: %s", sk->slot_id,
        sk->room_id, local->message);
    g_clear_error (&local);
    return NULL;
  }
  g_clear_pointer (&new_content, json_object_unref);

  for (attempt = 0; attempt < MAX_ROTATE_ATTEMPTS; attempt++) {
    g_autofree gchar *session_id = NULL;
    RecordArgs r = { sk, NULL, NULL, key, FALSE, error, FALSE };

    if (g_atomic_int_get (&sk->stopping)) {
      g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
          MRTC_OLM_SLOT_KEY_ERROR_STATE, "stopped during the rotation");
      goto fail;
    }
    mrtc_olm_random_bytes (key, sizeof (key));
    g_free (event_id);
    event_id = send_key_event (sk, key, &session_id, error);
    if (event_id == NULL)
      goto fail;
    r.event_id = event_id;
    r.session_id = session_id;
    mrtc_olm_machine_run_sync (sk->machine, check_index_job, &r);
    if (r.in_use) {
      g_debug ("key event %s has an index in use: another one", event_id);
      continue;
    }
    mrtc_olm_machine_run_sync (sk->machine, record_job, &r);
    if (!r.ok)
      goto fail;
    break;
  }
  if (attempt == MAX_ROTATE_ATTEMPTS) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "no key event with a free index after %d attempts",
        MAX_ROTATE_ATTEMPTS);
    goto fail;
  }
  mrtc_olm_wipe (key, sizeof (key));

  /* Never after we left: the slot would name a key nobody answers for. */
  if (g_atomic_int_get (&sk->stopping)) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_STATE,
        "stopped during the rotation: the slot was not updated");
    return NULL;
  }
  new_content = mrtc_olm_slot_key_reference_set (slot_content, event_id, error);
  if (new_content == NULL)
    return NULL;
  {
    /* The request holds the only reference (it is freed on the client's
     * thread). */
    MrtcRequest *req = mrtc_request_send_state (
        sk->room_id, slot_type, sk->slot_id, new_content, -1, -1);
    g_autoptr (JsonNode) resp = NULL;

    g_clear_pointer (&new_content, json_object_unref);
    resp = mrtc_client_call (sk->client, req, &local);
    sent = resp != NULL ? g_strdup ("sent") : NULL;
  }
  if (sent == NULL) {
    if (g_error_matches (local, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_FORBIDDEN))
      g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR,
          MRTC_OLM_SLOT_KEY_ERROR_PERMISSION,
          "the homeserver refused the slot update naming the new key: %s",
          local->message);
    else
      g_propagate_error (error, g_steal_pointer (&local));
    g_clear_error (&local);
    return NULL;
  }
  g_info ("rotated the key of slot %s in %s: key event %s", sk->slot_id,
      sk->room_id, event_id);
  return g_steal_pointer (&event_id);

fail:
  mrtc_olm_wipe (key, sizeof (key));
  return NULL;
}

static gboolean
disconnect_sync_cb (gpointer data)
{
  MrtcOlmSlotKey *sk = data;

  if (sk->sync_handler != 0)
    g_signal_handler_disconnect (sk->client, sk->sync_handler);
  sk->sync_handler = 0;
  if (sk->holding_sync)
    mrtc_client_release_sync (sk->client);
  sk->holding_sync = FALSE;
  return G_SOURCE_REMOVE;
}

static gboolean
stop_job (gpointer data)
{
  MrtcOlmSlotKey *sk = data;

  sk->stopped = TRUE;
  if (sk->room_event_handler != 0)
    g_signal_handler_disconnect (sk->machine, sk->room_event_handler);
  if (sk->decrypted_handler != 0)
    g_signal_handler_disconnect (sk->machine, sk->decrypted_handler);
  if (sk->clear_handler != 0)
    g_signal_handler_disconnect (sk->machine, sk->clear_handler);
  sk->room_event_handler = sk->decrypted_handler = sk->clear_handler = 0;
  if (sk->timer != NULL) {
    g_source_destroy (sk->timer);
    g_clear_pointer (&sk->timer, g_source_unref);
  }
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_slot_key_stop:
 * @slot_key: the slot key
 *
 * Stops following the slot and answering key requests. Also done when the
 * last reference goes (drop it from an application thread).
 */
void
mrtc_olm_slot_key_stop (MrtcOlmSlotKey *sk)
{
  gboolean started;

  /* Once (sk->stopped is the worker's). A rotation in flight sees this
   * before its next request and ends before we go on (it never updates
   * the slot after we stopped). */
  if (sk->machine == NULL
      || !g_atomic_int_compare_and_exchange (&sk->stopping, FALSE, TRUE))
    return;
  g_mutex_lock (&sk->rotate_lock);
  started = sk->started;
  g_mutex_unlock (&sk->rotate_lock);
  if (started)
    run_on_client (sk, disconnect_sync_cb);
  mrtc_olm_machine_run_sync (sk->machine, stop_job, sk);
}

GBytes *
mrtc_olm_slot_key_lookup (MrtcOlmSlotKey *sk, guint index)
{
  GBytes *key;

  g_mutex_lock (&sk->lock);
  key = g_hash_table_lookup (sk->keys, GUINT_TO_POINTER (index));
  if (key != NULL)
    g_bytes_ref (key);
  g_mutex_unlock (&sk->lock);
  return key;
}

GBytes *
mrtc_olm_slot_key_get_current (
    MrtcOlmSlotKey *sk, guint *index, gchar **event_id)
{
  GBytes *key;

  g_mutex_lock (&sk->lock);
  key = sk->current_key != NULL ? g_bytes_ref (sk->current_key) : NULL;
  if (index != NULL)
    *index = sk->current_index;
  if (event_id != NULL)
    *event_id = g_strdup (sk->current_event_id);
  g_mutex_unlock (&sk->lock);
  return key;
}

MrtcOlmSlotKeyStatus
mrtc_olm_slot_key_get_status (MrtcOlmSlotKey *sk, gchar **message)
{
  MrtcOlmSlotKeyStatus status;

  g_mutex_lock (&sk->lock);
  status = sk->status;
  if (message != NULL)
    *message = g_strdup (sk->status_message);
  g_mutex_unlock (&sk->lock);
  return status;
}

guint
mrtc_olm_slot_key_get_requests_sent (MrtcOlmSlotKey *sk)
{
  return (guint)g_atomic_int_get (&sk->requests_sent);
}

guint
mrtc_olm_slot_key_get_dropped (MrtcOlmSlotKey *sk)
{
  return (guint)g_atomic_int_get (&sk->dropped);
}

static void
mrtc_olm_slot_key_init (MrtcOlmSlotKey *sk)
{
  g_mutex_init (&sk->lock);
  sk->keys
      = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify)g_bytes_unref);
  sk->envelopes = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_object_unref);
  sk->answered
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_queue_init (&sk->own_events);
  sk->superseded
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  sk->status = MRTC_OLM_SLOT_KEY_STATUS_NO_KEY;
  sk->event_ts
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_mutex_init (&sk->rotate_lock);
  sk->grace_ms = MRTC_OLM_SLOT_KEY_DEFAULT_GRACE_MS;
}

static void
mrtc_olm_slot_key_dispose (GObject *object)
{
  MrtcOlmSlotKey *sk = MRTC_OLM_SLOT_KEY (object);

  mrtc_olm_slot_key_stop (sk);
  G_OBJECT_CLASS (mrtc_olm_slot_key_parent_class)->dispose (object);
}

static void
mrtc_olm_slot_key_finalize (GObject *object)
{
  MrtcOlmSlotKey *sk = MRTC_OLM_SLOT_KEY (object);

  mrtc_olm_slot_key_schedule_free (sk->schedule);
  g_hash_table_unref (sk->keys);
  g_hash_table_unref (sk->envelopes);
  g_hash_table_unref (sk->answered);
  g_queue_clear_full (&sk->own_events, (GDestroyNotify)own_event_free);
  g_clear_pointer (&sk->current_key, g_bytes_unref);
  g_free (sk->current_event_id);
  g_free (sk->status_message);
  g_free (sk->fetched_for);
  g_hash_table_unref (sk->superseded);
  g_hash_table_unref (sk->event_ts);
  g_clear_pointer (&sk->state_cache, json_array_unref);
  g_mutex_clear (&sk->rotate_lock);
  g_free (sk->slot_event_id[0]);
  g_free (sk->slot_event_id[1]);
  g_clear_object (&sk->machine);
  g_clear_object (&sk->client);
  g_free (sk->room_id);
  g_free (sk->slot_id);
  g_mutex_clear (&sk->lock);
  G_OBJECT_CLASS (mrtc_olm_slot_key_parent_class)->finalize (object);
}

static void
mrtc_olm_slot_key_class_init (MrtcOlmSlotKeyClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->dispose = mrtc_olm_slot_key_dispose;
  gobject_class->finalize = mrtc_olm_slot_key_finalize;

  /**
   * MrtcOlmSlotKey::key-changed:
   * @index: the key index (0..255)
   * @key: the 16 key bytes
   * @event_id: the key event
   *
   * The slot's key changed: encrypt with @key at @index from now on; keep
   * decrypting with the previous one until key-expired.
   */
  signals[SIGNAL_KEY_CHANGED] = g_signal_new ("key-changed",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_BYTES, G_TYPE_STRING);
  /**
   * MrtcOlmSlotKey::key-known:
   * @index: the key index of the key event (0..255)
   * @key: the 16 key bytes
   * @event_id: the key event
   *
   * The key of a key event was learned (decrypted, answered to our key
   * request, or sent by us), whether or not the slot names it yet: a
   * receiver may accept frames at @index already (a rotation's senders
   * switch as their own sync brings the slot update). Do not send with it
   * before key-changed names it.
   */
  signals[SIGNAL_KEY_KNOWN] = g_signal_new ("key-known",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_BYTES, G_TYPE_STRING);
  /**
   * MrtcOlmSlotKey::key-expired:
   * @index: the key index
   * @event_id: the key event
   *
   * The previous key's grace period is over: forget it.
   */
  signals[SIGNAL_KEY_EXPIRED] = g_signal_new ("key-expired",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_STRING);
  /**
   * MrtcOlmSlotKey::key-status:
   * @status: an #MrtcOlmSlotKeyStatus
   * @event_id: (nullable): the key event named by the slot
   * @message: a sentence for a bus message
   */
  signals[SIGNAL_KEY_STATUS] = g_signal_new ("key-status",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_STRING, G_TYPE_STRING);
}
