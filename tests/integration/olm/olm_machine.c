/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The device crypto driver and the MatrixRTC media keys on the real Synapse
 * of the local stack (tests/env/up): fresh users per test in an encrypted
 * room. Media keys exchanged over Olm and rotated on leave; a restart with
 * the same store keeps the device; Megolm room events readable both ways;
 * unencrypted, forged, non-member and unknown-device keys rejected; no
 * secret in the logs at any level. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "olmtestpeer.h"
#include "stackenv.h"

static gchar *store_dir;

static JsonObject *call_json (
    MrtcClient *client, const gchar *path, JsonObject *body);

/* Secrets every test checks the logs for. */
static GPtrArray *secrets; /* GBytes */
/* The current test's peers (their access tokens are secrets too). */
static GPtrArray *peer_list;

static void
remember_secret (GBytes *secret)
{
  g_ptr_array_add (secrets, g_bytes_ref (secret));
}

static void
remember_peer_secrets (OlmTestPeer *peer)
{
  g_ptr_array_add (peer_list, peer);
  g_ptr_array_add (
      secrets, g_bytes_new (peer->password, strlen (peer->password)));
  g_ptr_array_add (
      secrets, g_bytes_new (peer->pickle_key, sizeof (peer->pickle_key)));
}

static void
check_logs (void)
{
  guint i;

  g_assert_cmpuint (olm_test_logs_length (), >, 0);
  for (i = 0; i < peer_list->len; i++) {
    OlmTestPeer *peer = g_ptr_array_index (peer_list, i);
    guint j;

    for (j = 0; j < peer->tokens->len; j++)
      olm_test_assert_text_not_logged (g_ptr_array_index (peer->tokens, j));
  }
  g_ptr_array_set_size (peer_list, 0);
  for (i = 0; i < secrets->len; i++) {
    GBytes *s = g_ptr_array_index (secrets, i);
    gsize len;
    const guint8 *data = g_bytes_get_data (s, &len);
    g_autofree gchar *text = g_strndup ((const gchar *)data, len);

    olm_test_assert_secret_not_logged (data, len);
    if (strlen (text) == len && len >= 8)
      olm_test_assert_text_not_logged (text);
  }
}

static GPtrArray *
members_of (OlmTestPeer **peers, guint n)
{
  GPtrArray *members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  guint i;

  for (i = 0; i < n; i++)
    g_ptr_array_add (members, olm_test_peer_member (peers[i]));
  return members;
}

static gchar *
identity_of (OlmTestPeer *peer)
{
  return mrtc_olm_rtc_backend_identity (
      peer->user_id, peer->device_id, peer->member_id);
}

/* Two (three) of our clients exchange media keys over Olm, then one leaves
 * and the others rotate. */
static void
test_exchange_and_rotate (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olma", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmb", store_dir);
  g_autoptr (OlmTestPeer) c = olm_test_peer_new ("olmc", store_dir);
  g_autoptr (OlmTestPeer) d = olm_test_peer_new ("olmd", store_dir);
  OlmTestPeer *all[] = { a, b, c };
  OlmTestPeer *others[] = { b, c, d };
  OlmTestPeer *with_d[] = { a, b, d };
  g_autoptr (GPtrArray) joined = NULL;
  g_autoptr (OlmTestKey) a1 = NULL;
  g_autoptr (OlmTestKey) b1 = NULL;
  g_autofree gchar *room_id = NULL;
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (GPtrArray) remaining = NULL;
  GBytes *own0[3];
  gint64 t0, t_use;
  guint i, j;
  gchar *s;

  for (i = 0; i < 3; i++)
    remember_peer_secrets (all[i]);
  remember_peer_secrets (d);
  room_id = olm_test_create_encrypted_room (a, others, 3);
  for (i = 0; i < 3; i++)
    olm_test_peer_start_keys (all[i], room_id);
  members = members_of (all, 3);
  for (i = 0; i < 3; i++)
    mrtc_olm_call_keys_update_members (all[i]->keys, members);

  /* The first key is used at once. */
  for (i = 0; i < 3; i++) {
    g_autoptr (OlmTestKey) own
        = olm_test_wait_key (all[i]->own, all[i]->user_id, 0);

    g_assert_nonnull (own);
    g_assert_cmpuint (g_bytes_get_size (own->key), ==, 16);
    own0[i] = g_bytes_ref (own->key);
    remember_secret (own->key);
  }
  /* Everyone gets everyone else's, bound to the sender's identity. */
  for (i = 0; i < 3; i++) {
    for (j = 0; j < 3; j++) {
      g_autoptr (OlmTestKey) k = NULL;
      g_autofree gchar *identity = identity_of (all[j]);
      g_autoptr (GBytes) looked_up = NULL;

      if (i == j)
        continue;
      k = olm_test_wait_key (all[i]->received, all[j]->user_id, 0);
      g_assert_nonnull (k);
      g_assert_cmpstr (k->identity, ==, identity);
      g_assert_cmpstr (k->device_id, ==, all[j]->device_id);
      g_assert_true (g_bytes_equal (k->key, own0[j]));
      looked_up = mrtc_olm_call_keys_lookup (all[i]->keys, identity, 0);
      g_assert_nonnull (looked_up);
      g_assert_true (g_bytes_equal (looked_up, own0[j]));
    }
  }
  /* Whatever C decrypted so far is done with. */
  mrtc_olm_machine_flush (c->machine);
  while ((s = g_async_queue_try_pop (c->to_device)) != NULL)
    g_free (s);

  /* C leaves the call: A and B rotate to index 1, used about 1 s after it
   * was sent, and C does not get it. */
  mrtc_olm_call_keys_stop (c->keys);
  remaining = members_of (all, 2);
  t0 = g_get_monotonic_time ();
  mrtc_olm_call_keys_update_members (a->keys, remaining);
  mrtc_olm_call_keys_update_members (b->keys, remaining);
  a1 = olm_test_wait_key (a->own, a->user_id, 1);
  b1 = olm_test_wait_key (b->own, b->user_id, 1);
  {
    g_autoptr (OlmTestKey) a1_at_b = NULL;
    g_autoptr (OlmTestKey) b1_at_a = NULL;

    g_assert_nonnull (a1);
    g_assert_nonnull (b1);
    t_use = g_get_monotonic_time ();
    remember_secret (a1->key);
    remember_secret (b1->key);
    g_assert_false (g_bytes_equal (a1->key, own0[0]));
    g_assert_cmpint (t_use - t0, >=, 900 * 1000);
    a1_at_b = olm_test_wait_key (b->received, a->user_id, 1);
    b1_at_a = olm_test_wait_key (a->received, b->user_id, 1);
    g_assert_nonnull (a1_at_b);
    g_assert_nonnull (b1_at_a);
    g_assert_true (g_bytes_equal (a1_at_b->key, a1->key));
    g_assert_true (g_bytes_equal (b1_at_a->key, b1->key));
    g_test_message ("rotation: new key in use %" G_GINT64_FORMAT
                    " ms after the leave",
        (t_use - t0) / 1000);
  }
  /* C's keys are forgotten. */
  {
    g_autofree gchar *id_c = identity_of (c);
    g_autoptr (GBytes) gone = mrtc_olm_call_keys_lookup (a->keys, id_c, 0);

    g_assert_null (gone);
  }
  /* Give C's sync loop time to see anything that might have been sent. */
  g_usleep (4 * G_USEC_PER_SEC);
  mrtc_olm_machine_flush (c->machine);
  s = g_async_queue_try_pop (c->to_device);
  if (s != NULL)
    g_error ("C (gone) still received: %s", s);

  /* D joins soon after: it gets the current keys (index 1, no rotation
   * within the grace period). D's own key reaches A before A knows D as a
   * member: it is held, then delivered. */
  olm_test_peer_start_keys (d, room_id);
  joined = members_of (with_d, 3);
  mrtc_olm_call_keys_update_members (d->keys, joined);
  s = olm_test_wait_string (a->to_device, d->device_id);
  g_assert_nonnull (s);
  g_free (s);
  mrtc_olm_call_keys_update_members (a->keys, joined);
  mrtc_olm_call_keys_update_members (b->keys, joined);
  {
    g_autoptr (OlmTestKey) own_d = olm_test_wait_key (d->own, d->user_id, 0);
    g_autoptr (OlmTestKey) d_at_a
        = olm_test_wait_key (a->received, d->user_id, 0);
    g_autoptr (OlmTestKey) a1_at_d
        = olm_test_wait_key (d->received, a->user_id, 1);
    g_autoptr (OlmTestKey) b1_at_d
        = olm_test_wait_key (d->received, b->user_id, 1);

    g_assert_nonnull (own_d);
    remember_secret (own_d->key);
    g_assert_nonnull (d_at_a);
    g_assert_true (g_bytes_equal (d_at_a->key, own_d->key));
    g_assert_nonnull (a1_at_d);
    g_assert_nonnull (b1_at_d);
    g_assert_true (g_bytes_equal (a1_at_d->key, a1->key));
    g_assert_true (g_bytes_equal (b1_at_d->key, b1->key));
  }
  mrtc_olm_machine_flush (a->machine);
  g_assert_null (g_async_queue_try_pop (a->own));

  for (i = 0; i < 3; i++)
    g_bytes_unref (own0[i]);
  check_logs ();
}

/* A key that arrives before the call is set up on our side is kept and
 * delivered once it is (matrix-js-sdk sends as soon as it sees us). */
static void
test_key_before_call_setup (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmea", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmeb", store_dir);
  OlmTestPeer *all[] = { a, b };
  OlmTestPeer *others[] = { b };
  g_autofree gchar *room_id = NULL;
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (OlmTestKey) own = NULL;
  g_autoptr (OlmTestKey) got = NULL;
  gchar *s;

  remember_peer_secrets (a);
  remember_peer_secrets (b);
  room_id = olm_test_create_encrypted_room (a, others, 1);
  members = members_of (all, 2);
  olm_test_peer_start_keys (a, room_id);
  mrtc_olm_call_keys_update_members (a->keys, members);
  own = olm_test_wait_key (a->own, a->user_id, 0);
  g_assert_nonnull (own);
  remember_secret (own->key);
  /* B's machine decrypts it while B has no call yet. */
  s = olm_test_wait_string (b->to_device, MRTC_OLM_MEDIA_KEY_EVENT_TYPE);
  g_assert_nonnull (s);
  g_free (s);

  olm_test_peer_start_keys (b, room_id);
  mrtc_olm_call_keys_update_members (b->keys, members);
  got = olm_test_wait_key (b->received, a->user_id, 0);
  g_assert_nonnull (got);
  g_assert_true (g_bytes_equal (got->key, own->key));
  check_logs ();
}

/* A restart with the same store keeps the device: same identity keys, no
 * new device in /keys/query, the Olm sessions still work. */
static void
test_restart_keeps_device (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmra", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmrb", store_dir);
  OlmTestPeer *others[] = { b };
  g_autofree gchar *room_id = NULL;
  g_autofree gchar *curve = NULL, *ed = NULL, *device = NULL;
  g_autofree gchar *curve2 = NULL, *ed2 = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) to_b = NULL;
  g_autoptr (GPtrArray) to_a = NULL;
  g_autoptr (JsonObject) ping = json_object_new ();
  const gchar *users[2] = { NULL, NULL };
  GStatBuf st;
  gchar *s;

  remember_peer_secrets (a);
  remember_peer_secrets (b);
  room_id = olm_test_create_encrypted_room (a, others, 1);
  to_b = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  g_ptr_array_add (to_b, olm_test_peer_member (b));
  to_a = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  g_ptr_array_add (to_a, olm_test_peer_member (a));
  json_object_set_string_member (ping, "n", "1");

  g_assert_cmpint (mrtc_olm_machine_send_to_members (a->machine, to_b,
                       "org.example.ping", ping, NULL, &error),
      ==, 1);
  g_assert_no_error (error);
  s = olm_test_wait_string (b->to_device, "org.example.ping");
  g_assert_nonnull (s);
  g_free (s);

  curve = mrtc_olm_machine_dup_curve25519 (a->machine);
  ed = mrtc_olm_machine_dup_ed25519 (a->machine);
  device = g_strdup (a->device_id);
  g_assert_cmpint (g_stat (a->store_path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  /* Restart on the same device with the same store. */
  olm_test_peer_stop (a);
  g_assert_true (olm_test_peer_login (a, device, store_dir, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (a->device_id, ==, device);
  curve2 = mrtc_olm_machine_dup_curve25519 (a->machine);
  ed2 = mrtc_olm_machine_dup_ed25519 (a->machine);
  g_assert_cmpstr (curve2, ==, curve);
  g_assert_cmpstr (ed2, ==, ed);

  /* B queries A's devices again: still exactly that one device. */
  users[0] = a->user_id;
  g_assert_true (mrtc_olm_machine_track_users (b->machine, users, &error));
  g_assert_no_error (error);
  devices = mrtc_olm_machine_list_devices (b->machine, a->user_id);
  g_assert_cmpuint (devices->len, ==, 1);
  {
    MrtcOlmDevice *d = g_ptr_array_index (devices, 0);

    g_assert_cmpstr (d->device_id, ==, device);
    g_assert_cmpstr (d->curve25519, ==, curve);
    g_assert_cmpstr (d->ed25519, ==, ed);
  }

  /* The stored session still encrypts (no new claim needed) and A still
   * decrypts what B sends. */
  json_object_set_string_member (ping, "n", "2");
  g_assert_cmpint (mrtc_olm_machine_send_to_members (a->machine, to_b,
                       "org.example.ping2", ping, NULL, &error),
      ==, 1);
  g_assert_no_error (error);
  s = olm_test_wait_string (b->to_device, "org.example.ping2");
  g_assert_nonnull (s);
  g_free (s);
  g_assert_cmpint (mrtc_olm_machine_send_to_members (b->machine, to_a,
                       "org.example.pong", ping, NULL, &error),
      ==, 1);
  g_assert_no_error (error);
  s = olm_test_wait_string (a->to_device, "org.example.pong");
  g_assert_nonnull (s);
  g_free (s);
  check_logs ();
}

static void
store_result (GObject *source, GAsyncResult *result, gpointer data)
{
  *(GAsyncResult **)data = g_object_ref (result);
}

static gint64
server_one_time_keys (OlmTestPeer *peer)
{
  g_autoptr (JsonObject) resp = call_json (
      peer->client, "/_matrix/client/v3/keys/upload", json_object_new ());
  JsonObject *counts = mrtc_olm_json_get_object (resp, "one_time_key_counts");

  return counts != NULL && json_object_has_member (counts, "signed_curve25519")
             ? json_object_get_int_member (counts, "signed_curve25519")
             : 0;
}

/* Others claim most of a device's one-time keys: the machine sees the low
 * count in sync and uploads new ones. */
static void
test_replenish_one_time_keys (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmoa", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmob", store_dir);
  gint64 start, low, count = 0, end;
  guint i;

  remember_peer_secrets (a);
  remember_peer_secrets (b);
  start = server_one_time_keys (a);
  g_assert_cmpint (start, >=, 40);
  for (i = 0; i < start - 5; i++) {
    JsonObject *body = json_object_new ();
    JsonObject *wanted = json_object_new ();
    JsonObject *per_user = json_object_new ();
    g_autoptr (JsonObject) resp = NULL;

    json_object_set_string_member (per_user, a->device_id, "signed_curve25519");
    json_object_set_object_member (wanted, a->user_id, per_user);
    json_object_set_object_member (body, "one_time_keys", wanted);
    resp = call_json (b->client, "/_matrix/client/v3/keys/claim", body);
  }
  low = server_one_time_keys (a);
  g_assert_cmpint (low, <, 20);
  end = g_get_monotonic_time () + OLM_TEST_WAIT_US;
  while (g_get_monotonic_time () < end) {
    count = server_one_time_keys (a);
    if (count >= 40)
      break;
    g_usleep (200 * 1000);
  }
  g_test_message ("one-time keys on the server: %" G_GINT64_FORMAT
                  ", %" G_GINT64_FORMAT " after claims, %" G_GINT64_FORMAT
                  " after replenishing",
      start, low, count);
  g_assert_cmpint (count, >=, 40);
  check_logs ();
}

/* A Megolm room event from one of our clients is readable by the other,
 * both ways, and a member who left cannot read what follows. */
static void
test_megolm_room_event (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmma", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmmb", store_dir);
  g_autoptr (OlmTestPeer) c = olm_test_peer_new ("olmmc", store_dir);
  OlmTestPeer *others[] = { b, c };
  g_autofree gchar *room_id = NULL;
  g_autofree gchar *event_id = NULL;
  g_autofree gchar *event_id2 = NULL;
  g_autoptr (JsonObject) content = json_object_new ();
  g_autoptr (JsonObject) reply = json_object_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (JsonObject) encrypted = NULL;
  gchar *s;

  remember_peer_secrets (a);
  remember_peer_secrets (b);
  remember_peer_secrets (c);
  room_id = olm_test_create_encrypted_room (a, others, 2);
  json_object_set_string_member (content, "body", "megolm from a");
  event_id = mrtc_olm_machine_send_room_event (
      a->machine, room_id, "org.example.secret", content, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event_id);
  s = olm_test_wait_string (b->room_events, event_id);
  g_assert_nonnull (s);
  got = mrtc_olm_json_object_from_string (s, -1, NULL);
  g_free (s);
  g_assert_cmpstr (
      mrtc_olm_json_get_string (got, "type"), ==, "org.example.secret");
  g_assert_cmpstr (mrtc_olm_json_get_string (
                       mrtc_olm_json_get_object (got, "content"), "body"),
      ==, "megolm from a");
  g_assert_cmpstr (mrtc_olm_json_get_string (got, "sender"), ==, a->user_id);

  json_object_set_string_member (reply, "body", "megolm from b");
  event_id2 = mrtc_olm_machine_send_room_event (
      b->machine, room_id, "org.example.secret", reply, &error);
  g_assert_no_error (error);
  s = olm_test_wait_string (a->room_events, event_id2);
  g_assert_nonnull (s);
  g_assert_nonnull (strstr (s, "megolm from b"));
  g_free (s);

  /* A Megolm-encrypted sticky event (as matrix-js-sdk 43 sends an
   * rtc.member in an encrypted room) reads back as the member event. */
  {
    g_autoptr (JsonObject) member = json_object_new ();
    g_autoptr (JsonObject) sealed = NULL;
    g_autoptr (JsonNode) resp = NULL;
    MrtcRequest *req;
    const gchar *sticky_id;

    json_object_set_string_member (member, "slot_id", "m.call#ROOM");
    json_object_set_string_member (member, "msc4354_sticky_key", "olm-test");
    sealed = mrtc_olm_machine_encrypt_room_event (
        a->machine, room_id, "org.matrix.msc4143.rtc.member", member, &error);
    g_assert_no_error (error);
    req = mrtc_request_send_event (
        a->client, room_id, "m.room.encrypted", sealed, 3600000, -1);
    resp = mrtc_client_call (a->client, req, &error);
    g_assert_no_error (error);
    sticky_id
        = mrtc_olm_json_get_string (json_node_get_object (resp), "event_id");
    g_assert_nonnull (sticky_id);
    s = olm_test_wait_string (b->room_events, sticky_id);
    g_assert_nonnull (s);
    g_assert_nonnull (strstr (s, "org.matrix.msc4143.rtc.member"));
    g_assert_nonnull (strstr (s, "olm-test"));
    g_free (s);
  }

  /* The asynchronous form (for the session on the client's thread). */
  {
    g_autoptr (GMainContext) ctx = g_main_context_new ();
    g_autoptr (JsonObject) async_content = json_object_new ();
    g_autoptr (JsonObject) sealed = NULL;
    g_autofree gchar *id = NULL;
    GAsyncResult *result = NULL;

    json_object_set_string_member (async_content, "body", "async megolm");
    g_main_context_push_thread_default (ctx);
    mrtc_olm_machine_encrypt_room_event_async (a->machine, room_id,
        "org.example.secret", async_content, NULL, store_result, &result);
    while (result == NULL)
      g_main_context_iteration (ctx, TRUE);
    sealed = mrtc_olm_machine_encrypt_room_event_finish (
        a->machine, result, &error);
    g_object_unref (result);
    g_main_context_pop_thread_default (ctx);
    g_assert_no_error (error);
    id = mrtc_client_send_event (
        a->client, room_id, "m.room.encrypted", sealed, -1, -1, &error);
    g_assert_no_error (error);
    s = olm_test_wait_string (b->room_events, id);
    g_assert_nonnull (s);
    g_assert_nonnull (strstr (s, "async megolm"));
    g_free (s);
  }

  /* What went over the wire is not the plaintext. */
  encrypted = mrtc_olm_machine_encrypt_room_event (
      a->machine, room_id, "org.example.secret", content, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mrtc_olm_json_get_string (encrypted, "algorithm"), ==,
      MRTC_OLM_ALGORITHM_MEGOLM);
  {
    g_autofree gchar *text = mrtc_olm_json_object_to_string (encrypted);

    g_assert_null (strstr (text, "megolm from a"));
  }
  /* C leaves the room: A's next room key is not shared with it. */
  {
    g_autofree gchar *escaped = g_uri_escape_string (room_id, NULL, FALSE);
    g_autofree gchar *path
        = g_strdup_printf ("/_matrix/client/v3/rooms/%s/leave", escaped);
    g_autoptr (JsonObject) left = NULL;
    g_autoptr (JsonObject) first = NULL;
    g_autofree gchar *session0 = NULL;
    g_autofree gchar *after = NULL;
    gint64 end = g_get_monotonic_time () + OLM_TEST_WAIT_US;
    gboolean rotated = FALSE;

    first = mrtc_olm_machine_encrypt_room_event (
        a->machine, room_id, "org.example.secret", content, &error);
    g_assert_no_error (error);
    session0 = g_strdup (mrtc_olm_json_get_string (first, "session_id"));
    /* C had that session. */
    s = olm_test_wait_string (c->to_device, "m.room_key");
    g_assert_nonnull (s);
    g_free (s);
    mrtc_olm_machine_flush (c->machine);
    while ((s = g_async_queue_try_pop (c->to_device)) != NULL)
      g_free (s);

    left = call_json (c->client, path, json_object_new ());
    while (g_get_monotonic_time () < end) {
      g_autoptr (JsonObject) next = mrtc_olm_machine_encrypt_room_event (
          a->machine, room_id, "org.example.secret", content, &error);

      g_assert_no_error (error);
      if (g_strcmp0 (mrtc_olm_json_get_string (next, "session_id"), session0)
          != 0) {
        rotated = TRUE;
        break;
      }
      g_usleep (200 * 1000);
    }
    g_assert_true (rotated);
    after = mrtc_olm_machine_send_room_event (
        a->machine, room_id, "org.example.secret", content, &error);
    g_assert_no_error (error);
    s = olm_test_wait_string (b->room_events, after);
    g_assert_nonnull (s);
    g_free (s);
    g_usleep (4 * G_USEC_PER_SEC);
    mrtc_olm_machine_flush (c->machine);
    s = g_async_queue_try_pop (c->to_device);
    if (s != NULL)
      g_error ("C (gone) still received: %s", s);
  }
  olm_test_assert_room_keys_not_logged (a);
  olm_test_assert_room_keys_not_logged (b);
  check_logs ();
}

static void
send_clear_to_device (
    OlmTestPeer *from, OlmTestPeer *to, const gchar *type, JsonObject *content)
{
  g_autoptr (JsonObject) messages = json_object_new ();
  JsonObject *per_user = json_object_new ();
  g_autoptr (GError) error = NULL;

  json_object_set_object_member (
      per_user, to->device_id, json_object_ref (content));
  json_object_set_object_member (messages, to->user_id, per_user);
  g_assert_true (
      mrtc_client_send_to_device (from->client, type, messages, &error));
  g_assert_no_error (error);
}

static JsonObject *
call_json (MrtcClient *client, const gchar *path, JsonObject *body)
{
  MrtcRequest *req = mrtc_request_new ("POST", path);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;

  mrtc_request_set_body_object (req, body);
  node = mrtc_client_call (client, req, &error);
  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (node));
}

/* A device whose keys were never uploaded Olm-encrypts a media key to @to:
 * it is unknown even after the receiver queries its owner. */
static void
send_from_unpublished_device (
    OlmTestPeer *to, const gchar *room_id, const guint8 *key)
{
  g_autofree gchar *localpart = NULL, *password = NULL;
  g_autofree gchar *user_id
      = olm_test_register_user ("olmghost", &localpart, &password);
  g_autoptr (MrtcClient) client
      = mrtc_client_new (mrtc_client_get_homeserver_url (to->client));
  g_autoptr (MrtcOlmAccount) account = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) query = NULL;
  g_autoptr (JsonObject) claim = NULL;
  g_autoptr (JsonObject) content = NULL;
  g_autoptr (JsonObject) encrypted = NULL;
  g_autoptr (JsonObject) messages = json_object_new ();
  JsonObject *body, *wanted, *per_user;
  const MrtcOlmDevice *device;
  guint8 pickle[32];

  g_ptr_array_add (secrets, g_bytes_new (password, strlen (password)));
  g_assert_true (
      mrtc_client_login_password (client, localpart, password, NULL, &error));
  g_assert_no_error (error);
  mrtc_olm_random_bytes (pickle, sizeof (pickle));
  account = mrtc_olm_account_open (user_id, mrtc_client_get_device_id (client),
      NULL, pickle, sizeof (pickle), &error);
  g_assert_no_error (error);

  body = json_object_new ();
  wanted = json_object_new ();
  json_object_set_array_member (wanted, to->user_id, json_array_new ());
  json_object_set_object_member (body, "device_keys", wanted);
  query = call_json (client, "/_matrix/client/v3/keys/query", body);
  g_assert_cmpuint (
      mrtc_olm_account_update_user_devices (account, to->user_id,
          mrtc_olm_json_get_object (
              mrtc_olm_json_get_object (query, "device_keys"), to->user_id)),
      >=, 1);
  device = mrtc_olm_account_lookup_device (account, to->user_id, to->device_id);
  g_assert_nonnull (device);

  body = json_object_new ();
  wanted = json_object_new ();
  per_user = json_object_new ();
  json_object_set_string_member (per_user, to->device_id, "signed_curve25519");
  json_object_set_object_member (wanted, to->user_id, per_user);
  json_object_set_object_member (body, "one_time_keys", wanted);
  claim = call_json (client, "/_matrix/client/v3/keys/claim", body);
  g_assert_true (mrtc_olm_account_create_outbound_session (account, device,
      mrtc_olm_json_get_object (
          mrtc_olm_json_get_object (
              mrtc_olm_json_get_object (claim, "one_time_keys"), to->user_id),
          to->device_id),
      &error));
  g_assert_no_error (error);

  content = mrtc_olm_media_key_content_build (room_id, 11, key, 16,
      mrtc_client_get_device_id (client), "ghost", g_get_real_time () / 1000);
  encrypted = mrtc_olm_account_encrypt_to_device (
      account, device, MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, &error);
  g_assert_no_error (error);
  per_user = json_object_new ();
  json_object_set_object_member (
      per_user, to->device_id, json_object_ref (encrypted));
  json_object_set_object_member (messages, to->user_id, per_user);
  g_assert_true (mrtc_client_send_to_device (
      client, "m.room.encrypted", messages, &error));
  g_assert_no_error (error);
}

/* Keys that arrive unencrypted, claim another device, come from someone who
 * is not a call member or from an unknown device are never delivered. */
static void
test_rejected_keys (void)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmxa", store_dir);
  g_autoptr (OlmTestPeer) b = olm_test_peer_new ("olmxb", store_dir);
  g_autoptr (OlmTestPeer) c = olm_test_peer_new ("olmxc", store_dir);
  g_autoptr (OlmTestPeer) d = olm_test_peer_new ("olmxd", store_dir);
  OlmTestPeer *call[] = { a, b, c };
  OlmTestPeer *others[] = { b, c, d };
  g_autofree gchar *room_id = NULL;
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (GPtrArray) to_a = NULL;
  g_autoptr (GError) error = NULL;
  guint8 bad[4][16];
  guint machine_dropped0, i;
  gint64 end;
  OlmTestKey *k;

  remember_peer_secrets (a);
  remember_peer_secrets (b);
  remember_peer_secrets (c);
  remember_peer_secrets (d);
  for (i = 0; i < 4; i++) {
    mrtc_olm_random_bytes (bad[i], 16);
    g_ptr_array_add (secrets, g_bytes_new (bad[i], 16));
  }
  room_id = olm_test_create_encrypted_room (a, others, 3);
  olm_test_peer_start_keys (a, room_id);
  mrtc_olm_call_keys_set_hold_time (a->keys, 1000);
  members = members_of (call, 3);
  mrtc_olm_call_keys_update_members (a->keys, members);
  machine_dropped0 = mrtc_olm_machine_get_dropped (a->machine);
  to_a = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  g_ptr_array_add (to_a, olm_test_peer_member (a));

  /* 1. A member's key in clear. */
  {
    g_autoptr (JsonObject) content = mrtc_olm_media_key_content_build (room_id,
        5, bad[0], 16, c->device_id, c->member_id, g_get_real_time () / 1000);

    send_clear_to_device (c, a, MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content);
  }
  /* 2. A member's key, Olm-encrypted, claiming another member's device. */
  {
    g_autoptr (JsonObject) content = mrtc_olm_media_key_content_build (room_id,
        6, bad[1], 16, b->device_id, b->member_id, g_get_real_time () / 1000);

    g_assert_cmpint (mrtc_olm_machine_send_to_members (c->machine, to_a,
                         MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, NULL, &error),
        ==, 1);
    g_assert_no_error (error);
  }
  /* 3. A valid key from a room member who is not in the call. */
  {
    g_autoptr (JsonObject) content = mrtc_olm_media_key_content_build (room_id,
        7, bad[2], 16, d->device_id, d->member_id, g_get_real_time () / 1000);

    g_assert_cmpint (mrtc_olm_machine_send_to_members (d->machine, to_a,
                         MRTC_OLM_MEDIA_KEY_EVENT_TYPE, content, NULL, &error),
        ==, 1);
    g_assert_no_error (error);
  }
  /* 4. From a device with no published keys. */
  send_from_unpublished_device (a, room_id, bad[3]);

  end = g_get_monotonic_time () + OLM_TEST_WAIT_US;
  while (
      g_get_monotonic_time () < end
      && (mrtc_olm_call_keys_get_dropped (a->keys) < 3
          || mrtc_olm_machine_get_dropped (a->machine) < machine_dropped0 + 1))
    g_usleep (100 * 1000);
  g_test_message ("call keys dropped %u, machine dropped %u",
      mrtc_olm_call_keys_get_dropped (a->keys),
      mrtc_olm_machine_get_dropped (a->machine) - machine_dropped0);
  g_assert_cmpuint (mrtc_olm_call_keys_get_dropped (a->keys), >=, 3);
  g_assert_cmpuint (
      mrtc_olm_machine_get_dropped (a->machine), >=, machine_dropped0 + 1);

  /* None of them was delivered. */
  mrtc_olm_machine_flush (a->machine);
  while ((k = g_async_queue_try_pop (a->received)) != NULL) {
    for (i = 0; i < 4; i++)
      g_assert_false (
          memcmp (g_bytes_get_data (k->key, NULL), bad[i], 16) == 0);
    g_assert_cmpuint (k->index, !=, 5);
    g_assert_cmpuint (k->index, !=, 6);
    g_assert_cmpuint (k->index, !=, 7);
    g_assert_cmpuint (k->index, !=, 11);
    olm_test_key_free (k);
  }
  {
    g_autofree gchar *id_d = identity_of (d);
    g_autofree gchar *id_b = identity_of (b);
    g_autofree gchar *id_c = identity_of (c);

    g_assert_null (mrtc_olm_call_keys_lookup (a->keys, id_d, 7));
    g_assert_null (mrtc_olm_call_keys_lookup (a->keys, id_b, 6));
    g_assert_null (mrtc_olm_call_keys_lookup (a->keys, id_c, 6));
    g_assert_null (mrtc_olm_call_keys_lookup (a->keys, id_c, 5));
  }
  check_logs ();
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  int ret;

  olm_test_capture_logs ();
  g_test_init (&argc, &argv, NULL);
  if (!stack_env_load (&error))
    g_error ("the local stack is not up (tests/env/up): %s", error->message);
  secrets = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  peer_list = g_ptr_array_new ();
  store_dir = g_dir_make_tmp ("mrtc-olm-XXXXXX", &error);
  g_assert_no_error (error);

  g_test_add_func ("/olm/keys/exchange-and-rotate", test_exchange_and_rotate);
  g_test_add_func (
      "/olm/store/restart-keeps-device", test_restart_keeps_device);
  g_test_add_func ("/olm/megolm/room-event", test_megolm_room_event);
  g_test_add_func ("/olm/keys/replenish", test_replenish_one_time_keys);
  g_test_add_func ("/olm/keys/rejected", test_rejected_keys);
  g_test_add_func ("/olm/keys/before-call-setup", test_key_before_call_setup);
  ret = g_test_run ();

  {
    g_autoptr (GDir) dir = g_dir_open (store_dir, 0, NULL);
    const gchar *name;

    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
      g_autofree gchar *path = g_build_filename (store_dir, name, NULL);

      g_unlink (path);
    }
    g_rmdir (store_dir);
  }
  g_ptr_array_unref (secrets);
  g_free (store_dir);
  return ret;
}
