/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Interop: LiveKit's native Node SDK (@livekit/rtc-node 1.1.0, libwebrtc),
 * run as tests/interop/livekit/peer.mjs, publishes to our connection and
 * receives from it through SFU A of the local stack. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "stackenv.h"
#include "lktestutil.h"

static void
node_exited (GObject *source, GAsyncResult *res, gpointer user_data)
{
  gboolean *done = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), res, NULL);
  *done = TRUE;
}

/* An independent peer, LiveKit's native Node SDK (libwebrtc), publishes to
 * us (VP8 + Opus with RED) and receives from us. */
GST_START_TEST (test_interop_rtc_node)
{
  g_autofree gchar *room = lkt_random_room ("interop");
  const gchar *url = stack_env_get ("MATRIXRTC_SFU_A_URL");
  const gchar *key = stack_env_get ("MATRIXRTC_SFU_A_KEY");
  const gchar *secret = stack_env_get ("MATRIXRTC_SFU_A_SECRET");
  const gchar *root = g_getenv ("GST_MATRIXRTC_SOURCE_ROOT");
  g_autofree gchar *script = NULL;
  g_autofree gchar *node = g_find_program_in_path ("node");
  GstElement *pipeline = gst_pipeline_new (NULL);
  GSubprocessLauncher *launcher;
  GSubprocess *proc;
  GInputStream *out;
  LkConnection *pub, *sub;
  GError *error = NULL;
  gboolean exited = FALSE;
  Media m;
  gchar buf[8192];
  gsize n = 0;
  gchar *result;
  JsonParser *parser;
  JsonObject *stats;

  fail_unless (root != NULL && node != NULL);
  script = g_build_filename (
      root, "tests", "interop", "livekit", "peer.mjs", NULL);
  lkt_media_init (&m, pipeline);
  m.only_identity = "node-peer";
  m.split_pattern = TRUE;
  pub = lkt_make_connection ("pub", url, key, secret, "gst-pub", room);
  sub = lkt_make_connection ("sub", url, key, secret, "gst-sub", room);
  gst_bin_add_many (
      GST_BIN (pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
  g_signal_connect (sub, "track-added", G_CALLBACK (lkt_on_track_added), &m);
  lkt_add_publisher_media (pipeline, pub, TRUE, FALSE, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  lk_connection_connect (pub);
  lk_connection_connect (sub);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "LK_URL", url, TRUE);
  g_subprocess_launcher_setenv (launcher, "LK_API_KEY", key, TRUE);
  g_subprocess_launcher_setenv (launcher, "LK_API_SECRET", secret, TRUE);
  g_subprocess_launcher_setenv (launcher, "LK_ROOM", room, TRUE);
  g_subprocess_launcher_setenv (launcher, "LK_IDENTITY", "node-peer", TRUE);
  g_subprocess_launcher_setenv (launcher, "LK_DURATION", "25", TRUE);
  proc = g_subprocess_launcher_spawn (launcher, &error, node, script, NULL);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  g_object_unref (launcher);
  g_subprocess_wait_async (proc, NULL, node_exited, &exited);

  WAIT_FOR (pipeline,
      exited && g_atomic_int_get (&m.video_good) >= 30
          && g_atomic_int_get (&m.audio_buffers) >= 50,
      40);
  if (!exited)
    g_subprocess_force_exit (proc);
  out = g_subprocess_get_stdout_pipe (proc);
  g_input_stream_read_all (out, buf, sizeof (buf) - 1, &n, NULL, NULL);
  buf[n] = '\0';
  g_object_unref (proc);
  result = strstr (buf, "RESULT ");
  fail_unless (result != NULL, "no result from the Node peer: %s", buf);
  result += strlen ("RESULT ");
  if (strchr (result, '\n') != NULL)
    *strchr (result, '\n') = '\0';
  parser = json_parser_new ();
  fail_unless (json_parser_load_from_data (parser, result, -1, NULL));
  stats = json_node_get_object (json_parser_get_root (parser));
  g_print ("interop: we decoded %d frames of the Node peer (%d correct), %d "
           "audio buffers; it decoded %" G_GINT64_FORMAT
           " of ours (%" G_GINT64_FORMAT " correct), %" G_GINT64_FORMAT
           " audio frames\n",
      m.video_frames, m.video_good, m.audio_buffers,
      json_object_get_int_member (stats, "video_frames"),
      json_object_get_int_member (stats, "bars_frames"),
      json_object_get_int_member (stats, "audio_frames"));
  fail_unless_equals_int (m.tracks, 2);
  fail_unless (g_atomic_int_get (&m.video_good) >= 30);
  fail_unless (g_atomic_int_get (&m.audio_buffers) >= 50);
  fail_unless (json_object_get_int_member (stats, "bars_frames") >= 30);
  fail_unless (json_object_get_int_member (stats, "audio_frames") >= 50);
  g_object_unref (parser);
  lkt_stop_pipeline (pipeline);
  lkt_media_clear (&m);
}

GST_END_TEST;

static Suite *
lkinterop_suite (void)
{
  Suite *s = suite_create ("livekit-interop");
  TCase *tc = tcase_create ("general");
  GError *error = NULL;

  if (!stack_env_load (&error))
    g_printerr ("%s\n", error->message);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 90);
  tcase_add_test (tc, test_interop_rtc_node);
  return s;
}

GST_CHECK_MAIN (lkinterop);
