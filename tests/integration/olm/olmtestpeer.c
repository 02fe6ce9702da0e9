/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "olmtestpeer.h"

#include <gst/gst.h>
#include <string.h>

#include "stackenv.h"

/* ------------------------------------------------------------------------ */
/* Log capture */

static GMutex log_lock;
static GString *log_text;

static GLogWriterOutput
capture_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
    gpointer user_data)
{
  gsize i;

  g_mutex_lock (&log_lock);
  for (i = 0; i < n_fields; i++) {
    if (g_strcmp0 (fields[i].key, "MESSAGE") == 0
        || g_strcmp0 (fields[i].key, "GLIB_DOMAIN") == 0) {
      if (fields[i].length < 0)
        g_string_append (log_text, fields[i].value);
      else
        g_string_append_len (log_text, fields[i].value, fields[i].length);
      g_string_append_c (log_text, ' ');
    }
  }
  g_string_append_c (log_text, '\n');
  g_mutex_unlock (&log_lock);
  if (g_getenv ("OLM_TEST_VERBOSE") != NULL
      || (level
             & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING
                 | G_LOG_LEVEL_MESSAGE))
             != 0)
    return g_log_writer_standard_streams (level, fields, n_fields, user_data);
  return G_LOG_WRITER_HANDLED;
}

static void
capture_gst (GstDebugCategory *category, GstDebugLevel level, const gchar *file,
    const gchar *function, gint line, GObject *object, GstDebugMessage *message,
    gpointer user_data)
{
  g_mutex_lock (&log_lock);
  g_string_append_printf (log_text, "%s %s\n",
      gst_debug_category_get_name (category), gst_debug_message_get (message));
  g_mutex_unlock (&log_lock);
}

/* Every GLib message (debug included, whatever G_MESSAGES_DEBUG says) and
 * every GStreamer debug line at the highest level goes into the capture.
 * Call first thing in main(). */
void
olm_test_capture_logs (void)
{
  g_autofree gchar *gst_debug = g_strdup (g_getenv ("GST_DEBUG"));

  log_text = g_string_new (NULL);
  g_log_set_writer_func (capture_writer, NULL, NULL);
  /* GST_DEBUG applies after our log function replaced the default one. */
  g_unsetenv ("GST_DEBUG");
  gst_init (NULL, NULL);
  gst_debug_add_log_function (capture_gst, NULL, NULL);
  if (g_getenv ("OLM_TEST_VERBOSE") == NULL)
    gst_debug_remove_log_function (gst_debug_log_default);
  gst_debug_set_active (TRUE);
  gst_debug_set_default_threshold (GST_LEVEL_MEMDUMP);
  if (gst_debug != NULL)
    gst_debug_set_threshold_from_string (gst_debug, FALSE);
}

gboolean
olm_test_logs_contain (const gchar *needle)
{
  gboolean found;

  g_mutex_lock (&log_lock);
  found = strstr (log_text->str, needle) != NULL;
  g_mutex_unlock (&log_lock);
  return found;
}

gsize
olm_test_logs_length (void)
{
  gsize len;

  g_mutex_lock (&log_lock);
  len = log_text->len;
  g_mutex_unlock (&log_lock);
  return len;
}

void
olm_test_assert_text_not_logged (const gchar *text)
{
  if (olm_test_logs_contain (text))
    g_error ("a secret (%zu characters) appears in the logs", strlen (text));
}

/* @data must appear neither as base64 (padded, unpadded, URL-safe) nor as
 * hex. */
void
olm_test_assert_secret_not_logged (const guint8 *data, gsize len)
{
  g_autofree gchar *b64 = g_base64_encode (data, len);
  g_autofree gchar *hex = g_malloc0 (len * 2 + 1);
  gsize i;
  gchar *p;

  for (i = 0; i < len; i++)
    g_snprintf (hex + 2 * i, 3, "%02x", data[i]);
  p = strchr (b64, '=');
  if (p != NULL)
    *p = '\0';
  olm_test_assert_text_not_logged (b64);
  olm_test_assert_text_not_logged (hex);
  for (p = b64; *p; p++) {
    if (*p == '+')
      *p = '-';
    else if (*p == '/')
      *p = '_';
  }
  olm_test_assert_text_not_logged (b64);
}

/* The Megolm session keys @peer received (consumed). */
void
olm_test_assert_room_keys_not_logged (OlmTestPeer *peer)
{
  gchar *key;

  while ((key = g_async_queue_try_pop (peer->room_keys)) != NULL) {
    olm_test_assert_text_not_logged (key);
    g_free (key);
  }
}

/* ------------------------------------------------------------------------ */
/* Users */

void
olm_test_key_free (OlmTestKey *key)
{
  if (key == NULL)
    return;
  g_free (key->identity);
  g_bytes_unref (key->key);
  g_free (key->user_id);
  g_free (key->device_id);
  g_free (key);
}

MrtcClient *
olm_test_admin_client (void)
{
  static MrtcClient *admin;

  if (g_once_init_enter (&admin)) {
    GError *error = NULL;

    if (!stack_env_load (&error))
      g_error ("the local stack is not up (tests/env/up): %s", error->message);
    g_once_init_leave (
        &admin, mrtc_client_new (stack_env_get ("MATRIXRTC_HS_URL")));
  }
  return admin;
}

/* Registers a fresh user with Synapse's shared-secret admin API. */
gchar *
olm_test_register_user (
    const gchar *prefix, gchar **localpart, gchar **password)
{
  static gint counter;
  g_autoptr (GError) error = NULL;
  gchar *user_id;

  *localpart = g_strdup_printf ("%s%" G_GINT64_FORMAT "n%d", prefix,
      g_get_real_time (), g_atomic_int_add (&counter, 1));
  *password = g_uuid_string_random ();
  user_id = stack_env_register_user (*localpart, *password, &error);
  g_assert_no_error (error);
  return user_id;
}

/* ------------------------------------------------------------------------ */
/* Peers */

static void
on_key_received (MrtcOlmCallKeys *keys, const gchar *identity, guint index,
    GBytes *key, const gchar *user_id, const gchar *device_id, gpointer data)
{
  OlmTestPeer *peer = data;
  OlmTestKey *k = g_new0 (OlmTestKey, 1);

  k->identity = g_strdup (identity);
  k->index = index;
  k->key = g_bytes_ref (key);
  k->user_id = g_strdup (user_id);
  k->device_id = g_strdup (device_id);
  g_async_queue_push (peer->received, k);
}

static void
on_own_key (MrtcOlmCallKeys *keys, guint index, GBytes *key, gpointer data)
{
  OlmTestPeer *peer = data;
  OlmTestKey *k = g_new0 (OlmTestKey, 1);

  k->index = index;
  k->key = g_bytes_ref (key);
  k->user_id = g_strdup (peer->user_id);
  k->device_id = g_strdup (peer->device_id);
  g_async_queue_push (peer->own, k);
}

static void
on_room_event (MrtcOlmMachine *machine, const gchar *room_id, JsonObject *event,
    gpointer data)
{
  OlmTestPeer *peer = data;

  g_async_queue_push (
      peer->room_events, mrtc_olm_json_object_to_string (event));
}

static void
on_decrypted (MrtcOlmMachine *machine, gpointer decrypted, gpointer data)
{
  OlmTestPeer *peer = data;
  MrtcOlmDecrypted *d = decrypted;

  if (g_strcmp0 (d->type, "m.room_key") == 0
      && mrtc_olm_json_get_string (d->content, "session_key") != NULL)
    g_async_queue_push (peer->room_keys,
        g_strdup (mrtc_olm_json_get_string (d->content, "session_key")));
  g_async_queue_push (
      peer->to_device, g_strdup_printf ("%s %s %s", d->type, d->sender,
                           d->sender_device->device_id));
}

OlmTestPeer *
olm_test_peer_new (const gchar *prefix, const gchar *store_dir)
{
  OlmTestPeer *peer = g_new0 (OlmTestPeer, 1);
  g_autoptr (GError) error = NULL;

  peer->user_id
      = olm_test_register_user (prefix, &peer->localpart, &peer->password);
  peer->member_id = g_uuid_string_random ();
  mrtc_olm_random_bytes (peer->pickle_key, sizeof (peer->pickle_key));
  peer->received = g_async_queue_new_full ((GDestroyNotify)olm_test_key_free);
  peer->own = g_async_queue_new_full ((GDestroyNotify)olm_test_key_free);
  peer->room_events = g_async_queue_new_full (g_free);
  peer->to_device = g_async_queue_new_full (g_free);
  peer->room_keys = g_async_queue_new_full (g_free);
  peer->tokens = g_ptr_array_new_with_free_func (g_free);
  g_assert_true (olm_test_peer_login (peer, NULL, store_dir, &error));
  g_assert_no_error (error);
  return peer;
}

/* Logs in (on @device_id, or a new device) and starts the crypto machine
 * and the sync loop. */
gboolean
olm_test_peer_login (OlmTestPeer *peer, const gchar *device_id,
    const gchar *store_dir, GError **error)
{
  MrtcRequest *req = mrtc_request_new ("POST", "/_matrix/client/v3/login");
  JsonObject *body = json_object_new ();
  JsonObject *ident = json_object_new ();
  g_autoptr (JsonNode) resp = NULL;
  const gchar *token;

  /* A password login whose access token the test knows (to check that it
   * is never logged), then the client uses that token. */
  json_object_set_string_member (body, "type", "m.login.password");
  json_object_set_string_member (ident, "type", "m.id.user");
  json_object_set_string_member (ident, "user", peer->localpart);
  json_object_set_object_member (body, "identifier", ident);
  json_object_set_string_member (body, "password", peer->password);
  if (device_id != NULL)
    json_object_set_string_member (body, "device_id", device_id);
  mrtc_request_set_body_object (req, body);
  req->no_auth = TRUE;
  req->secret_body = TRUE;
  resp = mrtc_client_call (olm_test_admin_client (), req, error);
  if (resp == NULL)
    return FALSE;
  token
      = mrtc_olm_json_get_string (json_node_get_object (resp), "access_token");
  g_assert_nonnull (token);
  g_ptr_array_add (peer->tokens, g_strdup (token));
  peer->client = mrtc_client_new (stack_env_get ("MATRIXRTC_HS_URL"));
  if (!mrtc_client_login_token (peer->client, token,
          mrtc_olm_json_get_string (json_node_get_object (resp), "device_id"),
          error))
    return FALSE;
  g_free (peer->device_id);
  peer->device_id = g_strdup (mrtc_client_get_device_id (peer->client));
  if (store_dir != NULL && peer->store_path == NULL)
    peer->store_path = g_build_filename (store_dir, peer->localpart, NULL);
  peer->machine = mrtc_olm_machine_new (peer->client, peer->store_path,
      peer->pickle_key, sizeof (peer->pickle_key), error);
  if (peer->machine == NULL)
    return FALSE;
  g_signal_connect (
      peer->machine, "room-event", G_CALLBACK (on_room_event), peer);
  g_signal_connect (
      peer->machine, "decrypted", G_CALLBACK (on_decrypted), peer);
  mrtc_client_start_sync (peer->client, 3000);
  return TRUE;
}

void
olm_test_peer_start_keys (OlmTestPeer *peer, const gchar *room_id)
{
  peer->keys = mrtc_olm_call_keys_new (peer->machine, room_id, peer->member_id);
  g_signal_connect (
      peer->keys, "key-received", G_CALLBACK (on_key_received), peer);
  g_signal_connect (peer->keys, "own-key", G_CALLBACK (on_own_key), peer);
}

MrtcOlmMember *
olm_test_peer_member (OlmTestPeer *peer)
{
  g_autofree gchar *identity = mrtc_olm_rtc_backend_identity (
      peer->user_id, peer->device_id, peer->member_id);

  return mrtc_olm_member_new (
      peer->user_id, peer->device_id, peer->member_id, identity, 1000);
}

/* Stops everything but keeps the user, device and store. */
void
olm_test_peer_stop (OlmTestPeer *peer)
{
  if (peer->keys != NULL) {
    mrtc_olm_call_keys_stop (peer->keys);
    g_clear_object (&peer->keys);
  }
  g_clear_object (&peer->machine);
  if (peer->client != NULL) {
    mrtc_client_stop_sync (peer->client);
    g_clear_object (&peer->client);
  }
}

void
olm_test_peer_free (OlmTestPeer *peer)
{
  if (peer == NULL)
    return;
  olm_test_peer_stop (peer);
  g_free (peer->localpart);
  g_free (peer->password);
  g_free (peer->user_id);
  g_free (peer->device_id);
  g_free (peer->store_path);
  g_free (peer->member_id);
  g_async_queue_unref (peer->received);
  g_async_queue_unref (peer->own);
  g_async_queue_unref (peer->room_events);
  g_async_queue_unref (peer->to_device);
  g_async_queue_unref (peer->room_keys);
  g_ptr_array_unref (peer->tokens);
  g_free (peer);
}

/* An encrypted room (m.megolm.v1.aes-sha2) that @others join; every peer's
 * machine tracks it. */
gchar *
olm_test_create_encrypted_room (
    OlmTestPeer *creator, OlmTestPeer **others, guint n_others)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = json_object_new ();
  JsonArray *invite = json_array_new ();
  JsonArray *initial = json_array_new ();
  JsonObject *enc = json_object_new ();
  JsonObject *enc_content = json_object_new ();
  gchar *room_id;
  guint i;

  JsonObject *pl = json_object_new ();
  JsonObject *pl_events = json_object_new ();

  json_object_set_string_member (body, "preset", "private_chat");
  /* As Element Call's rooms: everyone may write call memberships. */
  json_object_set_int_member (pl_events, "org.matrix.msc3401.call.member", 0);
  json_object_set_object_member (pl, "events", pl_events);
  json_object_set_object_member (body, "power_level_content_override", pl);
  for (i = 0; i < n_others; i++)
    json_array_add_string_element (invite, others[i]->user_id);
  json_object_set_array_member (body, "invite", invite);
  json_object_set_string_member (enc, "type", "m.room.encryption");
  json_object_set_string_member (enc, "state_key", "");
  json_object_set_string_member (
      enc_content, "algorithm", MRTC_OLM_ALGORITHM_MEGOLM);
  json_object_set_object_member (enc, "content", enc_content);
  json_array_add_object_element (initial, enc);
  json_object_set_array_member (body, "initial_state", initial);
  room_id = mrtc_client_create_room (creator->client, body, &error);
  g_assert_no_error (error);
  for (i = 0; i < n_others; i++) {
    g_autofree gchar *joined
        = mrtc_client_join_room (others[i]->client, room_id, &error);

    g_assert_no_error (error);
  }
  g_assert_true (
      mrtc_olm_machine_track_room (creator->machine, room_id, &error));
  g_assert_no_error (error);
  for (i = 0; i < n_others; i++) {
    g_assert_true (
        mrtc_olm_machine_track_room (others[i]->machine, room_id, &error));
    g_assert_no_error (error);
  }
  return room_id;
}

/* Waits for the key of @user_id at @index; the others stay queued. */
OlmTestKey *
olm_test_wait_key (GAsyncQueue *queue, const gchar *user_id, guint index)
{
  gint64 end = g_get_monotonic_time () + OLM_TEST_WAIT_US;
  GQueue skipped = G_QUEUE_INIT;
  OlmTestKey *found = NULL, *k;

  while (found == NULL && g_get_monotonic_time () < end) {
    k = g_async_queue_timeout_pop (
        queue, MAX (end - g_get_monotonic_time (), 1));
    if (k == NULL)
      break;
    if (g_strcmp0 (k->user_id, user_id) == 0 && k->index == index)
      found = k;
    else
      g_queue_push_tail (&skipped, k);
  }
  while ((k = g_queue_pop_tail (&skipped)) != NULL)
    g_async_queue_push_front (queue, k);
  return found;
}

/* Waits for a string containing @needle; the others stay queued. */
gchar *
olm_test_wait_string (GAsyncQueue *queue, const gchar *needle)
{
  gint64 end = g_get_monotonic_time () + OLM_TEST_WAIT_US;
  GQueue skipped = G_QUEUE_INIT;
  gchar *found = NULL, *s;

  while (found == NULL && g_get_monotonic_time () < end) {
    s = g_async_queue_timeout_pop (
        queue, MAX (end - g_get_monotonic_time (), 1));
    if (s == NULL)
      break;
    if (strstr (s, needle) != NULL)
      found = s;
    else
      g_queue_push_tail (&skipped, s);
  }
  while ((s = g_queue_pop_tail (&skipped)) != NULL)
    g_async_queue_push_front (queue, s);
  return found;
}
