/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Benchmark of issue 7: PLAYING -> first decoded remote frame of
 * matrixrtcbin against the local stack (tests/env/up), in the clear and
 * with per-member E2EE keys over Olm (targets 1.0 s and 1.5 s): modes
 * none and per-member in a room without m.room.encryption, and
 * auto-encrypted-room (e2ee-mode=auto in a room with it, as Element Call's
 * rooms: per-member keys and legacy memberships).
 *
 * Each run registers two fresh users in a fresh room and sets both
 * pipelines (bars and a sine published, remote pads decoded) to PLAYING at
 * once, as tests/integration/bin/callbin.c does; the time is from PLAYING
 * to the first decoded frame of the other, for both peers. With --late the
 * first peer is in the call and publishing before the second starts, and
 * only the second one's time counts (joining a running call).
 *
 * Each run also prints every peer's milestones from the log (ms after its
 * PLAYING): login answered, room joined, SFU token in hand, SFU joined,
 * first subscriber answer, publisher DTLS up, the other's video out of
 * the jitter buffer, first decoded frame; and their medians per mode.
 * --trace prints, for the first run, a timeline of one peer's steps (the
 * Matrix requests, the LiveKit connection's states and the GStreamer log
 * of --trace-peer up to --trace-level). --faststart N is a what-if for the
 * LiveKit transport: its jitter buffers start after N packets instead of
 * after their latency.
 *
 * Usage: firstframe [--runs N] [--e2ee MODE] [--late] [--trace]
 *                   [--trace-peer ff-a|ff-b] [--trace-level L]
 *                   [--faststart N] */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "callutil.h"
#include "stackenv.h"

static gint faststart;
static const gchar *trace_peer = "ff-b";
static gint trace_level = GST_LEVEL_INFO;
static gint64 trace_start;
static gboolean tracing;
static GMutex trace_lock;
static GString *trace_text;

static void
trace_add (const gchar *who, const gchar *what)
{
  g_mutex_lock (&trace_lock);
  if (tracing && trace_text != NULL)
    g_string_append_printf (trace_text, "  %7.1f ms  %-14s %s\n",
        (g_get_monotonic_time () - trace_start) / 1000.0, who, what);
  g_mutex_unlock (&trace_lock);
}

/* Milestones of each peer's way to its first frame, in ms after its
 * PLAYING, from the log (first occurrence). */
enum
{
  M_LOGIN,  /* POST /login answered */
  M_READY,  /* room joined (and the e2ee mode known) */
  M_TOKEN,  /* SFU token in hand: our LiveKit identity */
  M_LKJOIN, /* LiveKit JoinResponse */
  M_SUB,    /* first subscriber answer sent */
  M_PUB,    /* publisher DTLS up */
  M_TRACK,  /* the other's video track out of the jitter buffer */
  M_FRAME,  /* first decoded frame */
  N_MILESTONES
};

static const struct
{
  const gchar *category, *prefix, *name;
} milestones[N_MILESTONES] = {
  { NULL, "logged in as @", "login" },
  { "matrixrtccallbin", "logged in as", "room-joined" },
  { "matrixrtccallbin", "our LiveKit identity", "token" },
  { "lkconnection", "joined room", "sfu-joined" },
  { "lkconnection", "subscriber answer", "sub-answer" },
  { "lkconnection", "publisher DTLS fingerprint verified", "pub-up" },
  { "lkconnection", "new remote track", "video-rtp" },
  { NULL, NULL, "frame" },
};

static gint64 peer_start_us[2];
static gint64 peer_ms_us[2][N_MILESTONES];
static GArray *milestone_samples[N_MILESTONES]; /* gdouble ms, this mode */

/* Prints and keeps @peer's milestones of this run. */
static void
milestones_report (gint peer)
{
  guint m;

  g_print ("      %s:", peer == 0 ? "A" : "B");
  for (m = 0; m < N_MILESTONES; m++) {
    gdouble ms;

    if (peer_ms_us[peer][m] == 0) {
      g_print (" %s -", milestones[m].name);
      continue;
    }
    ms = (peer_ms_us[peer][m] - peer_start_us[peer]) / 1000.0;
    g_print (" %s %.0f", milestones[m].name, ms);
    g_array_append_val (milestone_samples[m], ms);
  }
  g_print ("\n");
}

/* @peer_hint: a text naming the peer ("ff-a" / "ff-b"). */
static void
milestone_seen (guint m, const gchar *peer_hint)
{
  gint peer = strstr (peer_hint, "ff-a") != NULL   ? 0
              : strstr (peer_hint, "ff-b") != NULL ? 1
                                                   : -1;

  if (peer < 0)
    return;
  g_mutex_lock (&trace_lock);
  if (peer_ms_us[peer][m] == 0)
    peer_ms_us[peer][m] = g_get_monotonic_time ();
  g_mutex_unlock (&trace_lock);
}

static void
glib_log (const gchar *domain, GLogLevelFlags level, const gchar *message,
    gpointer data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    g_printerr ("%s: %s\n", domain ? domain : "", message);
  /* The Matrix client's request log (method, path, status). */
  if (g_strcmp0 (domain, "matrixrtc") == 0)
    trace_add ("matrix", message);
  if (message != NULL && g_str_has_prefix (message, milestones[M_LOGIN].prefix))
    milestone_seen (M_LOGIN, message);
}

static void
gst_log (GstDebugCategory *category, GstDebugLevel level, const gchar *file,
    const gchar *function, gint line, GObject *object, GstDebugMessage *message,
    gpointer data)
{
  const gchar *receiver = data;
  const gchar *cat = gst_debug_category_get_name (category);
  g_autofree gchar *path = NULL;
  guint m;

  if (object == NULL || !GST_IS_OBJECT (object) || level > GST_LEVEL_DEBUG)
    return;
  for (m = 0; m < N_MILESTONES; m++) {
    if (milestones[m].category != NULL
        && g_str_equal (cat, milestones[m].category)
        && g_str_has_prefix (
            gst_debug_message_get (message), milestones[m].prefix)
        && (m != M_TRACK
            || strstr (gst_debug_message_get (message), "video") != NULL)) {
      if (path == NULL)
        path = gst_object_get_path_string (GST_OBJECT (object));
      milestone_seen (m, path);
    }
  }
  if (level > (GstDebugLevel)trace_level || !tracing)
    return;
  if (path == NULL)
    path = gst_object_get_path_string (GST_OBJECT (object));
  if (strstr (path, receiver) == NULL)
    return;
  {
    g_autofree gchar *text = g_strndup (gst_debug_message_get (message), 150);

    trace_add (gst_debug_category_get_name (category), text);
  }
}

typedef struct
{
  const gchar *name;
  gint64 first_buffer_us;
  gint64 pad_us;
} PadTimes;

static GstPadProbeReturn
first_buffer_probe (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  PadTimes *t = data;

  if (t->first_buffer_us == 0) {
    t->first_buffer_us = g_get_monotonic_time ();
    trace_add (t->name, "first encoded video buffer on the remote pad");
  }
  return GST_PAD_PROBE_REMOVE;
}

static void
on_pad_added (GstElement *call, GstPad *pad, PadTimes *t)
{
  g_autofree gchar *kind = NULL;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  g_object_get (pad, "kind", &kind, NULL);
  if (g_strcmp0 (kind, "video") != 0)
    return;
  if (t->pad_us == 0)
    t->pad_us = g_get_monotonic_time ();
  {
    g_autofree gchar *what
        = g_strdup_printf ("remote pad %s added", GST_PAD_NAME (pad));

    trace_add (t->name, what);
  }
  gst_pad_add_probe (
      pad, GST_PAD_PROBE_TYPE_BUFFER, first_buffer_probe, t, NULL);
}

/* --faststart N, a what-if for ext/livekit: the jitter buffers of the
 * SFU connections start after N packets in a row instead of after their
 * latency (200 ms). */
static void
on_deep_element_added (
    GstBin *bin, GstBin *sub_bin, GstElement *element, gpointer data)
{
  GstElementFactory *f = gst_element_get_factory (element);

  if (f != NULL
      && g_str_equal (gst_plugin_feature_get_name (GST_PLUGIN_FEATURE (f)),
          "rtpjitterbuffer"))
    g_object_set (element, "faststart-min-packets", (guint)faststart, NULL);
}

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;

  return x < y ? -1 : x > y;
}

static gdouble
median (GArray *values)
{
  if (values->len == 0)
    return -1;
  g_array_sort (values, cmp_double);
  if (values->len % 2)
    return g_array_index (values, gdouble, values->len / 2);
  return (g_array_index (values, gdouble, values->len / 2 - 1)
             + g_array_index (values, gdouble, values->len / 2))
         / 2;
}

static gboolean
sees (CallPeer *peer, const gchar *user_id)
{
  MemberCounts c = call_peer_counts (peer, user_id);

  return c.video_good >= 1;
}

/* A POST to the homeserver; the reply's string member @member. */
static gchar *
hs_post (const gchar *path, const gchar *token, const gchar *body,
    const gchar *member)
{
  g_autofree gchar *url
      = g_strconcat (stack_env_get ("MATRIXRTC_HS_URL"), path, NULL);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr (GBytes) request = g_bytes_new (body, strlen (body));
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonNode *root;

  if (token != NULL) {
    g_autofree gchar *auth = g_strdup_printf ("Bearer %s", token);

    soup_message_headers_replace (
        soup_message_get_request_headers (msg), "Authorization", auth);
  }
  soup_message_set_request_body_from_bytes (msg, "application/json", request);
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (reply != NULL, "%s: %s", path, error ? error->message : "?");
  fail_unless_equals_int (soup_message_get_status (msg), 200);
  fail_unless (json_parser_load_from_data (
      parser, g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), NULL));
  root = json_parser_get_root (parser);
  fail_unless (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  return g_strdup (
      json_object_get_string_member (json_node_get_object (root), member));
}

/* A room as Element Call's: with m.room.encryption from the start. */
static gchar *
create_encrypted_room (const gchar *user_id, const gchar *password)
{
  g_autofree gchar *login = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\","
      "\"user\":\"%s\"},\"password\":\"%s\"}",
      user_id, password);
  g_autofree gchar *token
      = hs_post ("/_matrix/client/v3/login", NULL, login, "access_token");

  return hs_post ("/_matrix/client/v3/createRoom", token,
      "{\"preset\":\"public_chat\",\"power_level_content_override\":"
      "{\"events\":{\"org.matrix.msc3401.call.member\":0}},"
      "\"initial_state\":[{\"type\":\"m.room.encryption\",\"state_key\":"
      "\"\",\"content\":{\"algorithm\":\"m.megolm.v1.aes-sha2\"}}]}",
      "room_id");
}

/* One run; appends its times in ms to @times (-1 when no frame came). */
static void
run_once (gint e2ee_mode, gboolean late, gboolean trace, GArray *times,
    GArray *pad_times)
{
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  g_autofree gchar *owner_password = NULL, *owner = NULL, *room = NULL;
  CallPeer *a, *b;
  PadTimes ta = { .name = "bench (A)" }, tb = { .name = "bench (B)" };
  gint64 start_a, start_b;
  gdouble ms;

  owner = call_register_user ("ff-owner", &owner_password);
  /* e2ee-mode=auto (0): the default, in an encrypted room. */
  room = e2ee_mode == 0 ? create_encrypted_room (owner, owner_password)
                        : call_create_room (owner, owner_password);
  a = call_peer_new (
      "matrixrtcbin", "ff-a", room, jwt, TRUE, "e2ee-mode", e2ee_mode, NULL);
  b = call_peer_new (
      "matrixrtcbin", "ff-b", room, jwt, TRUE, "e2ee-mode", e2ee_mode, NULL);
  if (faststart > 0) {
    g_signal_connect (a->pipeline, "deep-element-added",
        G_CALLBACK (on_deep_element_added), NULL);
    g_signal_connect (b->pipeline, "deep-element-added",
        G_CALLBACK (on_deep_element_added), NULL);
  }
  g_signal_connect (a->call, "pad-added", G_CALLBACK (on_pad_added), &ta);
  g_signal_connect (b->call, "pad-added", G_CALLBACK (on_pad_added), &tb);
  g_mutex_lock (&trace_lock);
  memset (peer_ms_us, 0, sizeof (peer_ms_us));
  g_mutex_unlock (&trace_lock);
  start_a = g_get_monotonic_time ();
  call_peer_start (a);
  if (late) {
    /* A publishes alone for a while. */
    g_usleep (3 * G_USEC_PER_SEC);
  }
  if (trace) {
    g_mutex_lock (&trace_lock);
    trace_text = g_string_new (NULL);
    trace_start = g_get_monotonic_time ();
    tracing = TRUE;
    g_mutex_unlock (&trace_lock);
  }
  start_b = g_get_monotonic_time ();
  call_peer_start (b);
  peer_start_us[0] = start_a;
  peer_start_us[1] = start_b;
  if (late)
    CALL_WAIT (sees (b, a->user_id), 20, a, b);
  else
    CALL_WAIT (sees (a, b->user_id) && sees (b, a->user_id), 20, a, b);
  if (trace) {
    g_mutex_lock (&trace_lock);
    tracing = FALSE;
    g_mutex_unlock (&trace_lock);
  }

  if (!late) {
    MemberCounts c = call_peer_counts (a, b->user_id);

    ms = c.first_video_us ? (c.first_video_us - start_a) / 1000.0 : -1;
    g_array_append_val (times, ms);
    if (ta.pad_us) {
      ms = (ta.pad_us - start_a) / 1000.0;
      g_array_append_val (pad_times, ms);
    }
    g_print ("    A: first decoded frame %.0f ms (pad %.0f ms, first encoded "
             "buffer %.0f ms)",
        c.first_video_us ? (c.first_video_us - start_a) / 1000.0 : -1.0,
        ta.pad_us ? (ta.pad_us - start_a) / 1000.0 : -1.0,
        ta.first_buffer_us ? (ta.first_buffer_us - start_a) / 1000.0 : -1.0);
  }
  {
    MemberCounts c = call_peer_counts (b, a->user_id);

    ms = c.first_video_us ? (c.first_video_us - start_b) / 1000.0 : -1;
    g_array_append_val (times, ms);
    if (tb.pad_us) {
      ms = (tb.pad_us - start_b) / 1000.0;
      g_array_append_val (pad_times, ms);
    }
    g_print ("    B: first decoded frame %.0f ms (pad %.0f ms, first encoded "
             "buffer %.0f ms)\n",
        c.first_video_us ? (c.first_video_us - start_b) / 1000.0 : -1.0,
        tb.pad_us ? (tb.pad_us - start_b) / 1000.0 : -1.0,
        tb.first_buffer_us ? (tb.first_buffer_us - start_b) / 1000.0 : -1.0);
    if (trace && c.first_video_us)
      g_string_append_printf (trace_text,
          "  %7.1f ms  %-14s first decoded frame\n",
          (c.first_video_us - trace_start) / 1000.0, "bench");
  }
  g_mutex_lock (&trace_lock);
  peer_ms_us[0][M_FRAME] = call_peer_counts (a, b->user_id).first_video_us;
  peer_ms_us[1][M_FRAME] = call_peer_counts (b, a->user_id).first_video_us;
  g_mutex_unlock (&trace_lock);
  if (!late)
    milestones_report (0);
  milestones_report (1);
  if (trace) {
    g_print ("  timeline of B (ms after PLAYING):\n%s", trace_text->str);
    g_mutex_lock (&trace_lock);
    g_string_free (trace_text, TRUE);
    trace_text = NULL;
    g_mutex_unlock (&trace_lock);
  }
  g_signal_handlers_disconnect_by_data (a->call, &ta);
  g_signal_handlers_disconnect_by_data (b->call, &tb);
  call_peer_free (b);
  call_peer_free (a);
}

static gint runs = 7;
static const gchar *e2ee = "both";
static gboolean late, trace;

/* callutil asserts with gst-check: the benchmark runs as one check test
 * (not forked). */
GST_START_TEST (bench_first_frame)
{
  struct
  {
    const gchar *name;
    gint mode;
    gdouble target_ms;
  } modes[] = { { "none", 1, 1000 }, { "per-member", 2, 1500 },
    { "auto-encrypted-room", 0, 1500 } };
  gint i, m;

  g_print ("PLAYING -> first decoded remote frame, matrixrtcbin, SFU A, %s\n",
      late ? "the second peer joining a running call"
           : "both peers starting at once (both times count)");
  for (m = 0; m < (gint)G_N_ELEMENTS (modes); m++) {
    g_autoptr (GArray) times = g_array_new (FALSE, FALSE, sizeof (gdouble));
    g_autoptr (GArray) pads = g_array_new (FALSE, FALSE, sizeof (gdouble));
    gdouble med;
    gint missed = 0;

    if (g_strcmp0 (e2ee, "all") != 0 && g_strcmp0 (e2ee, modes[m].name) != 0
        && (g_strcmp0 (e2ee, "both") != 0 || modes[m].mode == 0))
      continue;
    g_print ("e2ee-mode=%s:\n", modes[m].name);
    for (i = 0; i < N_MILESTONES; i++) {
      g_clear_pointer (&milestone_samples[i], g_array_unref);
      milestone_samples[i] = g_array_new (FALSE, FALSE, sizeof (gdouble));
    }
    for (i = 0; i < runs; i++) {
      g_print ("  run %d:", i + 1);
      run_once (modes[m].mode, late, trace && i == 0, times, pads);
    }
    for (i = (gint)times->len - 1; i >= 0; i--) {
      if (g_array_index (times, gdouble, i) < 0) {
        g_array_remove_index (times, i);
        missed++;
      }
    }
    med = median (times);
    g_print ("  medians (ms after PLAYING):");
    for (i = 0; i < N_MILESTONES; i++)
      g_print (" %s %.0f", milestones[i].name, median (milestone_samples[i]));
    g_print ("\n");
    g_print ("  e2ee-mode=%s: median first decoded frame %.0f ms (min %.0f, "
             "max %.0f, %u samples, %d missed), remote pad median %.0f ms; "
             "target %.0f ms: %s\n",
        modes[m].name, med, times->len ? g_array_index (times, gdouble, 0) : -1,
        times->len ? g_array_index (times, gdouble, times->len - 1) : -1,
        times->len, missed, median (pads), modes[m].target_ms,
        med >= 0 && med <= modes[m].target_ms && missed == 0 ? "met"
                                                             : "NOT met");
  }
}
GST_END_TEST;

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  GOptionEntry entries[] = {
    { "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Runs per mode", "N" },
    { "e2ee", 0, 0, G_OPTION_ARG_STRING, &e2ee, "none, per-member or both",
        "MODE" },
    { "late", 0, 0, G_OPTION_ARG_NONE, &late,
        "The second peer joins a running call", NULL },
    { "trace-peer", 0, 0, G_OPTION_ARG_STRING, &trace_peer,
        "Whose GStreamer log the trace shows (ff-a or ff-b)", "NAME" },
    { "trace-level", 0, 0, G_OPTION_ARG_INT, &trace_level,
        "The highest GStreamer log level the trace shows (default 4, INFO)",
        "LEVEL" },
    { "faststart", 0, 0, G_OPTION_ARG_INT, &faststart,
        "What if the SFU connections' jitter buffers started after N "
        "packets (rtpjitterbuffer faststart-min-packets)",
        "N" },
    { "trace", 0, 0, G_OPTION_ARG_NONE, &trace,
        "Print the second peer's timeline of the first run", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("");
  Suite *suite;
  TCase *tc;
  SRunner *runner;
  gint failed;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("%s\n", error->message);
    return 2;
  }
  if (!stack_env_load (&error)) {
    g_printerr (
        "the local stack is not up (tests/env/up): %s\n", error->message);
    return 1;
  }
  gst_check_init (NULL, NULL);
  call_filter_known_warnings ();
  g_log_set_default_handler (glib_log, NULL);
  /* The milestones come from the log; --trace shows more of it. */
  gst_debug_set_active (TRUE);
  gst_debug_set_threshold_from_string (
      trace ? "matrixrtc*:5,lkconnection:5,webrtcbin:4"
            : "matrixrtccallbin:4,lkconnection:5",
      FALSE);
  gst_debug_remove_log_function (gst_debug_log_default);
  gst_debug_add_log_function (gst_log, (gpointer)trace_peer, NULL);
  suite = suite_create ("firstframe");
  tc = tcase_create ("bench");
  tcase_set_timeout (tc, 30 + runs * 2 * 40);
  tcase_add_test (tc, bench_first_frame);
  suite_add_tcase (suite, tc);
  runner = srunner_create (suite);
  srunner_set_fork_status (runner, CK_NOFORK);
  srunner_run_all (runner, CK_NORMAL);
  failed = srunner_ntests_failed (runner);
  srunner_free (runner);
  return failed == 0 ? 0 : 1;
}
