/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Integration tests of the LiveKit transport against real livekit-servers
 * (tests/env/up: SFU A and SFU B; the restart test runs a server of its
 * own). Media flows over loopback ICE. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "stackenv.h"
#include "lktestutil.h"
#include "lkconnection.h"
#include "lktoken.h"

/* Our publisher sends VP8 + Opus; our subscriber on the same SFU decodes
 * them and sees the test pattern. */
GST_START_TEST (test_publish_subscribe)
{
  g_autofree gchar *room = lkt_random_room ("pubsub");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub, *sub;
  Media m;
  gint64 start;

  lkt_media_init (&m, pipeline);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-pub", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-sub", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, &m);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  start = g_get_monotonic_time ();
  lk_connection_connect (pub);
  lk_connection_connect (sub);

  WAIT_FOR (pipeline,
      g_atomic_int_get (&m.video_good) >= 30
          && g_atomic_int_get (&m.audio_buffers) >= 50,
      30);
  GST_INFO ("first frame after %" G_GINT64_FORMAT " ms",
      (m.first_video_us - start) / 1000);
  g_print ("pubsub: %d tracks, %d frames (%d with the bars), %d audio "
           "buffers, first frame %" G_GINT64_FORMAT " ms after connect\n",
      m.tracks, m.video_frames, m.video_good, m.audio_buffers,
      m.first_video_us ? (m.first_video_us - start) / 1000 : -1);
  fail_unless_equals_int (g_atomic_int_get (&m.tracks), 2);
  fail_unless (g_atomic_int_get (&m.video_good) >= 30,
      "only %d good video frames", m.video_good);
  fail_unless (g_atomic_int_get (&m.video_good) * 10
               >= g_atomic_int_get (&m.video_frames) * 9);
  fail_unless (g_atomic_int_get (&m.audio_buffers) >= 50);
  fail_unless_equals_int (
      lk_connection_get_state (sub), LK_CONNECTION_STATE_CONNECTED);
  {
    guint fp_fail = 1;
    g_object_get (sub, "fingerprint-failures", &fp_fail, NULL);
    fail_unless_equals_int (fp_fail, 0);
  }
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

/* Two SFUs at once in one process: A and B each carry a publisher and a
 * subscriber connection. */
GST_START_TEST (test_two_sfus)
{
  g_autofree gchar *room = lkt_random_room ("multi");
  const gchar *url_a = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key_a = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret_a = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  const gchar *url_b = stack_env_get ("MATRIXRTC_SFU_B_URL");
  const gchar *key_b = stack_env_get ("MATRIXRTC_SFU_B_KEY");
  const gchar *secret_b = stack_env_get ("MATRIXRTC_SFU_B_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub_a, *pub_b, *sub_a, *sub_b;
  Media ma, mb;

  lkt_media_init (&ma, pipeline);
  lkt_media_init (&mb, pipeline);
  pub_a = lkt_make_connection ("pub-a", url_a, key_a, secret_a, "alice", room);
  sub_a = lkt_make_connection ("sub-a", url_a, key_a, secret_a, "carol", room);
  pub_b = lkt_make_connection ("pub-b", url_b, key_b, secret_b, "bob", room);
  sub_b = lkt_make_connection ("sub-b", url_b, key_b, secret_b, "carol", room);
  gst_bin_add_many (GST_BIN (pipeline), GST_ELEMENT (pub_a),
      GST_ELEMENT (sub_a), GST_ELEMENT (pub_b), GST_ELEMENT (sub_b), NULL);
  g_signal_connect (sub_a, "track-added", G_CALLBACK (lkt_on_track_added), &ma);
  g_signal_connect (sub_b, "track-added", G_CALLBACK (lkt_on_track_added), &mb);
  lkt_add_publisher_media (pipeline, pub_a, TRUE, FALSE, NULL);
  lkt_add_publisher_media (pipeline, pub_b, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub_a);
  lk_connection_connect (sub_a);
  lk_connection_connect (pub_b);
  lk_connection_connect (sub_b);

  WAIT_FOR (pipeline,
      g_atomic_int_get (&ma.video_good) >= 30
          && g_atomic_int_get (&mb.video_good) >= 30
          && g_atomic_int_get (&ma.audio_buffers) >= 50
          && g_atomic_int_get (&mb.audio_buffers) >= 50,
      30);
  g_print ("two SFUs: A %d tracks %d good frames %d audio; B %d tracks %d "
           "good frames %d audio\n",
      ma.tracks, ma.video_good, ma.audio_buffers, mb.tracks, mb.video_good,
      mb.audio_buffers);
  fail_unless_equals_int (g_atomic_int_get (&ma.tracks), 2);
  fail_unless_equals_int (g_atomic_int_get (&mb.tracks), 2);
  fail_unless (g_atomic_int_get (&ma.video_good) >= 30);
  fail_unless (g_atomic_int_get (&mb.video_good) >= 30);
  fail_unless (g_atomic_int_get (&ma.audio_buffers) >= 50);
  fail_unless (g_atomic_int_get (&mb.audio_buffers) >= 50);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&ma);
  lkt_media_clear (&mb);
}

GST_END_TEST;

/* A track flagged as encrypted (AddTrackRequest.encryption = GCM) carries
 * pre-encrypted frames untouched, and the subscriber sees the flag. */
GST_START_TEST (test_encrypted_track)
{
  g_autofree gchar *room = lkt_random_room ("e2ee");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub, *sub;
  Media m;

  lkt_media_init (&m, pipeline);
  m.sent_frames = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-e2ee", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-e2ee", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, FALSE, TRUE, &m);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  lk_connection_connect (sub);

  WAIT_FOR (pipeline, m.frames_matched >= 30, 30);
  g_mutex_lock (&m.lock);
  g_print ("encrypted track: %d tracks (%d flagged), %d frames identical, "
           "%d altered\n",
      m.tracks, m.encrypted_tracks, m.frames_matched, m.frames_unmatched);
  fail_unless_equals_int (m.encrypted_tracks, 1);
  fail_unless (m.frames_matched >= 30);
  fail_unless (m.frames_unmatched <= 1);
  g_mutex_unlock (&m.lock);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

#define RESTART_HTTP_PORT 7985

static GSubprocess *
start_own_sfu (const gchar *key, const gchar *secret)
{
  g_autofree gchar *server = g_build_filename (
      g_get_user_cache_dir (), "gst-matrixrtc", "bin", "server", NULL);
  g_autofree gchar *config = g_strdup_printf (
      "port: %d\n"
      "bind_addresses: [\"127.0.0.1\"]\n"
      "keys: {%s: %s}\n"
      "rtc: {tcp_port: %d, udp_port: %d, use_external_ip: false, "
      "node_ip: 127.0.0.1, stun_servers: [\"127.0.0.1:3478\"], "
      "enable_loopback_candidate: true}\n"
      "room: {auto_create: true}\n"
      "logging: {level: warn}\n",
      RESTART_HTTP_PORT, key, secret, RESTART_HTTP_PORT + 1,
      RESTART_HTTP_PORT + 2);
  GError *error = NULL;
  GSubprocess *proc;
  gint64 end = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;

  proc = g_subprocess_new (
      G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
      &error, server, "--config-body", config, NULL);
  fail_unless (proc != NULL, "cannot start %s: %s", server,
      error ? error->message : "?");
  /* ready when its HTTP port accepts connections */
  while (g_get_monotonic_time () < end) {
    GSocketClient *client = g_socket_client_new ();
    GSocketConnection *c = g_socket_client_connect_to_host (
        client, "127.0.0.1", RESTART_HTTP_PORT, NULL, NULL);
    g_object_unref (client);
    if (c != NULL) {
      g_object_unref (c);
      return proc;
    }
    g_usleep (50 * 1000);
  }
  g_subprocess_force_exit (proc);
  g_object_unref (proc);
  fail ("livekit-server did not start");
  return NULL;
}

static void
stop_own_sfu (GSubprocess *proc)
{
  g_subprocess_send_signal (proc, SIGKILL);
  g_subprocess_wait (proc, NULL, NULL);
  g_object_unref (proc);
}

/* The SFU is killed and restarted mid-call: both connections rejoin, the
 * publisher republishes, and decoded media resumes on the same pads. */
GST_START_TEST (test_sfu_restart)
{
  g_autofree gchar *room = lkt_random_room ("restart");
  g_autofree gchar *url
      = g_strdup_printf ("ws://127.0.0.1:%d", RESTART_HTTP_PORT);
  const gchar *key = "restartkey";
  const gchar *secret = "restart-secret-0123456789abcdef0123456789";
  GstElement *pipeline = gst_pipeline_new (NULL);
  GSubprocess *sfu = start_own_sfu (key, secret);
  LkConnection *pub, *sub;
  Media m;
  gint before, reconnects = 0;
  gint64 restarted, resumed_ms;

  lkt_media_init (&m, pipeline);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-r", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-r", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  lk_connection_connect (sub);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= 15, 30);
  fail_unless (g_atomic_int_get (&m.video_good) >= 15);

  stop_own_sfu (sfu);
  g_usleep (G_USEC_PER_SEC);
  sfu = start_own_sfu (key, secret);
  restarted = g_get_monotonic_time ();
  before = g_atomic_int_get (&m.video_good);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) > before, 20);
  resumed_ms = (g_get_monotonic_time () - restarted) / 1000;
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= before + 15, 20);
  g_object_get (sub, "reconnects", &reconnects, NULL);
  g_print ("SFU restart: decoded media resumed %" G_GINT64_FORMAT " ms after "
           "the restart (%d good frames since), %d rejoins, %d tracks "
           "announced\n",
      resumed_ms, g_atomic_int_get (&m.video_good) - before, reconnects,
      m.tracks);
  fail_unless (resumed_ms <= 10000,
      "media resumed after %" G_GINT64_FORMAT " ms", resumed_ms);
  fail_unless (g_atomic_int_get (&m.video_good) >= before + 15,
      "media did not resume after the SFU restart");
  fail_unless (reconnects >= 1);
  /* the same pads carry the media again: no new track-added */
  fail_unless_equals_int (m.tracks, 2);
  lkt_stop_pipeline (pipeline);
  stop_own_sfu (sfu);
  lkt_media_clear (&m);
}

GST_END_TEST;

static JsonObject *
http_json (SoupSession *session, const gchar *method, const gchar *uri,
    const gchar *bearer, const gchar *body, guint *status)
{
  SoupMessage *msg = soup_message_new (method, uri);
  GBytes *reply;
  JsonParser *parser;
  JsonObject *obj = NULL;
  GError *error = NULL;

  fail_unless (msg != NULL);
  if (bearer != NULL) {
    gchar *auth = g_strconcat ("Bearer ", bearer, NULL);
    soup_message_headers_replace (
        soup_message_get_request_headers (msg), "Authorization", auth);
    g_free (auth);
  }
  if (body != NULL) {
    GBytes *b = g_bytes_new (body, strlen (body));
    soup_message_set_request_body_from_bytes (msg, "application/json", b);
    g_bytes_unref (b);
  }
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (
      reply != NULL, "%s %s: %s", method, uri, error ? error->message : "");
  *status = soup_message_get_status (msg);
  parser = json_parser_new ();
  if (json_parser_load_from_data (parser, g_bytes_get_data (reply, NULL),
          g_bytes_get_size (reply), NULL)
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    obj = json_object_ref (
        json_node_get_object (json_parser_get_root (parser)));
  g_object_unref (parser);
  g_bytes_unref (reply);
  g_object_unref (msg);
  return obj;
}

typedef struct
{
  gboolean done;
  gboolean ok;
  gchar *url;
  gchar *jwt;
  GError *error;
} TokenResult;

static void
token_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
  TokenResult *r = user_data;

  r->ok = lk_token_request_finish (res, &r->url, &r->jwt, &r->error);
  r->done = TRUE;
}

/* A token from the token service (lk-jwt-service contract) with a real
 * OpenID token from Synapse joins the room; a bad OpenID token gives the
 * HTTP status and errcode. */
GST_START_TEST (test_token_service)
{
  const gchar *hs = stack_env_get ("MATRIXRTC_HS_URL");
  const gchar *service = stack_env_get ("MATRIXRTC_JWT_A_URL");
  const gchar *password = stack_env_get ("MATRIXRTC_PASSWORD");
  SoupSession *session = soup_session_new ();
  g_autofree gchar *uri = NULL;
  g_autofree gchar *body = NULL;
  JsonObject *login, *openid, *claims;
  LkTokenRequest req = { 0 };
  TokenResult r = { 0 };
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  const gchar *local[] = { "127.0.0.1", NULL };
  guint status = 0;

  uri = g_strdup_printf ("%s/_matrix/client/v3/login", hs);
  body = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":"
      "{\"type\":\"m.id.user\",\"user\":\"carol\"},\"password\":\"%s\"}",
      password);
  login = http_json (session, "POST", uri, NULL, body, &status);
  fail_unless_equals_int (status, 200);
  g_free (uri);
  uri = g_strdup_printf ("%s/_matrix/client/v3/user/%s/openid/request_token",
      hs, json_object_get_string_member (login, "user_id"));
  openid = http_json (session, "POST", uri,
      json_object_get_string_member (login, "access_token"), "{}", &status);
  fail_unless_equals_int (status, 200);

  req.room_id = g_strdup_printf (
      "!lk%08x:%s", g_random_int (), stack_env_get ("MATRIXRTC_SERVER_NAME"));
  req.slot_id = g_strdup ("m.call#ROOM");
  req.openid.access_token
      = g_strdup (json_object_get_string_member (openid, "access_token"));
  req.openid.token_type = g_strdup ("Bearer");
  req.openid.matrix_server_name
      = g_strdup (json_object_get_string_member (openid, "matrix_server_name"));
  req.openid.expires_in = json_object_get_int_member (openid, "expires_in");
  req.member_id = g_strdup ("member-carol");
  req.user_id = g_strdup (json_object_get_string_member (login, "user_id"));
  req.device_id = g_strdup (json_object_get_string_member (login, "device_id"));
  lk_token_request_async (session, service, &req, NULL, token_done, &r);
  WAIT_FOR (pipeline, r.done, 20);
  fail_unless (r.ok, "token service: %s", r.error ? r.error->message : "?");
  fail_unless (g_str_has_prefix (r.url, "ws://127.0.0.1"));
  claims = lk_token_peek_claims (r.jwt, NULL);
  fail_unless (claims != NULL);
  g_print ("token service: url %s, identity %s\n", r.url,
      json_object_get_string_member (claims, "sub"));
  json_object_unref (claims);

  conn = lk_connection_new ("svc");
  g_object_set (
      conn, "url", r.url, "token", r.jwt, "local-addresses", local, NULL);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (conn));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  lk_connection_connect (conn);
  WAIT_FOR (pipeline,
      lk_connection_get_state (conn) == LK_CONNECTION_STATE_CONNECTED, 15);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  g_free (r.url);
  g_free (r.jwt);

  /* a forged OpenID token is refused with a status and an errcode */
  memset (&r, 0, sizeof (r));
  g_free (req.openid.access_token);
  req.openid.access_token = g_strdup ("forged");
  lk_token_request_async (session, service, &req, NULL, token_done, &r);
  pipeline = gst_pipeline_new (NULL);
  WAIT_FOR (pipeline, r.done, 20);
  fail_unless (!r.ok);
  fail_unless (g_error_matches (r.error, LK_ERROR, LK_ERROR_HTTP), "%s",
      r.error->message);
  fail_unless (strstr (r.error->message, "M_") != NULL, "%s", r.error->message);
  g_print ("token service, forged OpenID token: %s\n", r.error->message);
  g_clear_error (&r.error);
  gst_object_unref (pipeline);

  lk_token_request_clear (&req);
  json_object_unref (login);
  json_object_unref (openid);
  g_object_unref (session);
}

GST_END_TEST;

typedef struct
{
  gint participants_added, participants_removed, tracks_removed;
  gint muted, unmuted;
} Events;

static void
on_track_muted (LkConnection *c, const gchar *identity, const gchar *sid,
    gboolean muted, Events *e)
{
  g_atomic_int_inc (muted ? &e->muted : &e->unmuted);
}

static void
on_participant_added (
    LkConnection *c, const gchar *identity, const gchar *sid, Events *e)
{
  g_atomic_int_inc (&e->participants_added);
}

static void
on_participant_removed (
    LkConnection *c, const gchar *identity, const gchar *sid, Events *e)
{
  g_atomic_int_inc (&e->participants_removed);
}

static void
on_track_removed (LkConnection *c, const gchar *identity, const gchar *sid,
    GstPad *pad, Events *e)
{
  g_atomic_int_inc (&e->tracks_removed);
}

/* A publisher leaves and another one joins: the subscriber is told, and
 * the new tracks arrive on new m-lines (protocol 3: no transceiver reuse,
 * which webrtcbin 1.22 cannot follow). */
GST_START_TEST (test_leave_and_new_publisher)
{
  g_autofree gchar *room = lkt_random_room ("leave");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub1, *pub2, *sub;
  Events ev = { 0 };
  Media m;
  gint before;

  lkt_media_init (&m, pipeline);
  pub1 = lkt_make_connection ("pub1", url, key, secret, "first", room);
  pub2 = lkt_make_connection ("pub2", url, key, secret, "second", room);
  sub = lkt_make_connection ("sub", url, key, secret, "watcher", room);
  g_object_set (sub, "track-grace-ms", 1000, NULL);
  gst_bin_add_many (GST_BIN (pipeline), GST_ELEMENT (pub1), GST_ELEMENT (pub2),
      GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  g_signal_connect (sub, "track-removed", G_CALLBACK (on_track_removed), &ev);
  g_signal_connect (
      sub, "participant-added", G_CALLBACK (on_participant_added), &ev);
  g_signal_connect (
      sub, "participant-removed", G_CALLBACK (on_participant_removed), &ev);
  lkt_add_publisher_media (pipeline, pub1, TRUE, FALSE, NULL);
  lkt_add_publisher_media (pipeline, pub2, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (sub);
  lk_connection_connect (pub1);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= 15, 30);
  fail_unless (g_atomic_int_get (&m.video_good) >= 15);

  lk_connection_disconnect (pub1);
  WAIT_FOR (pipeline, g_atomic_int_get (&ev.tracks_removed) >= 2, 15);
  fail_unless_equals_int (g_atomic_int_get (&ev.participants_removed), 1);
  fail_unless_equals_int (g_atomic_int_get (&ev.tracks_removed), 2);

  lk_connection_connect (pub2);
  before = g_atomic_int_get (&m.video_good);
  WAIT_FOR (pipeline,
      g_atomic_int_get (&m.tracks) >= 4
          && g_atomic_int_get (&m.video_good) >= before + 15,
      30);
  g_print (
      "leave and new publisher: %d participants added, %d removed, "
      "%d tracks removed, %d tracks added, %d good frames from the second\n",
      ev.participants_added, ev.participants_removed, ev.tracks_removed,
      m.tracks, g_atomic_int_get (&m.video_good) - before);
  fail_unless_equals_int (g_atomic_int_get (&m.tracks), 4);
  fail_unless (g_atomic_int_get (&m.video_good) >= before + 15);
  fail_unless_equals_int (g_atomic_int_get (&ev.participants_added), 2);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

/* A token the SFU refuses: the connection fails (no rejoin loop) and says
 * why, with the HTTP status. */
GST_START_TEST (test_bad_token)
{
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *conn;
  GstBus *bus;
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;

  conn = lkt_make_connection (
      "bad", url, key, "not-the-secret", "mallory", "some-room");
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (conn));
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  lk_connection_connect (conn);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for a bad token");
  gst_message_parse_error (msg, &error, &debug);
  g_print ("bad token: %s (%s)\n", error->message, debug);
  fail_unless (strstr (debug, "HTTP 401") != NULL, "%s", debug);
  fail_unless_equals_int (
      lk_connection_get_state (conn), LK_CONNECTION_STATE_FAILED);
  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);
  gst_object_unref (bus);
  lkt_stop_pipeline (pipeline);
}

GST_END_TEST;

static GstPadProbeReturn
drop_all_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  return GST_PAD_PROBE_DROP;
}

/* Tracks added to, muted on and removed from a connected publisher: webrtcbin
 * renegotiates as offerer, the subscriber gets the new track and loses the
 * removed one. */
GST_START_TEST (test_add_and_remove_track)
{
  g_autofree gchar *room = lkt_random_room ("tracks");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  GstElement *asrc, *aenc, *apay;
  LkConnection *pub, *sub;
  GstPad *vpad, *apad, *src, *peer;
  GstCaps *opus;
  Events ev = { 0 };
  Media m;
  gint audio_before;

  lkt_media_init (&m, pipeline);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-t", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-t", room);
  g_object_set (sub, "track-grace-ms", 500, NULL);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  g_signal_connect (sub, "track-removed", G_CALLBACK (on_track_removed), &ev);
  lkt_add_publisher_media (pipeline, pub, FALSE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  lk_connection_connect (sub);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= 15, 30);
  fail_unless (g_atomic_int_get (&m.video_good) >= 15);
  fail_unless_equals_int (g_atomic_int_get (&m.tracks), 1);

  /* add a microphone while connected */
  asrc = gst_element_factory_make ("audiotestsrc", NULL);
  g_object_set (asrc, "is-live", TRUE, NULL);
  aenc = gst_element_factory_make ("opusenc", NULL);
  apay = gst_element_factory_make ("rtpopuspay", NULL);
  g_object_set (apay, "pt", 111, NULL);
  gst_bin_add_many (GST_BIN (pipeline), asrc, aenc, apay, NULL);
  fail_unless (gst_element_link_many (asrc, aenc, apay, NULL));
  opus = gst_caps_from_string (
      "application/x-rtp,media=audio,"
      "encoding-name=OPUS,payload=111,clock-rate=48000");
  apad = lk_connection_add_track (pub, "microphone", "audio",
      LKPROTO__TRACK_SOURCE__MICROPHONE, opus, 0, 0, FALSE);
  gst_caps_unref (opus);
  src = gst_element_get_static_pad (apay, "src");
  fail_unless_equals_int (gst_pad_link (src, apad), GST_PAD_LINK_OK);
  gst_object_unref (src);
  gst_element_sync_state_with_parent (apay);
  gst_element_sync_state_with_parent (aenc);
  gst_element_sync_state_with_parent (asrc);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.audio_buffers) >= 50, 20);
  fail_unless_equals_int (g_atomic_int_get (&m.tracks), 2);
  fail_unless (g_atomic_int_get (&m.audio_buffers) >= 50);

  /* mute and unmute the microphone: the subscriber is told */
  g_signal_connect (sub, "track-muted", G_CALLBACK (on_track_muted), &ev);
  lk_connection_set_track_muted (pub, apad, TRUE);
  WAIT_FOR (pipeline, g_atomic_int_get (&ev.muted) >= 1, 10);
  lk_connection_set_track_muted (pub, apad, FALSE);
  WAIT_FOR (pipeline, g_atomic_int_get (&ev.unmuted) >= 1, 10);
  fail_unless_equals_int (g_atomic_int_get (&ev.muted), 1);
  fail_unless_equals_int (g_atomic_int_get (&ev.unmuted), 1);

  /* stop the camera: the subscriber loses that track, audio goes on */
  vpad = gst_element_get_static_pad (GST_ELEMENT (pub), "sink_0");
  fail_unless (vpad != NULL);
  peer = gst_pad_get_peer (vpad);
  gst_pad_add_probe (
      peer, GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM, drop_all_probe, NULL, NULL);
  lk_connection_remove_track (pub, vpad);
  WAIT_FOR (pipeline, g_atomic_int_get (&ev.tracks_removed) >= 1, 15);
  audio_before = g_atomic_int_get (&m.audio_buffers);
  WAIT_FOR (
      pipeline, g_atomic_int_get (&m.audio_buffers) >= audio_before + 50, 10);
  g_print ("add, mute and remove: %d tracks added, %d mute and %d unmute "
           "events, %d removed, audio %d buffers after the camera stopped\n",
      m.tracks, ev.muted, ev.unmuted, ev.tracks_removed,
      g_atomic_int_get (&m.audio_buffers) - audio_before);
  fail_unless_equals_int (g_atomic_int_get (&ev.tracks_removed), 1);
  fail_unless (g_atomic_int_get (&m.audio_buffers) >= audio_before + 50);
  fail_unless (
      gst_element_get_static_pad (GST_ELEMENT (pub), "sink_0") == NULL);
  gst_object_unref (peer);
  gst_object_unref (vpad);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

/* The real frame cryptor: matrixrtcframeenc's frames cross the SFU on a
 * track flagged encrypted, byte for byte, and matrixrtcframedec turns them
 * back into the test pattern. */
GST_START_TEST (test_frameenc_end_to_end)
{
  g_autofree gchar *room = lkt_random_room ("frameenc");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub, *sub;
  Media m;

  lkt_media_init (&m, pipeline);
  m.e2ee_key = "000102030405060708090a0b0c0d0e0f";
  m.sent_frames = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-fc", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-fc", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, FALSE, TRUE, &m);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  lk_connection_connect (sub);

  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= 30, 30);
  g_mutex_lock (&m.lock);
  g_print ("frameenc end to end: %d frames identical, %d altered, %d "
           "decrypted frames show the bars (of %d)\n",
      m.frames_matched, m.frames_unmatched, m.video_good, m.video_frames);
  fail_unless_equals_int (m.encrypted_tracks, 1);
  fail_unless (m.frames_matched >= 30);
  fail_unless (m.frames_unmatched <= 1);
  g_mutex_unlock (&m.lock);
  fail_unless (g_atomic_int_get (&m.video_good) >= 30);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

static Suite *
lkmedia_suite (void)
{
  Suite *s = suite_create ("livekit-media");
  TCase *tc = tcase_create ("general");
  GError *error = NULL;

  if (!stack_env_load (&error))
    g_printerr ("%s\n", error->message);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 90);
  tcase_add_test (tc, test_publish_subscribe);
  tcase_add_test (tc, test_two_sfus);
  tcase_add_test (tc, test_encrypted_track);
  tcase_add_test (tc, test_frameenc_end_to_end);
  tcase_add_test (tc, test_sfu_restart);
  tcase_add_test (tc, test_token_service);
  tcase_add_test (tc, test_leave_and_new_publisher);
  tcase_add_test (tc, test_bad_token);
  tcase_add_test (tc, test_add_and_remove_track);
  return s;
}

GST_CHECK_MAIN (lkmedia);
