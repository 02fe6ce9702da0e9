/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * The network half of the device crypto: drives an #MrtcOlmAccount over an
 * #MrtcClient (/keys/upload, /keys/query, /keys/claim, /sendToDevice, the
 * sync loop's to-device events, device lists and one-time key counts, and
 * the encrypted room events of joined rooms).
 *
 * Nothing here logs key bytes, tokens or plaintexts: only user, device,
 * room and event ids and counts.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmmachine.h"

#include <string.h>

#define KEYS_TIMEOUT_MS 10000
/* Replenish one-time keys when the server has fewer than this many. */
#define OTK_LOW_WATER 20
#define MAX_PENDING_ROOM_EVENTS 512
#define MAX_SEEN_EVENTS 4096
/* Decrypted to-device events kept for late listeners (a call's media keys
 * may arrive before the call object exists). */
#define MAX_RECENT 64
#define RECENT_US (30 * G_USEC_PER_SEC)

enum
{
  SIGNAL_DECRYPTED,
  SIGNAL_UNENCRYPTED_TO_DEVICE,
  SIGNAL_ROOM_EVENT,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

typedef struct
{
  gchar *room_id;
  gchar *session_id;
  JsonObject *event;
} PendingRoomEvent;

typedef struct
{
  gint64 received;
  MrtcOlmDecrypted *decrypted;
} RecentEvent;

struct _MrtcOlmMachine
{
  GObject parent;

  MrtcClient *client;
  gchar *user_id;
  gchar *device_id;
  gchar *curve25519;
  gchar *ed25519;

  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GAsyncQueue *jobs;
  gulong sync_handler;
  gulong to_device_handler;

  /* Worker thread only. */
  MrtcOlmAccount *account;
  GHashTable *tracked_users;  /* user ids */
  GHashTable *outdated_users; /* user ids whose devices must be queried */
  GHashTable *rooms;          /* room id -> set of joined user ids */
  GQueue pending;             /* PendingRoomEvent */
  GHashTable *seen_events;    /* event ids decrypted */
  GQueue seen_order;
  GQueue recent; /* RecentEvent, oldest first */

  gint dropped;
  gint pending_count;
};

G_DEFINE_TYPE (MrtcOlmMachine, mrtc_olm_machine, G_TYPE_OBJECT);

/* ------------------------------------------------------------------------ */
/* Worker thread and jobs */

typedef struct
{
  GSourceFunc func;
  gpointer data;
  GDestroyNotify notify;
} Job;

static void
job_free (Job *job)
{
  if (job->notify != NULL)
    job->notify (job->data);
  g_free (job);
}

static gboolean
drain_jobs (gpointer data)
{
  MrtcOlmMachine *machine = data;
  Job *job;

  while ((job = g_async_queue_try_pop (machine->jobs)) != NULL) {
    job->func (job->data);
    job_free (job);
  }
  return G_SOURCE_REMOVE;
}

static gpointer
worker_thread (gpointer data)
{
  MrtcOlmMachine *machine = data;
  Job *job;

  g_main_context_push_thread_default (machine->context);
  g_main_loop_run (machine->loop);
  while ((job = g_async_queue_try_pop (machine->jobs)) != NULL)
    job_free (job);
  g_main_context_pop_thread_default (machine->context);
  return NULL;
}

static gboolean
on_worker (MrtcOlmMachine *machine)
{
  return g_thread_self () == machine->thread;
}

void
mrtc_olm_machine_run_async (MrtcOlmMachine *machine, GSourceFunc func,
    gpointer data, GDestroyNotify notify)
{
  Job *job = g_new0 (Job, 1);

  job->func = func;
  job->data = data;
  job->notify = notify;
  g_async_queue_push (machine->jobs, job);
  g_main_context_invoke (machine->context, drain_jobs, machine);
}

typedef struct
{
  GSourceFunc func;
  gpointer data;
  GMutex lock;
  GCond cond;
  gboolean done;
} SyncJob;

static gboolean
run_sync_job (gpointer data)
{
  SyncJob *sj = data;

  sj->func (sj->data);
  g_mutex_lock (&sj->lock);
  sj->done = TRUE;
  g_cond_signal (&sj->cond);
  g_mutex_unlock (&sj->lock);
  return G_SOURCE_REMOVE;
}

void
mrtc_olm_machine_run_sync (
    MrtcOlmMachine *machine, GSourceFunc func, gpointer data)
{
  SyncJob sj;

  memset (&sj, 0, sizeof (sj));
  sj.func = func;
  sj.data = data;
  if (on_worker (machine)) {
    func (data);
    return;
  }
  g_mutex_init (&sj.lock);
  g_cond_init (&sj.cond);
  mrtc_olm_machine_run_async (machine, run_sync_job, &sj, NULL);
  g_mutex_lock (&sj.lock);
  while (!sj.done)
    g_cond_wait (&sj.cond, &sj.lock);
  g_mutex_unlock (&sj.lock);
  g_mutex_clear (&sj.lock);
  g_cond_clear (&sj.cond);
}

static gboolean
noop (gpointer data)
{
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_flush:
 * @machine: the machine
 *
 * Waits until the work queued so far (sync responses and to-device events
 * the client delivered) has been processed.
 */
void
mrtc_olm_machine_flush (MrtcOlmMachine *machine)
{
  mrtc_olm_machine_run_sync (machine, noop, NULL);
}

/* Blocking calls must not come from the client's thread: the worker needs
 * it to talk to the homeserver. */
static gboolean
check_caller (MrtcOlmMachine *machine, GError **error)
{
  if (!on_worker (machine)
      && g_main_context_is_owner (mrtc_client_get_context (machine->client))) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_WRONG_THREAD,
        "blocking crypto call from the Matrix client's thread");
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers */

/* Parses @text on the worker: JsonObjects are not shared across threads. */
static JsonObject *
parse_object (const gchar *text)
{
  g_autoptr (JsonNode) node = json_from_string (text, NULL);

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_object_ref (json_node_get_object (node));
}

/* Type-checked getters for what the homeserver sends (never a critical
 * on a wrong type). */
static gint64
get_int (JsonObject *object, const gchar *member, gint64 fallback)
{
  JsonNode *n;

  if (object == NULL || !json_object_has_member (object, member))
    return fallback;
  n = json_object_get_member (object, member);
  if (!JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_INT64)
    return fallback;
  return json_node_get_int (n);
}

static JsonArray *
get_array (JsonObject *object, const gchar *member)
{
  JsonNode *n;

  if (object == NULL || !json_object_has_member (object, member))
    return NULL;
  n = json_object_get_member (object, member);
  return JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static const gchar *
array_string (JsonArray *array, guint i)
{
  JsonNode *n = json_array_get_element (array, i);

  if (!JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* Sends @req (owned, its body owned by the request alone) on the worker. */
static JsonObject *
call_object (MrtcOlmMachine *machine, MrtcRequest *req, GError **error)
{
  g_autofree gchar *what = g_strdup_printf ("%s %s", req->method, req->path);
  JsonNode *node = mrtc_client_call (machine->client, req, error);
  JsonObject *object;

  if (node == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "%s: response is not a JSON object", what);
    json_node_unref (node);
    return NULL;
  }
  object = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return object;
}

static MrtcRequest *
post_request (const gchar *path, JsonObject *body /* owned */)
{
  MrtcRequest *req = mrtc_request_new ("POST", path);

  mrtc_request_set_body_object (req, body);
  return req;
}

static gboolean
save_account (MrtcOlmMachine *machine, GError **error)
{
  if (!mrtc_olm_account_is_dirty (machine->account))
    return TRUE;
  return mrtc_olm_account_save (machine->account, error);
}

static void
save_account_or_warn (MrtcOlmMachine *machine)
{
  g_autoptr (GError) error = NULL;

  if (!save_account (machine, &error))
    g_warning ("cannot save the crypto store: %s", error->message);
}

/* ------------------------------------------------------------------------ */
/* Keys upload */

static gboolean
upload_once (MrtcOlmMachine *machine, gint64 *server_count, GError **error)
{
  JsonObject *body = mrtc_olm_account_upload_body (machine->account);
  g_autoptr (JsonObject) resp = NULL;
  JsonObject *counts;
  guint n_otks = 0;

  if (json_object_has_member (body, "one_time_keys"))
    n_otks = json_object_get_size (
        json_object_get_object_member (body, "one_time_keys"));
  /* Pending keys are in the store before they go out. */
  if (!save_account (machine, error)) {
    json_object_unref (body);
    return FALSE;
  }
  resp = call_object (
      machine, post_request ("/_matrix/client/v3/keys/upload", body), error);
  if (resp == NULL) {
    g_prefix_error (error, "keys upload: ");
    return FALSE;
  }
  mrtc_olm_account_mark_published (machine->account);
  counts = mrtc_olm_json_get_object (resp, "one_time_key_counts");
  *server_count = get_int (counts, "signed_curve25519", 0);
  g_debug ("uploaded keys of %s %s (%u one-time keys, %" G_GINT64_FORMAT
           " on the server)",
      machine->user_id, machine->device_id, n_otks, *server_count);
  return save_account (machine, error);
}

/* Uploads the device keys (once), tops the one-time keys up and makes sure
 * a fallback key is there. @fallback_types: from sync, or NULL at start. */
static gboolean
upload_keys (MrtcOlmMachine *machine, JsonArray *fallback_types,
    gboolean have_fallback_types, GError **error)
{
  gint64 count = 0;
  guint more;
  g_autoptr (JsonObject) fallback = NULL;
  gboolean new_device
      = !mrtc_olm_account_device_keys_published (machine->account);

  /* The answer to an upload is the authoritative count. */
  if (!upload_once (machine, &count, error))
    return FALSE;
  more = mrtc_olm_account_one_time_keys_to_generate (machine->account, count);
  /* Without sync's list of unused fallback keys, only a new device makes
   * one (a restart keeps the published one). */
  if (have_fallback_types)
    mrtc_olm_account_ensure_fallback_key (machine->account, fallback_types);
  else if (new_device)
    mrtc_olm_account_ensure_fallback_key (machine->account, NULL);
  fallback = mrtc_olm_account_fallback_keys (machine->account);
  if (more == 0 && json_object_get_size (fallback) == 0)
    return TRUE;
  mrtc_olm_account_generate_one_time_keys (machine->account, more);
  return upload_once (machine, &count, error);
}

typedef struct
{
  MrtcOlmMachine *machine;
  GError **error;
  gboolean ok;
} UploadArgs;

static gboolean
upload_job (gpointer data)
{
  UploadArgs *a = data;

  a->ok = upload_keys (a->machine, NULL, FALSE, a->error);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_upload_keys:
 * @machine: the machine
 * @error: return location for an error
 *
 * Uploads the device keys (until published) and tops up the one-time and
 * fallback keys. mrtc_olm_machine_new() does it, and sync replenishes.
 *
 * Returns: %TRUE on success.
 */
gboolean
mrtc_olm_machine_upload_keys (MrtcOlmMachine *machine, GError **error)
{
  UploadArgs a = { machine, error, FALSE };

  if (!check_caller (machine, error))
    return FALSE;
  mrtc_olm_machine_run_sync (machine, upload_job, &a);
  return a.ok;
}

/* ------------------------------------------------------------------------ */
/* Device lists */

static void
discard_rooms_of_user (MrtcOlmMachine *machine, const gchar *user_id)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, machine->rooms);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (g_hash_table_contains (value, user_id))
      mrtc_olm_account_megolm_discard (machine->account, key);
}

/* /keys/query for @users (a set of user ids) */
static gboolean
query_users (MrtcOlmMachine *machine, GHashTable *users, GError **error)
{
  JsonObject *body, *device_keys;
  g_autoptr (JsonObject) resp = NULL;
  JsonObject *result;
  GHashTableIter iter;
  gpointer key;

  if (g_hash_table_size (users) == 0)
    return TRUE;
  body = json_object_new ();
  device_keys = json_object_new ();
  g_hash_table_iter_init (&iter, users);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    json_object_set_array_member (device_keys, key, json_array_new ());
  json_object_set_object_member (body, "device_keys", device_keys);
  json_object_set_int_member (body, "timeout", KEYS_TIMEOUT_MS);
  resp = call_object (
      machine, post_request ("/_matrix/client/v3/keys/query", body), error);
  if (resp == NULL) {
    g_prefix_error (error, "keys query: ");
    return FALSE;
  }

  result = mrtc_olm_json_get_object (resp, "device_keys");
  g_hash_table_iter_init (&iter, users);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    const gchar *user_id = key;
    JsonObject *devices = mrtc_olm_json_get_object (result, user_id);
    g_autoptr (GPtrArray) before = NULL;
    guint i, accepted;
    gboolean removed = FALSE;

    if (devices == NULL) {
      /* A failure for that user's server: keep what we knew. */
      g_debug ("keys query returned nothing for %s", user_id);
      continue;
    }
    before = mrtc_olm_account_list_devices (machine->account, user_id);
    {
      g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);

      for (i = 0; i < before->len; i++)
        g_ptr_array_add (ids,
            g_strdup (
                ((MrtcOlmDevice *)g_ptr_array_index (before, i))->device_id));
      accepted = mrtc_olm_account_update_user_devices (
          machine->account, user_id, devices);
      for (i = 0; i < ids->len; i++)
        if (mrtc_olm_account_lookup_device (
                machine->account, user_id, g_ptr_array_index (ids, i))
            == NULL)
          removed = TRUE;
    }
    g_debug ("%s has %u verified devices", user_id, accepted);
    if (removed)
      discard_rooms_of_user (machine, user_id);
    g_hash_table_remove (machine->outdated_users, user_id);
  }
  save_account_or_warn (machine);
  return TRUE;
}

static gboolean
query_outdated (MrtcOlmMachine *machine, GError **error)
{
  g_autoptr (GHashTable) users
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, machine->outdated_users);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_hash_table_add (users, g_strdup (key));
  return query_users (machine, users, error);
}

static void
track_user (MrtcOlmMachine *machine, const gchar *user_id)
{
  if (!g_hash_table_contains (machine->tracked_users, user_id)) {
    g_hash_table_add (machine->tracked_users, g_strdup (user_id));
    g_hash_table_add (machine->outdated_users, g_strdup (user_id));
  }
}

typedef struct
{
  MrtcOlmMachine *machine;
  const gchar *const *user_ids;
  const gchar *room_id;
  GError **error;
  gboolean ok;
} TrackArgs;

static gboolean
track_users_job (gpointer data)
{
  TrackArgs *a = data;
  guint i;

  for (i = 0; a->user_ids[i] != NULL; i++) {
    track_user (a->machine, a->user_ids[i]);
    /* An explicit request re-queries. */
    g_hash_table_add (a->machine->outdated_users, g_strdup (a->user_ids[i]));
  }
  a->ok = query_outdated (a->machine, a->error);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_track_users:
 * @machine: the machine
 * @user_ids: (array zero-terminated=1): users
 * @error: return location for an error
 *
 * Queries the device keys of @user_ids now and keeps them up to date from
 * sync `device_lists.changed`.
 *
 * Returns: %TRUE on success.
 */
gboolean
mrtc_olm_machine_track_users (
    MrtcOlmMachine *machine, const gchar *const *user_ids, GError **error)
{
  TrackArgs a = { machine, user_ids, NULL, error, FALSE };

  if (!check_caller (machine, error))
    return FALSE;
  mrtc_olm_machine_run_sync (machine, track_users_job, &a);
  return a.ok;
}

static GHashTable *
room_members (MrtcOlmMachine *machine, const gchar *room_id)
{
  GHashTable *members = g_hash_table_lookup (machine->rooms, room_id);

  if (members == NULL) {
    members = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (machine->rooms, g_strdup (room_id), members);
  }
  return members;
}

static gboolean
track_room (MrtcOlmMachine *machine, const gchar *room_id, GError **error)
{
  g_autofree gchar *escaped = g_uri_escape_string (room_id, NULL, FALSE);
  g_autofree gchar *path
      = g_strdup_printf ("/_matrix/client/v3/rooms/%s/joined_members", escaped);
  g_autoptr (JsonObject) resp = NULL;
  JsonObject *joined;
  GHashTable *members;
  GList *users, *l;

  resp = call_object (machine, mrtc_request_new ("GET", path), error);
  if (resp == NULL) {
    g_prefix_error (error, "joined members of %s: ", room_id);
    return FALSE;
  }
  joined = mrtc_olm_json_get_object (resp, "joined");
  members = room_members (machine, room_id);
  {
    GHashTableIter iter;
    gpointer key;

    /* Whoever left since we last looked must not read what follows. */
    g_hash_table_iter_init (&iter, members);
    while (g_hash_table_iter_next (&iter, &key, NULL))
      if (joined == NULL || !json_object_has_member (joined, key)) {
        mrtc_olm_account_megolm_discard (machine->account, room_id);
        break;
      }
  }
  g_hash_table_remove_all (members);
  users = joined != NULL ? json_object_get_members (joined) : NULL;
  for (l = users; l != NULL; l = l->next) {
    g_hash_table_add (members, g_strdup (l->data));
    track_user (machine, l->data);
  }
  g_list_free (users);
  g_debug (
      "tracking room %s (%u members)", room_id, g_hash_table_size (members));
  return query_outdated (machine, error);
}

static gboolean
track_room_job (gpointer data)
{
  TrackArgs *a = data;

  a->ok = track_room (a->machine, a->room_id, a->error);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_track_room:
 * @machine: the machine
 * @room_id: a joined (encrypted) room
 * @error: return location for an error
 *
 * Fetches the room's joined members, queries their devices and follows the
 * room's membership from then on (room keys are shared with its members'
 * devices; a member leaving rotates the room's Megolm session).
 *
 * Returns: %TRUE on success.
 */
gboolean
mrtc_olm_machine_track_room (
    MrtcOlmMachine *machine, const gchar *room_id, GError **error)
{
  TrackArgs a = { machine, NULL, room_id, error, FALSE };

  if (!check_caller (machine, error))
    return FALSE;
  mrtc_olm_machine_run_sync (machine, track_room_job, &a);
  return a.ok;
}

typedef struct
{
  MrtcOlmMachine *machine;
  const gchar *user_id;
  GPtrArray *out;
} ListArgs;

static gboolean
list_devices_job (gpointer data)
{
  ListArgs *a = data;
  g_autoptr (GPtrArray) devices
      = mrtc_olm_account_list_devices (a->machine->account, a->user_id);
  guint i;

  a->out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_device_free);
  for (i = 0; i < devices->len; i++)
    g_ptr_array_add (
        a->out, mrtc_olm_device_copy (g_ptr_array_index (devices, i)));
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_list_devices:
 * @machine: the machine
 * @user_id: (nullable): a user, or %NULL for all
 *
 * Returns: (transfer full) (element-type MrtcOlmDevice): copies of the
 *   verified devices known for @user_id.
 */
GPtrArray *
mrtc_olm_machine_list_devices (MrtcOlmMachine *machine, const gchar *user_id)
{
  ListArgs a = { machine, user_id, NULL };

  mrtc_olm_machine_run_sync (machine, list_devices_job, &a);
  return a.out;
}

/* ------------------------------------------------------------------------ */
/* Olm sessions and to-device sending */

/* Claims one-time keys of the devices in @devices that have no Olm session
 * and creates the sessions. Devices without a key are left without one. */
static gboolean
ensure_sessions (MrtcOlmMachine *machine, GPtrArray *devices, GError **error)
{
  JsonObject *body, *wanted;
  g_autoptr (JsonObject) resp = NULL;
  JsonObject *claimed;
  guint i, n = 0;

  wanted = json_object_new ();
  for (i = 0; i < devices->len; i++) {
    const MrtcOlmDevice *d = g_ptr_array_index (devices, i);
    JsonObject *per_user;

    if (mrtc_olm_account_has_session (machine->account, d))
      continue;
    per_user = mrtc_olm_json_get_object (wanted, d->user_id);
    if (per_user == NULL) {
      per_user = json_object_new ();
      json_object_set_object_member (wanted, d->user_id, per_user);
    }
    json_object_set_string_member (per_user, d->device_id, "signed_curve25519");
    n++;
  }
  if (n == 0) {
    json_object_unref (wanted);
    return TRUE;
  }
  body = json_object_new ();
  json_object_set_object_member (body, "one_time_keys", wanted);
  json_object_set_int_member (body, "timeout", KEYS_TIMEOUT_MS);
  resp = call_object (
      machine, post_request ("/_matrix/client/v3/keys/claim", body), error);
  if (resp == NULL) {
    g_prefix_error (error, "keys claim: ");
    return FALSE;
  }
  claimed = mrtc_olm_json_get_object (resp, "one_time_keys");
  for (i = 0; i < devices->len; i++) {
    const MrtcOlmDevice *d = g_ptr_array_index (devices, i);
    JsonObject *keys = mrtc_olm_json_get_object (
        mrtc_olm_json_get_object (claimed, d->user_id), d->device_id);
    g_autoptr (GError) local = NULL;

    if (mrtc_olm_account_has_session (machine->account, d))
      continue;
    if (keys == NULL) {
      g_message ("no one-time key could be claimed for %s %s", d->user_id,
          d->device_id);
      continue;
    }
    if (!mrtc_olm_account_create_outbound_session (
            machine->account, d, keys, &local))
      g_message ("no Olm session with %s %s: %s", d->user_id, d->device_id,
          local->message);
  }
  g_debug ("claimed one-time keys for %u devices", n);
  return save_account (machine, error);
}

/* Olm-encrypts @type/@content to @devices and sends it all in one
 * /sendToDevice; returns how many devices it went to, or -1. */
static gint
send_encrypted (MrtcOlmMachine *machine, GPtrArray *devices, const gchar *type,
    JsonObject *content, GError **error)
{
  g_autoptr (GPtrArray) missing
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_device_free);
  JsonObject *messages, *body;
  g_autofree gchar *txn = NULL;
  g_autofree gchar *path = NULL;
  g_autoptr (JsonObject) resp = NULL;
  MrtcRequest *req;
  gint sent;

  if (!ensure_sessions (machine, devices, error))
    return -1;
  messages = mrtc_olm_account_encrypt_to_devices (
      machine->account, devices, type, content, missing, error);
  if (messages == NULL)
    return -1;
  sent = (gint)devices->len - (gint)missing->len;
  if (missing->len > 0)
    g_message ("%u devices have no Olm session: %s not sent to them",
        missing->len, type);
  /* The ratchets moved: store them before anything leaves. */
  if (!save_account (machine, error)) {
    json_object_unref (messages);
    return -1;
  }
  if (sent == 0) {
    json_object_unref (messages);
    return 0;
  }

  txn = mrtc_client_new_txn_id (machine->client);
  path = g_strdup_printf (
      "/_matrix/client/v3/sendToDevice/m.room.encrypted/%s", txn);
  req = mrtc_request_new ("PUT", path);
  body = json_object_new ();
  json_object_set_object_member (body, "messages", messages);
  mrtc_request_set_body_object (req, body);
  resp = call_object (machine, req, error);
  if (resp == NULL) {
    g_prefix_error (error, "sendToDevice: ");
    return -1;
  }
  g_debug ("sent %s to %d devices", type, sent);
  return sent;
}

static void
add_query_user (GHashTable *users, const gchar *user_id)
{
  if (!g_hash_table_contains (users, user_id))
    g_hash_table_add (users, g_strdup (user_id));
}

typedef struct
{
  MrtcOlmMachine *machine;
  GPtrArray *recipients;
  const gchar *type;
  JsonObject *content;
  GPtrArray *unreached;
  GError **error;
  gint sent;
} SendArgs;

static gboolean
send_to_members_job (gpointer data)
{
  SendArgs *a = data;
  MrtcOlmMachine *machine = a->machine;
  g_autoptr (GHashTable) unknown
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) devices = g_ptr_array_new ();
  guint i;

  a->sent = -1;
  if (!query_outdated (machine, a->error))
    return G_SOURCE_REMOVE;
  for (i = 0; i < a->recipients->len; i++) {
    const MrtcOlmMember *m = g_ptr_array_index (a->recipients, i);

    if (mrtc_olm_account_lookup_device (
            machine->account, m->user_id, m->device_id)
        == NULL)
      add_query_user (unknown, m->user_id);
  }
  if (g_hash_table_size (unknown) > 0) {
    /* New users are tracked from now on. */
    {
      GHashTableIter it;
      gpointer key;

      g_hash_table_iter_init (&it, unknown);
      while (g_hash_table_iter_next (&it, &key, NULL))
        track_user (machine, key);
    }
    if (!query_users (machine, unknown, a->error))
      return G_SOURCE_REMOVE;
  }
  for (i = 0; i < a->recipients->len; i++) {
    const MrtcOlmMember *m = g_ptr_array_index (a->recipients, i);
    const MrtcOlmDevice *d = mrtc_olm_account_lookup_device (
        machine->account, m->user_id, m->device_id);

    if (d == NULL) {
      g_message ("%s %s has no verified device keys: %s not sent to it",
          m->user_id, m->device_id, a->type);
      continue;
    }
    if (g_strcmp0 (m->user_id, machine->user_id) == 0
        && g_strcmp0 (m->device_id, machine->device_id) == 0)
      continue;
    if (g_ptr_array_find (devices, d, NULL))
      continue;
    g_ptr_array_add (devices, (gpointer)d);
  }
  a->sent = send_encrypted (machine, devices, a->type, a->content, a->error);
  if (a->sent < 0 || a->unreached == NULL)
    return G_SOURCE_REMOVE;
  for (i = 0; i < a->recipients->len; i++) {
    const MrtcOlmMember *m = g_ptr_array_index (a->recipients, i);
    const MrtcOlmDevice *d = mrtc_olm_account_lookup_device (
        machine->account, m->user_id, m->device_id);

    if (g_strcmp0 (m->user_id, machine->user_id) == 0
        && g_strcmp0 (m->device_id, machine->device_id) == 0)
      continue;
    if (d == NULL || !mrtc_olm_account_has_session (machine->account, d))
      g_ptr_array_add (a->unreached, mrtc_olm_member_copy (m));
  }
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_send_to_members:
 * @machine: the machine
 * @recipients: (element-type MrtcOlmMember): the devices to send to (only
 *   `user_id` and `device_id` are used; our own device is skipped)
 * @type: the inner event type
 * @content: the inner event content
 * @unreached: (nullable) (element-type MrtcOlmMember): receives copies of
 *   the recipients it was not sent to (no verified device keys, no one-time
 *   key to start an Olm session with)
 * @error: return location for an error
 *
 * Olm-encrypts one to-device event to every recipient device (querying
 * unknown devices and claiming one-time keys for devices without a session
 * first) and sends them all in one PUT /sendToDevice/m.room.encrypted.
 * Recipients whose device keys cannot be verified are skipped (logged).
 *
 * Returns: the number of devices it was sent to, or -1 on error (then
 *   none was reached).
 */
gint
mrtc_olm_machine_send_to_members (MrtcOlmMachine *machine,
    GPtrArray *recipients, const gchar *type, JsonObject *content,
    GPtrArray *unreached, GError **error)
{
  SendArgs a = { machine, recipients, type, content, unreached, error, -1 };

  if (!check_caller (machine, error))
    return -1;
  mrtc_olm_machine_run_sync (machine, send_to_members_job, &a);
  return a.sent;
}

/* ------------------------------------------------------------------------ */
/* Megolm */

static JsonObject *
encrypt_room_event (MrtcOlmMachine *machine, const gchar *room_id,
    const gchar *type, JsonObject *content, GError **error)
{
  GHashTable *members = g_hash_table_lookup (machine->rooms, room_id);
  g_autoptr (JsonObject) room_key = NULL;
  g_autoptr (GPtrArray) need = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key;
  JsonObject *encrypted;

  if (members == NULL) {
    if (!track_room (machine, room_id, error))
      return NULL;
    members = g_hash_table_lookup (machine->rooms, room_id);
  } else if (!query_outdated (machine, error)) {
    return NULL;
  }

  room_key = mrtc_olm_account_megolm_room_key (machine->account, room_id);
  g_hash_table_iter_init (&iter, members);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    g_autoptr (GPtrArray) devices
        = mrtc_olm_account_list_devices (machine->account, key);
    guint i;

    for (i = 0; i < devices->len; i++) {
      MrtcOlmDevice *d = g_ptr_array_index (devices, i);

      if (g_strcmp0 (d->user_id, machine->user_id) == 0
          && g_strcmp0 (d->device_id, machine->device_id) == 0)
        continue;
      if (!mrtc_olm_account_megolm_shared_with (machine->account, room_id, d))
        g_ptr_array_add (need, d);
    }
  }
  if (need->len > 0) {
    g_autoptr (GPtrArray) missing
        = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_device_free);
    guint i;

    if (send_encrypted (machine, need, "m.room_key", room_key, error) < 0)
      return NULL;
    /* Those without an Olm session did not get it: try again next time. */
    for (i = 0; i < need->len; i++) {
      MrtcOlmDevice *d = g_ptr_array_index (need, i);

      if (mrtc_olm_account_has_session (machine->account, d))
        mrtc_olm_account_megolm_mark_shared (machine->account, room_id, d);
    }
    g_debug ("shared the room key of %s with %u devices", room_id, need->len);
  }

  encrypted = mrtc_olm_account_megolm_encrypt (
      machine->account, room_id, type, content, error);
  if (encrypted == NULL)
    return NULL;
  if (!save_account (machine, error)) {
    json_object_unref (encrypted);
    return NULL;
  }
  return encrypted;
}

typedef struct
{
  MrtcOlmMachine *machine;
  const gchar *room_id;
  const gchar *type;
  JsonObject *content;
  GError **error;
  JsonObject *out;
} EncryptArgs;

static gboolean
encrypt_job (gpointer data)
{
  EncryptArgs *a = data;

  a->out = encrypt_room_event (
      a->machine, a->room_id, a->type, a->content, a->error);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_encrypt_room_event:
 * @machine: the machine
 * @room_id: an encrypted room
 * @type: the event type
 * @content: the event content
 * @error: return location for an error
 *
 * Shares the room's Megolm session (`m.room_key` over Olm) with every
 * device of the room's members that does not have it yet, then encrypts.
 * The room is tracked from then on (see mrtc_olm_machine_track_room()).
 *
 * Returns: (transfer full) (nullable): the `m.room.encrypted` content.
 */
JsonObject *
mrtc_olm_machine_encrypt_room_event (MrtcOlmMachine *machine,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GError **error)
{
  EncryptArgs a = { machine, room_id, type, content, error, NULL };

  if (!check_caller (machine, error))
    return NULL;
  mrtc_olm_machine_run_sync (machine, encrypt_job, &a);
  return a.out;
}

typedef struct
{
  GTask *task;
  gchar *room_id;
  gchar *type;
  gchar *content; /* serialized: objects do not cross threads */
} EncryptAsync;

static void
encrypt_async_free (gpointer data)
{
  EncryptAsync *ea = data;

  g_object_unref (ea->task);
  g_free (ea->room_id);
  g_free (ea->type);
  g_free (ea->content);
  g_free (ea);
}

static gboolean
encrypt_async_job (gpointer data)
{
  EncryptAsync *ea = data;
  MrtcOlmMachine *machine = g_task_get_source_object (ea->task);
  g_autoptr (JsonObject) content = parse_object (ea->content);
  GError *error = NULL;
  JsonObject *out;

  if (g_task_return_error_if_cancelled (ea->task))
    return G_SOURCE_REMOVE;
  out = encrypt_room_event (machine, ea->room_id, ea->type, content, &error);
  if (out == NULL) {
    g_task_return_error (ea->task, error);
    return G_SOURCE_REMOVE;
  }
  {
    /* Hand over a text: the caller's thread parses its own object. */
    gchar *text = mrtc_olm_json_object_to_string (out);

    json_object_unref (out);
    g_task_return_pointer (ea->task, text, g_free);
  }
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_encrypt_room_event_async:
 * @machine: the machine
 * @room_id: an encrypted room
 * @type: the event type
 * @content: the event content (copied)
 * @cancellable: (nullable): a cancellable
 * @callback: called in the caller's thread-default context
 * @user_data: data for @callback
 *
 * The asynchronous form of mrtc_olm_machine_encrypt_room_event(), usable
 * from the client's thread.
 */
void
mrtc_olm_machine_encrypt_room_event_async (MrtcOlmMachine *machine,
    const gchar *room_id, const gchar *type, JsonObject *content,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  EncryptAsync *ea = g_new0 (EncryptAsync, 1);

  ea->task = g_task_new (machine, cancellable, callback, user_data);
  g_task_set_source_tag (ea->task, mrtc_olm_machine_encrypt_room_event_async);
  ea->room_id = g_strdup (room_id);
  ea->type = g_strdup (type);
  ea->content = mrtc_olm_json_object_to_string (content);
  mrtc_olm_machine_run_async (
      machine, encrypt_async_job, ea, encrypt_async_free);
}

JsonObject *
mrtc_olm_machine_encrypt_room_event_finish (
    MrtcOlmMachine *machine, GAsyncResult *result, GError **error)
{
  g_autofree gchar *text = g_task_propagate_pointer (G_TASK (result), error);
  JsonObject *object;

  if (text == NULL)
    return NULL;
  object = parse_object (text);
  if (object == NULL)
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "encrypted event does not parse");
  return object;
}

/**
 * mrtc_olm_machine_send_room_event:
 * @machine: the machine
 * @room_id: an encrypted room
 * @type: the event type
 * @content: the event content
 * @error: return location for an error
 *
 * Megolm-encrypts (see mrtc_olm_machine_encrypt_room_event()) and sends an
 * `m.room.encrypted` room event.
 *
 * Returns: (transfer full) (nullable): the event id.
 */
gchar *
mrtc_olm_machine_send_room_event (MrtcOlmMachine *machine, const gchar *room_id,
    const gchar *type, JsonObject *content, GError **error)
{
  JsonObject *encrypted;
  MrtcRequest *req;
  g_autoptr (JsonNode) resp = NULL;
  const gchar *event_id = NULL;

  encrypted = mrtc_olm_machine_encrypt_room_event (
      machine, room_id, type, content, error);
  if (encrypted == NULL)
    return NULL;
  req = mrtc_request_send_event (
      machine->client, room_id, "m.room.encrypted", encrypted, -1, -1);
  /* The request holds the only reference (it is freed on the client's
   * thread). */
  json_object_unref (encrypted);
  resp = mrtc_client_call (machine->client, req, error);
  if (resp == NULL)
    return NULL;
  if (JSON_NODE_HOLDS_OBJECT (resp))
    event_id
        = mrtc_olm_json_get_string (json_node_get_object (resp), "event_id");
  if (event_id == NULL) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_BAD_RESPONSE,
        "send event: response without event_id");
    return NULL;
  }
  return g_strdup (event_id);
}

/* ------------------------------------------------------------------------ */
/* Incoming: to-device events */

static void
pending_free (PendingRoomEvent *p)
{
  g_free (p->room_id);
  g_free (p->session_id);
  json_object_unref (p->event);
  g_free (p);
}

static void retry_pending (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *session_id);

static void
recent_free (RecentEvent *r)
{
  mrtc_olm_decrypted_free (r->decrypted);
  g_free (r);
}

static void
expire_recent (MrtcOlmMachine *machine)
{
  gint64 now = g_get_monotonic_time ();
  RecentEvent *r;

  while ((r = g_queue_peek_head (&machine->recent)) != NULL
         && (now - r->received > RECENT_US
             || g_queue_get_length (&machine->recent) > MAX_RECENT))
    recent_free (g_queue_pop_head (&machine->recent));
}

static void
remember_recent (MrtcOlmMachine *machine, const MrtcOlmDecrypted *decrypted)
{
  RecentEvent *r = g_new0 (RecentEvent, 1);

  r->received = g_get_monotonic_time ();
  r->decrypted = g_new0 (MrtcOlmDecrypted, 1);
  r->decrypted->type = g_strdup (decrypted->type);
  r->decrypted->content = json_object_ref (decrypted->content);
  r->decrypted->sender = g_strdup (decrypted->sender);
  r->decrypted->sender_device = mrtc_olm_device_copy (decrypted->sender_device);
  g_queue_push_tail (&machine->recent, r);
  expire_recent (machine);
}

/**
 * mrtc_olm_machine_recent_decrypted:
 * @machine: the machine
 * @type: an inner event type
 *
 * Worker thread only (e.g. from mrtc_olm_machine_run_sync()): the
 * to-device events of @type decrypted in the last 30 s (at most 64 kept),
 * for a listener that starts late, such as a call whose media keys came
 * before it was set up. `m.room_key` events are not kept.
 *
 * Returns: (transfer container) (element-type MrtcOlmDecrypted): the
 *   events (owned by @machine), oldest first.
 */
GPtrArray *
mrtc_olm_machine_recent_decrypted (MrtcOlmMachine *machine, const gchar *type)
{
  GPtrArray *out = g_ptr_array_new ();
  GList *l;

  g_return_val_if_fail (on_worker (machine), out);
  expire_recent (machine);
  for (l = machine->recent.head; l != NULL; l = l->next) {
    RecentEvent *r = l->data;

    if (g_strcmp0 (r->decrypted->type, type) == 0)
      g_ptr_array_add (out, r->decrypted);
  }
  return out;
}

static void
handle_decrypted (MrtcOlmMachine *machine, MrtcOlmDecrypted *decrypted)
{
  if (g_strcmp0 (decrypted->type, "m.room_key") == 0) {
    g_autoptr (GError) error = NULL;

    if (mrtc_olm_account_add_room_key (machine->account, decrypted, &error)) {
      save_account_or_warn (machine);
      g_debug ("room key for %s from %s %s",
          mrtc_olm_json_get_string (decrypted->content, "room_id"),
          decrypted->sender, decrypted->sender_device->device_id);
      retry_pending (machine,
          mrtc_olm_json_get_string (decrypted->content, "room_id"),
          mrtc_olm_json_get_string (decrypted->content, "session_id"));
    } else {
      g_message ("ignoring a room key from %s %s: %s", decrypted->sender,
          decrypted->sender_device->device_id, error->message);
      g_atomic_int_inc (&machine->dropped);
    }
  } else
    remember_recent (machine, decrypted);
  g_signal_emit (machine, signals[SIGNAL_DECRYPTED], 0, decrypted);
}

static void
process_to_device (MrtcOlmMachine *machine, JsonObject *event)
{
  const gchar *type = mrtc_olm_json_get_string (event, "type");
  const gchar *sender = mrtc_olm_json_get_string (event, "sender");
  JsonObject *content = mrtc_olm_json_get_object (event, "content");
  g_autoptr (MrtcOlmDecrypted) decrypted = NULL;
  g_autoptr (GError) error = NULL;

  if (type == NULL || sender == NULL || content == NULL) {
    g_message ("dropping a malformed to-device event");
    g_atomic_int_inc (&machine->dropped);
    return;
  }
  if (g_strcmp0 (type, "m.room.encrypted") != 0) {
    g_signal_emit (machine, signals[SIGNAL_UNENCRYPTED_TO_DEVICE], 0, event);
    return;
  }

  decrypted = mrtc_olm_account_decrypt_to_device (
      machine->account, sender, content, &error);
  if (decrypted == NULL
      && g_error_matches (
          error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE)) {
    g_autoptr (GHashTable) users
        = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr (GError) query_error = NULL;

    /* A device we have not seen yet: query its owner and retry once. */
    g_clear_error (&error);
    add_query_user (users, sender);
    track_user (machine, sender);
    if (!query_users (machine, users, &query_error))
      g_message (
          "cannot query the devices of %s: %s", sender, query_error->message);
    decrypted = mrtc_olm_account_decrypt_to_device (
        machine->account, sender, content, &error);
  }
  if (decrypted == NULL) {
    g_message ("dropping an encrypted to-device event from %s: %s", sender,
        error->message);
    g_atomic_int_inc (&machine->dropped);
    save_account_or_warn (machine);
    return;
  }
  save_account_or_warn (machine);
  g_debug ("decrypted a to-device %s from %s %s", decrypted->type, sender,
      decrypted->sender_device->device_id);
  handle_decrypted (machine, decrypted);
}

/* ------------------------------------------------------------------------ */
/* Incoming: room events */

static gboolean
seen_event (MrtcOlmMachine *machine, const gchar *event_id)
{
  return event_id != NULL
         && g_hash_table_contains (machine->seen_events, event_id);
}

static void
mark_seen (MrtcOlmMachine *machine, const gchar *event_id)
{
  gchar *copy;

  if (event_id == NULL || seen_event (machine, event_id))
    return;
  copy = g_strdup (event_id);
  g_hash_table_add (machine->seen_events, copy);
  g_queue_push_tail (&machine->seen_order, copy);
  while (g_queue_get_length (&machine->seen_order) > MAX_SEEN_EVENTS)
    g_hash_table_remove (
        machine->seen_events, g_queue_pop_head (&machine->seen_order));
}

/* Returns FALSE if the event must wait for its room key. */
static gboolean
try_decrypt_room_event (
    MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event)
{
  const gchar *sender = mrtc_olm_json_get_string (event, "sender");
  const gchar *event_id = mrtc_olm_json_get_string (event, "event_id");
  JsonObject *content = mrtc_olm_json_get_object (event, "content");
  gint64 ts = 0;
  g_autoptr (MrtcOlmGroupDecrypted) decrypted = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) out = NULL;
  GList *members, *l;

  if (sender == NULL || event_id == NULL || content == NULL) {
    g_message ("dropping a malformed encrypted event in %s", room_id);
    g_atomic_int_inc (&machine->dropped);
    return TRUE;
  }
  ts = get_int (event, "origin_server_ts", 0);
  decrypted = mrtc_olm_account_megolm_decrypt (
      machine->account, room_id, sender, event_id, ts, content, &error);
  if (decrypted == NULL) {
    if (g_error_matches (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_SESSION))
      return FALSE;
    g_message ("dropping encrypted event %s in %s from %s: %s",
        event_id != NULL ? event_id : "(no id)", room_id,
        sender != NULL ? sender : "(no sender)", error->message);
    g_atomic_int_inc (&machine->dropped);
    mark_seen (machine, event_id);
    return TRUE;
  }
  mark_seen (machine, event_id);
  save_account_or_warn (machine);

  out = json_object_new ();
  members = json_object_get_members (event);
  for (l = members; l != NULL; l = l->next)
    if (g_strcmp0 (l->data, "type") != 0 && g_strcmp0 (l->data, "content") != 0)
      json_object_set_member (out, l->data,
          json_node_copy (json_object_get_member (event, l->data)));
  g_list_free (members);
  json_object_set_string_member (out, "type", decrypted->type);
  json_object_set_object_member (
      out, "content", json_object_ref (decrypted->content));
  json_object_set_string_member (out, "room_id", room_id);
  g_debug ("decrypted room event %s (%s) in %s from %s",
      event_id != NULL ? event_id : "(no id)", decrypted->type, room_id,
      sender);
  g_signal_emit (machine, signals[SIGNAL_ROOM_EVENT], 0, room_id, out);
  return TRUE;
}

static gboolean
is_pending (MrtcOlmMachine *machine, const gchar *event_id)
{
  GList *l;

  for (l = machine->pending.head; event_id != NULL && l != NULL; l = l->next)
    if (g_strcmp0 (mrtc_olm_json_get_string (
                       ((PendingRoomEvent *)l->data)->event, "event_id"),
            event_id)
        == 0)
      return TRUE;
  return FALSE;
}

static void
process_room_event (
    MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event)
{
  const gchar *type = mrtc_olm_json_get_string (event, "type");
  const gchar *event_id = mrtc_olm_json_get_string (event, "event_id");
  PendingRoomEvent *p;

  if (g_strcmp0 (type, "m.room.encrypted") != 0
      || seen_event (machine, event_id) || is_pending (machine, event_id))
    return;
  if (try_decrypt_room_event (machine, room_id, event))
    return;

  p = g_new0 (PendingRoomEvent, 1);
  p->room_id = g_strdup (room_id);
  p->session_id = g_strdup (mrtc_olm_json_get_string (
      mrtc_olm_json_get_object (event, "content"), "session_id"));
  p->event = json_object_ref (event);
  g_queue_push_tail (&machine->pending, p);
  g_debug ("event %s in %s waits for its room key",
      event_id != NULL ? event_id : "(no id)", room_id);
  while (g_queue_get_length (&machine->pending) > MAX_PENDING_ROOM_EVENTS) {
    g_message ("dropping an encrypted event whose room key never came");
    pending_free (g_queue_pop_head (&machine->pending));
    g_atomic_int_inc (&machine->dropped);
  }
  g_atomic_int_set (
      &machine->pending_count, (gint)g_queue_get_length (&machine->pending));
}

static void
retry_pending (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *session_id)
{
  GList *l, *next;

  for (l = machine->pending.head; l != NULL; l = next) {
    PendingRoomEvent *p = l->data;

    next = l->next;
    if (g_strcmp0 (p->room_id, room_id) != 0
        || g_strcmp0 (p->session_id, session_id) != 0)
      continue;
    if (seen_event (machine, mrtc_olm_json_get_string (p->event, "event_id"))
        || try_decrypt_room_event (machine, p->room_id, p->event)) {
      g_queue_delete_link (&machine->pending, l);
      pending_free (p);
    }
  }
  g_atomic_int_set (
      &machine->pending_count, (gint)g_queue_get_length (&machine->pending));
}

static void
process_member_event (
    MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event)
{
  const gchar *user_id = mrtc_olm_json_get_string (event, "state_key");
  const gchar *membership = mrtc_olm_json_get_string (
      mrtc_olm_json_get_object (event, "content"), "membership");
  GHashTable *members = g_hash_table_lookup (machine->rooms, room_id);

  if (members == NULL || user_id == NULL || membership == NULL)
    return;
  if (g_strcmp0 (membership, "join") == 0) {
    if (!g_hash_table_contains (members, user_id)) {
      g_hash_table_add (members, g_strdup (user_id));
      track_user (machine, user_id);
      g_debug ("%s joined %s", user_id, room_id);
    }
  } else if ((g_strcmp0 (membership, "leave") == 0
                 || g_strcmp0 (membership, "ban") == 0)
             && g_hash_table_remove (members, user_id)) {
    /* Whoever left must not read what follows. */
    mrtc_olm_account_megolm_discard (machine->account, room_id);
    g_debug ("%s left %s: room key rotated", user_id, room_id);
  }
}

static void
process_room_events (MrtcOlmMachine *machine, const gchar *room_id,
    JsonArray *events, gboolean members_only)
{
  guint i;

  for (i = 0; events != NULL && i < json_array_get_length (events); i++) {
    JsonNode *n = json_array_get_element (events, i);
    JsonObject *ev;
    const gchar *type;

    if (!JSON_NODE_HOLDS_OBJECT (n))
      continue;
    ev = json_node_get_object (n);
    type = mrtc_olm_json_get_string (ev, "type");
    if (g_strcmp0 (type, "m.room.member") == 0)
      process_member_event (machine, room_id, ev);
    else if (!members_only)
      process_room_event (machine, room_id, ev);
  }
}

static JsonArray *
events_of (JsonObject *section)
{
  JsonNode *n;

  if (section == NULL || !json_object_has_member (section, "events"))
    return NULL;
  n = json_object_get_member (section, "events");
  return JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
}

static void
process_sync (MrtcOlmMachine *machine, JsonObject *resp)
{
  JsonObject *device_lists = mrtc_olm_json_get_object (resp, "device_lists");
  JsonObject *counts
      = mrtc_olm_json_get_object (resp, "device_one_time_keys_count");
  JsonArray *fallback_types
      = get_array (resp, "device_unused_fallback_key_types");
  JsonObject *join = mrtc_olm_json_get_object (
      mrtc_olm_json_get_object (resp, "rooms"), "join");
  JsonArray *changed = get_array (device_lists, "changed");
  JsonArray *left = get_array (device_lists, "left");
  guint i;

  for (i = 0; changed != NULL && i < json_array_get_length (changed); i++) {
    const gchar *u = array_string (changed, i);

    if (u != NULL && g_hash_table_contains (machine->tracked_users, u))
      g_hash_table_add (machine->outdated_users, g_strdup (u));
  }
  for (i = 0; left != NULL && i < json_array_get_length (left); i++) {
    const gchar *u = array_string (left, i);

    if (u != NULL) {
      g_hash_table_remove (machine->tracked_users, u);
      g_hash_table_remove (machine->outdated_users, u);
    }
  }

  /* Room membership first (it decides who gets room keys), then the
   * encrypted events: their keys came in this response's to-device
   * events, which were queued before it. */
  if (join != NULL) {
    g_autoptr (GList) ids = json_object_get_members (join);
    GList *l;

    for (l = ids; l != NULL; l = l->next) {
      JsonObject *room = mrtc_olm_json_get_object (join, l->data);
      JsonObject *sticky = mrtc_olm_json_get_object (room, "msc4354_sticky");

      if (sticky == NULL)
        sticky = mrtc_olm_json_get_object (room, "sticky");
      process_room_events (machine, l->data,
          events_of (mrtc_olm_json_get_object (room, "state")), TRUE);
      process_room_events (machine, l->data,
          events_of (mrtc_olm_json_get_object (room, "timeline")), FALSE);
      process_room_events (machine, l->data, events_of (sticky), FALSE);
    }
  }

  if (g_hash_table_size (machine->outdated_users) > 0) {
    g_autoptr (GError) error = NULL;

    if (!query_outdated (machine, &error))
      g_message ("device list update failed: %s", error->message);
  }

  if (counts != NULL || fallback_types != NULL) {
    gint64 count = 0;
    gboolean fallback_missing = TRUE;

    if (counts != NULL && json_object_has_member (counts, "signed_curve25519"))
      count = get_int (counts, "signed_curve25519", 0);
    for (i = 0;
         fallback_types != NULL && i < json_array_get_length (fallback_types);
         i++)
      if (g_strcmp0 (array_string (fallback_types, i), "signed_curve25519")
          == 0)
        fallback_missing = FALSE;
    if (count < OTK_LOW_WATER || (fallback_types != NULL && fallback_missing)) {
      g_autoptr (GError) error = NULL;

      /* The sync's count may predate our last upload: upload_keys()
       * starts from the upload's own answer. */
      if (!upload_keys (
              machine, fallback_types, fallback_types != NULL, &error))
        g_message ("one-time key replenishment failed: %s", error->message);
    }
  }
}

static gboolean
process_to_device_job (gpointer data)
{
  gpointer *args = data;
  MrtcOlmMachine *machine = args[0];
  g_autoptr (JsonObject) event = parse_object (args[1]);

  if (event != NULL)
    process_to_device (machine, event);
  return G_SOURCE_REMOVE;
}

static gboolean
process_sync_job (gpointer data)
{
  gpointer *args = data;
  MrtcOlmMachine *machine = args[0];
  g_autoptr (JsonObject) resp = parse_object (args[1]);

  if (resp != NULL)
    process_sync (machine, resp);
  return G_SOURCE_REMOVE;
}

static void
args_free (gpointer data)
{
  gpointer *args = data;
  gchar *text = args[1];

  /* Plaintext never reaches here, but wipe the copy anyway. */
  mrtc_olm_wipe_string (text);
  g_free (args);
}

/* Client thread: copy what arrived (as text) and queue it. */
static void
on_client_to_device (MrtcClient *client, JsonObject *event, gpointer data)
{
  MrtcOlmMachine *machine = data;
  gpointer *args = g_new0 (gpointer, 2);

  args[0] = machine;
  args[1] = mrtc_olm_json_object_to_string (event);
  mrtc_olm_machine_run_async (machine, process_to_device_job, args, args_free);
}

static void
on_client_sync (MrtcClient *client, JsonObject *resp, gpointer data)
{
  MrtcOlmMachine *machine = data;
  gpointer *args;

  /* Only what the machine reads; the to-device events went separately. */
  {
    g_autoptr (JsonObject) copy = json_object_new ();
    const gchar *names[] = { "device_lists", "device_one_time_keys_count",
      "device_unused_fallback_key_types", "rooms" };
    guint i;

    for (i = 0; i < G_N_ELEMENTS (names); i++)
      if (json_object_has_member (resp, names[i]))
        json_object_set_member (copy, names[i],
            json_node_ref (json_object_get_member (resp, names[i])));
    args = g_new0 (gpointer, 2);
    args[0] = machine;
    args[1] = mrtc_olm_json_object_to_string (copy);
  }
  mrtc_olm_machine_run_async (machine, process_sync_job, args, args_free);
}

typedef struct
{
  MrtcOlmMachine *machine; /* not a reference: the job dies with the worker */
  gchar *room_id;
  gchar *text;
} FeedArgs;

static void
feed_args_free (gpointer data)
{
  FeedArgs *f = data;

  g_free (f->room_id);
  mrtc_olm_wipe_string (f->text);
  g_free (f);
}

static gboolean
feed_room_event_job (gpointer data)
{
  FeedArgs *f = data;
  g_autoptr (JsonObject) event = parse_object (f->text);

  if (event != NULL)
    process_room_event (f->machine, f->room_id, event);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_feed_room_event:
 * @machine: the machine
 * @room_id: the room @event belongs to
 * @event: a client event fetched outside /sync (e.g. GET
 *   /rooms/{roomId}/event/{eventId}), with event_id, sender and content
 *
 * Decrypts a room event the sync did not bring (or brought before we
 * listened) as if it came in the timeline: queued on the worker after
 * everything queued before; an `m.room.encrypted` event is decrypted now
 * and handed out by #MrtcOlmMachine::room-event, or kept until its Megolm
 * session arrives; an event already handed out is not handed out again.
 * Other event types are ignored. Any thread (the worker included: the
 * event is then processed after the current job).
 */
void
mrtc_olm_machine_feed_room_event (
    MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event)
{
  FeedArgs *f;

  g_return_if_fail (MRTC_OLM_IS_MACHINE (machine));
  g_return_if_fail (room_id != NULL && event != NULL);
  f = g_new0 (FeedArgs, 1);
  f->machine = machine;
  f->room_id = g_strdup (room_id);
  f->text = mrtc_olm_json_object_to_string (event);
  mrtc_olm_machine_run_async (machine, feed_room_event_job, f, feed_args_free);
}

/* ------------------------------------------------------------------------ */
/* Object */

static void
mrtc_olm_machine_init (MrtcOlmMachine *machine)
{
  machine->jobs = g_async_queue_new ();
  machine->context = g_main_context_new ();
  machine->loop = g_main_loop_new (machine->context, FALSE);
  machine->tracked_users
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  machine->outdated_users
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  machine->rooms = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
  machine->seen_events
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&machine->pending);
  g_queue_init (&machine->seen_order);
  g_queue_init (&machine->recent);
}

typedef struct
{
  MrtcOlmMachine *machine;
  GAsyncQueue *done;
} Disconnect;

static gboolean
disconnect_on_client (gpointer data)
{
  Disconnect *d = data;

  if (d->machine->sync_handler != 0)
    g_signal_handler_disconnect (d->machine->client, d->machine->sync_handler);
  if (d->machine->to_device_handler != 0)
    g_signal_handler_disconnect (
        d->machine->client, d->machine->to_device_handler);
  d->machine->sync_handler = 0;
  d->machine->to_device_handler = 0;
  g_async_queue_push (d->done, GINT_TO_POINTER (1));
  return G_SOURCE_REMOVE;
}

static gboolean
quit_worker (gpointer data)
{
  MrtcOlmMachine *machine = data;

  g_main_loop_quit (machine->loop);
  return G_SOURCE_REMOVE;
}

static void
mrtc_olm_machine_dispose (GObject *object)
{
  MrtcOlmMachine *machine = MRTC_OLM_MACHINE (object);

  if (machine->client != NULL
      && (machine->sync_handler != 0 || machine->to_device_handler != 0)) {
    Disconnect d = { machine, g_async_queue_new () };

    /* On the client's thread, so that no handler is running afterwards. */
    if (g_main_context_is_owner (mrtc_client_get_context (machine->client))) {
      disconnect_on_client (&d);
      g_async_queue_pop (d.done);
    } else {
      mrtc_client_invoke (machine->client, disconnect_on_client, &d, NULL);
      g_async_queue_pop (d.done);
    }
    g_async_queue_unref (d.done);
  }
  if (machine->thread != NULL) {
    g_return_if_fail (!on_worker (machine));
    /* Everything queued before runs first. */
    mrtc_olm_machine_run_async (machine, quit_worker, machine, NULL);
    g_thread_join (machine->thread);
    machine->thread = NULL;
  }
  G_OBJECT_CLASS (mrtc_olm_machine_parent_class)->dispose (object);
}

static void
mrtc_olm_machine_finalize (GObject *object)
{
  MrtcOlmMachine *machine = MRTC_OLM_MACHINE (object);

  if (machine->account != NULL) {
    save_account_or_warn (machine);
    mrtc_olm_account_free (machine->account);
  }
  g_clear_object (&machine->client);
  g_free (machine->user_id);
  g_free (machine->device_id);
  g_free (machine->curve25519);
  g_free (machine->ed25519);
  g_async_queue_unref (machine->jobs);
  g_main_loop_unref (machine->loop);
  g_main_context_unref (machine->context);
  g_hash_table_unref (machine->tracked_users);
  g_hash_table_unref (machine->outdated_users);
  g_hash_table_unref (machine->rooms);
  g_queue_clear_full (&machine->pending, (GDestroyNotify)pending_free);
  g_queue_clear (&machine->seen_order);
  g_queue_clear_full (&machine->recent, (GDestroyNotify)recent_free);
  g_hash_table_unref (machine->seen_events);
  G_OBJECT_CLASS (mrtc_olm_machine_parent_class)->finalize (object);
}

static void
mrtc_olm_machine_class_init (MrtcOlmMachineClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->dispose = mrtc_olm_machine_dispose;
  gobject_class->finalize = mrtc_olm_machine_finalize;

  /**
   * MrtcOlmMachine::decrypted:
   * @decrypted: (type gpointer): the #MrtcOlmDecrypted event (borrowed)
   *
   * A to-device event arrived Olm-encrypted from a verified device and was
   * decrypted (`m.room_key` events were already stored). Emitted on the
   * worker thread.
   */
  signals[SIGNAL_DECRYPTED]
      = g_signal_new ("decrypted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
          0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /**
   * MrtcOlmMachine::unencrypted-to-device:
   * @event: the to-device event (JsonObject, borrowed)
   *
   * A to-device event that arrived in clear. Emitted on the worker thread.
   */
  signals[SIGNAL_UNENCRYPTED_TO_DEVICE] = g_signal_new ("unencrypted-to-device",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 1, JSON_TYPE_OBJECT);
  /**
   * MrtcOlmMachine::room-event:
   * @room_id: the room
   * @event: the decrypted event (JsonObject, borrowed): the original event
   *   with the decrypted `type` and `content`
   *
   * A Megolm-encrypted room event was decrypted (possibly later than it
   * arrived, once its room key came). Emitted on the worker thread.
   */
  signals[SIGNAL_ROOM_EVENT] = g_signal_new ("room-event",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 2, G_TYPE_STRING, JSON_TYPE_OBJECT);
}

typedef struct
{
  MrtcOlmMachine *machine;
  const gchar *store_path;
  const guint8 *pickle_key;
  gsize pickle_key_len;
  GError **error;
  gboolean ok;
} OpenArgs;

static gboolean
open_job (gpointer data)
{
  OpenArgs *a = data;
  MrtcOlmMachine *machine = a->machine;

  machine->account
      = mrtc_olm_account_open (machine->user_id, machine->device_id,
          a->store_path, a->pickle_key, a->pickle_key_len, a->error);
  if (machine->account == NULL)
    return G_SOURCE_REMOVE;
  machine->curve25519
      = g_strdup (mrtc_olm_account_get_curve25519 (machine->account));
  machine->ed25519 = g_strdup (mrtc_olm_account_get_ed25519 (machine->account));
  a->ok = upload_keys (machine, NULL, FALSE, a->error);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_machine_new:
 * @client: a logged-in client
 * @store_path: (nullable): the encrypted store file (created with mode 0600
 *   when missing); %NULL keeps the keys in memory only
 * @pickle_key: the secret the store is encrypted with
 * @pickle_key_len: its length (at least 16 bytes)
 * @error: return location for an error
 *
 * Opens or creates the device's account and uploads its keys; from then on
 * it processes what the client's sync loop receives (start it with
 * mrtc_client_start_sync()). Blocking: not on the client's thread.
 *
 * Returns: (transfer full) (nullable): the machine.
 */
MrtcOlmMachine *
mrtc_olm_machine_new (MrtcClient *client, const gchar *store_path,
    const guint8 *pickle_key, gsize pickle_key_len, GError **error)
{
  g_autoptr (MrtcOlmMachine) machine = NULL;
  OpenArgs a = { NULL, store_path, pickle_key, pickle_key_len, error, FALSE };

  g_return_val_if_fail (MRTC_IS_CLIENT (client), NULL);
  if (g_main_context_is_owner (mrtc_client_get_context (client))) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_WRONG_THREAD,
        "blocking crypto call from the Matrix client's thread");
    return NULL;
  }
  if (!mrtc_client_is_logged_in (client)
      || mrtc_client_get_device_id (client) == NULL) {
    g_set_error (error, MRTC_CLIENT_ERROR, MRTC_CLIENT_ERROR_NOT_LOGGED_IN,
        "the client is not logged in");
    return NULL;
  }
  machine = g_object_new (MRTC_OLM_TYPE_MACHINE, NULL);
  machine->client = g_object_ref (client);
  machine->user_id = g_strdup (mrtc_client_get_user_id (client));
  machine->device_id = g_strdup (mrtc_client_get_device_id (client));
  machine->thread = g_thread_new ("mrtc-olm", worker_thread, machine);

  a.machine = machine;
  mrtc_olm_machine_run_sync (machine, open_job, &a);
  if (!a.ok)
    return NULL;

  machine->to_device_handler = g_signal_connect (
      client, "to-device", G_CALLBACK (on_client_to_device), machine);
  machine->sync_handler
      = g_signal_connect (client, "sync", G_CALLBACK (on_client_sync), machine);
  return g_steal_pointer (&machine);
}

MrtcClient *
mrtc_olm_machine_get_client (MrtcOlmMachine *machine)
{
  return machine->client;
}

GMainContext *
mrtc_olm_machine_get_context (MrtcOlmMachine *machine)
{
  return machine->context;
}

const gchar *
mrtc_olm_machine_get_user_id (MrtcOlmMachine *machine)
{
  return machine->user_id;
}

const gchar *
mrtc_olm_machine_get_device_id (MrtcOlmMachine *machine)
{
  return machine->device_id;
}

gchar *
mrtc_olm_machine_dup_curve25519 (MrtcOlmMachine *machine)
{
  return g_strdup (machine->curve25519);
}

gchar *
mrtc_olm_machine_dup_ed25519 (MrtcOlmMachine *machine)
{
  return g_strdup (machine->ed25519);
}

/* Number of incoming encrypted events dropped (undecryptable, unknown
 * device, forged, bad room keys). */
guint
mrtc_olm_machine_get_dropped (MrtcOlmMachine *machine)
{
  return (guint)g_atomic_int_get (&machine->dropped);
}

/* Encrypted room events waiting for their room key. */
guint
mrtc_olm_machine_get_pending_room_events (MrtcOlmMachine *machine)
{
  return (guint)g_atomic_int_get (&machine->pending_count);
}
