/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Publish codecs other than the default VP8 through the local stack (real
 * Synapse, livekit-server, token service): H.264 encoded inside
 * (video-codec=h264), pre-encoded H.264 passed through (constrained
 * baseline, a High-profile stream, and a stream whose caps name no
 * profile, as tsdemux gives), and pre-encoded Opus. A second
 * pipeline (matrixrtcsrc, decoding) must show the publisher's SMPTE bars
 * and audio. Every test registers fresh users and a fresh room. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "callutil.h"
#include "stackenv.h"

#define PASSPHRASE "correct horse battery staple"

static GstElement *
make (const gchar *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  fail_unless (e != NULL, "no element %s", factory);
  return e;
}

static void
set_caps (GstElement *element, GstCaps *caps)
{
  g_object_set (element, "caps", caps, NULL);
  gst_caps_unref (caps);
}

static void
link_demuxed (GstElement *demux, GstPad *pad, GstElement *queue)
{
  GstPad *sink = gst_element_get_static_pad (queue, "sink");

  if (!gst_pad_is_linked (sink))
    fail_unless_equals_int (gst_pad_link (pad, sink), GST_PAD_LINK_OK);
  gst_object_unref (sink);
}

/* Bars into the publisher's video_%u pad, raw or through openh264enc with
 * @profile (NULL: raw), and then through an MPEG-TS mux and demux and a
 * capsfilter "tscaps" when @through_ts (caps with neither profile nor
 * alignment, as restreamed SRT/HLS/UDP input has); a sine into audio_%u,
 * raw or through opusenc. */
static void
add_media (CallPeer *peer, const gchar *h264_profile, gboolean through_ts,
    gboolean opus)
{
  GstElement *vsrc = make ("videotestsrc"), *vcaps = make ("capsfilter");
  GstElement *asrc = make ("audiotestsrc"), *vlast = vcaps, *alast = asrc;

  g_object_set (vsrc, "is-live", TRUE, "pattern", 0, NULL);
  set_caps (vcaps, gst_caps_new_simple ("video/x-raw", "width", G_TYPE_INT,
                       CALL_WIDTH, "height", G_TYPE_INT, CALL_HEIGHT,
                       "framerate", GST_TYPE_FRACTION, 15, 1, NULL));
  g_object_set (asrc, "is-live", TRUE, NULL);
  gst_bin_add_many (GST_BIN (peer->pipeline), vsrc, vcaps, asrc, NULL);
  fail_unless (gst_element_link (vsrc, vcaps));
  if (h264_profile != NULL) {
    GstElement *enc = make ("openh264enc"), *ecaps = make ("capsfilter");

    g_object_set (enc, "gop-size", 30, NULL);
    set_caps (ecaps, gst_caps_new_simple ("video/x-h264", "profile",
                         G_TYPE_STRING, h264_profile, NULL));
    gst_bin_add_many (GST_BIN (peer->pipeline), enc, ecaps, NULL);
    fail_unless (gst_element_link_many (vcaps, enc, ecaps, NULL));
    vlast = ecaps;
  }
  if (through_ts) {
    GstElement *parse = make ("h264parse"), *mux = make ("mpegtsmux");
    GstElement *demux = make ("tsdemux"), *queue = make ("queue");
    GstElement *tscaps = make ("capsfilter");

    gst_element_set_name (tscaps, "tscaps");
    gst_bin_add_many (
        GST_BIN (peer->pipeline), parse, mux, demux, queue, tscaps, NULL);
    fail_unless (gst_element_link_many (vlast, parse, mux, demux, NULL));
    fail_unless (gst_element_link (queue, tscaps));
    /* the demuxer's video pad appears with the first data */
    g_signal_connect (demux, "pad-added", G_CALLBACK (link_demuxed), queue);
    vlast = tscaps;
  }
  if (opus) {
    GstElement *enc = make ("opusenc");

    gst_bin_add (GST_BIN (peer->pipeline), enc);
    fail_unless (gst_element_link (asrc, enc));
    alast = enc;
  }
  fail_unless (gst_element_link_pads (vlast, "src", peer->call, "video_%u"));
  fail_unless (gst_element_link_pads (alast, "src", peer->call, "audio_%u"));
}

static void
print_counts (const gchar *what, CallPeer *peer, const gchar *user_id)
{
  MemberCounts c = call_peer_counts (peer, user_id);

  g_print ("%s: %d pads, %d frames (%d with the bars), %d audio buffers\n",
      what, c.pads_added, c.video_frames, c.video_good, c.audio_buffers);
}

/* The publisher's stats: in the call, with @n tracks published. */
static gboolean
publishing (CallPeer *peer, guint n)
{
  GstStructure *stats = NULL;
  gboolean joined = FALSE;
  guint published = 0;

  g_object_get (peer->call, "stats", &stats, NULL);
  if (stats != NULL) {
    gst_structure_get_boolean (stats, "joined", &joined);
    gst_structure_get_uint (stats, "published-tracks", &published);
    gst_structure_free (stats);
  }
  return joined && published >= n;
}

/* A matrixrtcsink publishing, a matrixrtcsrc receiving: the receiver
 * decodes the bars and the sine within 60 s. The receiver joins first
 * (the track reaches it in a participant update) unless @late_receiver
 * (the track is in its join response). @through_ts: see add_media(). */
static void
run_codec_full (const gchar *what, const gchar *h264_profile,
    gboolean through_ts, gboolean opus, gboolean passphrase,
    gboolean h264_inside, gboolean late_receiver)
{
  g_autofree gchar *owner_pw = NULL;
  g_autofree gchar *owner = call_register_user ("codec-owner", &owner_pw);
  g_autofree gchar *room = call_create_room (owner, owner_pw);
  const gchar *jwt = stack_env_get ("MATRIXRTC_JWT_A_URL");
  CallPeer *pub, *rec;
  MemberCounts c;
  gint64 start;

  if (passphrase) {
    pub = call_peer_new ("matrixrtcsink", "codec-pub", room, jwt, FALSE,
        "e2ee-mode", 3, "passphrase", PASSPHRASE, NULL);
    rec = call_peer_new ("matrixrtcsrc", "codec-rec", room, jwt, FALSE,
        "e2ee-mode", 3, "passphrase", PASSPHRASE, NULL);
  } else {
    pub = call_peer_new (
        "matrixrtcsink", "codec-pub", room, jwt, FALSE, "e2ee-mode", 1, NULL);
    rec = call_peer_new (
        "matrixrtcsrc", "codec-rec", room, jwt, FALSE, "e2ee-mode", 1, NULL);
  }
  if (h264_inside)
    gst_util_set_object_arg (G_OBJECT (pub->call), "video-codec", "h264");
  add_media (pub, h264_profile, through_ts, opus);
  start = g_get_monotonic_time ();
  if (late_receiver) {
    call_peer_start (pub);
    /* the publisher is in the call and publishing both tracks before the
     * receiver starts */
    CALL_WAIT (publishing (pub, 2), 60, pub);
    fail_unless (
        publishing (pub, 2), "%s: the publisher is not publishing", what);
    start = g_get_monotonic_time ();
  }
  call_peer_start (rec);
  if (!late_receiver)
    call_peer_start (pub);
  CALL_WAIT (call_peer_counts (rec, pub->user_id).video_good >= 20
                 && call_peer_counts (rec, pub->user_id).audio_buffers >= 50,
      60, rec, pub);
  print_counts (what, rec, pub->user_id);
  c = call_peer_counts (rec, pub->user_id);
  g_print ("%s: first decoded frame %" G_GINT64_FORMAT " ms after PLAYING\n",
      what, c.video_frames > 0 ? (c.first_video_us - start) / 1000 : -1);
  fail_unless (
      c.video_good >= 20, "%s: %d frames with the bars", what, c.video_good);
  fail_unless (
      c.audio_buffers >= 50, "%s: %d audio buffers", what, c.audio_buffers);
  if (through_ts) {
    /* New caps, still without a profile, once the chain is built (a
     * restream's caps change): accepted too, and the bars go on. */
    GstElement *tscaps
        = gst_bin_get_by_name (GST_BIN (pub->pipeline), "tscaps");
    gint before = c.video_good;

    fail_unless (tscaps != NULL);
    set_caps (tscaps, gst_caps_new_simple ("video/x-h264", "framerate",
                          GST_TYPE_FRACTION, 15, 1, NULL));
    gst_object_unref (tscaps);
    CALL_WAIT (call_peer_counts (rec, pub->user_id).video_good >= before + 20,
        60, rec, pub);
    c = call_peer_counts (rec, pub->user_id);
    g_print ("%s: %d frames with the bars after new caps\n", what,
        c.video_good - before);
    fail_unless (c.video_good >= before + 20,
        "%s: %d frames with the bars after new caps", what,
        c.video_good - before);
  }
  call_peer_free (pub);
  call_peer_free (rec);
}

static void
run_codec (const gchar *what, const gchar *h264_profile, gboolean opus,
    gboolean passphrase, gboolean h264_inside, gboolean late_receiver)
{
  run_codec_full (
      what, h264_profile, FALSE, opus, passphrase, h264_inside, late_receiver);
}

/* Raw video encoded inside to H.264 (video-codec=h264). */
GST_START_TEST (test_h264_encoded_inside)
{
  run_codec ("h264 inside", NULL, FALSE, FALSE, TRUE, FALSE);
}
GST_END_TEST;

/* The same, end-to-end encrypted (matrixrtch264pay). */
GST_START_TEST (test_h264_encoded_inside_encrypted)
{
  run_codec ("h264 inside, encrypted", NULL, FALSE, TRUE, TRUE, FALSE);
}
GST_END_TEST;

/* Pre-encoded constrained-baseline H.264 and pre-encoded Opus passed
 * through, to a receiver that joins when they are published already. */
GST_START_TEST (test_h264_opus_passthrough)
{
  run_codec ("h264 + opus pass-through, late receiver", "constrained-baseline",
      TRUE, FALSE, FALSE, TRUE);
}
GST_END_TEST;

/* Pre-encoded H.264, end-to-end encrypted: the access unit delimiters
 * h264parse adds are dropped before encryption, or the first key frame a
 * new subscriber gets (the SFU starts it at the parameter sets) would not
 * decrypt. */
GST_START_TEST (test_h264_passthrough_encrypted)
{
  run_codec ("h264 pass-through, encrypted", "constrained-baseline", TRUE, TRUE,
      FALSE, FALSE);
}
GST_END_TEST;

/* A pre-encoded High-profile stream (what x264enc makes by default). */
GST_START_TEST (test_h264_high_passthrough)
{
  run_codec ("h264 high pass-through", "high", FALSE, FALSE, FALSE, FALSE);
}
GST_END_TEST;

/* Pre-encoded H.264 whose caps name no profile (through MPEG-TS, as
 * tsdemux, appsrc and restreamed SRT/HLS/UDP input give it): accepted,
 * also when new caps come once the chain is built, clear and encrypted
 * (which names a profile in the SDP without one in the caps). */
GST_START_TEST (test_h264_no_profile_passthrough)
{
  run_codec_full ("h264 without a profile in the caps", "constrained-baseline",
      TRUE, FALSE, FALSE, FALSE, FALSE);
}
GST_END_TEST;

GST_START_TEST (test_h264_no_profile_passthrough_encrypted)
{
  run_codec_full ("h264 without a profile in the caps, encrypted",
      "constrained-baseline", TRUE, FALSE, TRUE, FALSE, FALSE);
}
GST_END_TEST;

/* A pre-encoded profile no WebRTC receiver decodes (High 10) is refused
 * with an error that names it, before anything is published. */
GST_START_TEST (test_h264_unsupported_profile)
{
  g_autofree gchar *owner_pw = NULL;
  g_autofree gchar *owner = call_register_user ("codec-owner", &owner_pw);
  g_autofree gchar *room = call_create_room (owner, owner_pw);
  CallPeer *pub;
  GstElement *src = make ("appsrc");
  GstBuffer *buffer;
  GstFlowReturn flow = GST_FLOW_ERROR;
  GstBus *bus;
  GstMessage *msg;
  GstCaps *caps;
  GError *err = NULL;

  pub = call_peer_new ("matrixrtcsink", "codec-pub", room,
      stack_env_get ("MATRIXRTC_JWT_A_URL"), FALSE, "e2ee-mode", 1, NULL);
  caps = gst_caps_from_string ("video/x-h264,stream-format=byte-stream,"
                               "alignment=au,profile=high-10,width=320,"
                               "height=240,framerate=15/1");
  g_object_set (
      src, "is-live", TRUE, "format", GST_FORMAT_TIME, "caps", caps, NULL);
  gst_caps_unref (caps);
  gst_bin_add (GST_BIN (pub->pipeline), src);
  fail_unless (gst_element_link_pads (src, "src", pub->call, "video_%u"));
  fail_unless (gst_element_set_state (pub->pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  g_signal_emit_by_name (src, "push-buffer", buffer, &flow);
  gst_buffer_unref (buffer);
  fail_unless_equals_int (flow, GST_FLOW_OK);
  bus = gst_element_get_bus (pub->pipeline);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for a High 10 stream");
  gst_message_parse_error (msg, &err, NULL);
  g_print ("high-10 refused: %s\n", err->message);
  fail_unless (strstr (err->message, "high-10") != NULL, "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_object_unref (bus);
  call_peer_free (pub);
}
GST_END_TEST;

static Suite *
codecs_suite (void)
{
  Suite *s = suite_create ("matrixrtc call codecs");
  TCase *tc = tcase_create ("general");
  GError *error = NULL;

  call_filter_known_warnings ();

  if (!stack_env_load (&error))
    g_printerr ("%s\n", error->message);
  tcase_set_timeout (tc, 90);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_h264_encoded_inside);
  tcase_add_test (tc, test_h264_encoded_inside_encrypted);
  tcase_add_test (tc, test_h264_opus_passthrough);
  tcase_add_test (tc, test_h264_passthrough_encrypted);
  tcase_add_test (tc, test_h264_high_passthrough);
  tcase_add_test (tc, test_h264_no_profile_passthrough);
  tcase_add_test (tc, test_h264_no_profile_passthrough_encrypted);
  tcase_add_test (tc, test_h264_unsupported_profile);
  return s;
}

GST_CHECK_MAIN (codecs);
