/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* matrixrtcbin in a call with an Element-Call-like peer (ec_peer.mjs:
 * matrix-js-sdk 43's MatrixRTCSession + @livekit/rtc-node, token from the
 * token service's legacy endpoint): the peer's media reaches us decoded
 * (its red/blue picture, its audio), and ours reaches it (the SMPTE bars).
 * Needs the local stack (tests/env/up) and Node with
 * tests/interop/node_modules. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "callutil.h"
#include "stackenv.h"

static JsonObject *
read_event (GDataInputStream *in, const gchar *want)
{
  for (;;) {
    g_autoptr (GError) error = NULL;
    g_autofree gchar *line
        = g_data_input_stream_read_line (in, NULL, NULL, &error);
    g_autoptr (JsonParser) parser = json_parser_new ();
    JsonNode *root;
    JsonObject *obj;

    fail_unless (line != NULL, "the Node peer ended before \"%s\" (%s)", want,
        error ? error->message : "EOF");
    if (!json_parser_load_from_data (parser, line, -1, NULL))
      continue;
    root = json_parser_get_root (parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
      continue;
    obj = json_node_get_object (root);
    fail_if (g_strcmp0 (
                 json_object_get_string_member_with_default (obj, "event", ""),
                 "error")
                 == 0,
        "the Node peer failed: %s",
        json_object_get_string_member_with_default (obj, "message", "?"));
    if (g_strcmp0 (
            json_object_get_string_member_with_default (obj, "event", ""), want)
        == 0)
      return json_object_ref (obj);
  }
}

static void
run_element_call_peer (const gchar *passphrase)
{
  g_autofree gchar *owner_pw = NULL, *peer_pw = NULL;
  g_autofree gchar *owner = call_register_user ("ec-owner", &owner_pw);
  g_autofree gchar *room = call_create_room (owner, owner_pw);
  g_autofree gchar *peer_user = call_register_user ("ec-peer", &peer_pw);
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  const gchar *node = g_getenv ("EC_NODE");
  const gchar *script = g_getenv ("EC_PEER_SCRIPT");
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) child = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (JsonObject) ready = NULL, result = NULL;
  g_autoptr (GError) error = NULL;
  CallPeer *us;
  MemberCounts c;
  gint64 bars;

  fail_unless (node != NULL && script != NULL, "EC_NODE / EC_PEER_SCRIPT");
  if (passphrase != NULL)
    us = call_peer_new ("matrixrtcbin", "ec-us", room, jwt, TRUE, "e2ee-mode",
        3, "passphrase", passphrase, NULL);
  else
    us = call_peer_new ("matrixrtcbin", "ec-us", room, jwt, TRUE, NULL);
  call_peer_start (us);

  launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_subprocess_launcher_setenv (
      launcher, "MRTC_HS_URL", stack_env_get ("MATRIXRTC_HS_URL"), TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_USER", peer_user, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_PASSWORD", peer_pw, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_ROOM_ID", room, TRUE);
  g_subprocess_launcher_setenv (launcher, "MRTC_TRANSPORT_URL", jwt, TRUE);
  g_subprocess_launcher_setenv (launcher, "EC_DURATION", "40", TRUE);
  if (passphrase != NULL)
    g_subprocess_launcher_setenv (launcher, "EC_PASSPHRASE", passphrase, TRUE);
  child = g_subprocess_launcher_spawn (launcher, &error, node, script, NULL);
  fail_unless (child != NULL, "%s", error ? error->message : "");
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
  ready = read_event (out, "ready");
  g_print ("Node peer %s (LiveKit identity %s) is in the call\n",
      json_object_get_string_member (ready, "userId"),
      json_object_get_string_member (ready, "identity"));

  /* its media reaches us, decoded */
  CALL_WAIT (call_peer_counts (us, peer_user).video_split >= 20
                 && call_peer_counts (us, peer_user).audio_buffers >= 50,
      30, us);
  c = call_peer_counts (us, peer_user);
  g_print ("we see the Node peer: %d pads, %d frames (%d red/blue), %d audio "
           "buffers\n",
      c.pads_added, c.video_frames, c.video_split, c.audio_buffers);
  fail_unless (c.video_split >= 20, "only %d of its frames", c.video_split);
  fail_unless (c.audio_buffers >= 50);
  fail_unless (g_atomic_int_get (&us->members_joined) >= 1);

  /* ours reaches it: it reports once it has 30 frames with the bars */
  g_output_stream_close (g_subprocess_get_stdin_pipe (child), NULL, NULL);
  result = read_event (out, "result");
  bars = json_object_get_int_member_with_default (result, "bars_frames", 0);
  g_print ("the Node peer saw %" G_GINT64_FORMAT " frames (%" G_GINT64_FORMAT
           " with our bars), %" G_GINT64_FORMAT " audio frames\n",
      json_object_get_int_member_with_default (result, "video_frames", 0), bars,
      json_object_get_int_member_with_default (result, "audio_frames", 0));
  fail_unless (bars >= 30);
  fail_unless (
      json_object_get_int_member_with_default (result, "audio_frames", 0)
      >= 50);
  fail_unless (g_subprocess_wait (child, NULL, NULL));

  /* it left: its pads go */
  CALL_WAIT (call_peer_counts (us, peer_user).pads_removed >= 2, 20, us);
  fail_unless_equals_int (call_peer_counts (us, peer_user).pads_removed, 2);
  if (passphrase != NULL) {
    GstStructure *stats = NULL;
    guint encrypted = 0;

    g_object_get (us->call, "stats", &stats, NULL);
    gst_structure_get_uint (stats, "remote-tracks-encrypted", &encrypted);
    gst_structure_free (stats);
    fail_unless_equals_int (encrypted, 2);
  }
  call_peer_free (us);
}

GST_START_TEST (test_element_call_peer)
{
  run_element_call_peer (NULL);
}

GST_END_TEST;

/* The same, end-to-end encrypted with Element Call's shared passphrase:
 * LiveKit's own frame cryptor and ours interoperate. */
GST_START_TEST (test_element_call_peer_passphrase)
{
  run_element_call_peer ("interop passphrase 42");
}

GST_END_TEST;

static Suite *
ecinterop_suite (void)
{
  Suite *s = suite_create ("matrixrtc call elements interop");
  TCase *tc = tcase_create ("general");
  GError *error = NULL;

  call_filter_known_warnings ();

  if (!stack_env_load (&error))
    g_printerr ("%s\n", error->message);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_element_call_peer);
  tcase_add_test (tc, test_element_call_peer_passphrase);
  return s;
}

GST_CHECK_MAIN (ecinterop);
