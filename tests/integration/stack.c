/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Proof that the local stack is real: two users registered on Synapse, a room,
 * OpenID tokens exchanged at each token service for LiveKit JWTs, and the
 * LiveKit signalling WebSocket opened with them, expecting the binary
 * JoinResponse for the right room and identity. Negative cases: a wrong
 * password, forged and unknown OpenID tokens, an unknown JSON field and a
 * claimed user that is not the token's. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <string.h>

#include "stackenv.h"

#define SLOT_ID "m.call#ROOM"

typedef struct
{
  gchar *user_id;
  gchar *device_id;
  gchar *access_token;
} TestUser;

static SoupSession *session;

static void
test_user_free (TestUser *user)
{
  g_free (user->user_id);
  g_free (user->device_id);
  g_free (user->access_token);
  g_free (user);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestUser, test_user_free);

/* Sends @method @url with an optional JSON @body and bearer @token; returns the
 * parsed JSON reply (or NULL when the body is not JSON) and the HTTP status. */
static JsonNode *
http_json (const gchar *method, const gchar *url, const gchar *token,
    const gchar *body, guint *status)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  JsonParser *parser;
  JsonNode *root = NULL;

  fail_unless (msg != NULL, "bad URL %s", url);
  if (token != NULL) {
    g_autofree gchar *auth = g_strdup_printf ("Bearer %s", token);
    soup_message_headers_replace (
        soup_message_get_request_headers (msg), "Authorization", auth);
  }
  if (body != NULL) {
    g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
  }
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (reply != NULL, "%s %s failed: %s", method, url,
      error ? error->message : "?");
  *status = soup_message_get_status (msg);

  parser = json_parser_new ();
  if (json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL),
          g_bytes_get_size (reply), NULL)
      && json_parser_get_root (parser))
    root = json_node_copy (json_parser_get_root (parser));
  g_object_unref (parser);
  return root;
}

static const gchar *
member_string (JsonNode *node, const gchar *name)
{
  JsonObject *obj;

  fail_unless (node != NULL && JSON_NODE_HOLDS_OBJECT (node));
  obj = json_node_get_object (node);
  fail_unless (json_object_has_member (obj, name), "reply has no %s", name);
  return json_object_get_string_member (obj, name);
}

static gchar *
hs_url (const gchar *path)
{
  return g_strconcat (stack_env_get ("MATRIXRTC_HS_URL"), path, NULL);
}

/* Registers a fresh user through Synapse's shared-secret admin API. */
static gchar *
register_user (const gchar *prefix, const gchar *password)
{
  g_autofree gchar *username
      = g_strdup_printf ("%s-%08x", prefix, g_random_int ());
  g_autoptr (GError) error = NULL;
  gchar *user_id = stack_env_register_user (username, password, &error);

  fail_unless (user_id != NULL, "registering %s: %s", username,
      error ? error->message : "?");
  return user_id;
}

static TestUser *
login (const gchar *user_id, const gchar *password, const gchar *device_id)
{
  g_autofree gchar *url = hs_url ("/_matrix/client/v3/login");
  g_autofree gchar *body = g_strdup_printf (
      "{\"type\":\"m.login.password\","
      "\"identifier\":{\"type\":\"m.id.user\",\"user\":\"%s\"},"
      "\"password\":\"%s\",\"device_id\":\"%s\"}",
      user_id, password, device_id);
  g_autoptr (JsonNode) reply = NULL;
  TestUser *user;
  guint status;

  reply = http_json ("POST", url, NULL, body, &status);
  fail_unless_equals_int (status, 200);
  user = g_new0 (TestUser, 1);
  user->user_id = g_strdup (member_string (reply, "user_id"));
  user->device_id = g_strdup (member_string (reply, "device_id"));
  user->access_token = g_strdup (member_string (reply, "access_token"));
  fail_unless_equals_string (user->user_id, user_id);
  fail_unless_equals_string (user->device_id, device_id);
  return user;
}

/* The OpenID token, as the JSON object the token services take. */
static gchar *
request_openid (TestUser *user)
{
  g_autofree gchar *path = g_strdup_printf (
      "/_matrix/client/v3/user/%s/openid/request_token", user->user_id);
  g_autofree gchar *url = hs_url (path);
  g_autoptr (JsonNode) reply = NULL;
  guint status;

  reply = http_json ("POST", url, user->access_token, "{}", &status);
  fail_unless_equals_int (status, 200);
  fail_unless_equals_string (member_string (reply, "matrix_server_name"),
      stack_env_get ("MATRIXRTC_SERVER_NAME"));
  member_string (reply, "access_token");
  return json_to_string (reply, FALSE);
}

/* base64 without padding of SHA-256 over the compact JSON array @strings, as
 * lk-jwt-service derives LiveKit room aliases and identities. */
static gchar *
lk_hashed_name (const gchar *const *strings)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) array = NULL;
  g_autofree gchar *json = NULL;
  guint8 digest[32];
  gsize digest_len = sizeof (digest);
  GChecksum *sha;
  gchar *b64;

  json_builder_begin_array (builder);
  for (; *strings != NULL; strings++)
    json_builder_add_string_value (builder, *strings);
  json_builder_end_array (builder);
  array = json_builder_get_root (builder);
  json = json_to_string (array, FALSE);

  sha = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (sha, (const guchar *)json, strlen (json));
  g_checksum_get_digest (sha, digest, &digest_len);
  g_checksum_free (sha);
  b64 = g_base64_encode (digest, digest_len);
  while (g_str_has_suffix (b64, "="))
    b64[strlen (b64) - 1] = '\0';
  return b64;
}

static gboolean
pb_read_varint (const guint8 **p, const guint8 *end, guint64 *value)
{
  guint shift = 0;

  *value = 0;
  while (*p < end && shift < 64) {
    guint8 b = *(*p)++;
    *value |= (guint64)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return TRUE;
    shift += 7;
  }
  return FALSE;
}

/* Finds the length-delimited field @field_number in the protobuf message
 * [@data, @data + @len); returns its bytes, or FALSE. */
static gboolean
pb_find_bytes (const guint8 *data, gsize len, guint field_number,
    const guint8 **out, gsize *out_len)
{
  const guint8 *p = data, *end = data + len;

  while (p < end) {
    guint64 key, value;

    if (!pb_read_varint (&p, end, &key))
      return FALSE;
    switch (key & 7) {
      case 0:
        if (!pb_read_varint (&p, end, &value))
          return FALSE;
        break;
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2:
        if (!pb_read_varint (&p, end, &value) || value > (guint64)(end - p))
          return FALSE;
        if ((key >> 3) == field_number) {
          *out = p;
          *out_len = value;
          return TRUE;
        }
        p += value;
        break;
      default:
        return FALSE;
    }
  }
  return FALSE;
}

static gchar *
pb_find_string (const guint8 *data, gsize len, guint field_number)
{
  const guint8 *s;
  gsize s_len;

  if (!pb_find_bytes (data, len, field_number, &s, &s_len))
    return NULL;
  return g_strndup ((const gchar *)s, s_len);
}

typedef struct
{
  GMainLoop *loop;
  GBytes *first_message;
  gint first_type;
  gchar *error;
} WsWait;

static void
on_ws_message (
    SoupWebsocketConnection *ws, gint type, GBytes *message, WsWait *wait)
{
  if (wait->first_message == NULL) {
    wait->first_message = g_bytes_ref (message);
    wait->first_type = type;
  }
  g_main_loop_quit (wait->loop);
}

static void
on_ws_connected (GObject *source, GAsyncResult *res, gpointer user_data)
{
  WsWait *wait = user_data;
  GError *error = NULL;
  SoupWebsocketConnection *ws = soup_session_websocket_connect_finish (
      SOUP_SESSION (source), res, &error);

  if (ws == NULL) {
    wait->error = g_strdup (error->message);
    g_error_free (error);
    g_main_loop_quit (wait->loop);
    return;
  }
  g_signal_connect (ws, "message", G_CALLBACK (on_ws_message), wait);
  g_object_set_data_full (G_OBJECT (source), "ws", ws, g_object_unref);
}

static gboolean
on_ws_timeout (gpointer user_data)
{
  WsWait *wait = user_data;

  wait->error = g_strdup ("no message within 15 s");
  g_main_loop_quit (wait->loop);
  return G_SOURCE_REMOVE;
}

/* Opens the LiveKit signalling WebSocket at @livekit_url with @jwt and checks
 * that the first message is a binary SignalResponse{join} for @room_alias and
 * @identity. */
static void
check_livekit_join (const gchar *livekit_url, const gchar *jwt,
    const gchar *room_alias, const gchar *identity)
{
  g_autofree gchar *url = g_strdup_printf (
      "%s/rtc?access_token=%s&auto_subscribe=1&protocol=3", livekit_url, jwt);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autofree gchar *room_name = NULL;
  g_autofree gchar *participant_identity = NULL;
  WsWait wait = {
    0,
  };
  const guint8 *join, *room, *participant;
  gsize join_len, room_len, participant_len;
  const guint8 *data;
  gsize size;
  guint timeout_id;

  fail_unless (msg != NULL);
  wait.loop = g_main_loop_new (NULL, FALSE);
  soup_session_websocket_connect_async (session, msg, NULL, NULL,
      G_PRIORITY_DEFAULT, NULL, on_ws_connected, &wait);
  timeout_id = g_timeout_add_seconds (15, on_ws_timeout, &wait);
  g_main_loop_run (wait.loop);
  g_source_remove (timeout_id);
  g_main_loop_unref (wait.loop);

  fail_unless (
      wait.error == NULL, "LiveKit WebSocket %s: %s", livekit_url, wait.error);
  fail_unless_equals_int (wait.first_type, SOUP_WEBSOCKET_DATA_BINARY);
  data = g_bytes_get_data (wait.first_message, &size);

  /* SignalResponse.join = 1 → JoinResponse{room = 1 (Room.name = 2),
   * participant = 2 (ParticipantInfo.identity = 2)} */
  fail_unless (pb_find_bytes (data, size, 1, &join, &join_len),
      "the first signalling message is not a JoinResponse");
  fail_unless (pb_find_bytes (join, join_len, 1, &room, &room_len));
  fail_unless (
      pb_find_bytes (join, join_len, 2, &participant, &participant_len));
  room_name = pb_find_string (room, room_len, 2);
  participant_identity = pb_find_string (participant, participant_len, 2);
  fail_unless_equals_string (room_name, room_alias);
  fail_unless_equals_string (participant_identity, identity);

  g_bytes_unref (wait.first_message);
  /* Closing: dropping the connection object closes the socket. */
  g_object_set_data (G_OBJECT (session), "ws", NULL);
}

static gchar *
create_room (TestUser *owner, TestUser *invitee)
{
  g_autofree gchar *url = hs_url ("/_matrix/client/v3/createRoom");
  g_autofree gchar *body = g_strdup_printf (
      "{\"preset\":\"private_chat\",\"invite\":[\"%s\"]}", invitee->user_id);
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (JsonNode) join_reply = NULL;
  g_autofree gchar *join_path = NULL;
  g_autofree gchar *join_url = NULL;
  gchar *room_id;
  guint status;

  reply = http_json ("POST", url, owner->access_token, body, &status);
  fail_unless_equals_int (status, 200);
  room_id = g_strdup (member_string (reply, "room_id"));

  join_path = g_strdup_printf ("/_matrix/client/v3/rooms/%s/join", room_id);
  join_url = hs_url (join_path);
  join_reply
      = http_json ("POST", join_url, invitee->access_token, "{}", &status);
  fail_unless_equals_int (status, 200);
  return room_id;
}

static void
setup (void)
{
  GError *error = NULL;

  if (!stack_env_load (&error))
    g_error ("%s", error->message);
  session = soup_session_new_with_options ("timeout", 30, NULL);
}

static void
teardown (void)
{
  g_clear_object (&session);
}

GST_START_TEST (test_stack_token_and_join)
{
  const gchar *password = stack_env_get ("MATRIXRTC_PASSWORD");
  const gchar *jwt_services[]
      = { "MATRIXRTC_JWT_A_URL", "MATRIXRTC_JWT_B_URL" };
  const gchar *sfu_urls[] = { "MATRIXRTC_SFU_A_URL", "MATRIXRTC_SFU_B_URL" };
  g_autofree gchar *alice_id = register_user ("stack-alice", password);
  g_autofree gchar *bob_id = register_user ("stack-bob", password);
  g_autoptr (TestUser) alice = login (alice_id, password, "ALICEDEV");
  g_autoptr (TestUser) bob = login (bob_id, password, "BOBDEV");
  g_autofree gchar *room_id = create_room (alice, bob);
  const gchar *alias_parts[] = { room_id, SLOT_ID, NULL };
  g_autofree gchar *room_alias = lk_hashed_name (alias_parts);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (jwt_services); i++) {
    const gchar *service = stack_env_get (jwt_services[i]);
    g_autofree gchar *alice_openid = request_openid (alice);
    g_autofree gchar *bob_openid = request_openid (bob);
    g_autofree gchar *get_token = g_strconcat (service, "/get_token", NULL);
    g_autofree gchar *sfu_get = g_strconcat (service, "/sfu/get", NULL);
    g_autofree gchar *member_body = NULL;
    g_autofree gchar *legacy_body = NULL;
    g_autofree gchar *legacy_identity = NULL;
    g_autofree gchar *member_identity = NULL;
    const gchar *identity_parts[]
        = { alice->user_id, alice->device_id, "member-1", NULL };
    g_autoptr (JsonNode) reply = NULL;
    g_autoptr (JsonNode) legacy_reply = NULL;
    guint status;

    /* MSC4195 /get_token for alice, as a sticky-mode member. */
    member_body = g_strdup_printf (
        "{\"room_id\":\"%s\",\"slot_id\":\"" SLOT_ID
        "\",\"openid_token\":%s,\"member\":{\"id\":\"member-1\","
        "\"claimed_user_id\":\"%s\",\"claimed_device_id\":\"%s\"}}",
        room_id, alice_openid, alice->user_id, alice->device_id);
    reply = http_json ("POST", get_token, NULL, member_body, &status);
    fail_unless_equals_int (status, 200);
    fail_unless_equals_string (
        member_string (reply, "url"), stack_env_get (sfu_urls[i]));
    member_identity = lk_hashed_name (identity_parts);
    check_livekit_join (member_string (reply, "url"),
        member_string (reply, "jwt"), room_alias, member_identity);

    /* Legacy /sfu/get for bob, as deployed Element Call does. */
    legacy_body = g_strdup_printf ("{\"room\":\"%s\",\"openid_token\":%s,"
                                   "\"device_id\":\"%s\"}",
        room_id, bob_openid, bob->device_id);
    legacy_reply = http_json ("POST", sfu_get, NULL, legacy_body, &status);
    fail_unless_equals_int (status, 200);
    legacy_identity = g_strdup_printf ("%s:%s", bob->user_id, bob->device_id);
    check_livekit_join (member_string (legacy_reply, "url"),
        member_string (legacy_reply, "jwt"), room_alias, legacy_identity);
  }
}

GST_END_TEST;

GST_START_TEST (test_stack_rejects_bad_requests)
{
  const gchar *password = stack_env_get ("MATRIXRTC_PASSWORD");
  const gchar *service = stack_env_get ("MATRIXRTC_JWT_A_URL");
  const gchar *server_name = stack_env_get ("MATRIXRTC_SERVER_NAME");
  g_autofree gchar *alice_id = register_user ("stack-neg", password);
  g_autoptr (TestUser) alice = login (alice_id, password, "NEGDEV");
  g_autofree gchar *login_url = hs_url ("/_matrix/client/v3/login");
  g_autofree gchar *get_token = g_strconcat (service, "/get_token", NULL);
  g_autofree gchar *sfu_get = g_strconcat (service, "/sfu/get", NULL);
  g_autofree gchar *openid = request_openid (alice);
  g_autofree gchar *body = NULL;
  g_autofree gchar *forged = NULL;
  g_autoptr (JsonNode) reply = NULL;
  guint status;

  /* Wrong password: Synapse says M_FORBIDDEN. */
  body = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":"
      "{\"type\":\"m.id.user\",\"user\":\"%s\"},\"password\":\"not-%s\"}",
      alice->user_id, password);
  reply = http_json ("POST", login_url, NULL, body, &status);
  fail_unless_equals_int (status, 403);
  fail_unless_equals_string (member_string (reply, "errcode"), "M_FORBIDDEN");
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&body, g_free);

  /* A forged OpenID token: the homeserver does not know it. */
  forged = g_strdup_printf (
      "{\"access_token\":\"forged%08x\","
      "\"token_type\":\"Bearer\",\"matrix_server_name\":\"%s\","
      "\"expires_in\":3600}",
      g_random_int (), server_name);
  body = g_strdup_printf ("{\"room\":\"!r:%s\",\"openid_token\":%s,"
                          "\"device_id\":\"NEGDEV\"}",
      server_name, forged);
  reply = http_json ("POST", sfu_get, NULL, body, &status);
  fail_unless_equals_int (status, 401);
  fail_unless_equals_string (
      member_string (reply, "errcode"), "M_UNAUTHORIZED");
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&body, g_free);

  /* A real token whose user is not the claimed one. */
  body = g_strdup_printf (
      "{\"room_id\":\"!r:%s\",\"slot_id\":\"" SLOT_ID
      "\",\"openid_token\":%s,\"member\":{\"id\":\"m\",\"claimed_user_id\":"
      "\"@someone-else:%s\",\"claimed_device_id\":\"NEGDEV\"}}",
      server_name, openid, server_name);
  reply = http_json ("POST", get_token, NULL, body, &status);
  fail_unless_equals_int (status, 401);
  fail_unless_equals_string (
      member_string (reply, "errcode"), "M_UNAUTHORIZED");
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&body, g_free);

  /* An unknown JSON field, at the top level and nested. */
  body = g_strdup_printf ("{\"room\":\"!r:%s\",\"openid_token\":%s,"
                          "\"device_id\":\"NEGDEV\",\"unknown_field\":1}",
      server_name, openid);
  reply = http_json ("POST", sfu_get, NULL, body, &status);
  fail_unless_equals_int (status, 400);
  fail_unless_equals_string (member_string (reply, "errcode"), "M_NOT_JSON");
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&body, g_free);

  body = g_strdup_printf (
      "{\"room_id\":\"!r:%s\",\"slot_id\":\"" SLOT_ID
      "\",\"openid_token\":%s,\"member\":{\"id\":\"m\",\"claimed_user_id\":"
      "\"%s\",\"claimed_device_id\":\"NEGDEV\",\"extra\":true}}",
      server_name, openid, alice->user_id);
  reply = http_json ("POST", get_token, NULL, body, &status);
  fail_unless_equals_int (status, 400);
  fail_unless_equals_string (member_string (reply, "errcode"), "M_NOT_JSON");
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&body, g_free);

  /* A missing member field. */
  body = g_strdup_printf ("{\"room_id\":\"!r:%s\",\"slot_id\":\"" SLOT_ID
                          "\",\"openid_token\":%s,\"member\":{\"id\":\"m\"}}",
      server_name, openid);
  reply = http_json ("POST", get_token, NULL, body, &status);
  fail_unless_equals_int (status, 400);
  fail_unless_equals_string (member_string (reply, "errcode"), "M_BAD_JSON");
}

GST_END_TEST;

GST_START_TEST (test_stack_rejects_expired_openid)
{
  /* A real OpenID token, expired: Synapse issues them for an hour, so the
   * test moves this token's expiry into the past in the homeserver's own
   * database, and the token service must then refuse it. */
  const gchar *password = stack_env_get ("MATRIXRTC_PASSWORD");
  const gchar *service = stack_env_get ("MATRIXRTC_JWT_B_URL");
  const gchar *server_name = stack_env_get ("MATRIXRTC_SERVER_NAME");
  g_autofree gchar *user_id = register_user ("stack-expired", password);
  g_autoptr (TestUser) user = login (user_id, password, "EXPDEV");
  g_autofree gchar *openid = request_openid (user);
  g_autofree gchar *sfu_get = g_strconcat (service, "/sfu/get", NULL);
  g_autofree gchar *db = g_build_filename (
      stack_env_get ("MATRIXRTC_STACK_DIR"), "synapse", "homeserver.db", NULL);
  g_autofree gchar *body
      = g_strdup_printf ("{\"room\":\"!r:%s\","
                         "\"openid_token\":%s,\"device_id\":\"EXPDEV\"}",
          server_name, openid);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *sql = NULL;
  const gchar *token;
  gint exit_status;
  guint status;

  /* Valid first. */
  reply = http_json ("POST", sfu_get, NULL, body, &status);
  fail_unless_equals_int (status, 200);
  g_clear_pointer (&reply, json_node_unref);

  fail_unless (json_parser_load_from_data (parser, openid, -1, NULL));
  token = json_object_get_string_member (
      json_node_get_object (json_parser_get_root (parser)), "access_token");
  fail_unless (
      strspn (token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
      == strlen (token));
  sql = g_strdup_printf ("UPDATE open_id_tokens SET ts_valid_until_ms = 0 "
                         "WHERE token = '%s';",
      token);
  {
    const gchar *argv[]
        = { "sqlite3", "-cmd", ".timeout 10000", db, sql, NULL };
    fail_unless (g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH,
                     NULL, NULL, NULL, NULL, &exit_status, &error),
        "sqlite3: %s", error ? error->message : "?");
    fail_unless (g_spawn_check_wait_status (exit_status, NULL));
  }

  reply = http_json ("POST", sfu_get, NULL, body, &status);
  fail_unless_equals_int (status, 401);
  fail_unless_equals_string (
      member_string (reply, "errcode"), "M_UNAUTHORIZED");
}

GST_END_TEST;

static Suite *
stack_suite (void)
{
  Suite *s = suite_create ("stack");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_stack_token_and_join);
  tcase_add_test (tc, test_stack_rejects_bad_requests);
  tcase_add_test (tc, test_stack_rejects_expired_openid);
  return s;
}

GST_CHECK_MAIN (stack);
