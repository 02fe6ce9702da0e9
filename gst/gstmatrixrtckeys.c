/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Media keys of the call over our device's Olm machine (ext/olm).
 *
 * e2ee-mode=per-member, as Element Call: the machine sends our media key
 * Olm-encrypted to every other member's device and rotates it as members
 * come and go; the keys the others send us are installed in the
 * matrixrtcframedec of their tracks (by LiveKit identity and key index),
 * ours in our matrixrtcframeenc.
 *
 * e2ee-mode=slot-shared: one key for the whole slot (MrtcOlmSlotKey): the
 * Megolm-encrypted key event the slot state event names. Every member
 * encrypts with it at its key index and every track is decrypted with it;
 * the previous key stays in the decryptors through the grace period so
 * that frames in flight still decrypt. Without a key the encryptors drop
 * (nothing is sent in clear). A key event of a user allowed to change the
 * slot, newer than the one named, is installed in the decryptors ahead of
 * the slot naming it, for a grace period only. A member still waiting for
 * a newly named key stops sending with the retired one after the grace
 * period. A moderator watches the key: one that cannot be had (waiting
 * for 15 s: its sender's process is gone) or a slot without a usable key
 * is replaced with a rotation.
 *
 * Keys are set in the cryptors under the state's lock, both by the key
 * handlers and when a chain is built, so the newest keys always win.
 * Keys are kept so that chains built later get them. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstmatrixrtccallbin.h"
#include "mrtcolmcallkeys.h"
#include "mrtcolmslotkey.h"

GST_DEBUG_CATEGORY_EXTERN (gst_matrix_rtc_call_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_call_bin_debug

typedef struct
{
  GMutex lock;
  GstMatrixRtcCallBin *self; /* not a reference */
  MrtcOlmMachine *machine;
  MrtcOlmCallKeys *keys;
  MrtcOlmSlotKey *slot_key; /* e2ee-mode=slot-shared */
  GHashTable *remote;       /* identity -> GHashTable (index -> GBytes) */
  GHashTable *slot_keys;    /* index -> GBytes: current and in grace */
  GHashTable *ahead;        /* index -> AheadKey: installed before named */
  guint own_index;
  GBytes *own_key;
  /* e2ee-mode=slot-shared, on the machine's worker (under lock). */
  GSource *tick;
  gboolean stopping;
  gboolean joined;
  gchar *own_event_id;    /* the key event of own_key */
  gint64 retire_at;       /* µs: stop sending with own_key (0: no) */
  gint64 status_since;    /* µs: the status last changed */
  guint last_status;      /* MrtcOlmSlotKeyStatus */
  gchar *status_event_id; /* the key event it was about */
  gint64 last_rotate;     /* µs: our last rotation (attempt) ended */
  gint64 rotate_backoff;  /* µs after last_rotate before another */
  gint rotating;          /* atomic: a watch rotation is in flight */
  GThread *watch_thread;  /* the last watch rotation's (joined) */
} KeysState;

/* A key event's key installed in the decryptors before the slot names it:
 * replaced with a random key at its deadline unless named by then. */
typedef struct
{
  gint64 deadline; /* monotonic µs */
  gchar *event_id;
} AheadKey;

static void
ahead_key_free (AheadKey *a)
{
  g_free (a->event_id);
  g_free (a);
}

/* The moderator's watch: how long a slot key may stay unobtainable
 * (waiting) before a moderator replaces it, and how long "no key" or an
 * unusable key is left to a concurrent rotation first. */
#define SLOT_KEY_WAIT_BOUND_US (15 * G_USEC_PER_SEC)
#define SLOT_KEY_NO_KEY_BOUND_US (3 * G_USEC_PER_SEC)
/* Between failed watch rotations (e.g. we are no moderator). */
#define SLOT_KEY_ROTATE_RETRY_US (30 * G_USEC_PER_SEC)
#define SLOT_KEY_TICK_MS 250

static GQuark keys_quark;
/* Guards taking the slot key out of the state against keys_stop(). */
static GMutex keys_state_lock;

static void on_key_received (MrtcOlmCallKeys *keys, const gchar *identity,
    guint index, GBytes *key, const gchar *user_id, const gchar *device_id,
    GstMatrixRtcCallBin *self);
static void on_own_key (
    MrtcOlmCallKeys *keys, guint index, GBytes *key, GstMatrixRtcCallBin *self);
static void on_slot_key_changed (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, GstMatrixRtcCallBin *self);
static void on_slot_key_known (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, GstMatrixRtcCallBin *self);
static void on_slot_key_expired (MrtcOlmSlotKey *sk, guint index,
    const gchar *event_id, GstMatrixRtcCallBin *self);
static void on_slot_key_status (MrtcOlmSlotKey *sk, guint status,
    const gchar *event_id, const gchar *message, GstMatrixRtcCallBin *self);
static gboolean on_tick (gpointer data);

static void
keys_state_free (KeysState *st)
{
  if (st->keys != NULL) {
    g_signal_handlers_disconnect_matched (st->keys, G_SIGNAL_MATCH_FUNC, 0, 0,
        NULL, G_CALLBACK (on_key_received), NULL);
    g_signal_handlers_disconnect_matched (st->keys, G_SIGNAL_MATCH_FUNC, 0, 0,
        NULL, G_CALLBACK (on_own_key), NULL);
    mrtc_olm_call_keys_stop (st->keys);
    /* Handlers run on the machine's worker: let a running one finish. */
    mrtc_olm_machine_flush (st->machine);
    g_object_unref (st->keys);
  }
  if (st->slot_key != NULL) {
    g_mutex_lock (&st->lock);
    st->stopping = TRUE;
    g_mutex_unlock (&st->lock);
    g_signal_handlers_disconnect_by_data (st->slot_key, st->self);
    /* Waits for a rotation in flight (a watch rotation holds its own
     * reference and sees the slot key stopped). */
    mrtc_olm_slot_key_stop (st->slot_key);
    mrtc_olm_machine_flush (st->machine);
    g_mutex_lock (&st->lock);
    if (st->tick != NULL) {
      g_source_destroy (st->tick);
      g_clear_pointer (&st->tick, g_source_unref);
    }
    g_mutex_unlock (&st->lock);
    /* A tick running now ends before this. */
    mrtc_olm_machine_flush (st->machine);
    /* A watch rotation ended with the slot key's stop: its thread too
     * (none may run at the process's exit). */
    if (st->watch_thread != NULL)
      g_thread_join (g_steal_pointer (&st->watch_thread));
    g_object_unref (st->slot_key);
  }
  g_clear_object (&st->machine);
  g_hash_table_unref (st->remote);
  g_hash_table_unref (st->slot_keys);
  g_hash_table_unref (st->ahead);
  g_clear_pointer (&st->own_key, g_bytes_unref);
  g_free (st->own_event_id);
  g_free (st->status_event_id);
  g_mutex_clear (&st->lock);
  g_free (st);
}

static KeysState *
get_state (GstMatrixRtcCallBin *self)
{
  return keys_quark ? g_object_get_qdata (G_OBJECT (self), keys_quark) : NULL;
}

/* A random pickle key kept beside the store (mode 0600), so that the store
 * can be opened again by the next run. */
static gboolean
load_pickle_key (const gchar *store, guint8 key[32], GError **error)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *data = NULL;
  gsize len = 0;
  guint i;

  if (store == NULL) {
    for (i = 0; i < 32; i += 4) {
      guint32 r = g_random_int ();
      memcpy (key + i, &r, 4);
    }
    return TRUE;
  }
  path = g_strconcat (store, ".key", NULL);
  if (g_file_get_contents (path, &data, &len, NULL) && len == 32) {
    memcpy (key, data, 32);
    memset (data, 0, len);
    return TRUE;
  }
  for (i = 0; i < 32; i += 4) {
    guint32 r = g_random_int ();
    memcpy (key + i, &r, 4);
  }
  if (!g_file_set_contents_full (path, (const gchar *)key, 32,
          G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  return TRUE;
}

gboolean
gst_matrix_rtc_keys_start (GstMatrixRtcCallBin *self, MrtcClient *client,
    const gchar *crypto_store, GError **error)
{
  KeysState *st;
  guint8 pickle[32];
  MrtcOlmMachine *machine;

  if (!load_pickle_key (crypto_store, pickle, error))
    return FALSE;
  machine = mrtc_olm_machine_new (client, crypto_store, pickle, 32, error);
  memset (pickle, 0, sizeof (pickle));
  if (machine == NULL)
    return FALSE;
  if (keys_quark == 0)
    keys_quark = g_quark_from_static_string ("matrixrtc-keys");
  st = g_new0 (KeysState, 1);
  g_mutex_init (&st->lock);
  st->machine = machine;
  st->self = self;
  st->remote = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
  st->slot_keys
      = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify)g_bytes_unref);
  st->ahead = g_hash_table_new_full (
      NULL, NULL, NULL, (GDestroyNotify)ahead_key_free);
  g_mutex_lock (&keys_state_lock);
  g_object_set_qdata_full (
      G_OBJECT (self), keys_quark, st, (GDestroyNotify)keys_state_free);
  g_mutex_unlock (&keys_state_lock);
  return TRUE;
}

static void
set_key (GstElement *cryptor, guint index, GBytes *key)
{
  gboolean ok = FALSE;

  g_signal_emit_by_name (cryptor, "set-key", index, key, &ok);
  if (!ok)
    GST_WARNING_OBJECT (cryptor, "key %u was refused", index);
}

static void
on_key_received (MrtcOlmCallKeys *keys, const gchar *identity, guint index,
    GBytes *key, const gchar *user_id, const gchar *device_id,
    GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);
  GHashTable *of;
  g_autoptr (GPtrArray) decs = NULL;
  guint i;

  if (st == NULL)
    return;
  GST_INFO_OBJECT (
      self, "key %u of %s (%s %s)", index, identity, user_id, device_id);
  g_mutex_lock (&st->lock);
  of = g_hash_table_lookup (st->remote, identity);
  if (of == NULL) {
    of = g_hash_table_new_full (
        NULL, NULL, NULL, (GDestroyNotify)g_bytes_unref);
    g_hash_table_insert (st->remote, g_strdup (identity), of);
  }
  g_hash_table_replace (of, GUINT_TO_POINTER (index), g_bytes_ref (key));
  /* Under the lock: a chain being built applies the keys under it too, so
   * the later of the two writes the newest keys. */
  decs = gst_matrix_rtc_call_bin_dup_framedecs (self, identity);
  for (i = 0; i < decs->len; i++)
    set_key (g_ptr_array_index (decs, i), index, key);
  g_mutex_unlock (&st->lock);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("matrixrtc-key-changed", "kind", G_TYPE_STRING,
              "member", "user-id", G_TYPE_STRING, user_id, "device-id",
              G_TYPE_STRING, device_id, "key-index", G_TYPE_UINT, index,
              NULL)));
}

static void
on_own_key (
    MrtcOlmCallKeys *keys, guint index, GBytes *key, GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);
  g_autoptr (GPtrArray) encs = NULL;
  guint i;

  if (st == NULL)
    return;
  GST_INFO_OBJECT (self, "our key is now %u", index);
  g_mutex_lock (&st->lock);
  g_clear_pointer (&st->own_key, g_bytes_unref);
  st->own_key = g_bytes_ref (key);
  st->own_index = index;
  encs = gst_matrix_rtc_publish_dup_frameencs (self);
  for (i = 0; i < encs->len; i++)
    set_key (g_ptr_array_index (encs, i), index, key);
  g_mutex_unlock (&st->lock);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("matrixrtc-key-changed", "kind", G_TYPE_STRING,
              "own", "key-index", G_TYPE_UINT, index, NULL)));
}

gboolean
gst_matrix_rtc_keys_join (GstMatrixRtcCallBin *self, const gchar *room_id,
    const gchar *own_member_id, GError **error)
{
  KeysState *st = get_state (self);

  if (st == NULL)
    return TRUE;
  if (!mrtc_olm_machine_track_room (st->machine, room_id, error))
    return FALSE;
  if (st->slot_key != NULL) {
    if (!mrtc_olm_slot_key_start (st->slot_key, error))
      return FALSE;
    g_mutex_lock (&st->lock);
    st->joined = TRUE;
    st->status_since = st->last_rotate = g_get_monotonic_time ();
    if (st->tick == NULL && !st->stopping) {
      st->tick = g_timeout_source_new (SLOT_KEY_TICK_MS);
      g_source_set_callback (st->tick, on_tick, self, NULL);
      g_source_attach (st->tick, mrtc_olm_machine_get_context (st->machine));
    }
    g_mutex_unlock (&st->lock);
    return TRUE;
  }
  st->keys = mrtc_olm_call_keys_new (st->machine, room_id, own_member_id);
  g_signal_connect (
      st->keys, "key-received", G_CALLBACK (on_key_received), self);
  g_signal_connect (st->keys, "own-key", G_CALLBACK (on_own_key), self);
  return TRUE;
}

void
gst_matrix_rtc_keys_update_members (
    GstMatrixRtcCallBin *self, GPtrArray *members)
{
  KeysState *st = get_state (self);
  g_autoptr (GPtrArray) olm = NULL;
  guint i;

  if (st == NULL || st->keys == NULL)
    return;
  olm = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  for (i = 0; i < members->len; i++) {
    MrtcMember *m = g_ptr_array_index (members, i);

    g_ptr_array_add (olm, mrtc_olm_member_new (m->user_id, m->device_id,
                              m->member_id, m->identity, m->created_ts));
  }
  mrtc_olm_call_keys_update_members (st->keys, olm);
}

void
gst_matrix_rtc_keys_apply_remote (
    GstMatrixRtcCallBin *self, const gchar *identity, GstElement *framedec)
{
  KeysState *st = get_state (self);
  GHashTableIter iter;
  gpointer index, key;
  g_autoptr (GPtrArray) keys
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  g_autoptr (GArray) indexes = g_array_new (FALSE, FALSE, sizeof (guint));
  GHashTable *of;
  guint i;

  if (st == NULL)
    return;
  /* The caller made @framedec visible to dup_framedecs() before: a key
   * change either waits for this or comes after it and reaches it. */
  g_mutex_lock (&st->lock);
  of = st->slot_key != NULL ? st->slot_keys
                            : g_hash_table_lookup (st->remote, identity);
  if (of != NULL) {
    g_hash_table_iter_init (&iter, of);
    while (g_hash_table_iter_next (&iter, &index, &key)) {
      guint idx = GPOINTER_TO_UINT (index);

      g_array_append_val (indexes, idx);
      g_ptr_array_add (keys, g_bytes_ref (key));
    }
  }
  for (i = 0; i < keys->len; i++)
    set_key (framedec, g_array_index (indexes, guint, i),
        g_ptr_array_index (keys, i));
  g_mutex_unlock (&st->lock);
}

/* ------------------------------------------------------------------ */
/* e2ee-mode=slot-shared */

static void
post_key_status (GstMatrixRtcCallBin *self, MrtcOlmSlotKeyStatus status,
    const gchar *event_id, const gchar *message)
{
  GstStructure *s = gst_structure_new ("matrixrtc-key-status", "status",
      G_TYPE_STRING, mrtc_olm_slot_key_status_name (status), "message",
      G_TYPE_STRING, message, NULL);

  if (event_id != NULL)
    gst_structure_set (s, "event-id", G_TYPE_STRING, event_id, NULL);
  gst_element_post_message (
      GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

/* A random key at @index in every decryptor (under st->lock): the
 * decryptor has no removal, and frames still sent with the key it replaces
 * fail and are counted instead of being shown. */
static void
junk_index_locked (GstMatrixRtcCallBin *self, guint index)
{
  g_autoptr (GPtrArray) decs = NULL;
  g_autoptr (GBytes) junk = NULL;
  guint8 bytes[MRTC_OLM_SLOT_KEY_LEN];
  guint i;

  mrtc_olm_random_bytes (bytes, sizeof (bytes));
  junk = g_bytes_new (bytes, sizeof (bytes));
  mrtc_olm_wipe (bytes, sizeof (bytes));
  decs = gst_matrix_rtc_call_bin_dup_framedecs (self, NULL);
  for (i = 0; i < decs->len; i++)
    set_key (g_ptr_array_index (decs, i), index, junk);
}

/* Keys installed ahead that are not named by @named_index (G_MAXUINT:
 * none) and past their deadline, or all of them when @all: replaced
 * (under st->lock). */
static void
drop_ahead_locked (
    GstMatrixRtcCallBin *self, KeysState *st, gboolean all, gint64 now)
{
  GHashTableIter iter;
  gpointer index, value;

  g_hash_table_iter_init (&iter, st->ahead);
  while (g_hash_table_iter_next (&iter, &index, &value)) {
    AheadKey *a = value;

    if (!all && a->deadline > now)
      continue;
    if (!g_hash_table_contains (st->slot_keys, index)) {
      GST_DEBUG_OBJECT (self,
          "key of %s installed ahead was not named: index %u forgotten",
          a->event_id, GPOINTER_TO_UINT (index));
      junk_index_locked (self, GPOINTER_TO_UINT (index));
    }
    g_hash_table_iter_remove (&iter);
  }
}

static void
on_slot_key_changed (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);
  g_autoptr (GPtrArray) decs = NULL;
  g_autoptr (GPtrArray) encs = NULL;
  guint i;

  if (st == NULL)
    return;
  GST_INFO_OBJECT (
      self, "slot key of %s now current at index %u", event_id, index);
  g_mutex_lock (&st->lock);
  g_hash_table_replace (
      st->slot_keys, GUINT_TO_POINTER (index), g_bytes_ref (key));
  g_clear_pointer (&st->own_key, g_bytes_unref);
  st->own_key = g_bytes_ref (key);
  st->own_index = index;
  g_free (st->own_event_id);
  st->own_event_id = g_strdup (event_id);
  st->retire_at = 0;
  /* Named now; every other key installed ahead lost. */
  g_hash_table_remove (st->ahead, GUINT_TO_POINTER (index));
  drop_ahead_locked (self, st, TRUE, 0);
  /* Receivers first: the others switch when they see the same slot. Under
   * the lock, as chains being built apply keys. */
  decs = gst_matrix_rtc_call_bin_dup_framedecs (self, NULL);
  for (i = 0; i < decs->len; i++)
    set_key (g_ptr_array_index (decs, i), index, key);
  encs = gst_matrix_rtc_publish_dup_frameencs (self);
  for (i = 0; i < encs->len; i++)
    set_key (g_ptr_array_index (encs, i), index, key);
  g_mutex_unlock (&st->lock);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("matrixrtc-key-changed", "kind", G_TYPE_STRING,
              "slot", "key-index", G_TYPE_UINT, index, "event-id",
              G_TYPE_STRING, event_id, NULL)));
}

/* A key event's key before the slot names it (MrtcOlmSlotKey announces
 * only key events of senders allowed to change the slot, newer than the
 * one named): the decryptors take frames at its index already, so that a
 * sender whose sync saw the slot update first loses us nothing. Never over
 * a key in use at that index; forgotten after the grace period unless the
 * slot names it by then. */
static void
on_slot_key_known (MrtcOlmSlotKey *sk, guint index, GBytes *key,
    const gchar *event_id, GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);
  g_autoptr (GPtrArray) decs = NULL;
  GBytes *in_use;
  AheadKey *a;
  guint i;

  if (st == NULL)
    return;
  g_mutex_lock (&st->lock);
  in_use = g_hash_table_lookup (st->slot_keys, GUINT_TO_POINTER (index));
  if (in_use != NULL) {
    g_mutex_unlock (&st->lock);
    GST_DEBUG_OBJECT (self,
        "key of %s not installed ahead: its index %u is in use", event_id,
        index);
    return;
  }
  GST_DEBUG_OBJECT (
      self, "key of %s known: decryptors accept index %u", event_id, index);
  a = g_new0 (AheadKey, 1);
  a->event_id = g_strdup (event_id);
  a->deadline = g_get_monotonic_time ()
                + mrtc_olm_slot_key_get_grace (sk) * G_TIME_SPAN_MILLISECOND;
  g_hash_table_replace (st->ahead, GUINT_TO_POINTER (index), a);
  decs = gst_matrix_rtc_call_bin_dup_framedecs (self, NULL);
  for (i = 0; i < decs->len; i++)
    set_key (g_ptr_array_index (decs, i), index, key);
  g_mutex_unlock (&st->lock);
}

static void
on_slot_key_expired (MrtcOlmSlotKey *sk, guint index, const gchar *event_id,
    GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);

  if (st == NULL)
    return;
  GST_DEBUG_OBJECT (
      self, "slot key %u (%s) left its grace period", index, event_id);
  g_mutex_lock (&st->lock);
  if (index != st->own_index) {
    /* Chains built from now on do not get it; the running decryptors
     * forget it (whoever the rotation shut out fails and is counted). */
    g_hash_table_remove (st->slot_keys, GUINT_TO_POINTER (index));
    junk_index_locked (self, index);
  }
  g_mutex_unlock (&st->lock);
}

static void
on_slot_key_status (MrtcOlmSlotKey *sk, guint status, const gchar *event_id,
    const gchar *message, GstMatrixRtcCallBin *self)
{
  KeysState *st = get_state (self);

  GST_INFO_OBJECT (self, "slot key: %s (%s)",
      mrtc_olm_slot_key_status_name (status), message);
  if (st != NULL) {
    gint64 now = g_get_monotonic_time ();

    g_mutex_lock (&st->lock);
    /* (a repeated status, e.g. at each key request, is no change) */
    if (status != st->last_status
        || g_strcmp0 (event_id, st->status_event_id) != 0) {
      st->status_since = now;
      st->last_status = status;
      g_free (st->status_event_id);
      st->status_event_id = g_strdup (event_id);
    }
    /* A new key is named that we lack: ours is retired at the end of the
     * grace period (the receivers forget it then). */
    if (status == MRTC_OLM_SLOT_KEY_STATUS_WAITING && st->own_key != NULL
        && g_strcmp0 (event_id, st->own_event_id) != 0 && st->retire_at == 0)
      st->retire_at
          = now + mrtc_olm_slot_key_get_grace (sk) * G_TIME_SPAN_MILLISECOND;
    else if (status == MRTC_OLM_SLOT_KEY_STATUS_READY)
      st->retire_at = 0;
    g_mutex_unlock (&st->lock);
  }
  if (status == MRTC_OLM_SLOT_KEY_STATUS_WAITING)
    gst_matrix_rtc_call_bin_count (self, "slot-key-waits");
  post_key_status (self, status, event_id, message);
}

/* Our key was retired by a rotation whose key we still lack: the encryptors
 * drop from now on (never in clear, never with a key nobody accepts) until
 * the new key comes (under st->lock). */
static void
retire_own_key_locked (
    GstMatrixRtcCallBin *self, KeysState *st, MrtcOlmSlotKey *sk)
{
  g_autoptr (GPtrArray) encs = NULL;
  g_autoptr (GBytes) junk = NULL;
  guint8 bytes[MRTC_OLM_SLOT_KEY_LEN];
  guint old = st->own_index, i;
  guint next = old;
  gchar *named = NULL;

  named = mrtc_olm_slot_key_dup_reference (sk);
  if (named != NULL)
    next = mrtc_olm_slot_key_index_for_event (named);
  GST_WARNING_OBJECT (self,
      "still no key for %s after the grace period: our frames are dropped "
      "until it comes",
      GST_STR_NULL (named));
  g_free (named);
  g_clear_pointer (&st->own_key, g_bytes_unref);
  g_clear_pointer (&st->own_event_id, g_free);
  st->retire_at = 0;
  mrtc_olm_random_bytes (bytes, sizeof (bytes));
  junk = g_bytes_new (bytes, sizeof (bytes));
  mrtc_olm_wipe (bytes, sizeof (bytes));
  /* The retired key goes from the encryptors, and the index they use next
   * is the named key's (which they do not have): they drop. */
  if (next == old)
    next = (old + 1) % 256;
  st->own_index = next;
  encs = gst_matrix_rtc_publish_dup_frameencs (self);
  for (i = 0; i < encs->len; i++) {
    set_key (g_ptr_array_index (encs, i), old, junk);
    g_object_set (g_ptr_array_index (encs, i), "key-index", next, NULL);
  }
  gst_matrix_rtc_call_bin_count (self, "slot-key-retired");
}

typedef struct
{
  GstMatrixRtcCallBin *self;
  MrtcOlmSlotKey *sk;
} WatchRotation;

static gpointer
watch_rotate_func (gpointer data)
{
  WatchRotation *w = data;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *event_id = mrtc_olm_slot_key_rotate (w->sk, &error);
  KeysState *st;

  if (event_id != NULL)
    GST_INFO_OBJECT (w->self,
        "the slot's key could not be had: replaced it with key event %s",
        event_id);
  else
    GST_INFO_OBJECT (
        w->self, "cannot replace the slot's key: %s", error->message);
  g_mutex_lock (&keys_state_lock);
  st = get_state (w->self);
  if (st != NULL) {
    g_mutex_lock (&st->lock);
    st->last_rotate = g_get_monotonic_time ();
    st->status_since = st->last_rotate;
    /* A closed slot (NO_SLOT) may reopen soon: look again sooner. */
    st->rotate_backoff = event_id != NULL ? 0
                         : g_error_matches (error, MRTC_OLM_SLOT_KEY_ERROR,
                               MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT)
                             ? SLOT_KEY_NO_KEY_BOUND_US
                             : SLOT_KEY_ROTATE_RETRY_US;
    g_atomic_int_set (&st->rotating, FALSE);
    g_mutex_unlock (&st->lock);
  }
  g_mutex_unlock (&keys_state_lock);
  g_object_unref (w->sk);
  g_free (w);
  return NULL;
}

/* Every SLOT_KEY_TICK_MS on the machine's worker: keys installed ahead
 * past their deadline go, our key is retired when a newer one we lack is
 * named past the grace period, and a moderator replaces a key that cannot
 * be had (waiting too long) or a slot left without one. */
static gboolean
on_tick (gpointer data)
{
  GstMatrixRtcCallBin *self = data;
  KeysState *st = get_state (self);
  gint64 now = g_get_monotonic_time ();
  MrtcOlmSlotKeyStatus status;
  gboolean rotate = FALSE;
  GThread *previous = NULL, *thread;
  gint64 bound;

  if (st == NULL || st->slot_key == NULL)
    return G_SOURCE_CONTINUE;
  status = mrtc_olm_slot_key_get_status (st->slot_key, NULL);
  g_mutex_lock (&st->lock);
  if (st->stopping) {
    g_mutex_unlock (&st->lock);
    return G_SOURCE_CONTINUE;
  }
  drop_ahead_locked (self, st, FALSE, now);
  if (st->retire_at != 0 && now >= st->retire_at
      && status == MRTC_OLM_SLOT_KEY_STATUS_WAITING)
    retire_own_key_locked (self, st, st->slot_key);
  bound = status == MRTC_OLM_SLOT_KEY_STATUS_WAITING ? SLOT_KEY_WAIT_BOUND_US
                                                     : SLOT_KEY_NO_KEY_BOUND_US;
  if (st->joined && status != MRTC_OLM_SLOT_KEY_STATUS_READY
      && now - st->status_since >= bound
      && now - st->last_rotate >= MAX (bound, st->rotate_backoff)
      && !g_atomic_int_get (&st->rotating)) {
    g_atomic_int_set (&st->rotating, TRUE);
    rotate = TRUE;
    /* the previous one is done (past its last use of the state) */
    previous = g_steal_pointer (&st->watch_thread);
  }
  g_mutex_unlock (&st->lock);
  if (previous != NULL)
    g_thread_join (previous);
  if (rotate) {
    WatchRotation *w = g_new0 (WatchRotation, 1);

    GST_INFO_OBJECT (self, "slot key still %s: replacing it if we may",
        mrtc_olm_slot_key_status_name (status));
    /* (no reference: the state joins the thread before it goes) */
    w->self = self;
    w->sk = g_object_ref (st->slot_key);
    thread = g_thread_new ("matrixrtc-slotkey", watch_rotate_func, w);
    g_mutex_lock (&st->lock);
    st->watch_thread = thread;
    g_mutex_unlock (&st->lock);
  }
  return G_SOURCE_CONTINUE;
}

gboolean
gst_matrix_rtc_keys_use_slot_key (
    GstMatrixRtcCallBin *self, const gchar *room_id, const gchar *slot_id)
{
  KeysState *st = get_state (self);

  if (st == NULL)
    return FALSE;
  /* Before the room's events come in: the machine hands a decrypted key
   * event out once. */
  st->slot_key = mrtc_olm_slot_key_new (st->machine, room_id, slot_id);
  g_signal_connect (
      st->slot_key, "key-changed", G_CALLBACK (on_slot_key_changed), self);
  g_signal_connect (
      st->slot_key, "key-expired", G_CALLBACK (on_slot_key_expired), self);
  g_signal_connect (
      st->slot_key, "key-known", G_CALLBACK (on_slot_key_known), self);
  g_signal_connect (
      st->slot_key, "key-status", G_CALLBACK (on_slot_key_status), self);
  return TRUE;
}

static MrtcOlmSlotKey *
dup_slot_key (GstMatrixRtcCallBin *self)
{
  KeysState *st;
  MrtcOlmSlotKey *sk = NULL;

  g_mutex_lock (&keys_state_lock);
  st = get_state (self);
  if (st != NULL && st->slot_key != NULL)
    sk = g_object_ref (st->slot_key);
  g_mutex_unlock (&keys_state_lock);
  return sk;
}

gchar *
gst_matrix_rtc_keys_rotate_slot_key (GstMatrixRtcCallBin *self, GError **error)
{
  g_autoptr (MrtcOlmSlotKey) sk = dup_slot_key (self);

  if (sk == NULL) {
    g_set_error (error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_STATE,
        "the slot key can only be rotated with e2ee-mode=slot-shared, once "
        "the element joined the call");
    return NULL;
  }
  return mrtc_olm_slot_key_rotate (sk, error);
}

/* The first key of a slot that names none (or names an unusable one): a
 * moderator sends it (opening the slot when there is none); others wait for
 * one. Never fatal. */
void
gst_matrix_rtc_keys_ensure_slot_key (
    GstMatrixRtcCallBin *self, MrtcSession *session)
{
  g_autoptr (MrtcOlmSlotKey) sk = dup_slot_key (self);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *event_id = NULL;
  g_autofree gchar *message = NULL;

  MrtcOlmSlotKeyStatus status;

  if (sk == NULL)
    return;
  /* No key named, or one that can never be used: a moderator replaces it. */
  status = mrtc_olm_slot_key_get_status (sk, NULL);
  if (status != MRTC_OLM_SLOT_KEY_STATUS_NO_KEY
      && status != MRTC_OLM_SLOT_KEY_STATUS_INVALID)
    return;
  event_id = mrtc_olm_slot_key_rotate (sk, &error);
  if (event_id == NULL
      && g_error_matches (
          error, MRTC_OLM_SLOT_KEY_ERROR, MRTC_OLM_SLOT_KEY_ERROR_NO_SLOT)) {
    g_clear_error (&error);
    if (mrtc_session_set_slot_open (session, TRUE, &error))
      event_id = mrtc_olm_slot_key_rotate (sk, &error);
  }
  {
    /* The watch (on_tick) leaves the next try to later. */
    KeysState *st;

    g_mutex_lock (&keys_state_lock);
    st = get_state (self);
    if (st != NULL) {
      g_mutex_lock (&st->lock);
      st->last_rotate = st->status_since = g_get_monotonic_time ();
      st->rotate_backoff = event_id != NULL ? 0 : SLOT_KEY_ROTATE_RETRY_US;
      g_mutex_unlock (&st->lock);
    }
    g_mutex_unlock (&keys_state_lock);
  }
  if (event_id != NULL) {
    GST_INFO_OBJECT (
        self, "the slot named no key: sent key event %s", event_id);
    return;
  }
  GST_INFO_OBJECT (
      self, "the slot names no key and we cannot set one: %s", error->message);
  /* Still none (no concurrent rotation came in): say what we wait for
   * (an unusable key said so itself). */
  if (mrtc_olm_slot_key_get_status (sk, &message)
      == MRTC_OLM_SLOT_KEY_STATUS_NO_KEY) {
    g_autofree gchar *text = g_strdup_printf (
        "the slot names no shared key yet: waiting for a moderator to set "
        "one (%s)",
        error->message);

    post_key_status (self, MRTC_OLM_SLOT_KEY_STATUS_NO_KEY, NULL, text);
  }
}

void
gst_matrix_rtc_keys_add_stats (GstMatrixRtcCallBin *self, GstStructure *s)
{
  g_autoptr (MrtcOlmSlotKey) sk = dup_slot_key (self);
  guint index = 0;
  g_autofree gchar *event_id = NULL;
  g_autoptr (GBytes) key = NULL;

  if (sk == NULL)
    return;
  key = mrtc_olm_slot_key_get_current (sk, &index, &event_id);
  gst_structure_set (s, "slot-key-status", G_TYPE_STRING,
      mrtc_olm_slot_key_status_name (mrtc_olm_slot_key_get_status (sk, NULL)),
      "slot-key-requests", G_TYPE_UINT,
      mrtc_olm_slot_key_get_requests_sent (sk), NULL);
  if (key != NULL)
    gst_structure_set (s, "slot-key-index", G_TYPE_UINT, index,
        "slot-key-event-id", G_TYPE_STRING, event_id, NULL);
}

void
gst_matrix_rtc_keys_apply_own (GstMatrixRtcCallBin *self, GstElement *frameenc)
{
  KeysState *st = get_state (self);
  GBytes *key = NULL;
  guint index = 0;

  if (st == NULL)
    return;
  g_mutex_lock (&st->lock);
  if (st->own_key != NULL)
    key = g_bytes_ref (st->own_key);
  index = st->own_index;
  /* Under the lock, as the key handlers set keys: an older key never wins. */
  if (key != NULL) {
    set_key (frameenc, index, key);
    g_bytes_unref (key);
  } else if (st->slot_key != NULL) {
    /* No key (yet, or ours retired): an index without one, so that the
     * encryptor drops. */
    g_object_set (frameenc, "key-index", index, NULL);
  }
  g_mutex_unlock (&st->lock);
}

/* Before we leave the call: no rotation updates the slot after that (one
 * in flight is waited for and refused), and the watch stops. */
void
gst_matrix_rtc_keys_stop_slot_key (GstMatrixRtcCallBin *self)
{
  KeysState *st;
  MrtcOlmSlotKey *sk = NULL;

  g_mutex_lock (&keys_state_lock);
  st = get_state (self);
  if (st != NULL && st->slot_key != NULL) {
    g_mutex_lock (&st->lock);
    st->stopping = TRUE;
    g_mutex_unlock (&st->lock);
    sk = g_object_ref (st->slot_key);
  }
  g_mutex_unlock (&keys_state_lock);
  if (sk != NULL) {
    mrtc_olm_slot_key_stop (sk);
    g_object_unref (sk);
  }
}

void
gst_matrix_rtc_keys_stop (GstMatrixRtcCallBin *self)
{
  KeysState *st;

  if (keys_quark == 0)
    return;
  /* Out of reach first (rotations hold their own reference), then freed
   * outside the lock (that waits for the machine's worker). */
  g_mutex_lock (&keys_state_lock);
  st = g_object_steal_qdata (G_OBJECT (self), keys_quark);
  g_mutex_unlock (&keys_state_lock);
  if (st != NULL)
    keys_state_free (st);
}
