/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Per-member media keys of the call (e2ee-mode=per-member), as Element Call:
 * our device's Olm machine (ext/olm) sends our media key Olm-encrypted to
 * every other member's device and rotates it as members come and go; the
 * keys the others send us are installed in the matrixrtcframedec of their
 * tracks (by LiveKit identity and key index), ours in our
 * matrixrtcframeenc. Keys are kept so that chains built later get them. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstmatrixrtccallbin.h"
#include "mrtcolmcallkeys.h"

GST_DEBUG_CATEGORY_EXTERN (gst_matrix_rtc_call_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_call_bin_debug

typedef struct
{
  GMutex lock;
  MrtcOlmMachine *machine;
  MrtcOlmCallKeys *keys;
  GHashTable *remote; /* identity -> GHashTable (index -> GBytes) */
  guint own_index;
  GBytes *own_key;
} KeysState;

static GQuark keys_quark;

static void on_key_received (MrtcOlmCallKeys *keys, const gchar *identity,
    guint index, GBytes *key, const gchar *user_id, const gchar *device_id,
    GstMatrixRtcCallBin *self);
static void on_own_key (
    MrtcOlmCallKeys *keys, guint index, GBytes *key, GstMatrixRtcCallBin *self);

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
  g_clear_object (&st->machine);
  g_hash_table_unref (st->remote);
  g_clear_pointer (&st->own_key, g_bytes_unref);
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
  st->remote = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_hash_table_unref);
  g_object_set_qdata_full (
      G_OBJECT (self), keys_quark, st, (GDestroyNotify)keys_state_free);
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
  g_mutex_unlock (&st->lock);
  decs = gst_matrix_rtc_call_bin_dup_framedecs (self, identity);
  for (i = 0; i < decs->len; i++)
    set_key (g_ptr_array_index (decs, i), index, key);
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
  g_mutex_unlock (&st->lock);
  encs = gst_matrix_rtc_publish_dup_frameencs (self);
  for (i = 0; i < encs->len; i++)
    set_key (g_ptr_array_index (encs, i), index, key);
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
  g_mutex_lock (&st->lock);
  of = g_hash_table_lookup (st->remote, identity);
  if (of != NULL) {
    g_hash_table_iter_init (&iter, of);
    while (g_hash_table_iter_next (&iter, &index, &key)) {
      guint idx = GPOINTER_TO_UINT (index);

      g_array_append_val (indexes, idx);
      g_ptr_array_add (keys, g_bytes_ref (key));
    }
  }
  g_mutex_unlock (&st->lock);
  for (i = 0; i < keys->len; i++)
    set_key (framedec, g_array_index (indexes, guint, i),
        g_ptr_array_index (keys, i));
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
  g_mutex_unlock (&st->lock);
  if (key != NULL) {
    set_key (frameenc, index, key);
    g_bytes_unref (key);
  }
}

void
gst_matrix_rtc_keys_stop (GstMatrixRtcCallBin *self)
{
  if (keys_quark != 0)
    g_object_set_qdata (G_OBJECT (self), keys_quark, NULL);
}
