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
#include <sys/prctl.h>

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

/* A port nobody listens on now (the kernel's choice). */
static guint16
free_port (GSocketType type)
{
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, type,
      type == G_SOCKET_TYPE_STREAM ? G_SOCKET_PROTOCOL_TCP
                                   : G_SOCKET_PROTOCOL_UDP,
      NULL);
  GInetAddress *lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *any = g_inet_socket_address_new (lo, 0);
  GSocketAddress *bound;
  guint16 port = 0;

  fail_unless (sock != NULL);
  if (g_socket_bind (sock, any, FALSE, NULL)) {
    bound = g_socket_get_local_address (sock, NULL);
    port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
    g_object_unref (bound);
  }
  g_socket_close (sock, NULL);
  g_object_unref (sock);
  g_object_unref (any);
  g_object_unref (lo);
  fail_unless (port != 0, "no free port");
  return port;
}

/* Whether a TCP listener could bind @port on 127.0.0.1 now. */
static gboolean
port_is_free (guint16 port)
{
  GSocket *sock = g_socket_new (
      G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  GInetAddress *lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *addr = g_inet_socket_address_new (lo, port);
  gboolean ok = g_socket_bind (sock, addr, TRUE, NULL);

  g_socket_close (sock, NULL);
  g_object_unref (sock);
  g_object_unref (addr);
  g_object_unref (lo);
  return ok;
}

typedef struct
{
  guint16 http, tcp, udp;
} SfuPorts;

/* The restart test's own livekit-server: killed with this process
 * (PR_SET_PDEATHSIG, for a failed assertion or the check timeout) and at
 * exit, so a next run never finds a stale server on its ports. */
static GSubprocess *own_sfu;

static void
own_sfu_child_setup (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static void
kill_own_sfu_at_exit (void)
{
  if (own_sfu != NULL)
    g_subprocess_send_signal (own_sfu, SIGKILL);
}

static void
stop_own_sfu (void)
{
  if (own_sfu == NULL)
    return;
  g_subprocess_send_signal (own_sfu, SIGKILL);
  g_subprocess_wait (own_sfu, NULL, NULL);
  g_clear_object (&own_sfu);
}

static void
start_own_sfu (const SfuPorts *ports, const gchar *key, const gchar *secret)
{
  g_autofree gchar *server = g_build_filename (
      g_get_user_cache_dir (), "gst-matrixrtc", "bin", "server", NULL);
  g_autofree gchar *config = g_strdup_printf (
      "port: %u\n"
      "bind_addresses: [\"127.0.0.1\"]\n"
      "keys: {%s: %s}\n"
      "rtc: {tcp_port: %u, udp_port: %u, use_external_ip: false, "
      "node_ip: 127.0.0.1, stun_servers: [\"127.0.0.1:3478\"], "
      "enable_loopback_candidate: true}\n"
      "room: {auto_create: true}\n"
      "logging: {level: warn}\n",
      ports->http, key, secret, ports->tcp, ports->udp);
  GSubprocessLauncher *launcher;
  GError *error = NULL;
  gint64 end = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;

  fail_unless (own_sfu == NULL);
  /* the previous instance's port must be free again: a listener there now
   * would be somebody else's server */
  while (!port_is_free (ports->http) && g_get_monotonic_time () < end)
    g_usleep (100 * 1000);
  fail_unless (port_is_free (ports->http), "port %u is taken", ports->http);
  launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (
      launcher, own_sfu_child_setup, NULL, NULL);
  own_sfu = g_subprocess_launcher_spawn (
      launcher, &error, server, "--config-body", config, NULL);
  g_object_unref (launcher);
  fail_unless (own_sfu != NULL, "cannot start %s: %s", server,
      error ? error->message : "?");
  /* ready when its HTTP port accepts connections, while it still runs */
  while (g_get_monotonic_time () < end
         && g_subprocess_get_identifier (own_sfu) != NULL) {
    GSocketClient *client = g_socket_client_new ();
    GSocketConnection *c = g_socket_client_connect_to_host (
        client, "127.0.0.1", ports->http, NULL, NULL);
    g_object_unref (client);
    if (c != NULL) {
      g_object_unref (c);
      if (g_subprocess_get_identifier (own_sfu) != NULL)
        return;
    }
    g_usleep (50 * 1000);
  }
  stop_own_sfu ();
  fail ("livekit-server did not start on port %u", ports->http);
}

/* Weak references to a connection's current webrtcbins. */
static void
watch_webrtcbins (LkConnection *conn, GPtrArray *weak)
{
  static const gchar *const names[] = { "publisher", "subscriber" };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElement *e = gst_bin_get_by_name (GST_BIN (conn), names[i]);
    GWeakRef *w;

    fail_unless (e != NULL, "%s has no %s", GST_OBJECT_NAME (conn), names[i]);
    w = g_new0 (GWeakRef, 1);
    g_weak_ref_init (w, e);
    g_ptr_array_add (weak, w);
    gst_object_unref (e);
  }
}

static gint
count_alive (GPtrArray *weak)
{
  gint alive = 0;
  guint i;

  for (i = 0; i < weak->len; i++) {
    GObject *o = g_weak_ref_get (g_ptr_array_index (weak, i));
    if (o != NULL) {
      alive++;
      g_object_unref (o);
    }
  }
  return alive;
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static guint
count_dir (const gchar *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  g_dir_close (dir);
  return n;
}

/* The SFU is killed and restarted mid-call: both connections rejoin, the
 * publisher republishes, and decoded media resumes on the same pads; the
 * webrtcbins of the first session are finalized (no leak per rejoin). */
GST_START_TEST (test_sfu_restart)
{
  g_autofree gchar *room = lkt_random_room ("restart");
  g_autofree gchar *url = NULL;
  const gchar *key = "restartkey";
  const gchar *secret = "restart-secret-0123456789abcdef0123456789";
  GstElement *pipeline = gst_pipeline_new (NULL);
  g_autoptr (GPtrArray) weak = g_ptr_array_new_with_free_func (weak_ref_free);
  SfuPorts ports;
  LkConnection *pub, *sub;
  Media m;
  gint before, reconnects = 0;
  gint64 restarted, resumed_ms;

  ports.http = free_port (G_SOCKET_TYPE_STREAM);
  ports.tcp = free_port (G_SOCKET_TYPE_STREAM);
  ports.udp = free_port (G_SOCKET_TYPE_DATAGRAM);
  url = g_strdup_printf ("ws://127.0.0.1:%u", ports.http);
  start_own_sfu (&ports, key, secret);
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
  watch_webrtcbins (pub, weak);
  watch_webrtcbins (sub, weak);

  stop_own_sfu ();
  g_usleep (G_USEC_PER_SEC);
  start_own_sfu (&ports, key, secret);
  restarted = g_get_monotonic_time ();
  before = g_atomic_int_get (&m.video_good);
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) > before, 20);
  resumed_ms = (g_get_monotonic_time () - restarted) / 1000;
  WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) >= before + 15, 20);
  g_object_get (sub, "reconnects", &reconnects, NULL);
  WAIT_FOR (pipeline, count_alive (weak) == 0, 5);
  g_print ("SFU restart: decoded media resumed %" G_GINT64_FORMAT " ms after "
           "the restart (%d good frames since), %d rejoins, %d tracks "
           "announced, %d webrtcbins of the first session alive\n",
      resumed_ms, g_atomic_int_get (&m.video_good) - before, reconnects,
      m.tracks, count_alive (weak));
  fail_unless (resumed_ms <= 10000,
      "media resumed after %" G_GINT64_FORMAT " ms", resumed_ms);
  fail_unless (g_atomic_int_get (&m.video_good) >= before + 15,
      "media did not resume after the SFU restart");
  fail_unless (reconnects >= 1);
  /* the same pads carry the media again: no new track-added */
  fail_unless_equals_int (m.tracks, 2);
  /* the replaced webrtcbins are gone (they leaked before) */
  fail_unless_equals_int (count_alive (weak), 0);
  lkt_stop_pipeline (pipeline);
  stop_own_sfu ();
  lkt_media_clear (&m);
}

GST_END_TEST;

/* Connect, disconnect and connect again, several times: every session's
 * webrtcbins are finalized (threads, sockets and fds with them). Each step
 * waits for its event (both connected, the first decoded frame of the new
 * session, the old webrtcbins finalized) within a generous bound, so that
 * a loaded machine only makes it slower. */
GST_START_TEST (test_connect_cycles_no_leak)
{
  g_autofree gchar *room = lkt_random_room ("cycles");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkConnection *pub, *sub;
  Media m;
  guint threads[3] = { 0 }, fds[3] = { 0 };
  gint cycle;

  lkt_media_init (&m, pipeline);
  pub = lkt_make_connection ("pub", url, key, secret, "alice-cyc", room);
  sub = lkt_make_connection ("sub", url, key, secret, "bob-cyc", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  for (cycle = 0; cycle < 3; cycle++) {
    g_autoptr (GPtrArray) weak = g_ptr_array_new_with_free_func (weak_ref_free);
    gint before = g_atomic_int_get (&m.video_good);

    lk_connection_connect (pub);
    lk_connection_connect (sub);
    WAIT_FOR (pipeline,
        lk_connection_get_state (pub) == LK_CONNECTION_STATE_CONNECTED
            && lk_connection_get_state (sub) == LK_CONNECTION_STATE_CONNECTED,
        60);
    fail_unless (
        lk_connection_get_state (pub) == LK_CONNECTION_STATE_CONNECTED
            && lk_connection_get_state (sub) == LK_CONNECTION_STATE_CONNECTED,
        "cycle %d: not connected", cycle);
    WAIT_FOR (pipeline, g_atomic_int_get (&m.video_good) > before, 60);
    fail_unless (
        g_atomic_int_get (&m.video_good) > before, "cycle %d: no media", cycle);
    watch_webrtcbins (pub, weak);
    watch_webrtcbins (sub, weak);
    lk_connection_disconnect (pub);
    lk_connection_disconnect (sub);
    WAIT_FOR (pipeline, count_alive (weak) == 0, 30);
    fail_unless_equals_int (count_alive (weak), 0);
    threads[cycle] = count_dir ("/proc/self/task");
    fds[cycle] = count_dir ("/proc/self/fd");
  }
  g_print ("connect/disconnect cycles: all webrtcbins finalized; threads "
           "%u %u %u, fds %u %u %u after each cycle\n",
      threads[0], threads[1], threads[2], fds[0], fds[1], fds[2]);
  /* a leaked session kept 3 threads and 17 fds */
  fail_unless (threads[2] <= threads[0] + 2, "threads grow: %u -> %u",
      threads[0], threads[2]);
  fail_unless (fds[2] <= fds[0] + 6, "fds grow: %u -> %u", fds[0], fds[2]);
  lkt_stop_pipeline (pipeline);
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
count_buffers_probe (GstPad *pad, GstPadProbeInfo *info, gint *count)
{
  g_atomic_int_inc (count);
  return GST_PAD_PROBE_OK;
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
  gint audio_before, pushed = 0, pushed_before;

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

  /* stop the camera while its payloader keeps streaming into the pad: the
   * subscriber loses that track, audio goes on, and the camera's upstream
   * never sees not-linked (lkt_check_bus fails on any error) */
  vpad = gst_element_get_static_pad (GST_ELEMENT (pub), "sink_0");
  fail_unless (vpad != NULL);
  peer = gst_pad_get_peer (vpad);
  gst_pad_add_probe (peer,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      (GstPadProbeCallback)count_buffers_probe, &pushed, NULL);
  lk_connection_remove_track (pub, vpad);
  WAIT_FOR (pipeline, g_atomic_int_get (&ev.tracks_removed) >= 1, 15);
  audio_before = g_atomic_int_get (&m.audio_buffers);
  pushed_before = g_atomic_int_get (&pushed);
  WAIT_FOR (pipeline,
      g_atomic_int_get (&m.audio_buffers) >= audio_before + 50
          && g_atomic_int_get (&pushed) >= pushed_before + 10,
      10);
  g_print ("add, mute and remove: %d tracks added, %d mute and %d unmute "
           "events, %d removed, audio %d buffers and %d camera buffers "
           "swallowed after the camera stopped\n",
      m.tracks, ev.muted, ev.unmuted, ev.tracks_removed,
      g_atomic_int_get (&m.audio_buffers) - audio_before,
      g_atomic_int_get (&pushed) - pushed_before);
  fail_unless_equals_int (g_atomic_int_get (&ev.tracks_removed), 1);
  fail_unless (g_atomic_int_get (&m.audio_buffers) >= audio_before + 50);
  /* the payloader still streams: into the removed track's pad */
  fail_unless (g_atomic_int_get (&pushed) >= pushed_before + 10);
  fail_unless (GST_PAD_PARENT (vpad) == GST_ELEMENT (pub));
  /* unlinked, the pad goes */
  fail_unless (gst_pad_unlink (peer, vpad));
  WAIT_FOR (pipeline, GST_PAD_PARENT (vpad) == NULL, 5);
  fail_unless (GST_PAD_PARENT (vpad) == NULL);
  {
    GstPad *gone = gst_element_get_static_pad (GST_ELEMENT (pub), "sink_0");
    fail_unless (gone == NULL);
  }
  gst_object_unref (peer);
  gst_object_unref (vpad);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean blocked;
  gboolean state_done;
  GstElement *pipeline;
} Hold;

/* Holds the streaming thread inside the publisher webrtcbin's sink pad, as
 * webrtcbin does itself until an m-line is negotiated (and a sink in
 * PAUSED does): the thread keeps our sink pad's stream lock meanwhile. */
static GstPadProbeReturn
hold_probe (GstPad *pad, GstPadProbeInfo *info, Hold *h)
{
  g_mutex_lock (&h->lock);
  h->blocked = TRUE;
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
  return GST_PAD_PROBE_OK; /* stays blocked until removed or flushed */
}

static gpointer
stop_thread (gpointer data)
{
  Hold *h = data;

  gst_element_set_state (h->pipeline, GST_STATE_NULL);
  g_mutex_lock (&h->lock);
  h->state_done = TRUE;
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
  return NULL;
}

/* A track is unpublished (lk_connection_remove_track(), its upstream
 * unlinked) while a streaming thread is held inside the connection, then
 * the pipeline stops: the connection must not wait for that thread on its
 * own thread, which PAUSED->READY (disconnect) waits for and which alone
 * releases the thread (the webrtcbins are flushed when the session is torn
 * down). This hung "gst-launch-1.0 -e" before. */
GST_START_TEST (test_remove_track_then_stop_no_hang)
{
  g_autofree gchar *room = lkt_random_room ("hang");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL), *webrtc;
  LkConnection *pub;
  GstPad *vpad, *peer, *target;
  GThread *thread;
  Hold h = { 0 };
  gint64 end;
  gint pushed = 0;

  g_mutex_init (&h.lock);
  g_cond_init (&h.cond);
  h.pipeline = pipeline;
  pub = lkt_make_connection ("pub", url, key, secret, "alice-hang", room);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (pub));
  lkt_add_publisher_media (pipeline, pub, FALSE, FALSE, NULL);
  vpad = gst_element_get_static_pad (GST_ELEMENT (pub), "sink_0");
  fail_unless (vpad != NULL);
  peer = gst_pad_get_peer (vpad);
  gst_pad_add_probe (peer,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      (GstPadProbeCallback)count_buffers_probe, &pushed, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  /* media flows into the webrtcbin once the session is up */
  WAIT_FOR (pipeline,
      lk_connection_get_state (pub) == LK_CONNECTION_STATE_CONNECTED
          && (target = gst_ghost_pad_get_target (GST_GHOST_PAD (vpad)))
          && (gst_object_unref (target), g_atomic_int_get (&pushed) > 0),
      60);
  fail_unless_equals_int (
      lk_connection_get_state (pub), LK_CONNECTION_STATE_CONNECTED);
  target = gst_ghost_pad_get_target (GST_GHOST_PAD (vpad));
  fail_unless (target != NULL);
  webrtc = gst_pad_get_parent_element (target);
  fail_unless (webrtc != NULL);
  gst_pad_add_probe (target,
      GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_BUFFER
          | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      (GstPadProbeCallback)hold_probe, &h, NULL);
  end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  g_mutex_lock (&h.lock);
  while (!h.blocked && g_cond_wait_until (&h.cond, &h.lock, end))
    ;
  g_mutex_unlock (&h.lock);
  fail_unless (h.blocked, "no buffer reached the webrtcbin");

  /* unpublish; the application unlinks the pad (as on EOS) */
  lk_connection_remove_track (pub, vpad);
  fail_unless (gst_pad_unlink (peer, vpad));
  /* the connection thread handles the removal: it marks the pad flushing,
   * finds the held thread inside (its stream lock taken) and leaves the
   * deactivation to a pool thread, so the pad is still there */
  WAIT_FOR (pipeline, GST_PAD_IS_FLUSHING (vpad), 30);
  fail_unless (GST_PAD_IS_FLUSHING (vpad), "the removal was not handled");
  fail_if (GST_PAD_STREAM_TRYLOCK (vpad), "no thread is held in the pad");
  fail_unless ((GstObject *)GST_PAD_PARENT (vpad) == GST_OBJECT (pub),
      "the busy pad was removed at once");
  thread = g_thread_new ("stop", stop_thread, &h);
  end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  g_mutex_lock (&h.lock);
  while (!h.state_done && g_cond_wait_until (&h.cond, &h.lock, end))
    ;
  g_mutex_unlock (&h.lock);
  fail_unless (h.state_done, "stopping the pipeline hung");
  g_thread_join (thread);
  /* the pad went once the held thread was released */
  end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (GST_PAD_PARENT (vpad) != NULL && g_get_monotonic_time () < end)
    g_usleep (50 * 1000);
  fail_unless (GST_PAD_PARENT (vpad) == NULL);
  g_print ("unpublish, then stop with a held streaming thread: stopped, "
           "pad removed\n");
  gst_object_unref (target);
  gst_object_unref (webrtc);
  gst_object_unref (peer);
  gst_object_unref (vpad);
  gst_object_unref (pipeline);
  g_mutex_clear (&h.lock);
  g_cond_clear (&h.cond);
}

GST_END_TEST;

static void
on_track_refused (
    LkConnection *c, const gchar *name, const gchar *reason, gint *refused)
{
  GST_INFO ("track %s refused: %s", name, reason);
  g_atomic_int_inc (refused);
}

/* A token without canPublish: the server refuses each AddTrackRequest
 * (RequestResponse NOT_ALLOWED); the connection says so (signal and
 * warning) instead of stalling silently, and the session stays up. */
GST_START_TEST (test_publish_refused)
{
  g_autofree gchar *room = lkt_random_room ("refused");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  LkGrants grants = { FALSE, TRUE, TRUE, TRUE };
  g_autofree gchar *jwt = NULL;
  LkConnection *pub;
  GstBus *bus;
  GstMessage *msg;
  gint refused = 0, warnings = 0;
  gint64 start;

  jwt = lk_token_mint (key, secret, "viewer-only", NULL, room, &grants,
      g_get_real_time () / G_USEC_PER_SEC, 600, NULL);
  fail_unless (jwt != NULL);
  pub = lkt_make_connection ("pub", url, NULL, NULL, NULL, NULL);
  g_object_set (pub, "token", jwt, NULL);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (pub));
  g_signal_connect (
      pub, "track-refused", G_CALLBACK (on_track_refused), &refused);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  start = g_get_monotonic_time ();
  lk_connection_connect (pub);
  bus = gst_element_get_bus (pipeline);
  while (g_get_monotonic_time () < start + 15 * G_USEC_PER_SEC
         && (g_atomic_int_get (&refused) < 2 || warnings < 2)) {
    /* (lkt_check_bus() would discard the warnings) */
    msg = gst_bus_timed_pop_filtered (
        bus, 50 * GST_MSECOND, GST_MESSAGE_WARNING | GST_MESSAGE_ERROR);
    if (msg != NULL) {
      GError *err = NULL;
      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
        gst_message_parse_error (msg, &err, NULL);
        fail ("pipeline error: %s", err->message);
      }
      gst_message_parse_warning (msg, &err, NULL);
      if (strstr (err->message, "refused") != NULL)
        warnings++;
      g_clear_error (&err);
      gst_message_unref (msg);
    }
  }
  g_print (
      "publish refused: %d tracks refused, %d warnings, after %" G_GINT64_FORMAT
      " ms\n",
      refused, warnings, (g_get_monotonic_time () - start) / 1000);
  fail_unless_equals_int (g_atomic_int_get (&refused), 2);
  fail_unless_equals_int (warnings, 2);
  /* refused by the server, not by the time-out */
  fail_unless (g_get_monotonic_time () - start < 9 * G_USEC_PER_SEC);
  fail_unless_equals_int (
      lk_connection_get_state (pub), LK_CONNECTION_STATE_CONNECTED);
  gst_object_unref (bus);
  lkt_stop_pipeline (pipeline);
}

GST_END_TEST;

static gchar *
base64url (const guint8 *data, gsize len)
{
  gchar *b64 = g_base64_encode (data, len);
  gchar *c;

  for (c = b64; *c; c++) {
    if (*c == '+')
      *c = '-';
    else if (*c == '/')
      *c = '_';
    else if (*c == '=') {
      *c = '\0';
      break;
    }
  }
  return b64;
}

/* A room-admin JWT for the server API (LkGrants has no roomAdmin). */
static gchar *
admin_token (const gchar *key, const gchar *secret, const gchar *room)
{
  static const gchar header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autofree gchar *claims = g_strdup_printf (
      "{\"iss\":\"%s\",\"sub\":\"test-admin\",\"nbf\":%" G_GINT64_FORMAT
      ",\"exp\":%" G_GINT64_FORMAT
      ",\"video\":{\"roomAdmin\":true,\"room\":\"%s\"}}",
      key, now - 10, now + 600, room);
  g_autofree gchar *h = base64url ((const guint8 *)header, strlen (header));
  g_autofree gchar *c = base64url ((const guint8 *)claims, strlen (claims));
  g_autofree gchar *input = g_strconcat (h, ".", c, NULL);
  GHmac *hmac
      = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *)secret, strlen (secret));
  guint8 digest[32];
  gsize digest_len = sizeof (digest);
  g_autofree gchar *sig = NULL;

  g_hmac_update (hmac, (const guchar *)input, strlen (input));
  g_hmac_get_digest (hmac, digest, &digest_len);
  g_hmac_unref (hmac);
  sig = base64url (digest, digest_len);
  return g_strconcat (input, ".", sig, NULL);
}

typedef struct
{
  gchar *sid;
  gint muted, unmuted;
} LocalMute;

static void
on_track_published_sid (
    LkConnection *c, const gchar *name, const gchar *sid, LocalMute *lm)
{
  if (g_str_equal (name, "microphone")) {
    g_free (lm->sid);
    lm->sid = g_strdup (sid);
  }
}

static void
on_local_track_muted (LkConnection *c, const gchar *name, const gchar *sid,
    gboolean muted, LocalMute *lm)
{
  g_atomic_int_inc (muted ? &lm->muted : &lm->unmuted);
}

/* An admin mutes our microphone through the server API: the server tells
 * us with a mute message (protocol 3 also unpublishes this way), and the
 * connection reports it. */
GST_START_TEST (test_server_mute)
{
  g_autofree gchar *room = lkt_random_room ("srvmute");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  GstElement *pipeline = gst_pipeline_new (NULL);
  SoupSession *session = soup_session_new ();
  g_autofree gchar *api = NULL;
  g_autofree gchar *jwt = NULL;
  g_autofree gchar *body = NULL;
  JsonObject *reply;
  LkConnection *pub;
  LocalMute lm = { 0 };
  guint status = 0;

  pub = lkt_make_connection ("pub", url, key, secret, "alice-sm", room);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (pub));
  g_signal_connect (
      pub, "track-published", G_CALLBACK (on_track_published_sid), &lm);
  g_signal_connect (
      pub, "local-track-muted", G_CALLBACK (on_local_track_muted), &lm);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  WAIT_FOR (pipeline, lm.sid != NULL, 20);
  fail_unless (lm.sid != NULL, "the microphone was not published");
  /* let the publisher's transport settle before muting */
  WAIT_FOR (pipeline, FALSE, 1);

  api = g_strdup_printf ("http://%s/twirp/livekit.RoomService/"
                         "MutePublishedTrack",
      g_str_has_prefix (url, "ws://") ? url + 5 : url);
  jwt = admin_token (key, secret, room);
  body = g_strdup_printf ("{\"room\":\"%s\",\"identity\":\"alice-sm\","
                          "\"track_sid\":\"%s\",\"muted\":true}",
      room, lm.sid);
  reply = http_json (session, "POST", api, jwt, body, &status);
  fail_unless_equals_int (status, 200);
  if (reply)
    json_object_unref (reply);
  WAIT_FOR (pipeline, g_atomic_int_get (&lm.muted) >= 1, 10);
  g_print ("server mute: %d mute, %d unmute events for our microphone\n",
      lm.muted, lm.unmuted);
  fail_unless_equals_int (g_atomic_int_get (&lm.muted), 1);
  fail_unless_equals_int (
      lk_connection_get_state (pub), LK_CONNECTION_STATE_CONNECTED);
  lkt_stop_pipeline (pipeline);
  g_object_unref (session);
  g_free (lm.sid);
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
  atexit (kill_own_sfu_at_exit);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 90);
  tcase_add_test (tc, test_publish_subscribe);
  tcase_add_test (tc, test_two_sfus);
  tcase_add_test (tc, test_encrypted_track);
  tcase_add_test (tc, test_frameenc_end_to_end);
  tcase_add_test (tc, test_sfu_restart);
  tcase_add_test (tc, test_publish_refused);
  tcase_add_test (tc, test_server_mute);
  tcase_add_test (tc, test_token_service);
  tcase_add_test (tc, test_leave_and_new_publisher);
  tcase_add_test (tc, test_bad_token);
  tcase_add_test (tc, test_add_and_remove_track);
  tcase_add_test (tc, test_remove_track_then_stop_no_hang);
  /* three sessions in a row: a bound for a loaded machine, not a target
   * (about 10 s when idle) */
  tc = tcase_create ("cycles");
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_connect_cycles_no_leak);
  return s;
}

GST_CHECK_MAIN (lkmedia);
