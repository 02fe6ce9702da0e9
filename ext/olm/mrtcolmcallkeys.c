/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * MatrixRTC media keys over the device crypto driver: the key manager's
 * SEND actions become one Olm-encrypted /sendToDevice each, its USE actions
 * and the receiver's deliveries become signals. Runs on the machine's
 * worker thread. Never logs key bytes.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmcallkeys.h"

#include <string.h>

/* While keys wait for their member, look again this often. */
#define HELD_TICK_MS 500

enum
{
  SIGNAL_KEY_RECEIVED,
  SIGNAL_OWN_KEY,
  SIGNAL_KEY_SENT,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

struct _MrtcOlmCallKeys
{
  GObject parent;

  MrtcOlmMachine *machine;
  gchar *room_id;
  gchar *own_member_id;

  /* Worker thread only. */
  MrtcOlmMediaKeyManager *manager;
  MrtcOlmMediaKeyReceiver *receiver;
  GSource *timer;
  gulong decrypted_handler;
  gulong clear_handler;
  gboolean stopped;

  /* Under lock: what the frame crypto elements read. */
  GMutex lock;
  GHashTable *delivered; /* "identity SEP index" -> GBytes */
  GBytes *own_key;
  guint own_index;
};

G_DEFINE_TYPE (MrtcOlmCallKeys, mrtc_olm_call_keys, G_TYPE_OBJECT);

static gint64
real_time_ms (void)
{
  return g_get_real_time () / 1000;
}

static void schedule (MrtcOlmCallKeys *keys);

/* Carries out the manager's actions and hands out the receiver's keys. */
static void
process (MrtcOlmCallKeys *keys)
{
  MrtcOlmMediaKeyAction *action;
  MrtcOlmMediaKeyDelivery *delivery;

  if (keys->stopped)
    return;
  mrtc_olm_media_key_manager_tick (keys->manager);
  mrtc_olm_media_key_receiver_tick (keys->receiver);

  while ((action = mrtc_olm_media_key_manager_pop_action (keys->manager))
         != NULL) {
    g_autoptr (GBytes) key = g_bytes_new (action->key, sizeof (action->key));

    if (action->kind == MRTC_OLM_MEDIA_KEY_ACTION_SEND) {
      g_autoptr (JsonObject) content = mrtc_olm_media_key_content_build (
          keys->room_id, action->index, action->key, sizeof (action->key),
          mrtc_olm_machine_get_device_id (keys->machine), keys->own_member_id,
          real_time_ms ());
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) unreached = g_ptr_array_new_with_free_func (
          (GDestroyNotify)mrtc_olm_member_free);
      gint sent
          = mrtc_olm_machine_send_to_members (keys->machine, action->targets,
              MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, unreached, &error);

      if (sent < 0) {
        /* Sent again after a back-off. */
        g_message ("media key %u of %s not sent: %s", action->index,
            keys->room_id, error->message);
        mrtc_olm_media_key_manager_key_send_failed (
            keys->manager, action->index, NULL);
      } else {
        g_debug ("media key %u of %s sent to %d of %u members", action->index,
            keys->room_id, sent, action->targets->len);
        mrtc_olm_media_key_manager_key_sent (keys->manager, action->index);
        if (unreached->len > 0)
          mrtc_olm_media_key_manager_key_send_failed (
              keys->manager, action->index, unreached);
      }
      g_signal_emit (keys, signals[SIGNAL_KEY_SENT], 0, action->index, sent);
    } else {
      g_mutex_lock (&keys->lock);
      g_clear_pointer (&keys->own_key, g_bytes_unref);
      keys->own_key = g_bytes_ref (key);
      keys->own_index = action->index;
      g_mutex_unlock (&keys->lock);
      g_debug ("using media key %u in %s", action->index, keys->room_id);
      g_signal_emit (keys, signals[SIGNAL_OWN_KEY], 0, action->index, key);
    }
    mrtc_olm_media_key_action_free (action);
  }

  while ((delivery = mrtc_olm_media_key_receiver_pop_delivery (keys->receiver))
         != NULL) {
    g_autoptr (GBytes) key = g_bytes_new (delivery->key, delivery->key_len);

    g_mutex_lock (&keys->lock);
    g_hash_table_insert (keys->delivered,
        g_strdup_printf (
            "%s" MRTC_OLM_SEP "%u", delivery->identity, delivery->index),
        g_bytes_ref (key));
    g_mutex_unlock (&keys->lock);
    g_debug ("media key %u of %s %s delivered", delivery->index,
        delivery->user_id, delivery->device_id);
    g_signal_emit (keys, signals[SIGNAL_KEY_RECEIVED], 0, delivery->identity,
        delivery->index, key, delivery->user_id, delivery->device_id);
    mrtc_olm_media_key_delivery_free (delivery);
  }
  schedule (keys);
}

static gboolean
on_timer (gpointer data)
{
  MrtcOlmCallKeys *keys = data;

  g_clear_pointer (&keys->timer, g_source_unref);
  process (keys);
  return G_SOURCE_REMOVE;
}

static void
schedule (MrtcOlmCallKeys *keys)
{
  gint64 deadline = mrtc_olm_media_key_manager_next_deadline (keys->manager);
  gint64 now = g_get_monotonic_time () / 1000;
  gint64 delay = -1;

  if (keys->timer != NULL) {
    g_source_destroy (keys->timer);
    g_clear_pointer (&keys->timer, g_source_unref);
  }
  if (deadline >= 0)
    delay = MAX (deadline - now, 0);
  if (mrtc_olm_media_key_receiver_get_held (keys->receiver) > 0)
    delay = delay < 0 ? HELD_TICK_MS : MIN (delay, HELD_TICK_MS);
  if (delay < 0)
    return;
  keys->timer = g_timeout_source_new ((guint)delay);
  g_source_set_callback (keys->timer, on_timer, keys, NULL);
  g_source_attach (keys->timer, mrtc_olm_machine_get_context (keys->machine));
}

static void
on_decrypted (MrtcOlmMachine *machine, gpointer data, gpointer user_data)
{
  MrtcOlmDecrypted *decrypted = data;
  MrtcOlmCallKeys *keys = user_data;
  g_autoptr (GError) error = NULL;

  if (keys->stopped
      || g_strcmp0 (decrypted->type, MRTC_OLM_MEDIA_KEY_EVENT_TYPE) != 0)
    return;
  /* Keys of other calls are theirs. */
  if (g_strcmp0 (mrtc_olm_json_get_string (decrypted->content, "room_id"),
          keys->room_id)
          != 0
      && mrtc_olm_json_get_string (decrypted->content, "room_id") != NULL)
    return;
  if (!mrtc_olm_media_key_receiver_receive (keys->receiver, decrypted, &error))
    g_message ("rejecting a media key from %s %s: %s", decrypted->sender,
        decrypted->sender_device->device_id, error->message);
  process (keys);
}

static void
on_clear_to_device (MrtcOlmMachine *machine, JsonObject *event, gpointer data)
{
  MrtcOlmCallKeys *keys = data;

  if (keys->stopped
      || g_strcmp0 (mrtc_olm_json_get_string (event, "type"),
             MRTC_OLM_MEDIA_KEY_EVENT_TYPE)
             != 0)
    return;
  mrtc_olm_media_key_receiver_reject_unencrypted (
      keys->receiver, mrtc_olm_json_get_string (event, "sender") != NULL
                          ? mrtc_olm_json_get_string (event, "sender")
                          : "(unknown)");
}

typedef struct
{
  MrtcOlmCallKeys *keys;
  GPtrArray *members;
} UpdateArgs;

static void
update_args_free (gpointer data)
{
  UpdateArgs *u = data;

  g_object_unref (u->keys);
  g_ptr_array_unref (u->members);
  g_free (u);
}

/* Keys of members who left are of no more use. */
static void
forget_departed (MrtcOlmCallKeys *keys, GPtrArray *members)
{
  GHashTableIter iter;
  gpointer key;

  g_mutex_lock (&keys->lock);
  g_hash_table_iter_init (&iter, keys->delivered);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    const gchar *sep = strrchr (key, MRTC_OLM_SEP[0]);
    gsize len = sep != NULL ? (gsize)(sep - (const gchar *)key) : 0;
    gboolean current = FALSE;
    guint i;

    for (i = 0; i < members->len && !current; i++) {
      const MrtcOlmMember *m = g_ptr_array_index (members, i);

      current = m->identity != NULL && strlen (m->identity) == len
                && strncmp (m->identity, key, len) == 0;
    }
    if (!current)
      g_hash_table_iter_remove (&iter);
  }
  g_mutex_unlock (&keys->lock);
}

static gboolean
update_job (gpointer data)
{
  UpdateArgs *u = data;

  if (u->keys->stopped)
    return G_SOURCE_REMOVE;
  forget_departed (u->keys, u->members);
  mrtc_olm_media_key_receiver_update_members (u->keys->receiver, u->members);
  mrtc_olm_media_key_manager_update_members (u->keys->manager, u->members);
  process (u->keys);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_call_keys_update_members:
 * @keys: the call keys
 * @members: (element-type MrtcOlmMember): the call's current members,
 *   ourselves included (copied)
 *
 * Call when we joined the call and whenever its member list changes: our
 * key goes to joiners (or is rotated, as matrix-js-sdk 43 does) and held
 * keys of new members are delivered. Any thread; the work is queued on the
 * machine's worker thread.
 */
void
mrtc_olm_call_keys_update_members (MrtcOlmCallKeys *keys, GPtrArray *members)
{
  UpdateArgs *u = g_new0 (UpdateArgs, 1);
  guint i;

  u->keys = g_object_ref (keys);
  u->members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  for (i = 0; members != NULL && i < members->len; i++)
    g_ptr_array_add (
        u->members, mrtc_olm_member_copy (g_ptr_array_index (members, i)));
  mrtc_olm_machine_run_async (keys->machine, update_job, u, update_args_free);
}

typedef struct
{
  MrtcOlmCallKeys *keys;
  gint64 value;
} SetArgs;

static gboolean
set_delay_job (gpointer data)
{
  SetArgs *s = data;

  mrtc_olm_media_key_manager_set_use_key_delay (s->keys->manager, s->value);
  return G_SOURCE_REMOVE;
}

static gboolean
set_hold_job (gpointer data)
{
  SetArgs *s = data;

  mrtc_olm_media_key_receiver_set_hold_time (s->keys->receiver, s->value);
  return G_SOURCE_REMOVE;
}

/* How long after sending a new key we start using it (default 1000 ms). */
void
mrtc_olm_call_keys_set_use_key_delay (MrtcOlmCallKeys *keys, gint64 delay_ms)
{
  SetArgs s = { keys, delay_ms };

  mrtc_olm_machine_run_sync (keys->machine, set_delay_job, &s);
}

/* How long keys of devices that are not (yet) members are kept (10 s). */
void
mrtc_olm_call_keys_set_hold_time (MrtcOlmCallKeys *keys, gint64 hold_ms)
{
  SetArgs s = { keys, hold_ms };

  mrtc_olm_machine_run_sync (keys->machine, set_hold_job, &s);
}

/**
 * mrtc_olm_call_keys_lookup:
 * @keys: the call keys
 * @identity: a member's LiveKit participant identity
 * @index: a key index
 *
 * Returns: (transfer full) (nullable): the key delivered for @identity at
 *   @index.
 */
GBytes *
mrtc_olm_call_keys_lookup (
    MrtcOlmCallKeys *keys, const gchar *identity, guint index)
{
  g_autofree gchar *k
      = g_strdup_printf ("%s" MRTC_OLM_SEP "%u", identity, index);
  GBytes *key;

  g_mutex_lock (&keys->lock);
  key = g_hash_table_lookup (keys->delivered, k);
  if (key != NULL)
    g_bytes_ref (key);
  g_mutex_unlock (&keys->lock);
  return key;
}

/**
 * mrtc_olm_call_keys_get_own_key:
 * @keys: the call keys
 * @index: (out) (optional): its index
 *
 * Returns: (transfer full) (nullable): the key our frames are encrypted
 *   with now.
 */
GBytes *
mrtc_olm_call_keys_get_own_key (MrtcOlmCallKeys *keys, guint *index)
{
  GBytes *key;

  g_mutex_lock (&keys->lock);
  key = keys->own_key != NULL ? g_bytes_ref (keys->own_key) : NULL;
  if (index != NULL)
    *index = keys->own_index;
  g_mutex_unlock (&keys->lock);
  return key;
}

typedef struct
{
  MrtcOlmCallKeys *keys;
  guint value;
} GetArgs;

static gboolean
get_dropped_job (gpointer data)
{
  GetArgs *g = data;

  g->value = mrtc_olm_media_key_receiver_get_dropped (g->keys->receiver);
  return G_SOURCE_REMOVE;
}

/* Received media keys rejected so far (unencrypted, forged, for another
 * device, from no member within the hold time, outdated). */
guint
mrtc_olm_call_keys_get_dropped (MrtcOlmCallKeys *keys)
{
  GetArgs g = { keys, 0 };

  mrtc_olm_machine_run_sync (keys->machine, get_dropped_job, &g);
  return g.value;
}

static gboolean
stop_job (gpointer data)
{
  MrtcOlmCallKeys *keys = data;

  keys->stopped = TRUE;
  if (keys->decrypted_handler != 0)
    g_signal_handler_disconnect (keys->machine, keys->decrypted_handler);
  if (keys->clear_handler != 0)
    g_signal_handler_disconnect (keys->machine, keys->clear_handler);
  keys->decrypted_handler = keys->clear_handler = 0;
  if (keys->timer != NULL) {
    g_source_destroy (keys->timer);
    g_clear_pointer (&keys->timer, g_source_unref);
  }
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_call_keys_stop:
 * @keys: the call keys
 *
 * Stops sending and receiving (we left the call). Also done when the last
 * reference goes.
 */
void
mrtc_olm_call_keys_stop (MrtcOlmCallKeys *keys)
{
  if (keys->machine != NULL && !keys->stopped)
    mrtc_olm_machine_run_sync (keys->machine, stop_job, keys);
}

static void
mrtc_olm_call_keys_init (MrtcOlmCallKeys *keys)
{
  g_mutex_init (&keys->lock);
  keys->delivered = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
}

static void
mrtc_olm_call_keys_dispose (GObject *object)
{
  MrtcOlmCallKeys *keys = MRTC_OLM_CALL_KEYS (object);

  mrtc_olm_call_keys_stop (keys);
  G_OBJECT_CLASS (mrtc_olm_call_keys_parent_class)->dispose (object);
}

static void
mrtc_olm_call_keys_finalize (GObject *object)
{
  MrtcOlmCallKeys *keys = MRTC_OLM_CALL_KEYS (object);

  mrtc_olm_media_key_manager_free (keys->manager);
  mrtc_olm_media_key_receiver_free (keys->receiver);
  g_clear_object (&keys->machine);
  g_free (keys->room_id);
  g_free (keys->own_member_id);
  g_hash_table_unref (keys->delivered);
  g_clear_pointer (&keys->own_key, g_bytes_unref);
  g_mutex_clear (&keys->lock);
  G_OBJECT_CLASS (mrtc_olm_call_keys_parent_class)->finalize (object);
}

static void
mrtc_olm_call_keys_class_init (MrtcOlmCallKeysClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->dispose = mrtc_olm_call_keys_dispose;
  gobject_class->finalize = mrtc_olm_call_keys_finalize;

  /**
   * MrtcOlmCallKeys::key-received:
   * @identity: the member's LiveKit participant identity
   * @index: the key index
   * @key: the key bytes
   * @user_id: the member's user
   * @device_id: the member's (Olm-verified) device
   *
   * A member's media key for the frame decryptor.
   */
  signals[SIGNAL_KEY_RECEIVED]
      = g_signal_new ("key-received", G_TYPE_FROM_CLASS (klass),
          G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 5, G_TYPE_STRING,
          G_TYPE_UINT, G_TYPE_BYTES, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * MrtcOlmCallKeys::own-key:
   * @index: the key index
   * @key: the key bytes
   *
   * Our frames are to be encrypted with @key at @index from now on.
   */
  signals[SIGNAL_OWN_KEY]
      = g_signal_new ("own-key", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
          0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_BYTES);
  /**
   * MrtcOlmCallKeys::key-sent:
   * @index: the key index
   * @devices: how many devices it was sent to (-1: the request failed)
   */
  signals[SIGNAL_KEY_SENT]
      = g_signal_new ("key-sent", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
          0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_INT);
}

static gboolean
connect_job (gpointer data)
{
  MrtcOlmCallKeys *keys = data;
  g_autoptr (GPtrArray) recent = mrtc_olm_machine_recent_decrypted (
      keys->machine, MRTC_OLM_MEDIA_KEY_EVENT_TYPE);
  guint i;

  /* Keys that came before we were set up are held for their members like
   * any other (matrix-js-sdk sends them as soon as it sees our
   * membership). */
  for (i = 0; i < recent->len; i++)
    on_decrypted (keys->machine, g_ptr_array_index (recent, i), keys);

  keys->decrypted_handler = g_signal_connect (
      keys->machine, "decrypted", G_CALLBACK (on_decrypted), keys);
  keys->clear_handler = g_signal_connect (keys->machine,
      "unencrypted-to-device", G_CALLBACK (on_clear_to_device), keys);
  return G_SOURCE_REMOVE;
}

/**
 * mrtc_olm_call_keys_new:
 * @machine: the device crypto driver
 * @room_id: the call's room
 * @own_member_id: (nullable): our membership's member id (`member.id`)
 *
 * Nothing is sent until the first mrtc_olm_call_keys_update_members().
 *
 * Returns: (transfer full): the call keys.
 */
MrtcOlmCallKeys *
mrtc_olm_call_keys_new (
    MrtcOlmMachine *machine, const gchar *room_id, const gchar *own_member_id)
{
  MrtcOlmCallKeys *keys = g_object_new (MRTC_OLM_TYPE_CALL_KEYS, NULL);

  keys->machine = g_object_ref (machine);
  keys->room_id = g_strdup (room_id);
  keys->own_member_id = g_strdup (own_member_id);
  keys->manager
      = mrtc_olm_media_key_manager_new (mrtc_olm_machine_get_user_id (machine),
          mrtc_olm_machine_get_device_id (machine), NULL, NULL);
  keys->receiver = mrtc_olm_media_key_receiver_new (room_id, NULL, NULL);
  mrtc_olm_machine_run_sync (machine, connect_job, keys);
  return keys;
}
