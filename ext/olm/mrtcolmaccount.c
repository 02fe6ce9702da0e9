/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/*
 * The device's Olm account, its encrypted store, the verified devices of
 * others and the Olm sessions with them (to-device `m.room.encrypted`,
 * `m.olm.v1.curve25519-aes-sha2`).
 *
 * Store file: "MRTCOLM1" | 12-byte nonce | AES-256-GCM(JSON) | 16-byte tag,
 * with the magic as additional data and the key HMAC-SHA256(pickle key,
 * "gst-matrixrtc olm store v1"). The JSON holds libolm pickles (themselves
 * encrypted with the pickle key) and the metadata around them. The file is
 * replaced atomically and has mode 0600.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcolmprivate.h"

#include <string.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define STORE_MAGIC "MRTCOLM1"
#define STORE_MAGIC_LEN 8
#define STORE_NONCE_LEN 12
#define STORE_TAG_LEN 16
#define STORE_VERSION 1
/* Keep at most this many Olm sessions per peer device (newest kept). */
#define MAX_SESSIONS_PER_DEVICE 8
/* Ids of evicted sessions remembered per peer device (oldest forgotten). */
#define MAX_RETIRED_SESSIONS_PER_DEVICE 256
/* Pinned identity keys of removed devices kept (oldest forgotten). */
#define MAX_REMOVED_DEVICES 4096
/* The previous fallback key is forgotten this long after a new one was
 * published (pre-key messages made with it may still be on their way). */
#define FALLBACK_FORGET_DELAY_US (G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC)
/* Longest Olm message body accepted (base64 of a payload of at most
 * MRTC_OLM_MAX_PAYLOAD_LEN bytes plus the Olm framing). */
#define MAX_OLM_BODY_LEN (MRTC_OLM_MAX_PAYLOAD_LEN / 3 * 4 + 1024)

typedef struct
{
  OlmSession *session;
  gchar *session_id;
  /* Real time in µs of the last successful encrypt/decrypt. */
  gint64 last_used;
} MrtcOlmSessionEntry;

typedef struct
{
  MrtcOlmDevice *device;
  /* Real time in µs when it left its user's device list. */
  gint64 removed_at;
} MrtcOlmRemovedDevice;

static void
removed_device_free (gpointer data)
{
  MrtcOlmRemovedDevice *removed = data;

  mrtc_olm_device_free (removed->device);
  g_free (removed);
}

static void
session_entry_free (gpointer data)
{
  MrtcOlmSessionEntry *entry = data;

  if (entry == NULL)
    return;
  if (entry->session != NULL) {
    olm_clear_session (entry->session);
    g_free (entry->session);
  }
  g_free (entry->session_id);
  g_free (entry);
}

static OlmSession *
session_alloc (void)
{
  return olm_session (g_malloc0 (olm_session_size ()));
}

static void
session_free (OlmSession *session)
{
  olm_clear_session (session);
  g_free (session);
}

static gchar *
session_get_id (OlmSession *session)
{
  gsize len = olm_session_id_length (session);
  gchar *id = g_malloc0 (len + 1);

  if (olm_session_id (session, id, len) == olm_error ()) {
    g_free (id);
    return g_strdup ("");
  }
  return id;
}

static gchar *
device_key (const gchar *user_id, const gchar *device_id)
{
  return g_strconcat (user_id, MRTC_OLM_SEP, device_id, NULL);
}

void
mrtc_olm_decrypted_free (MrtcOlmDecrypted *decrypted)
{
  if (decrypted == NULL)
    return;
  g_free (decrypted->type);
  if (decrypted->content != NULL)
    json_object_unref (decrypted->content);
  g_free (decrypted->sender);
  mrtc_olm_device_free (decrypted->sender_device);
  g_free (decrypted);
}

void
mrtc_olm_group_decrypted_free (MrtcOlmGroupDecrypted *decrypted)
{
  if (decrypted == NULL)
    return;
  g_free (decrypted->type);
  if (decrypted->content != NULL)
    json_object_unref (decrypted->content);
  g_free (decrypted->sender_curve25519);
  g_free (decrypted->sender_ed25519);
  g_free (decrypted);
}

/* Takes a libolm output buffer (not NUL-terminated) into a string and wipes
 * the buffer. */
gchar *
mrtc_olm_pickle_buffer_to_string (guint8 *buffer, gsize len)
{
  gchar *text = g_strndup ((const gchar *)buffer, len);

  mrtc_olm_wipe (buffer, len);
  g_free (buffer);
  return text;
}

static gchar *
pickle_account (MrtcOlmAccount *account)
{
  gsize len = olm_pickle_account_length (account->olm);
  guint8 *buffer = g_malloc (len);

  if (olm_pickle_account (account->olm, account->pickle_key,
          account->pickle_key_len, buffer, len)
      == olm_error ()) {
    g_free (buffer);
    return NULL;
  }
  return mrtc_olm_pickle_buffer_to_string (buffer, len);
}

static gchar *
pickle_session (MrtcOlmAccount *account, OlmSession *session)
{
  gsize len = olm_pickle_session_length (session);
  guint8 *buffer = g_malloc (len);

  if (olm_pickle_session (
          session, account->pickle_key, account->pickle_key_len, buffer, len)
      == olm_error ()) {
    g_free (buffer);
    return NULL;
  }
  return mrtc_olm_pickle_buffer_to_string (buffer, len);
}

static gboolean
read_identity_keys (MrtcOlmAccount *account, GError **error)
{
  gsize len = olm_account_identity_keys_length (account->olm);
  g_autofree gchar *text = g_malloc0 (len + 1);
  g_autoptr (JsonObject) keys = NULL;

  if (olm_account_identity_keys (account->olm, text, len) == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "olm_account_identity_keys: %s", olm_account_last_error (account->olm));
    return FALSE;
  }
  keys = mrtc_olm_json_object_from_string (text, len, error);
  if (keys == NULL)
    return FALSE;
  g_free (account->curve25519);
  g_free (account->ed25519);
  account->curve25519
      = g_strdup (mrtc_olm_json_get_string (keys, "curve25519"));
  account->ed25519 = g_strdup (mrtc_olm_json_get_string (keys, "ed25519"));
  if (account->curve25519 == NULL || account->ed25519 == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "libolm returned no identity keys");
    return FALSE;
  }
  return TRUE;
}

/* Remembers the id of an evicted Olm session with @peer_curve25519, so that
 * a replayed pre-key message cannot create it again (with a fallback key,
 * which libolm keeps after use, it otherwise would). */
static void
retire_session_id (MrtcOlmAccount *account, const gchar *peer_curve25519,
    const gchar *session_id)
{
  GPtrArray *ids
      = g_hash_table_lookup (account->retired_sessions, peer_curve25519);

  if (session_id == NULL || session_id[0] == '\0')
    return;
  if (ids == NULL) {
    ids = g_ptr_array_new_with_free_func (g_free);
    g_hash_table_insert (
        account->retired_sessions, g_strdup (peer_curve25519), ids);
  }
  g_ptr_array_add (ids, g_strdup (session_id));
  while (ids->len > MAX_RETIRED_SESSIONS_PER_DEVICE)
    g_ptr_array_remove_index (ids, 0);
  account->dirty = TRUE;
}

static gboolean
session_id_retired (MrtcOlmAccount *account, const gchar *peer_curve25519,
    const gchar *session_id)
{
  GPtrArray *ids
      = g_hash_table_lookup (account->retired_sessions, peer_curve25519);
  guint i;

  for (i = 0; ids != NULL && i < ids->len; i++)
    if (g_strcmp0 (g_ptr_array_index (ids, i), session_id) == 0)
      return TRUE;
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* Store file encryption */

static gboolean
store_key (MrtcOlmAccount *account, guint8 key[32])
{
  static const gchar info[] = "gst-matrixrtc olm store v1";
  unsigned int key_len = 32;

  if (HMAC (EVP_sha256 (), account->pickle_key, (int)account->pickle_key_len,
          (const guint8 *)info, sizeof (info) - 1, key, &key_len)
          == NULL
      || key_len != 32) {
    mrtc_olm_wipe (key, 32);
    return FALSE;
  }
  return TRUE;
}

static gboolean
store_seal (MrtcOlmAccount *account, const guint8 *plain, gsize plain_len,
    GByteArray *out)
{
  guint8 key[32];
  guint8 nonce[STORE_NONCE_LEN];
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  int len = 0;
  gboolean ok = FALSE;
  guint offset;

  if (!store_key (account, key)) {
    EVP_CIPHER_CTX_free (ctx);
    return FALSE;
  }
  mrtc_olm_random_bytes (nonce, sizeof (nonce));
  g_byte_array_append (out, (const guint8 *)STORE_MAGIC, STORE_MAGIC_LEN);
  g_byte_array_append (out, nonce, sizeof (nonce));
  offset = out->len;
  g_byte_array_set_size (out, offset + plain_len + STORE_TAG_LEN);

  if (ctx != NULL
      && EVP_EncryptInit_ex (ctx, EVP_aes_256_gcm (), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl (
             ctx, EVP_CTRL_GCM_SET_IVLEN, STORE_NONCE_LEN, NULL)
             == 1
      && EVP_EncryptInit_ex (ctx, NULL, NULL, key, nonce) == 1
      && EVP_EncryptUpdate (
             ctx, NULL, &len, (const guint8 *)STORE_MAGIC, STORE_MAGIC_LEN)
             == 1
      && EVP_EncryptUpdate (
             ctx, out->data + offset, &len, plain, (int)plain_len)
             == 1
      && EVP_EncryptFinal_ex (ctx, out->data + offset + len, &len) == 1
      && EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, STORE_TAG_LEN,
             out->data + offset + plain_len)
             == 1)
    ok = TRUE;

  EVP_CIPHER_CTX_free (ctx);
  mrtc_olm_wipe (key, sizeof (key));
  return ok;
}

static guint8 *
store_open (MrtcOlmAccount *account, const guint8 *data, gsize data_len,
    gsize *plain_len, GError **error)
{
  guint8 key[32];
  EVP_CIPHER_CTX *ctx;
  const guint8 *nonce, *cipher, *tag;
  gsize cipher_len;
  guint8 *plain;
  int len = 0;
  gboolean ok = FALSE;

  if (data_len < STORE_MAGIC_LEN + STORE_NONCE_LEN + STORE_TAG_LEN
      || memcmp (data, STORE_MAGIC, STORE_MAGIC_LEN) != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "not a gst-matrixrtc Olm store");
    return NULL;
  }
  nonce = data + STORE_MAGIC_LEN;
  cipher = nonce + STORE_NONCE_LEN;
  cipher_len = data_len - STORE_MAGIC_LEN - STORE_NONCE_LEN - STORE_TAG_LEN;
  tag = cipher + cipher_len;
  if (!store_key (account, key)) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "cannot derive the Olm store key");
    return NULL;
  }
  plain = g_malloc (cipher_len + 1);
  ctx = EVP_CIPHER_CTX_new ();
  if (ctx != NULL
      && EVP_DecryptInit_ex (ctx, EVP_aes_256_gcm (), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl (
             ctx, EVP_CTRL_GCM_SET_IVLEN, STORE_NONCE_LEN, NULL)
             == 1
      && EVP_DecryptInit_ex (ctx, NULL, NULL, key, nonce) == 1
      && EVP_DecryptUpdate (
             ctx, NULL, &len, (const guint8 *)STORE_MAGIC, STORE_MAGIC_LEN)
             == 1
      && EVP_DecryptUpdate (ctx, plain, &len, cipher, (int)cipher_len) == 1
      && EVP_CIPHER_CTX_ctrl (
             ctx, EVP_CTRL_GCM_SET_TAG, STORE_TAG_LEN, (void *)tag)
             == 1
      && EVP_DecryptFinal_ex (ctx, plain + len, &len) == 1)
    ok = TRUE;
  EVP_CIPHER_CTX_free (ctx);
  mrtc_olm_wipe (key, sizeof (key));

  if (!ok) {
    mrtc_olm_wipe (plain, cipher_len);
    g_free (plain);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "cannot decrypt the Olm store (wrong pickle key or corrupted file)");
    return NULL;
  }
  plain[cipher_len] = '\0';
  *plain_len = cipher_len;
  return plain;
}

/* ------------------------------------------------------------------------ */
/* Store serialisation */

static gchar *
store_serialize (MrtcOlmAccount *account, GError **error)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (JsonGenerator) generator = NULL;
  GHashTableIter iter;
  gpointer key, value;
  gchar *pickle;

  pickle = pickle_account (account);
  if (pickle == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "cannot pickle the Olm account: %s",
        olm_account_last_error (account->olm));
    return NULL;
  }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, STORE_VERSION);
  json_builder_set_member_name (builder, "user_id");
  json_builder_add_string_value (builder, account->user_id);
  json_builder_set_member_name (builder, "device_id");
  json_builder_add_string_value (builder, account->device_id);
  json_builder_set_member_name (builder, "account");
  json_builder_add_string_value (builder, pickle);
  mrtc_olm_wipe_string (pickle);
  json_builder_set_member_name (builder, "device_keys_published");
  json_builder_add_boolean_value (builder, account->device_keys_published);

  json_builder_set_member_name (builder, "devices");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->devices);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MrtcOlmDevice *device = value;

    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "user_id");
    json_builder_add_string_value (builder, device->user_id);
    json_builder_set_member_name (builder, "device_id");
    json_builder_add_string_value (builder, device->device_id);
    json_builder_set_member_name (builder, "curve25519");
    json_builder_add_string_value (builder, device->curve25519);
    json_builder_set_member_name (builder, "ed25519");
    json_builder_add_string_value (builder, device->ed25519);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "removed_devices");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->removed_devices);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MrtcOlmRemovedDevice *removed = value;

    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "user_id");
    json_builder_add_string_value (builder, removed->device->user_id);
    json_builder_set_member_name (builder, "device_id");
    json_builder_add_string_value (builder, removed->device->device_id);
    json_builder_set_member_name (builder, "curve25519");
    json_builder_add_string_value (builder, removed->device->curve25519);
    json_builder_set_member_name (builder, "ed25519");
    json_builder_add_string_value (builder, removed->device->ed25519);
    json_builder_set_member_name (builder, "removed_at");
    json_builder_add_int_value (builder, removed->removed_at);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "retired_sessions");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->retired_sessions);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    GPtrArray *ids = value;
    guint i;

    json_builder_begin_object (builder);
    json_builder_set_member_name (builder, "peer_curve25519");
    json_builder_add_string_value (builder, key);
    json_builder_set_member_name (builder, "session_ids");
    json_builder_begin_array (builder);
    for (i = 0; i < ids->len; i++)
      json_builder_add_string_value (builder, g_ptr_array_index (ids, i));
    json_builder_end_array (builder);
    json_builder_end_object (builder);
  }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "fallback_published_at");
  json_builder_add_int_value (builder, account->fallback_published_at);

  json_builder_set_member_name (builder, "sessions");
  json_builder_begin_array (builder);
  g_hash_table_iter_init (&iter, account->sessions);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    GPtrArray *entries = value;
    guint i;

    for (i = 0; i < entries->len; i++) {
      MrtcOlmSessionEntry *entry = g_ptr_array_index (entries, i);

      pickle = pickle_session (account, entry->session);
      if (pickle == NULL)
        continue;
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "peer_curve25519");
      json_builder_add_string_value (builder, key);
      json_builder_set_member_name (builder, "last_used");
      json_builder_add_int_value (builder, entry->last_used);
      json_builder_set_member_name (builder, "pickle");
      json_builder_add_string_value (builder, pickle);
      mrtc_olm_wipe_string (pickle);
      json_builder_end_object (builder);
    }
  }
  json_builder_end_array (builder);

  mrtc_olm_megolm_save (account, builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  generator = json_generator_new ();
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

static gboolean
store_load_sessions (MrtcOlmAccount *account, JsonArray *array, GError **error)
{
  guint i;

  for (i = 0; array != NULL && i < json_array_get_length (array); i++) {
    JsonObject *o = json_array_get_object_element (array, i);
    const gchar *peer = mrtc_olm_json_get_string (o, "peer_curve25519");
    const gchar *pickle = mrtc_olm_json_get_string (o, "pickle");
    MrtcOlmSessionEntry *entry;
    GPtrArray *entries;
    gchar *copy;
    OlmSession *session;

    if (peer == NULL || pickle == NULL) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
          "malformed session in store");
      return FALSE;
    }
    session = session_alloc ();
    copy = g_strdup (pickle);
    if (olm_unpickle_session (session, account->pickle_key,
            account->pickle_key_len, copy, strlen (copy))
        == olm_error ()) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
          "cannot unpickle an Olm session: %s",
          olm_session_last_error (session));
      mrtc_olm_wipe_string (copy);
      session_free (session);
      return FALSE;
    }
    mrtc_olm_wipe_string (copy);
    entry = g_new0 (MrtcOlmSessionEntry, 1);
    entry->session = session;
    entry->session_id = session_get_id (session);
    entry->last_used
        = json_object_get_int_member_with_default (o, "last_used", 0);
    entries = g_hash_table_lookup (account->sessions, peer);
    if (entries == NULL) {
      entries = g_ptr_array_new_with_free_func (session_entry_free);
      g_hash_table_insert (account->sessions, g_strdup (peer), entries);
    }
    g_ptr_array_add (entries, entry);
  }
  return TRUE;
}

static gboolean
store_load (
    MrtcOlmAccount *account, const gchar *text, gsize len, GError **error)
{
  g_autoptr (JsonObject) store
      = mrtc_olm_json_object_from_string (text, len, error);
  const gchar *pickle;
  gchar *copy;
  JsonNode *node;
  guint i;

  if (store == NULL)
    return FALSE;
  if (json_object_get_int_member_with_default (store, "version", 0)
      != STORE_VERSION) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "unsupported Olm store version");
    return FALSE;
  }
  if (g_strcmp0 (mrtc_olm_json_get_string (store, "user_id"), account->user_id)
          != 0
      || g_strcmp0 (
             mrtc_olm_json_get_string (store, "device_id"), account->device_id)
             != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "the Olm store belongs to another user or device");
    return FALSE;
  }
  pickle = mrtc_olm_json_get_string (store, "account");
  if (pickle == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "the Olm store has no account");
    return FALSE;
  }
  copy = g_strdup (pickle);
  if (olm_unpickle_account (account->olm, account->pickle_key,
          account->pickle_key_len, copy, strlen (copy))
      == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "cannot unpickle the Olm account: %s",
        olm_account_last_error (account->olm));
    mrtc_olm_wipe_string (copy);
    return FALSE;
  }
  mrtc_olm_wipe_string (copy);
  account->device_keys_published = json_object_get_boolean_member_with_default (
      store, "device_keys_published", FALSE);

  node = json_object_get_member (store, "devices");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *array = json_node_get_array (node);

    for (i = 0; i < json_array_get_length (array); i++) {
      JsonObject *o = json_array_get_object_element (array, i);
      const gchar *u = mrtc_olm_json_get_string (o, "user_id");
      const gchar *d = mrtc_olm_json_get_string (o, "device_id");
      const gchar *c = mrtc_olm_json_get_string (o, "curve25519");
      const gchar *e = mrtc_olm_json_get_string (o, "ed25519");

      if (u == NULL || d == NULL || c == NULL || e == NULL)
        continue;
      g_hash_table_replace (account->devices, device_key (u, d),
          mrtc_olm_device_new (u, d, c, e));
    }
  }

  node = json_object_get_member (store, "removed_devices");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *array = json_node_get_array (node);

    for (i = 0; i < json_array_get_length (array); i++) {
      JsonObject *o = json_array_get_object_element (array, i);
      const gchar *u = mrtc_olm_json_get_string (o, "user_id");
      const gchar *d = mrtc_olm_json_get_string (o, "device_id");
      const gchar *c = mrtc_olm_json_get_string (o, "curve25519");
      const gchar *e = mrtc_olm_json_get_string (o, "ed25519");
      MrtcOlmRemovedDevice *removed;

      if (u == NULL || d == NULL || c == NULL || e == NULL)
        continue;
      removed = g_new0 (MrtcOlmRemovedDevice, 1);
      removed->device = mrtc_olm_device_new (u, d, c, e);
      removed->removed_at
          = json_object_get_int_member_with_default (o, "removed_at", 0);
      g_hash_table_replace (
          account->removed_devices, device_key (u, d), removed);
    }
  }

  node = json_object_get_member (store, "retired_sessions");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node)) {
    JsonArray *array = json_node_get_array (node);

    for (i = 0; i < json_array_get_length (array); i++) {
      JsonObject *o = json_array_get_object_element (array, i);
      const gchar *peer = mrtc_olm_json_get_string (o, "peer_curve25519");
      JsonNode *ids_node
          = o != NULL ? json_object_get_member (o, "session_ids") : NULL;
      JsonArray *ids;
      guint j;

      if (peer == NULL || ids_node == NULL || !JSON_NODE_HOLDS_ARRAY (ids_node))
        continue;
      ids = json_node_get_array (ids_node);
      for (j = 0; j < json_array_get_length (ids); j++) {
        JsonNode *id = json_array_get_element (ids, j);

        if (JSON_NODE_HOLDS_VALUE (id)
            && json_node_get_value_type (id) == G_TYPE_STRING)
          retire_session_id (account, peer, json_node_get_string (id));
      }
    }
  }
  account->fallback_published_at = json_object_get_int_member_with_default (
      store, "fallback_published_at", 0);

  node = json_object_get_member (store, "sessions");
  if (!store_load_sessions (account,
          node != NULL && JSON_NODE_HOLDS_ARRAY (node)
              ? json_node_get_array (node)
              : NULL,
          error))
    return FALSE;
  if (!mrtc_olm_megolm_load (account, store, error))
    return FALSE;
  /* Loading changed nothing that needs saving. */
  account->dirty = FALSE;
  return TRUE;
}

/**
 * mrtc_olm_account_save:
 * @account: the account
 * @error: return location for an error
 *
 * Writes the whole state to the store (no-op without a store path): the
 * file is replaced atomically and created with mode 0600. Call it after
 * each batch of changes and before sending what they produced (an uploaded
 * one-time key, an Olm or Megolm message). The file is rewritten whole each
 * time; what peers can add to it is bounded (see #MrtcOlmAccount).
 *
 * Returns: %TRUE on success.
 */
gboolean
mrtc_olm_account_save (MrtcOlmAccount *account, GError **error)
{
  g_autofree gchar *dir = NULL;
  gchar *plain;
  GByteArray *sealed;
  GError *local = NULL;
  gboolean ok;

  if (account->store_path == NULL) {
    account->dirty = FALSE;
    return TRUE;
  }
  plain = store_serialize (account, error);
  if (plain == NULL)
    return FALSE;
  sealed = g_byte_array_new ();
  ok = store_seal (account, (const guint8 *)plain, strlen (plain), sealed);
  mrtc_olm_wipe_string (plain);
  if (!ok) {
    g_byte_array_unref (sealed);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "cannot encrypt the Olm store");
    return FALSE;
  }

  dir = g_path_get_dirname (account->store_path);
  if (g_mkdir_with_parents (dir, 0700) != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "cannot create %s: %s", dir, g_strerror (errno));
    g_byte_array_unref (sealed);
    return FALSE;
  }
  ok = g_file_set_contents_full (account->store_path,
      (const gchar *)sealed->data, sealed->len,
      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0600,
      &local);
  g_byte_array_unref (sealed);
  if (!ok) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
        "cannot write the Olm store: %s", local->message);
    g_error_free (local);
    return FALSE;
  }
  account->dirty = FALSE;
  return TRUE;
}

/**
 * mrtc_olm_account_is_dirty:
 * @account: the account
 *
 * Returns: %TRUE if the state changed since it was last saved.
 */
gboolean
mrtc_olm_account_is_dirty (MrtcOlmAccount *account)
{
  return account->dirty;
}

/**
 * mrtc_olm_account_open:
 * @user_id: the account's Matrix user
 * @device_id: the device id the homeserver gave at login
 * @store_path: (nullable): the store file; %NULL keeps everything in
 *   memory (tests)
 * @pickle_key: the secret the store is encrypted with
 * @pickle_key_len: its length (at least 16 bytes)
 * @error: return location for an error
 *
 * Loads the account from @store_path, or creates a new identity and saves
 * it there when the file does not exist yet. A store that exists but cannot
 * be decrypted, or that belongs to another user or device, is an error
 * (never silently replaced).
 *
 * Returns: (transfer full) (nullable): the account.
 */
MrtcOlmAccount *
mrtc_olm_account_open (const gchar *user_id, const gchar *device_id,
    const gchar *store_path, const guint8 *pickle_key, gsize pickle_key_len,
    GError **error)
{
  g_autoptr (MrtcOlmAccount) account = NULL;
  gchar *contents = NULL;
  gsize contents_len = 0;
  GError *local = NULL;

  g_return_val_if_fail (user_id != NULL && device_id != NULL, NULL);
  if (pickle_key == NULL || pickle_key_len < 16) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "the pickle key must have at least 16 bytes");
    return NULL;
  }

  account = g_new0 (MrtcOlmAccount, 1);
  account->user_id = g_strdup (user_id);
  account->device_id = g_strdup (device_id);
  account->store_path = g_strdup (store_path);
  account->pickle_key = g_memdup2 (pickle_key, pickle_key_len);
  account->pickle_key_len = pickle_key_len;
  account->olm = olm_account (g_malloc0 (olm_account_size ()));
  account->devices = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)mrtc_olm_device_free);
  account->removed_devices = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, removed_device_free);
  account->sessions = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  account->retired_sessions = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  mrtc_olm_megolm_init (account);

  if (store_path != NULL
      && g_file_get_contents (store_path, &contents, &contents_len, &local)) {
    gsize plain_len = 0;
    guint8 *plain = store_open (
        account, (const guint8 *)contents, contents_len, &plain_len, error);
    gboolean ok;

    g_free (contents);
    if (plain == NULL)
      return NULL;
    ok = store_load (account, (const gchar *)plain, plain_len, error);
    mrtc_olm_wipe (plain, plain_len);
    g_free (plain);
    if (!ok)
      return NULL;
  } else {
    gsize random_len;
    guint8 *random;

    if (local != NULL
        && !g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_STORE,
          "cannot read the Olm store: %s", local->message);
      g_error_free (local);
      return NULL;
    }
    g_clear_error (&local);
    random_len = olm_create_account_random_length (account->olm);
    random = g_malloc (random_len);
    mrtc_olm_random_bytes (random, random_len);
    if (olm_create_account (account->olm, random, random_len) == olm_error ()) {
      mrtc_olm_wipe (random, random_len);
      g_free (random);
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
          "olm_create_account: %s", olm_account_last_error (account->olm));
      return NULL;
    }
    mrtc_olm_wipe (random, random_len);
    g_free (random);
    account->dirty = TRUE;
  }

  if (!read_identity_keys (account, error))
    return NULL;
  if (account->dirty && !mrtc_olm_account_save (account, error))
    return NULL;
  return g_steal_pointer (&account);
}

void
mrtc_olm_account_free (MrtcOlmAccount *account)
{
  if (account == NULL)
    return;
  g_free (account->user_id);
  g_free (account->device_id);
  g_free (account->store_path);
  mrtc_olm_wipe (account->pickle_key, account->pickle_key_len);
  g_free (account->pickle_key);
  if (account->olm != NULL) {
    olm_clear_account (account->olm);
    g_free (account->olm);
  }
  g_free (account->curve25519);
  g_free (account->ed25519);
  g_clear_pointer (&account->devices, g_hash_table_unref);
  g_clear_pointer (&account->removed_devices, g_hash_table_unref);
  g_clear_pointer (&account->sessions, g_hash_table_unref);
  g_clear_pointer (&account->retired_sessions, g_hash_table_unref);
  g_clear_pointer (&account->outbound_groups, g_hash_table_unref);
  g_clear_pointer (&account->inbound_groups, g_hash_table_unref);
  g_free (account);
}

const gchar *
mrtc_olm_account_get_user_id (MrtcOlmAccount *account)
{
  return account->user_id;
}

const gchar *
mrtc_olm_account_get_device_id (MrtcOlmAccount *account)
{
  return account->device_id;
}

const gchar *
mrtc_olm_account_get_curve25519 (MrtcOlmAccount *account)
{
  return account->curve25519;
}

const gchar *
mrtc_olm_account_get_ed25519 (MrtcOlmAccount *account)
{
  return account->ed25519;
}

/**
 * mrtc_olm_account_sign:
 * @account: the account
 * @message: text to sign
 *
 * Returns: (transfer full): the Ed25519 signature (unpadded base64).
 */
gchar *
mrtc_olm_account_sign (MrtcOlmAccount *account, const gchar *message)
{
  gsize len = olm_account_signature_length (account->olm);
  gchar *signature = g_malloc0 (len + 1);

  if (olm_account_sign (account->olm, message, strlen (message), signature, len)
      == olm_error ())
    g_error ("olm_account_sign: %s", olm_account_last_error (account->olm));
  return signature;
}

/**
 * mrtc_olm_account_sign_json:
 * @account: the account
 * @object: a JSON object
 * @error: return location for an error
 *
 * Adds this device's signature `signatures.<user>.ed25519:<device>` to
 * @object (keeping other signatures).
 *
 * Returns: %TRUE on success.
 */
static void
add_signature (
    MrtcOlmAccount *account, JsonObject *object, const gchar *canonical)
{
  g_autofree gchar *signature = mrtc_olm_account_sign (account, canonical);
  g_autofree gchar *key_id = g_strconcat ("ed25519:", account->device_id, NULL);
  JsonObject *sigs, *mine;

  sigs = mrtc_olm_json_get_object (object, "signatures");
  if (sigs == NULL) {
    sigs = json_object_new ();
    json_object_set_object_member (object, "signatures", sigs);
  }
  mine = mrtc_olm_json_get_object (sigs, account->user_id);
  if (mine == NULL) {
    mine = json_object_new ();
    json_object_set_object_member (sigs, account->user_id, mine);
  }
  json_object_set_string_member (mine, key_id, signature);
}

gboolean
mrtc_olm_account_sign_json (
    MrtcOlmAccount *account, JsonObject *object, GError **error)
{
  g_autofree gchar *canonical
      = mrtc_olm_canonical_json_for_signing (object, error);

  if (canonical == NULL)
    return FALSE;
  add_signature (account, object, canonical);
  return TRUE;
}

/* For objects built here, which are always valid canonical JSON. */
static void
sign_json_or_die (MrtcOlmAccount *account, JsonObject *object)
{
  g_autofree gchar *canonical
      = mrtc_olm_canonical_json_for_signing (object, NULL);

  g_assert (canonical != NULL);
  add_signature (account, object, canonical);
}

/* ------------------------------------------------------------------------ */
/* Keys for /keys/upload */

/**
 * mrtc_olm_account_device_keys:
 * @account: the account
 *
 * Returns: (transfer full): the signed `device_keys` object of this device.
 */
JsonObject *
mrtc_olm_account_device_keys (MrtcOlmAccount *account)
{
  JsonObject *device_keys = json_object_new ();
  JsonArray *algorithms = json_array_new ();
  JsonObject *keys = json_object_new ();
  g_autofree gchar *curve_id
      = g_strconcat ("curve25519:", account->device_id, NULL);
  g_autofree gchar *ed_id = g_strconcat ("ed25519:", account->device_id, NULL);

  json_object_set_string_member (device_keys, "user_id", account->user_id);
  json_object_set_string_member (device_keys, "device_id", account->device_id);
  json_array_add_string_element (algorithms, MRTC_OLM_ALGORITHM_OLM);
  json_array_add_string_element (algorithms, MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_array_member (device_keys, "algorithms", algorithms);
  json_object_set_string_member (keys, curve_id, account->curve25519);
  json_object_set_string_member (keys, ed_id, account->ed25519);
  json_object_set_object_member (device_keys, "keys", keys);
  sign_json_or_die (account, device_keys);
  return device_keys;
}

/**
 * mrtc_olm_account_device_keys_published:
 * @account: the account
 *
 * Returns: %TRUE once mrtc_olm_account_mark_published() has been called
 *   after an upload that carried the device keys.
 */
gboolean
mrtc_olm_account_device_keys_published (MrtcOlmAccount *account)
{
  return account->device_keys_published;
}

static JsonObject *
olm_key_map (MrtcOlmAccount *account, gboolean fallback)
{
  gsize len = fallback
                  ? olm_account_unpublished_fallback_key_length (account->olm)
                  : olm_account_one_time_keys_length (account->olm);
  g_autofree gchar *text = g_malloc0 (len + 1);
  g_autoptr (JsonObject) all = NULL;
  JsonObject *curve;
  size_t res = fallback ? olm_account_unpublished_fallback_key (
                   account->olm, text, len)
                        : olm_account_one_time_keys (account->olm, text, len);

  if (res == olm_error ())
    return NULL;
  all = mrtc_olm_json_object_from_string (text, res, NULL);
  curve = mrtc_olm_json_get_object (all, "curve25519");
  return curve != NULL ? json_object_ref (curve) : NULL;
}

static JsonObject *
signed_key_map (MrtcOlmAccount *account, gboolean fallback)
{
  g_autoptr (JsonObject) keys = olm_key_map (account, fallback);
  JsonObject *out = json_object_new ();
  GList *members, *l;

  if (keys == NULL)
    return out;
  members = json_object_get_members (keys);
  for (l = members; l != NULL; l = l->next) {
    const gchar *id = l->data;
    const gchar *key = mrtc_olm_json_get_string (keys, id);
    g_autofree gchar *name = g_strconcat ("signed_curve25519:", id, NULL);
    JsonObject *signed_key;

    if (key == NULL)
      continue;
    signed_key = json_object_new ();
    json_object_set_string_member (signed_key, "key", key);
    if (fallback)
      json_object_set_boolean_member (signed_key, "fallback", TRUE);
    sign_json_or_die (account, signed_key);
    json_object_set_object_member (out, name, signed_key);
  }
  g_list_free (members);
  return out;
}

/**
 * mrtc_olm_account_one_time_keys_to_generate:
 * @account: the account
 * @server_count: `one_time_key_counts.signed_curve25519` from the server
 *   (/keys/upload or sync), or 0 when absent
 *
 * Keeps about half of libolm's maximum on the server, as Element does,
 * counting keys generated but not yet published.
 *
 * Returns: how many new one-time keys to generate before the next upload.
 */
guint
mrtc_olm_account_one_time_keys_to_generate (
    MrtcOlmAccount *account, gint64 server_count)
{
  g_autoptr (JsonObject) pending = olm_key_map (account, FALSE);
  gint64 target
      = (gint64)olm_account_max_number_of_one_time_keys (account->olm) / 2;
  gint64 have = MAX (server_count, 0);

  if (pending != NULL)
    have += json_object_get_size (pending);
  return have >= target ? 0 : (guint)(target - have);
}

/**
 * mrtc_olm_account_generate_one_time_keys:
 * @account: the account
 * @count: how many
 *
 * Generates @count one-time keys (kept unpublished until
 * mrtc_olm_account_mark_published()).
 */
void
mrtc_olm_account_generate_one_time_keys (MrtcOlmAccount *account, guint count)
{
  gsize random_len;
  guint8 *random;

  if (count == 0)
    return;
  random_len
      = olm_account_generate_one_time_keys_random_length (account->olm, count);
  random = g_malloc (MAX (random_len, 1));
  mrtc_olm_random_bytes (random, random_len);
  if (olm_account_generate_one_time_keys (
          account->olm, count, random, random_len)
      == olm_error ())
    g_error ("olm_account_generate_one_time_keys: %s",
        olm_account_last_error (account->olm));
  mrtc_olm_wipe (random, random_len);
  g_free (random);
  account->dirty = TRUE;
}

/**
 * mrtc_olm_account_one_time_keys:
 * @account: the account
 *
 * Returns: (transfer full): the unpublished one-time keys, signed, as the
 *   `one_time_keys` object of /keys/upload (possibly empty).
 */
JsonObject *
mrtc_olm_account_one_time_keys (MrtcOlmAccount *account)
{
  return signed_key_map (account, FALSE);
}

/* Forgets the previous fallback key an hour after a new one was published:
 * until then pre-key messages made with it still decrypt (and, since libolm
 * keeps it after use, could be replayed but for the retired session ids). */
static void
maybe_forget_old_fallback_key (MrtcOlmAccount *account)
{
  if (account->fallback_published_at <= 0
      || g_get_real_time () - account->fallback_published_at
             < FALLBACK_FORGET_DELAY_US)
    return;
  olm_account_forget_old_fallback_key (account->olm);
  account->fallback_published_at = 0;
  account->dirty = TRUE;
}

/**
 * mrtc_olm_account_ensure_fallback_key:
 * @account: the account
 * @server_unused_fallback_types: (nullable):
 *   `device_unused_fallback_key_types` from sync
 *
 * Generates a new fallback key when the server has none unused
 * (`signed_curve25519` missing from the list) and none is waiting to be
 * uploaded.
 *
 * Returns: %TRUE if a fallback key is waiting to be uploaded.
 */
gboolean
mrtc_olm_account_ensure_fallback_key (
    MrtcOlmAccount *account, JsonArray *server_unused_fallback_types)
{
  g_autoptr (JsonObject) pending = NULL;
  gboolean server_has = FALSE;
  guint i;

  maybe_forget_old_fallback_key (account);
  pending = olm_key_map (account, TRUE);
  if (pending != NULL && json_object_get_size (pending) > 0)
    return TRUE;
  for (i = 0; server_unused_fallback_types != NULL
              && i < json_array_get_length (server_unused_fallback_types);
       i++) {
    JsonNode *e = json_array_get_element (server_unused_fallback_types, i);

    if (JSON_NODE_HOLDS_VALUE (e)
        && json_node_get_value_type (e) == G_TYPE_STRING
        && g_strcmp0 (json_node_get_string (e), "signed_curve25519") == 0)
      server_has = TRUE;
  }
  if (server_has)
    return FALSE;
  {
    gsize random_len
        = olm_account_generate_fallback_key_random_length (account->olm);
    guint8 *random = g_malloc (MAX (random_len, 1));

    mrtc_olm_random_bytes (random, random_len);
    if (olm_account_generate_fallback_key (account->olm, random, random_len)
        == olm_error ())
      g_error ("olm_account_generate_fallback_key: %s",
          olm_account_last_error (account->olm));
    mrtc_olm_wipe (random, random_len);
    g_free (random);
  }
  account->dirty = TRUE;
  return TRUE;
}

/**
 * mrtc_olm_account_fallback_keys:
 * @account: the account
 *
 * Returns: (transfer full): the unpublished fallback key, signed, as the
 *   `fallback_keys` object of /keys/upload (possibly empty).
 */
JsonObject *
mrtc_olm_account_fallback_keys (MrtcOlmAccount *account)
{
  return signed_key_map (account, TRUE);
}

/**
 * mrtc_olm_account_upload_body:
 * @account: the account
 *
 * Returns: (transfer full): the body of POST /keys/upload: `device_keys`
 *   until they are published, plus the pending one-time and fallback keys.
 */
JsonObject *
mrtc_olm_account_upload_body (MrtcOlmAccount *account)
{
  JsonObject *body = json_object_new ();
  JsonObject *otks = mrtc_olm_account_one_time_keys (account);
  JsonObject *fallback = mrtc_olm_account_fallback_keys (account);

  if (!account->device_keys_published)
    json_object_set_object_member (
        body, "device_keys", mrtc_olm_account_device_keys (account));
  if (json_object_get_size (otks) > 0)
    json_object_set_object_member (body, "one_time_keys", otks);
  else
    json_object_unref (otks);
  if (json_object_get_size (fallback) > 0)
    json_object_set_object_member (body, "fallback_keys", fallback);
  else
    json_object_unref (fallback);
  return body;
}

/**
 * mrtc_olm_account_mark_published:
 * @account: the account
 *
 * Call after /keys/upload succeeded with mrtc_olm_account_upload_body():
 * the device keys, one-time keys and fallback key are then published. The
 * previous fallback key is forgotten an hour after a new one was published
 * (checked here, in mrtc_olm_account_ensure_fallback_key() and in
 * mrtc_olm_account_decrypt_to_device()).
 */
void
mrtc_olm_account_mark_published (MrtcOlmAccount *account)
{
  g_autoptr (JsonObject) fallback = NULL;

  maybe_forget_old_fallback_key (account);
  fallback = olm_key_map (account, TRUE);
  if (fallback != NULL && json_object_get_size (fallback) > 0)
    account->fallback_published_at = g_get_real_time ();
  olm_account_mark_keys_as_published (account->olm);
  account->device_keys_published = TRUE;
  account->dirty = TRUE;
}

/* ------------------------------------------------------------------------ */
/* Devices of others */

/**
 * mrtc_olm_account_add_device:
 * @account: the account
 * @device_keys: the device's `device_keys` from /keys/query
 * @user_id: the user it was listed under
 * @device_id: the device id it was listed under
 * @error: return location for an error
 *
 * Verifies and remembers a device. A device id whose identity keys changed
 * is refused with %MRTC_OLM_ERROR_MISMATCH (the spec forbids reusing device
 * ids with new keys), also when the device was meanwhile removed from its
 * user's device list (the keys of removed devices stay pinned), and so is
 * this account's own device id with keys other than its own.
 *
 * Returns: (transfer none) (nullable): the known device, owned by @account:
 *   valid until mrtc_olm_account_update_user_devices() removes it or
 *   @account is freed (copy it with mrtc_olm_device_copy() to keep it).
 */
const MrtcOlmDevice *
mrtc_olm_account_add_device (MrtcOlmAccount *account, JsonObject *device_keys,
    const gchar *user_id, const gchar *device_id, GError **error)
{
  MrtcOlmDevice *device
      = mrtc_olm_verify_device_keys (device_keys, user_id, device_id, error);
  MrtcOlmDevice *known;
  MrtcOlmRemovedDevice *removed;
  gchar *key;

  if (device == NULL)
    return NULL;
  if (g_strcmp0 (user_id, account->user_id) == 0
      && g_strcmp0 (device_id, account->device_id) == 0
      && (g_strcmp0 (device->curve25519, account->curve25519) != 0
          || g_strcmp0 (device->ed25519, account->ed25519) != 0)) {
    mrtc_olm_device_free (device);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "device keys listed for our own device %s %s are not ours: refused",
        user_id, device_id);
    return NULL;
  }
  key = device_key (user_id, device_id);
  known = g_hash_table_lookup (account->devices, key);
  if (known != NULL) {
    gboolean same = g_strcmp0 (known->ed25519, device->ed25519) == 0
                    && g_strcmp0 (known->curve25519, device->curve25519) == 0;

    mrtc_olm_device_free (device);
    g_free (key);
    if (!same) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
          "device %s %s changed its identity keys: refused", user_id,
          device_id);
      return NULL;
    }
    return known;
  }
  removed = g_hash_table_lookup (account->removed_devices, key);
  if (removed != NULL) {
    if (g_strcmp0 (removed->device->ed25519, device->ed25519) != 0
        || g_strcmp0 (removed->device->curve25519, device->curve25519) != 0) {
      mrtc_olm_device_free (device);
      g_free (key);
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
          "device %s %s came back with other identity keys: refused", user_id,
          device_id);
      return NULL;
    }
    g_hash_table_remove (account->removed_devices, key);
  }
  g_hash_table_insert (account->devices, key, device);
  account->dirty = TRUE;
  return device;
}

/* Moves a device out of the device table, keeping its keys pinned. */
static void
remember_removed_device (MrtcOlmAccount *account, const MrtcOlmDevice *device)
{
  MrtcOlmRemovedDevice *removed = g_new0 (MrtcOlmRemovedDevice, 1);

  removed->device = mrtc_olm_device_copy (device);
  removed->removed_at = g_get_real_time ();
  g_hash_table_replace (account->removed_devices,
      device_key (device->user_id, device->device_id), removed);
  while (g_hash_table_size (account->removed_devices) > MAX_REMOVED_DEVICES) {
    GHashTableIter iter;
    gpointer key, value;
    gpointer oldest_key = NULL;
    gint64 oldest = G_MAXINT64;

    g_hash_table_iter_init (&iter, account->removed_devices);
    while (g_hash_table_iter_next (&iter, &key, &value)) {
      MrtcOlmRemovedDevice *r = value;

      if (r->removed_at < oldest) {
        oldest = r->removed_at;
        oldest_key = key;
      }
    }
    g_hash_table_remove (account->removed_devices, oldest_key);
  }
}

/**
 * mrtc_olm_account_update_user_devices:
 * @account: the account
 * @user_id: a user
 * @devices: the `device_keys.<user_id>` object of a /keys/query response
 *   (device id → device keys)
 *
 * Replaces the known devices of @user_id by the valid ones of @devices.
 * Invalid entries are logged and skipped. Devices no longer listed are
 * removed (pointers to them become invalid), but their identity keys stay
 * pinned: if the device id is listed again later, it must have the same
 * keys (see mrtc_olm_account_add_device()).
 *
 * Returns: the number of devices accepted.
 */
guint
mrtc_olm_account_update_user_devices (
    MrtcOlmAccount *account, const gchar *user_id, JsonObject *devices)
{
  GHashTableIter iter;
  gpointer key, value;
  GList *members, *l;
  guint accepted = 0;
  g_autoptr (GHashTable) listed = g_hash_table_new (g_str_hash, g_str_equal);

  members = devices != NULL ? json_object_get_members (devices) : NULL;
  for (l = members; l != NULL; l = l->next) {
    const gchar *device_id = l->data;
    JsonObject *keys = mrtc_olm_json_get_object (devices, device_id);
    GError *error = NULL;

    if (keys == NULL
        || mrtc_olm_account_add_device (
               account, keys, user_id, device_id, &error)
               == NULL) {
      g_message ("ignoring device keys of %s %s: %s", user_id, device_id,
          error != NULL ? error->message : "not an object");
      g_clear_error (&error);
      continue;
    }
    g_hash_table_add (listed, (gpointer)device_id);
    accepted++;
  }

  g_hash_table_iter_init (&iter, account->devices);
  while (g_hash_table_iter_next (&iter, &key, &value)) {
    MrtcOlmDevice *device = value;

    if (g_strcmp0 (device->user_id, user_id) == 0
        && !g_hash_table_contains (listed, device->device_id)) {
      remember_removed_device (account, device);
      g_hash_table_iter_remove (&iter);
      account->dirty = TRUE;
    }
  }
  g_list_free (members);
  return accepted;
}

/**
 * mrtc_olm_account_lookup_device:
 * @account: the account
 * @user_id: user
 * @device_id: device
 *
 * Returns: (transfer none) (nullable): the verified device, if known; owned
 *   by @account and valid until mrtc_olm_account_update_user_devices()
 *   removes it or @account is freed.
 */
const MrtcOlmDevice *
mrtc_olm_account_lookup_device (
    MrtcOlmAccount *account, const gchar *user_id, const gchar *device_id)
{
  g_autofree gchar *key = device_key (user_id, device_id);

  return g_hash_table_lookup (account->devices, key);
}

/**
 * mrtc_olm_account_list_devices:
 * @account: the account
 * @user_id: (nullable): a user, or %NULL for all
 *
 * Returns: (transfer container) (element-type MrtcOlmDevice): the known
 *   devices (owned by @account: valid until
 *   mrtc_olm_account_update_user_devices() removes them or @account is
 *   freed).
 */
GPtrArray *
mrtc_olm_account_list_devices (MrtcOlmAccount *account, const gchar *user_id)
{
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, account->devices);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MrtcOlmDevice *device = value;

    if (user_id == NULL || g_strcmp0 (device->user_id, user_id) == 0)
      g_ptr_array_add (out, device);
  }
  return out;
}

static const MrtcOlmDevice *
lookup_device_by_curve (
    MrtcOlmAccount *account, const gchar *user_id, const gchar *curve25519)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, account->devices);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    MrtcOlmDevice *device = value;

    if (g_strcmp0 (device->user_id, user_id) == 0
        && g_strcmp0 (device->curve25519, curve25519) == 0)
      return device;
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Olm sessions */

static MrtcOlmSessionEntry *
add_session (
    MrtcOlmAccount *account, const gchar *peer_curve25519, OlmSession *session)
{
  GPtrArray *entries = g_hash_table_lookup (account->sessions, peer_curve25519);
  MrtcOlmSessionEntry *entry = g_new0 (MrtcOlmSessionEntry, 1);

  entry->session = session;
  entry->session_id = session_get_id (session);
  entry->last_used = g_get_real_time ();
  if (entries == NULL) {
    entries = g_ptr_array_new_with_free_func (session_entry_free);
    g_hash_table_insert (
        account->sessions, g_strdup (peer_curve25519), entries);
  }
  g_ptr_array_add (entries, entry);

  /* Drop the least recently used sessions beyond the limit. */
  while (entries->len > MAX_SESSIONS_PER_DEVICE) {
    guint i, oldest = 0;

    for (i = 1; i < entries->len; i++) {
      MrtcOlmSessionEntry *e = g_ptr_array_index (entries, i);
      MrtcOlmSessionEntry *o = g_ptr_array_index (entries, oldest);

      if (e->last_used < o->last_used)
        oldest = i;
    }
    retire_session_id (account, peer_curve25519,
        ((MrtcOlmSessionEntry *)g_ptr_array_index (entries, oldest))
            ->session_id);
    g_ptr_array_remove_index (entries, oldest);
  }
  account->dirty = TRUE;
  return entry;
}

static MrtcOlmSessionEntry *
preferred_session (MrtcOlmAccount *account, const gchar *peer_curve25519)
{
  GPtrArray *entries = g_hash_table_lookup (account->sessions, peer_curve25519);
  MrtcOlmSessionEntry *best = NULL;
  guint i;

  for (i = 0; entries != NULL && i < entries->len; i++) {
    MrtcOlmSessionEntry *e = g_ptr_array_index (entries, i);

    if (best == NULL || e->last_used >= best->last_used)
      best = e;
  }
  return best;
}

/**
 * mrtc_olm_account_has_session:
 * @account: the account
 * @device: a peer device
 *
 * Returns: %TRUE if an Olm session with @device exists (otherwise claim one
 *   of its one-time keys and call
 *   mrtc_olm_account_create_outbound_session()).
 */
gboolean
mrtc_olm_account_has_session (
    MrtcOlmAccount *account, const MrtcOlmDevice *device)
{
  return preferred_session (account, device->curve25519) != NULL;
}

/**
 * mrtc_olm_account_create_outbound_session:
 * @account: the account
 * @device: the verified peer device
 * @claimed_keys: the `one_time_keys.<user>.<device>` object of a
 *   /keys/claim response (`signed_curve25519:<id>` → signed key)
 * @error: return location for an error
 *
 * Checks the claimed key's signature by @device and starts an Olm session
 * with it; it becomes the session used to encrypt to @device.
 *
 * Returns: %TRUE on success.
 */
gboolean
mrtc_olm_account_create_outbound_session (MrtcOlmAccount *account,
    const MrtcOlmDevice *device, JsonObject *claimed_keys, GError **error)
{
  g_autofree gchar *ed_id = g_strconcat ("ed25519:", device->device_id, NULL);
  GList *members, *l;
  JsonObject *signed_key = NULL;
  const gchar *one_time_key;
  OlmSession *session;
  gsize random_len;
  guint8 *random;
  gsize raw_len = 0;
  g_autofree guint8 *raw = NULL;

  members
      = claimed_keys != NULL ? json_object_get_members (claimed_keys) : NULL;
  for (l = members; l != NULL && signed_key == NULL; l = l->next) {
    if (g_str_has_prefix (l->data, "signed_curve25519:"))
      signed_key = mrtc_olm_json_get_object (claimed_keys, l->data);
  }
  g_list_free (members);
  one_time_key = mrtc_olm_json_get_string (signed_key, "key");
  if (one_time_key == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "no signed_curve25519 one-time key claimed for %s %s", device->user_id,
        device->device_id);
    return FALSE;
  }
  raw = mrtc_olm_base64_decode_strict (one_time_key, FALSE, &raw_len);
  if (raw == NULL || raw_len != 32) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "malformed one-time key from %s %s", device->user_id,
        device->device_id);
    return FALSE;
  }
  if (!mrtc_olm_verify_signature (
          signed_key, device->user_id, ed_id, device->ed25519, error))
    return FALSE;

  session = session_alloc ();
  random_len = olm_create_outbound_session_random_length (session);
  random = g_malloc (random_len);
  mrtc_olm_random_bytes (random, random_len);
  if (olm_create_outbound_session (session, account->olm, device->curve25519,
          strlen (device->curve25519), one_time_key, strlen (one_time_key),
          random, random_len)
      == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "olm_create_outbound_session: %s", olm_session_last_error (session));
    mrtc_olm_wipe (random, random_len);
    g_free (random);
    session_free (session);
    return FALSE;
  }
  mrtc_olm_wipe (random, random_len);
  g_free (random);
  add_session (account, device->curve25519, session);
  return TRUE;
}

static gchar *
build_olm_plaintext (MrtcOlmAccount *account, const MrtcOlmDevice *recipient,
    const gchar *type, JsonObject *content)
{
  g_autoptr (JsonObject) payload = json_object_new ();
  JsonObject *recipient_keys = json_object_new ();
  JsonObject *keys = json_object_new ();

  json_object_set_string_member (payload, "type", type);
  json_object_set_object_member (payload, "content", json_object_ref (content));
  json_object_set_string_member (payload, "sender", account->user_id);
  json_object_set_string_member (payload, "sender_device", account->device_id);
  json_object_set_string_member (payload, "recipient", recipient->user_id);
  json_object_set_string_member (recipient_keys, "ed25519", recipient->ed25519);
  json_object_set_object_member (payload, "recipient_keys", recipient_keys);
  json_object_set_string_member (keys, "ed25519", account->ed25519);
  json_object_set_object_member (payload, "keys", keys);
  /* MSC4147: lets the recipient check our keys before it has queried them. */
  json_object_set_object_member (
      payload, "sender_device_keys", mrtc_olm_account_device_keys (account));
  return mrtc_olm_json_object_to_string (payload);
}

static JsonObject *
encrypt_with_session (MrtcOlmAccount *account, MrtcOlmSessionEntry *entry,
    const MrtcOlmDevice *recipient, gchar *plaintext, JsonObject *ciphertext,
    GError **error)
{
  gsize plain_len = strlen (plaintext);
  gsize random_len = olm_encrypt_random_length (entry->session);
  gsize message_len = olm_encrypt_message_length (entry->session, plain_len);
  gsize message_type = olm_encrypt_message_type (entry->session);
  guint8 *random = g_malloc (MAX (random_len, 1));
  gchar *message = g_malloc0 (message_len + 1);
  JsonObject *one;

  mrtc_olm_random_bytes (random, random_len);
  if (olm_encrypt (entry->session, plaintext, plain_len, random, random_len,
          message, message_len)
      == olm_error ()) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INTERNAL,
        "olm_encrypt: %s", olm_session_last_error (entry->session));
    mrtc_olm_wipe (random, random_len);
    g_free (random);
    g_free (message);
    return NULL;
  }
  mrtc_olm_wipe (random, random_len);
  g_free (random);
  entry->last_used = g_get_real_time ();
  account->dirty = TRUE;

  one = json_object_new ();
  json_object_set_int_member (one, "type", (gint64)message_type);
  json_object_set_string_member (one, "body", message);
  g_free (message);
  json_object_set_object_member (ciphertext, recipient->curve25519, one);
  return ciphertext;
}

/**
 * mrtc_olm_account_encrypt_to_device:
 * @account: the account
 * @recipient: a verified device with an Olm session
 * @type: the inner event type
 * @content: the inner event content
 * @error: return location for an error
 *
 * Returns: (transfer full) (nullable): the content of an `m.room.encrypted`
 *   to-device event for @recipient, or %NULL (%MRTC_OLM_ERROR_NO_SESSION
 *   when there is no session yet).
 */
JsonObject *
mrtc_olm_account_encrypt_to_device (MrtcOlmAccount *account,
    const MrtcOlmDevice *recipient, const gchar *type, JsonObject *content,
    GError **error)
{
  MrtcOlmSessionEntry *entry
      = preferred_session (account, recipient->curve25519);
  gchar *plaintext;
  JsonObject *encrypted, *ciphertext;

  if (entry == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_NO_SESSION,
        "no Olm session with %s %s", recipient->user_id, recipient->device_id);
    return NULL;
  }
  plaintext = build_olm_plaintext (account, recipient, type, content);
  ciphertext = json_object_new ();
  if (encrypt_with_session (
          account, entry, recipient, plaintext, ciphertext, error)
      == NULL) {
    mrtc_olm_wipe_string (plaintext);
    json_object_unref (ciphertext);
    return NULL;
  }
  mrtc_olm_wipe_string (plaintext);

  encrypted = json_object_new ();
  json_object_set_string_member (
      encrypted, "algorithm", MRTC_OLM_ALGORITHM_OLM);
  json_object_set_string_member (encrypted, "sender_key", account->curve25519);
  json_object_set_object_member (encrypted, "ciphertext", ciphertext);
  return encrypted;
}

/**
 * mrtc_olm_account_encrypt_to_devices:
 * @account: the account
 * @recipients: (element-type MrtcOlmDevice): verified devices
 * @type: the inner event type
 * @content: the inner event content
 * @missing: (nullable) (element-type MrtcOlmDevice): receives copies of the
 *   recipients without an Olm session (they are skipped)
 * @error: return location for an error
 *
 * Returns: (transfer full) (nullable): the `messages` object of
 *   PUT /sendToDevice/m.room.encrypted (user → device → content).
 */
JsonObject *
mrtc_olm_account_encrypt_to_devices (MrtcOlmAccount *account,
    GPtrArray *recipients, const gchar *type, JsonObject *content,
    GPtrArray *missing, GError **error)
{
  g_autoptr (JsonObject) messages = json_object_new ();
  guint i;

  for (i = 0; i < recipients->len; i++) {
    const MrtcOlmDevice *device = g_ptr_array_index (recipients, i);
    JsonObject *per_user, *encrypted;
    GError *local = NULL;

    encrypted = mrtc_olm_account_encrypt_to_device (
        account, device, type, content, &local);
    if (encrypted == NULL) {
      if (g_error_matches (local, MRTC_OLM_ERROR, MRTC_OLM_ERROR_NO_SESSION)) {
        g_error_free (local);
        if (missing != NULL)
          g_ptr_array_add (missing, mrtc_olm_device_copy (device));
        continue;
      }
      g_propagate_error (error, local);
      return NULL;
    }
    per_user = mrtc_olm_json_get_object (messages, device->user_id);
    if (per_user == NULL) {
      per_user = json_object_new ();
      json_object_set_object_member (messages, device->user_id, per_user);
    }
    json_object_set_object_member (per_user, device->device_id, encrypted);
  }
  return g_steal_pointer (&messages);
}

static guint8 *
decrypt_with (
    OlmSession *session, gsize type, const gchar *body, gsize *out_len)
{
  gsize body_len = strlen (body);
  g_autofree gchar *copy = g_strndup (body, body_len);
  gsize max_len
      = olm_decrypt_max_plaintext_length (session, type, copy, body_len);
  guint8 *plain;
  gsize res;

  if (max_len == olm_error ())
    return NULL;
  plain = g_malloc (max_len + 1);
  memcpy (copy, body, body_len);
  res = olm_decrypt (session, type, copy, body_len, plain, max_len);
  if (res == olm_error ()) {
    mrtc_olm_wipe (plain, max_len);
    g_free (plain);
    return NULL;
  }
  plain[res] = '\0';
  *out_len = res;
  return plain;
}

static gboolean
check_olm_payload (MrtcOlmAccount *account, JsonObject *payload,
    const gchar *sender, const MrtcOlmDevice *device, GError **error)
{
  JsonObject *recipient_keys
      = mrtc_olm_json_get_object (payload, "recipient_keys");
  JsonObject *keys = mrtc_olm_json_get_object (payload, "keys");
  JsonObject *sender_device_keys
      = mrtc_olm_json_get_object (payload, "sender_device_keys");

  if (mrtc_olm_json_get_string (payload, "type") == NULL
      || mrtc_olm_json_get_object (payload, "content") == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "Olm payload lacks type or content");
    return FALSE;
  }
  if (g_strcmp0 (mrtc_olm_json_get_string (payload, "sender"), sender) != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "Olm payload sender does not match the to-device sender %s", sender);
    return FALSE;
  }
  if (g_strcmp0 (
          mrtc_olm_json_get_string (payload, "recipient"), account->user_id)
          != 0
      || g_strcmp0 (mrtc_olm_json_get_string (recipient_keys, "ed25519"),
             account->ed25519)
             != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "Olm payload from %s is addressed to another recipient", sender);
    return FALSE;
  }
  if (g_strcmp0 (mrtc_olm_json_get_string (keys, "ed25519"), device->ed25519)
      != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
        "Olm payload from %s %s claims another Ed25519 key", sender,
        device->device_id);
    return FALSE;
  }
  if (sender_device_keys != NULL) {
    g_autoptr (MrtcOlmDevice) claimed = mrtc_olm_verify_device_keys (
        sender_device_keys, sender, device->device_id, NULL);

    if (claimed == NULL
        || g_strcmp0 (claimed->curve25519, device->curve25519) != 0
        || g_strcmp0 (claimed->ed25519, device->ed25519) != 0) {
      g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_MISMATCH,
          "sender_device_keys of %s %s do not match its published keys", sender,
          device->device_id);
      return FALSE;
    }
  }
  return TRUE;
}

/**
 * mrtc_olm_account_decrypt_to_device:
 * @account: the account
 * @sender: the `sender` of the to-device event
 * @content: the content of the `m.room.encrypted` to-device event
 * @error: return location for an error
 *
 * Decrypts an Olm to-device message and checks it: the sender key must be
 * a known device of @sender (%MRTC_OLM_ERROR_UNKNOWN_DEVICE otherwise:
 * query @sender's keys and retry; nothing was consumed), and the payload's
 * `sender`, `recipient`, `recipient_keys.ed25519`, `keys.ed25519` (and
 * `sender_device_keys` when present) must match. A pre-key message that
 * matches no session creates one and consumes the one-time key; one that
 * would re-create a session evicted since (a replay, possible with the
 * fallback key, which stays usable) is refused (%MRTC_OLM_ERROR_DECRYPT).
 * Messages whose payload exceeds 64 KiB or is nested too deeply are
 * refused (%MRTC_OLM_ERROR_INVALID).
 *
 * Returns: (transfer full) (nullable): the verified inner event.
 */
MrtcOlmDecrypted *
mrtc_olm_account_decrypt_to_device (MrtcOlmAccount *account,
    const gchar *sender, JsonObject *content, GError **error)
{
  const gchar *sender_key = mrtc_olm_json_get_string (content, "sender_key");
  JsonObject *ciphertext = mrtc_olm_json_get_object (content, "ciphertext");
  JsonObject *mine = mrtc_olm_json_get_object (ciphertext, account->curve25519);
  const gchar *body = mrtc_olm_json_get_string (mine, "body");
  JsonNode *type_node
      = mine != NULL ? json_object_get_member (mine, "type") : NULL;
  const MrtcOlmDevice *device;
  GPtrArray *entries;
  MrtcOlmSessionEntry *used = NULL;
  OlmSession *new_session = NULL;
  guint8 *plain = NULL;
  gsize plain_len = 0;
  gint64 type;
  guint i;
  gboolean matched = FALSE;
  g_autoptr (JsonObject) payload = NULL;
  MrtcOlmDecrypted *out;

  if (sender == NULL
      || g_strcmp0 (mrtc_olm_json_get_string (content, "algorithm"),
             MRTC_OLM_ALGORITHM_OLM)
             != 0) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "not an %s message", MRTC_OLM_ALGORITHM_OLM);
    return NULL;
  }
  if (sender_key == NULL || body == NULL || type_node == NULL
      || !JSON_NODE_HOLDS_VALUE (type_node)
      || json_node_get_value_type (type_node) != G_TYPE_INT64) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "Olm message from %s lacks sender_key or a ciphertext for us", sender);
    return NULL;
  }
  type = json_node_get_int (type_node);
  if (type != 0 && type != 1) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "unknown Olm message type %" G_GINT64_FORMAT, type);
    return NULL;
  }
  if (strlen (body) > MAX_OLM_BODY_LEN) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_INVALID,
        "Olm message from %s too large", sender);
    return NULL;
  }
  maybe_forget_old_fallback_key (account);

  device = lookup_device_by_curve (account, sender, sender_key);
  if (device == NULL) {
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_UNKNOWN_DEVICE,
        "Olm message from an unknown device of %s", sender);
    return NULL;
  }

  entries = g_hash_table_lookup (account->sessions, sender_key);
  for (i = 0; entries != NULL && i < entries->len; i++) {
    MrtcOlmSessionEntry *e = g_ptr_array_index (entries, i);

    if (type == 0) {
      g_autofree gchar *copy = g_strdup (body);

      if (olm_matches_inbound_session_from (
              e->session, sender_key, strlen (sender_key), copy, strlen (copy))
          != 1)
        continue;
      /* Only the session this pre-key message created can decrypt it; if
       * that fails the message is a replay or forged. */
      matched = TRUE;
    }
    plain = decrypt_with (e->session, (gsize)type, body, &plain_len);
    if (plain != NULL) {
      used = e;
      break;
    }
    if (matched)
      break;
  }

  if (plain == NULL && type == 0 && !matched) {
    g_autofree gchar *copy = g_strdup (body);

    new_session = session_alloc ();
    if (olm_create_inbound_session_from (new_session, account->olm, sender_key,
            strlen (sender_key), copy, strlen (copy))
        == olm_error ()) {
      session_free (new_session);
      new_session = NULL;
    } else {
      g_autofree gchar *new_id = session_get_id (new_session);

      if (session_id_retired (account, sender_key, new_id)) {
        /* The pre-key message of a session evicted since: a replay. */
        session_free (new_session);
        new_session = NULL;
        g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT,
            "replayed Olm pre-key message from %s %s", sender,
            device->device_id);
        return NULL;
      }
      plain = decrypt_with (new_session, 0, body, &plain_len);
    }
  }

  if (plain == NULL) {
    if (new_session != NULL)
      session_free (new_session);
    g_set_error (error, MRTC_OLM_ERROR, MRTC_OLM_ERROR_DECRYPT,
        "cannot decrypt Olm message from %s %s", sender, device->device_id);
    return NULL;
  }

  payload = mrtc_olm_json_payload_from_string (
      (const gchar *)plain, plain_len, error);
  mrtc_olm_wipe (plain, plain_len);
  g_free (plain);
  if (payload == NULL
      || !check_olm_payload (account, payload, sender, device, error)) {
    if (new_session != NULL)
      session_free (new_session);
    if (used != NULL)
      account->dirty = TRUE;
    return NULL;
  }

  if (new_session != NULL) {
    olm_remove_one_time_keys (account->olm, new_session);
    used = add_session (account, sender_key, new_session);
  }
  used->last_used = g_get_real_time ();
  account->dirty = TRUE;

  out = g_new0 (MrtcOlmDecrypted, 1);
  out->type = g_strdup (mrtc_olm_json_get_string (payload, "type"));
  out->content
      = json_object_ref (mrtc_olm_json_get_object (payload, "content"));
  out->sender = g_strdup (sender);
  out->sender_device = mrtc_olm_device_copy (device);
  return out;
}
