/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Interop of the device crypto driver and the MatrixRTC media keys with a
 * real matrix-js-sdk 43 peer (its own Rust crypto, run by Node from
 * tests/interop/node_modules; olm_peer.mjs) on the local Synapse: in an
 * encrypted room, both join the call as legacy members; js-sdk's
 * RTCEncryptionManager sends us its io.element.call.encryption_keys over
 * Olm and takes ours; a Megolm room event from js-sdk is readable by us and
 * ours by it; when a member leaves, both rotate and exchange the new keys.
 * In sticky mode (Element Call's matrix_2_0) the memberships themselves
 * are Megolm-encrypted and the identities hashed. No key bytes, tokens or
 * passwords in our logs. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "olmtestpeer.h"
#include "stackenv.h"

typedef struct
{
  GSubprocess *proc;
  GOutputStream *stdin_pipe;
  GAsyncQueue *lines; /* JsonObject text */
  GThread *reader;
} JsPeer;

static gpointer
read_lines (gpointer data)
{
  JsPeer *js = data;
  g_autoptr (GDataInputStream) in
      = g_data_input_stream_new (g_subprocess_get_stdout_pipe (js->proc));
  gchar *line;

  while (
      (line = g_data_input_stream_read_line (in, NULL, NULL, NULL)) != NULL) {
    g_test_message ("js-sdk: %.200s", line);
    g_async_queue_push (js->lines, line);
  }
  return NULL;
}

static JsPeer *
js_peer_start (const gchar *localpart, const gchar *password,
    const gchar *room_id, const gchar *mode)
{
  JsPeer *js = g_new0 (JsPeer, 1);
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  const gchar *node = g_getenv ("MRTC_NODE");
  const gchar *script = g_getenv ("MRTC_OLM_PEER_SCRIPT");
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (node);
  g_assert_nonnull (script);
  g_subprocess_launcher_setenv (
      launcher, "MRTC_HS_URL", stack_env_get ("MATRIXRTC_HS_URL"), TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_USER", localpart, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_PASSWORD", password, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_ROOM_ID", room_id, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_MODE", mode, TRUE);
  js->proc = g_subprocess_launcher_spawn (launcher, &error, node, script, NULL);
  g_assert_no_error (error);
  js->stdin_pipe = g_subprocess_get_stdin_pipe (js->proc);
  js->lines = g_async_queue_new_full (g_free);
  js->reader = g_thread_new ("js-reader", read_lines, js);
  return js;
}

static void
js_peer_command (JsPeer *js, const gchar *command)
{
  g_autofree gchar *line = g_strconcat (command, "\n", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_true (g_output_stream_write_all (
      js->stdin_pipe, line, strlen (line), NULL, NULL, &error));
  g_assert_no_error (error);
  g_output_stream_flush (js->stdin_pipe, NULL, NULL);
}

static JsonObject *js_wait (JsPeer *js, const gchar *event,
    const gchar *user_id, gint index, const gchar *event_id);

static void
js_peer_stop (JsPeer *js)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) left = NULL;

  js_peer_command (js, "leave");
  g_output_stream_close (js->stdin_pipe, NULL, NULL);
  left = js_wait (js, "left", NULL, -1, NULL);
  g_subprocess_wait (js->proc, NULL, &error);
  g_thread_join (js->reader);
  g_async_queue_unref (js->lines);
  g_object_unref (js->proc);
  g_free (js);
}

/* Waits for a line whose "event" is @event and, when @user_id is set,
 * whose "userId" (or "sender") is @user_id and "index" is @index; other
 * lines stay queued. A js-sdk "error" line fails the test. */
static JsonObject *
js_wait (JsPeer *js, const gchar *event, const gchar *user_id, gint index,
    const gchar *event_id)
{
  gint64 end = g_get_monotonic_time () + 45 * G_USEC_PER_SEC;
  GQueue skipped = G_QUEUE_INIT;
  JsonObject *found = NULL;
  gchar *line;

  while (found == NULL && g_get_monotonic_time () < end) {
    JsonObject *obj;

    line = g_async_queue_timeout_pop (
        js->lines, MAX (end - g_get_monotonic_time (), 1));
    if (line == NULL)
      break;
    obj = mrtc_olm_json_object_from_string (line, -1, NULL);
    if (obj != NULL
        && g_strcmp0 (mrtc_olm_json_get_string (obj, "event"), "error") == 0)
      g_error ("the js-sdk peer failed: %s",
          mrtc_olm_json_get_string (obj, "message"));
    if (obj != NULL
        && g_strcmp0 (mrtc_olm_json_get_string (obj, "event"), event) == 0
        && (user_id == NULL
            || g_strcmp0 (mrtc_olm_json_get_string (obj, "userId"), user_id)
                   == 0
            || g_strcmp0 (mrtc_olm_json_get_string (obj, "sender"), user_id)
                   == 0)
        && (index < 0
            || (json_object_has_member (obj, "index")
                && json_object_get_int_member (obj, "index") == index))
        && (event_id == NULL
            || g_strcmp0 (mrtc_olm_json_get_string (obj, "eventId"), event_id)
                   == 0)) {
      found = obj;
      g_free (line);
    } else {
      if (obj != NULL)
        json_object_unref (obj);
      g_queue_push_tail (&skipped, line);
    }
  }
  while ((line = g_queue_pop_tail (&skipped)) != NULL)
    g_async_queue_push_front (js->lines, line);
  if (found == NULL)
    g_error ("timed out waiting for js-sdk's %s", event);
  return found;
}

static void
call_ok (MrtcClient *client, const gchar *method, const gchar *path,
    JsonObject *body /* owned */)
{
  MrtcRequest *req = mrtc_request_new (method, path);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) resp = NULL;

  mrtc_request_set_body_object (req, body);
  resp = mrtc_client_call (client, req, &error);
  g_assert_no_error (error);
}

/* Our legacy call membership (org.matrix.msc3401.call.member), as
 * matrix-js-sdk 43's MembershipManager writes it. */
static void
send_legacy_membership (OlmTestPeer *peer, const gchar *room_id)
{
  g_autofree gchar *room = g_uri_escape_string (room_id, NULL, FALSE);
  g_autofree gchar *state_key
      = g_strdup_printf ("_%s_%s_m.call", peer->user_id, peer->device_id);
  g_autofree gchar *key = g_uri_escape_string (state_key, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf (
      "/_matrix/client/v3/rooms/%s/state/org.matrix.msc3401.call.member/%s",
      room, key);
  JsonObject *content = json_object_new ();
  JsonObject *focus = json_object_new ();
  JsonObject *pref = json_object_new ();
  JsonArray *foci = json_array_new ();

  json_object_set_string_member (content, "application", "m.call");
  json_object_set_string_member (content, "call_id", "");
  json_object_set_string_member (content, "scope", "m.room");
  json_object_set_string_member (content, "device_id", peer->device_id);
  json_object_set_string_member (content, "membershipID", peer->member_id);
  json_object_set_int_member (content, "expires", 14400000);
  json_object_set_string_member (content, "m.call.intent", "video");
  json_object_set_string_member (focus, "type", "livekit");
  json_object_set_string_member (focus, "focus_selection", "multi_sfu");
  json_object_set_object_member (content, "focus_active", focus);
  json_object_set_string_member (pref, "type", "livekit");
  json_object_set_string_member (
      pref, "livekit_service_url", "http://127.0.0.1:8080");
  json_object_set_string_member (pref, "livekit_alias", room_id);
  json_array_add_object_element (foci, pref);
  json_object_set_array_member (content, "foci_preferred", foci);
  call_ok (peer->client, "PUT", path, content);
}

/* Our sticky call membership (org.matrix.msc4143.rtc.member, MSC4354),
 * Megolm-encrypted as matrix-js-sdk 43 sends it in an encrypted room. */
static void
send_sticky_membership (OlmTestPeer *peer, const gchar *room_id)
{
  g_autoptr (JsonObject) content = json_object_new ();
  g_autoptr (JsonObject) sealed = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) resp = NULL;
  JsonObject *application = json_object_new ();
  JsonObject *transports = json_object_new ();
  JsonObject *transport = json_object_new ();
  JsonObject *member = json_object_new ();
  JsonArray *published = json_array_new ();
  JsonArray *can_subscribe = json_array_new ();
  MrtcRequest *req;

  json_object_set_string_member (content, "slot_id", "m.call#ROOM");
  json_object_set_string_member (application, "type", "m.call");
  json_object_set_string_member (application, "m.call.intent", "video");
  json_object_set_object_member (content, "application", application);
  json_object_set_string_member (transport, "type", "livekit");
  json_object_set_string_member (
      transport, "livekit_service_url", "http://127.0.0.1:8080");
  json_array_add_object_element (published, transport);
  json_object_set_array_member (transports, "published", published);
  json_array_add_string_element (can_subscribe, "livekit");
  json_object_set_array_member (transports, "can_subscribe", can_subscribe);
  json_object_set_object_member (content, "transports", transports);
  json_object_set_string_member (member, "device_id", peer->device_id);
  json_object_set_string_member (member, "user_id", peer->user_id);
  json_object_set_string_member (member, "id", peer->member_id);
  json_object_set_object_member (content, "member", member);
  json_object_set_array_member (content, "versions", json_array_new ());
  json_object_set_string_member (
      content, "msc4354_sticky_key", peer->member_id);
  sealed = mrtc_olm_machine_encrypt_room_event (
      peer->machine, room_id, "org.matrix.msc4143.rtc.member", content, &error);
  g_assert_no_error (error);
  req = mrtc_request_send_event (
      peer->client, room_id, "m.room.encrypted", sealed, 3600000, -1);
  resp = mrtc_client_call (peer->client, req, &error);
  g_assert_no_error (error);
}

static gchar *
sha256_hex (GBytes *bytes)
{
  return g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, bytes);
}

/* B leaves the call (empty legacy membership): js-sdk and A both rotate to
 * index 1, and each gets the other's new key. */
static void
check_rotation (OlmTestPeer *a, OlmTestPeer *b, JsPeer *js,
    const gchar *room_id, GPtrArray *members, const gchar *js_user)
{
  g_autofree gchar *room = g_uri_escape_string (room_id, NULL, FALSE);
  g_autofree gchar *state_key
      = g_strdup_printf ("_%s_%s_m.call", b->user_id, b->device_id);
  g_autofree gchar *key = g_uri_escape_string (state_key, NULL, FALSE);
  g_autofree gchar *path = g_strdup_printf (
      "/_matrix/client/v3/rooms/%s/state/org.matrix.msc3401.call.member/%s",
      room, key);
  g_autoptr (GPtrArray) remaining = g_ptr_array_new ();
  g_autoptr (OlmTestKey) b_at_a = NULL;
  g_autoptr (OlmTestKey) a1 = NULL;
  g_autoptr (OlmTestKey) js1 = NULL;
  g_autoptr (JsonObject) js_got = NULL;
  g_autoptr (JsonObject) js_own1 = NULL;
  g_autofree gchar *hash = NULL;
  guint i;

  /* B was a member: A had its key. */
  b_at_a = olm_test_wait_key (a->received, b->user_id, 0);
  g_assert_nonnull (b_at_a);

  mrtc_olm_call_keys_stop (b->keys);
  call_ok (b->client, "PUT", path, json_object_new ());
  for (i = 0; i < members->len; i++) {
    MrtcOlmMember *m = g_ptr_array_index (members, i);

    if (g_strcmp0 (m->user_id, b->user_id) != 0)
      g_ptr_array_add (remaining, m);
  }
  mrtc_olm_call_keys_update_members (a->keys, remaining);

  /* Our new key reaches js-sdk ... */
  a1 = olm_test_wait_key (a->own, a->user_id, 1);
  g_assert_nonnull (a1);
  hash = sha256_hex (a1->key);
  js_got = js_wait (js, "key", a->user_id, 1, NULL);
  g_assert_cmpstr (mrtc_olm_json_get_string (js_got, "sha256"), ==, hash);
  g_clear_pointer (&hash, g_free);
  olm_test_assert_secret_not_logged (
      g_bytes_get_data (a1->key, NULL), g_bytes_get_size (a1->key));

  /* ... and js-sdk's (it saw B leave too) reaches us. */
  js_own1 = js_wait (js, "key", js_user, 1, NULL);
  js1 = olm_test_wait_key (a->received, js_user, 1);
  g_assert_nonnull (js1);
  hash = sha256_hex (js1->key);
  g_assert_cmpstr (mrtc_olm_json_get_string (js_own1, "sha256"), ==, hash);
  olm_test_assert_secret_not_logged (
      g_bytes_get_data (js1->key, NULL), g_bytes_get_size (js1->key));
}

static void
check_interop (gboolean sticky)
{
  g_autoptr (OlmTestPeer) a = olm_test_peer_new ("olmia", NULL);
  /* In legacy mode a second client of ours joins, then leaves: both sides
   * rotate. */
  g_autoptr (OlmTestPeer) b = sticky ? NULL : olm_test_peer_new ("olmib", NULL);
  g_autofree gchar *js_localpart = NULL, *js_password = NULL;
  g_autofree gchar *js_user = NULL;
  g_autofree gchar *room_id = NULL;
  g_autofree gchar *js_device = NULL;
  g_autofree gchar *js_identity = NULL;
  g_autofree gchar *our_identity = NULL;
  g_autofree gchar *js_member = NULL;

  g_autoptr (JsonObject) ready = NULL;
  g_autoptr (GPtrArray) members = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (OlmTestKey) own0 = NULL;
  g_autoptr (OlmTestKey) js_key = NULL;
  g_autoptr (JsonObject) js_own = NULL;
  g_autoptr (JsonObject) js_got = NULL;
  g_autoptr (JsonObject) sent = NULL;
  g_autoptr (JsonObject) js_read = NULL;
  g_autofree gchar *our_hash = NULL, *js_hash = NULL;
  g_autofree gchar *our_event = NULL;
  g_autoptr (JsonObject) content = json_object_new ();
  gchar *s;
  gint64 end;
  guint i;
  JsPeer *js;

  js_user = olm_test_register_user ("olmij", &js_localpart, &js_password);
  room_id = olm_test_create_encrypted_room (a, &b, b != NULL ? 1 : 0);
  {
    g_autofree gchar *room = g_uri_escape_string (room_id, NULL, FALSE);
    g_autofree gchar *path
        = g_strdup_printf ("/_matrix/client/v3/rooms/%s/invite", room);
    JsonObject *body = json_object_new ();

    json_object_set_string_member (body, "user_id", js_user);
    call_ok (a->client, "POST", path, body);
  }

  js = js_peer_start (
      js_localpart, js_password, room_id, sticky ? "sticky" : "legacy");
  ready = js_wait (js, "ready", NULL, -1, NULL);
  js_device = g_strdup (mrtc_olm_json_get_string (ready, "deviceId"));
  g_assert_nonnull (js_device);

  /* Our machine learns the room's new member and its Rust-crypto device. */
  end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  for (;;) {
    g_autoptr (GPtrArray) devices = NULL;

    g_assert_true (mrtc_olm_machine_track_room (a->machine, room_id, &error));
    g_assert_no_error (error);
    devices = mrtc_olm_machine_list_devices (a->machine, js_user);
    if (devices->len > 0)
      break;
    g_assert_cmpint (g_get_monotonic_time (), <, end);
    g_usleep (500 * 1000);
  }

  if (sticky) {
    /* Both join as sticky members (hashed identities); js-sdk's membership
     * arrives Megolm-encrypted and we read it. */
    g_assert_nonnull (mrtc_olm_json_get_string (ready, "memberId"));
    js_member = g_strdup (mrtc_olm_json_get_string (ready, "memberId"));
    send_sticky_membership (a, room_id);
    our_identity = mrtc_olm_rtc_backend_identity (
        a->user_id, a->device_id, a->member_id);
    js_identity = mrtc_olm_rtc_backend_identity (js_user, js_device, js_member);
    s = olm_test_wait_string (a->room_events, js_member);
    g_assert_nonnull (s);
    g_assert_nonnull (strstr (s, "org.matrix.msc4143.rtc.member"));
    g_free (s);
  } else {
    /* Both join as legacy members (identity "@user:DEVICE"). */
    g_free (a->member_id);
    a->member_id = g_strdup_printf ("%s:%s", a->user_id, a->device_id);
    send_legacy_membership (a, room_id);
    our_identity = g_strdup (a->member_id);
    g_free (b->member_id);
    b->member_id = g_strdup_printf ("%s:%s", b->user_id, b->device_id);
    send_legacy_membership (b, room_id);
    js_identity = g_strdup_printf ("%s:%s", js_user, js_device);
    js_member = g_strdup (js_identity);
  }
  olm_test_peer_start_keys (a, room_id);
  members
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mrtc_olm_member_free);
  g_ptr_array_add (members, mrtc_olm_member_new (a->user_id, a->device_id,
                                a->member_id, our_identity, 1000));
  g_ptr_array_add (members,
      mrtc_olm_member_new (js_user, js_device, js_member, js_identity, 1000));
  if (b != NULL) {
    g_ptr_array_add (members, mrtc_olm_member_new (b->user_id, b->device_id,
                                  b->member_id, b->member_id, 1000));
    olm_test_peer_start_keys (b, room_id);
    mrtc_olm_call_keys_update_members (b->keys, members);
  }
  mrtc_olm_call_keys_update_members (a->keys, members);

  /* Our key reaches js-sdk, bound to our identity. */
  own0 = olm_test_wait_key (a->own, a->user_id, 0);
  g_assert_nonnull (own0);
  our_hash = sha256_hex (own0->key);
  js_got = js_wait (js, "key", a->user_id, 0, NULL);
  g_assert_cmpstr (
      mrtc_olm_json_get_string (js_got, "identity"), ==, our_identity);
  g_assert_cmpstr (
      mrtc_olm_json_get_string (js_got, "deviceId"), ==, a->device_id);
  g_assert_cmpstr (mrtc_olm_json_get_string (js_got, "sha256"), ==, our_hash);

  /* js-sdk's own key reaches us, bound to its identity. */
  js_own = js_wait (js, "key", js_user, -1, NULL);
  js_key = olm_test_wait_key (a->received, js_user,
      (guint)json_object_get_int_member (js_own, "index"));
  g_assert_nonnull (js_key);
  g_assert_cmpstr (js_key->identity, ==, js_identity);
  g_assert_cmpstr (js_key->device_id, ==, js_device);
  js_hash = sha256_hex (js_key->key);
  g_assert_cmpstr (mrtc_olm_json_get_string (js_own, "sha256"), ==, js_hash);
  olm_test_assert_secret_not_logged (
      g_bytes_get_data (own0->key, NULL), g_bytes_get_size (own0->key));
  olm_test_assert_secret_not_logged (
      g_bytes_get_data (js_key->key, NULL), g_bytes_get_size (js_key->key));

  /* Megolm: js-sdk's room event is readable by us ... */
  js_peer_command (js, "send hello from js-sdk");
  sent = js_wait (js, "sent", NULL, -1, NULL);
  s = olm_test_wait_string (
      a->room_events, mrtc_olm_json_get_string (sent, "eventId"));
  g_assert_nonnull (s);
  g_assert_nonnull (strstr (s, "hello from js-sdk"));
  g_assert_nonnull (strstr (s, "org.example.secret"));
  g_free (s);

  /* ... and ours by it. */
  json_object_set_string_member (content, "body", "hello from gst-matrixrtc");
  our_event = mrtc_olm_machine_send_room_event (
      a->machine, room_id, "org.example.secret", content, &error);
  g_assert_no_error (error);
  js_read = js_wait (js, "room-event", a->user_id, -1, our_event);
  g_assert_cmpstr (mrtc_olm_json_get_string (js_read, "body"), ==,
      "hello from gst-matrixrtc");
  g_assert_true (json_object_get_boolean_member (js_read, "encrypted"));

  if (b != NULL)
    check_rotation (a, b, js, room_id, members, js_user);
  js_peer_stop (js);
  olm_test_assert_text_not_logged (a->password);
  olm_test_assert_secret_not_logged (a->pickle_key, sizeof (a->pickle_key));
  olm_test_assert_text_not_logged (js_password);
  olm_test_assert_room_keys_not_logged (a);
  for (i = 0; i < a->tokens->len; i++)
    olm_test_assert_text_not_logged (g_ptr_array_index (a->tokens, i));
}

static void
test_js_sdk_legacy (void)
{
  check_interop (FALSE);
}

static void
test_js_sdk_sticky (void)
{
  check_interop (TRUE);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;

  olm_test_capture_logs ();
  g_test_init (&argc, &argv, NULL);
  if (!stack_env_load (&error))
    g_error ("the local stack is not up (tests/env/up): %s", error->message);
  g_test_add_func ("/olm/interop/js-sdk/legacy", test_js_sdk_legacy);
  g_test_add_func ("/olm/interop/js-sdk/sticky", test_js_sdk_sticky);
  return g_test_run ();
}
