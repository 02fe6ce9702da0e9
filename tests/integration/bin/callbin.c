/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The call elements against the local stack (tests/env/up): real Synapse,
 * two LiveKit SFUs and their token services. Every test registers fresh
 * users and a fresh room. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#include "callutil.h"
#include "stackenv.h"

#define PASSPHRASE "correct horse battery staple"

/* A JSON request to the homeserver, expecting 200. */
static JsonObject *
hs_request (const gchar *path, const gchar *token, const gchar *body)
{
  return call_http_json ("POST", path, token, body, 200);
}

/* As call_create_room(), with m.room.encryption (Megolm) from the start. */
static gchar *
create_encrypted_room (const gchar *user_id, const gchar *password)
{
  g_autofree gchar *body = g_strdup_printf (
      "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\","
      "\"user\":\"%s\"},\"password\":\"%s\"}",
      user_id, password);
  g_autoptr (JsonObject) login = NULL, room = NULL;

  login = hs_request ("/_matrix/client/v3/login", NULL, body);
  room = hs_request ("/_matrix/client/v3/createRoom",
      json_object_get_string_member (login, "access_token"),
      "{\"preset\":\"public_chat\",\"power_level_content_override\":"
      "{\"events\":{\"org.matrix.msc3401.call.member\":0}},"
      "\"initial_state\":[{\"type\":\"m.room.encryption\",\"state_key\":"
      "\"\",\"content\":{\"algorithm\":\"m.megolm.v1.aes-sha2\"}}]}");
  return g_strdup (json_object_get_string_member (room, "room_id"));
}

static gchar *
stats_string (CallPeer *peer, const gchar *field)
{
  GstStructure *stats = NULL;
  gchar *value;

  g_object_get (peer->call, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  value = g_strdup (gst_structure_get_string (stats, field));
  gst_structure_free (stats);
  return value;
}

static gboolean
sees (CallPeer *peer, const gchar *user_id, gint frames, gint audio)
{
  MemberCounts c = call_peer_counts (peer, user_id);

  return c.video_good >= frames && c.audio_buffers >= audio;
}

static void
print_counts (const gchar *what, CallPeer *peer, const gchar *user_id)
{
  MemberCounts c = call_peer_counts (peer, user_id);

  g_print ("%s: %d pads (%d removed), %d frames (%d with the bars, %d "
           "black), %d audio buffers\n",
      what, c.pads_added, c.pads_removed, c.video_frames, c.video_good,
      c.video_black, c.audio_buffers);
}

/* Two matrixrtcbin pipelines in one call see each other's media decoded;
 * when one leaves, the other's pads for it go away. @e2ee_mode -1: auto
 * (the default) in a room with m.room.encryption, which means per-member
 * keys. */
static void
run_two_bins (gint e2ee_mode, gint membership_format)
{
  GstElement *conn_a, *conn_b;
  g_autofree gchar *creator_pw = NULL;
  g_autofree gchar *creator = call_register_user ("bin-owner", &creator_pw);
  g_autofree gchar *room = e2ee_mode == -1
                               ? create_encrypted_room (creator, creator_pw)
                               : call_create_room (creator, creator_pw);
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  CallPeer *a, *b;
  gint64 start;
  MemberCounts c;
  gboolean auto_mode = e2ee_mode == -1;
  gboolean passphrase = e2ee_mode == 3, encrypted = e2ee_mode >= 2 || auto_mode;

  if (passphrase) {
    a = call_peer_new ("matrixrtcbin", "bin-a", room, jwt, TRUE, "e2ee-mode", 3,
        "passphrase", PASSPHRASE, NULL);
    b = call_peer_new ("matrixrtcbin", "bin-b", room, jwt, TRUE, "e2ee-mode", 3,
        "passphrase", PASSPHRASE, NULL);
  } else if (e2ee_mode == 2) {
    a = call_peer_new (
        "matrixrtcbin", "bin-a", room, jwt, TRUE, "e2ee-mode", 2, NULL);
    b = call_peer_new (
        "matrixrtcbin", "bin-b", room, jwt, TRUE, "e2ee-mode", 2, NULL);
  } else if (auto_mode) {
    a = call_peer_new ("matrixrtcbin", "bin-a", room, jwt, TRUE, NULL);
    b = call_peer_new ("matrixrtcbin", "bin-b", room, jwt, TRUE, NULL);
  } else {
    a = call_peer_new ("matrixrtcbin", "bin-a", room, jwt, TRUE,
        "membership-format", membership_format, NULL);
    b = call_peer_new ("matrixrtcbin", "bin-b", room, jwt, TRUE,
        "membership-format", membership_format, NULL);
  }
  start = g_get_monotonic_time ();
  call_peer_start (a);
  call_peer_start (b);
  CALL_WAIT (
      sees (a, b->user_id, 20, 50) && sees (b, a->user_id, 20, 50), 40, a, b);
  g_print ("%s%s%s: both see each other after %" G_GINT64_FORMAT " ms\n",
      passphrase  ? "passphrase"
      : encrypted ? "per-member keys"
                  : "clear",
      auto_mode ? " (e2ee-mode=auto, encrypted room)" : "",
      membership_format == 1 ? " (legacy membership)" : "",
      (g_get_monotonic_time () - start) / 1000);
  print_counts ("A sees B", a, b->user_id);
  print_counts ("B sees A", b, a->user_id);
  /* PLAYING -> first decoded remote frame (login, join, token, SFU
   * connection, subscription and key exchange included) */
  g_print ("first decoded frame: A %" G_GINT64_FORMAT " ms, B %" G_GINT64_FORMAT
           " ms after PLAYING\n",
      (call_peer_counts (a, b->user_id).first_video_us - start) / 1000,
      (call_peer_counts (b, a->user_id).first_video_us - start) / 1000);
  fail_unless (sees (a, b->user_id, 20, 50));
  fail_unless (sees (b, a->user_id, 20, 50));
  c = call_peer_counts (a, b->user_id);
  fail_unless_equals_int (c.pads_added, 2);
  fail_unless (g_atomic_int_get (&a->members_joined) >= 1);
  if (encrypted) {
    GstStructure *stats = NULL;
    guint failures = 0, encrypted_tracks = 0;

    g_object_get (a->call, "stats", &stats, NULL);
    fail_unless (stats != NULL);
    gst_structure_get_uint (stats, "decrypt-failures", &failures);
    gst_structure_get_uint (
        stats, "remote-tracks-encrypted", &encrypted_tracks);
    g_print ("A stats: %s\n", gst_structure_to_string (stats));
    gst_structure_free (stats);
    /* frames in flight at a key change aside, nothing fails */
    fail_unless (failures <= 2, "%u decrypt failures", failures);
    /* and the frames were encrypted on the wire */
    fail_unless_equals_int (encrypted_tracks, 2);
  }
  {
    g_autofree gchar *mode_a = stats_string (a, "e2ee-mode");
    g_autofree gchar *mode_b = stats_string (b, "e2ee-mode");

    g_print ("e2ee mode in force: A %s, B %s\n", mode_a, mode_b);
    fail_unless_equals_string (mode_a, passphrase  ? "passphrase"
                                       : encrypted ? "per-member"
                                                   : "none");
    fail_unless_equals_string (mode_b, mode_a);
  }

  /* B leaves (PLAYING -> NULL sends its leave): A drops B's pads. */
  start = g_get_monotonic_time ();
  gst_element_set_state (b->pipeline, GST_STATE_NULL);
  CALL_WAIT (call_peer_counts (a, b->user_id).pads_removed >= 2, 20, a);
  g_print ("B's pads gone from A %" G_GINT64_FORMAT " ms after B left\n",
      (g_get_monotonic_time () - start) / 1000);
  fail_unless_equals_int (call_peer_counts (a, b->user_id).pads_removed, 2);
  CALL_WAIT (g_atomic_int_get (&a->members_left) >= 1, 5, a);
  fail_unless (g_atomic_int_get (&a->members_left) >= 1);

  /* Freeing the pipelines frees everything: the LiveKit connections (each
   * holds a thread) go with the bins, also those that carried remote
   * tracks (A's). */
  conn_a = gst_bin_get_by_name (GST_BIN (a->call), "sfu0");
  conn_b = gst_bin_get_by_name (GST_BIN (b->call), "sfu0");
  fail_unless (conn_a != NULL && conn_b != NULL);
  g_object_add_weak_pointer (G_OBJECT (conn_a), (gpointer *)&conn_a);
  g_object_add_weak_pointer (G_OBJECT (conn_b), (gpointer *)&conn_b);
  gst_object_unref (conn_a);
  gst_object_unref (conn_b);
  call_peer_free (b);
  call_peer_free (a);
  fail_unless (conn_a == NULL, "A's LiveKit connection outlived its bin");
  fail_unless (conn_b == NULL, "B's LiveKit connection outlived its bin");
}

GST_START_TEST (test_two_bins)
{
  run_two_bins (1, 0);
}

GST_END_TEST;

/* The same with legacy org.matrix.msc3401.call.member state events: LiveKit
 * identities are "@user:server:DEVICE" there. */
GST_START_TEST (test_two_bins_legacy)
{
  run_two_bins (1, 1);
}

GST_END_TEST;

GST_START_TEST (test_two_bins_passphrase)
{
  run_two_bins (3, 0);
}

GST_END_TEST;

/* Per-member keys: each pipeline's media key goes to the other as Olm
 * to-device messages (ext/olm), and each decrypts the other's frames. */
GST_START_TEST (test_two_bins_per_member)
{
  run_two_bins (2, 0);
}

GST_END_TEST;

/* matrixrtcsrc member=...: black while the member is absent, its camera
 * while present, black again after it left; the pads never go away. */
/* e2ee-mode left at auto in a room with m.room.encryption: per-member keys,
 * as Element Call (the publish chains wait for the room check). */
GST_START_TEST (test_two_bins_auto_encrypted_room)
{
  run_two_bins (-1, 0);
}

GST_END_TEST;

GST_START_TEST (test_src_member)
{
  g_autofree gchar *creator_pw = NULL;
  g_autofree gchar *creator = call_register_user ("src-owner", &creator_pw);
  g_autofree gchar *room = call_create_room (creator, creator_pw);
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  CallPeer *pub, *rec;
  MemberCounts c;
  gint black_before;

  pub = call_peer_new ("matrixrtcsink", "src-pub", room, jwt, TRUE, NULL);
  rec = call_peer_new ("matrixrtcsrc", "src-rec", room, jwt, FALSE, "width",
      CALL_WIDTH, "height", CALL_HEIGHT, "member", pub->user_id, NULL);
  call_peer_start (rec);
  CALL_WAIT (call_peer_counts (rec, "").video_black >= 15
                 && call_peer_counts (rec, "").audio_buffers >= 20,
      20, rec);
  print_counts ("absent", rec, "");
  c = call_peer_counts (rec, "");
  fail_unless (c.video_black >= 15 && c.audio_buffers >= 20);
  fail_unless_equals_int (c.video_good, 0);

  call_peer_start (pub);
  CALL_WAIT (call_peer_counts (rec, "").video_good >= 20, 40, rec, pub);
  print_counts ("present", rec, "");
  fail_unless (call_peer_counts (rec, "").video_good >= 20);

  gst_element_set_state (pub->pipeline, GST_STATE_NULL);
  black_before = call_peer_counts (rec, "").video_black;
  CALL_WAIT (
      call_peer_counts (rec, "").video_black >= black_before + 15, 20, rec);
  print_counts ("left", rec, "");
  fail_unless (call_peer_counts (rec, "").video_black >= black_before + 15);
  c = call_peer_counts (rec, "");
  fail_unless_equals_int (c.pads_removed, 0);
  call_peer_free (pub);
  call_peer_free (rec);
}

GST_END_TEST;

/* Three members on two SFUs: publishers on SFU A and SFU B (their
 * transports name token service A and B); a matrixrtcsrc on SFU A
 * subscribes to B's publisher on SFU B. */
GST_START_TEST (test_two_sfus)
{
  g_autofree gchar *creator_pw = NULL;
  g_autofree gchar *creator = call_register_user ("sfu-owner", &creator_pw);
  g_autofree gchar *room = call_create_room (creator, creator_pw);
  const gchar *jwt_a = stack_env_get ("MATRIXRTC_JWT_A_URL");
  const gchar *jwt_b = stack_env_get ("MATRIXRTC_JWT_B_URL");
  CallPeer *pa, *pb, *rec;
  GstStructure *stats = NULL;
  guint connections = 0;

  pa = call_peer_new ("matrixrtcsink", "sfu-a", room, jwt_a, TRUE, NULL);
  pb = call_peer_new ("matrixrtcsink", "sfu-b", room, jwt_b, TRUE, NULL);
  rec = call_peer_new ("matrixrtcsrc", "sfu-rec", room, jwt_a, FALSE, NULL);
  call_peer_start (pa);
  call_peer_start (pb);
  call_peer_start (rec);
  CALL_WAIT (sees (rec, pa->user_id, 20, 50) && sees (rec, pb->user_id, 20, 50),
      45, rec, pa, pb);
  print_counts ("publisher on SFU A", rec, pa->user_id);
  print_counts ("publisher on SFU B", rec, pb->user_id);
  fail_unless (sees (rec, pa->user_id, 20, 50));
  fail_unless (sees (rec, pb->user_id, 20, 50));
  g_object_get (rec->call, "stats", &stats, NULL);
  gst_structure_get_uint (stats, "connections", &connections);
  gst_structure_free (stats);
  fail_unless_equals_int (connections, 2);
  call_peer_free (pa);
  call_peer_free (pb);
  call_peer_free (rec);
}

GST_END_TEST;

/* EOS on a publishing pad unpublishes its track: the receiver's pad for
 * it goes away (after the connection's grace period), the other stays. */
GST_START_TEST (test_eos_unpublishes)
{
  g_autofree gchar *creator_pw = NULL;
  g_autofree gchar *creator = call_register_user ("eos-owner", &creator_pw);
  g_autofree gchar *room = call_create_room (creator, creator_pw);
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  CallPeer *pub, *rec;
  GstElement *vsrc;
  MemberCounts c;

  pub = call_peer_new ("matrixrtcsink", "eos-pub", room, jwt, TRUE, NULL);
  /* the video source ends after 8 s */
  vsrc = gst_bin_get_by_name (GST_BIN (pub->pipeline), "video");
  fail_unless (vsrc != NULL);
  g_object_set (vsrc, "num-buffers", 120, NULL);
  gst_object_unref (vsrc);
  rec = call_peer_new ("matrixrtcsrc", "eos-rec", room, jwt, FALSE, NULL);
  call_peer_start (rec);
  call_peer_start (pub);
  CALL_WAIT (
      call_peer_counts (rec, pub->user_id).pads_removed >= 1, 40, rec, pub);
  c = call_peer_counts (rec, pub->user_id);
  print_counts ("after the video's EOS", rec, pub->user_id);
  fail_unless_equals_int (c.pads_added, 2);
  fail_unless_equals_int (c.pads_removed, 1);
  fail_unless (c.video_good >= 10);
  /* audio still flows */
  c = call_peer_counts (rec, pub->user_id);
  CALL_WAIT (call_peer_counts (rec, pub->user_id).audio_buffers
                 >= c.audio_buffers + 50,
      10, rec, pub);
  fail_unless (call_peer_counts (rec, pub->user_id).audio_buffers
               >= c.audio_buffers + 50);
  call_peer_free (pub);
  call_peer_free (rec);
}

GST_END_TEST;

/* A publisher in a child process is SIGKILLed: its delayed leave ends its
 * membership and its pads go away. */
GST_START_TEST (test_sigkill_publisher)
{
  g_autofree gchar *creator_pw = NULL;
  g_autofree gchar *creator = call_register_user ("kill-owner", &creator_pw);
  g_autofree gchar *room = call_create_room (creator, creator_pw);
  g_autofree gchar *pub_pw = NULL;
  g_autofree gchar *pub_user = call_register_user ("kill-pub", &pub_pw);
  g_autofree gchar *launch = g_find_program_in_path ("gst-launch-1.0");
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  g_autofree gchar *a_hs = NULL, *a_user = NULL, *a_pw = NULL, *a_room = NULL,
                   *a_jwt = NULL;
  g_autoptr (GSubprocess) child = NULL;
  g_autoptr (GError) error = NULL;
  CallPeer *rec;
  gint64 killed;

  fail_unless (launch != NULL);
  a_hs = g_strdup_printf ("homeserver=%s", stack_env_get ("MATRIXRTC_HS_URL"));
  a_user = g_strdup_printf ("user-id=%s", pub_user);
  a_pw = g_strdup_printf ("password=%s", pub_pw);
  a_room = g_strdup_printf ("room=%s", room);
  a_jwt = g_strdup_printf ("token-service=%s", jwt);
  rec = call_peer_new ("matrixrtcsrc", "kill-rec", room, jwt, FALSE, NULL);
  call_peer_start (rec);
  child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error, launch,
      "-q", "matrixrtcsink", "name=call", a_hs, a_user, a_pw, a_room, a_jwt,
      "leave-delay=2000", "videotestsrc", "is-live=true", "!",
      "video/x-raw,width=320,height=240,framerate=15/1", "!", "call.video_0",
      "audiotestsrc", "is-live=true", "!", "call.audio_0", NULL);
  fail_unless (child != NULL, "%s", error ? error->message : "");
  CALL_WAIT (sees (rec, pub_user, 20, 50), 40, rec);
  print_counts ("child publisher", rec, pub_user);
  fail_unless (sees (rec, pub_user, 20, 50));

  kill (atoi (g_subprocess_get_identifier (child)), SIGKILL);
  g_subprocess_wait (child, NULL, NULL);
  killed = g_get_monotonic_time ();
  CALL_WAIT (call_peer_counts (rec, pub_user).pads_removed >= 2, 30, rec);
  g_print ("the killed publisher's pads went %" G_GINT64_FORMAT
           " ms after SIGKILL\n",
      (g_get_monotonic_time () - killed) / 1000);
  fail_unless_equals_int (call_peer_counts (rec, pub_user).pads_removed, 2);
  call_peer_free (rec);
}

GST_END_TEST;

static Suite *
callbin_suite (void)
{
  Suite *s = suite_create ("matrixrtc call elements");
  TCase *tc = tcase_create ("general");
  GError *error = NULL;

  call_filter_known_warnings ();

  if (!stack_env_load (&error))
    g_printerr ("%s\n", error->message);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_two_bins);
  tcase_add_test (tc, test_two_bins_legacy);
  tcase_add_test (tc, test_two_bins_passphrase);
  tcase_add_test (tc, test_two_bins_per_member);
  tcase_add_test (tc, test_two_bins_auto_encrypted_room);
  tcase_add_test (tc, test_src_member);
  tcase_add_test (tc, test_two_sfus);
  tcase_add_test (tc, test_eos_unpublishes);
  tcase_add_test (tc, test_sigkill_publisher);
  return s;
}

GST_CHECK_MAIN (callbin);
