/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "lktestutil.h"
#include "testpictures.h"

gchar *
lkt_random_room (const gchar *prefix)
{
  return g_strdup_printf ("%s-%08x", prefix, g_random_int ());
}

LkConnection *
lkt_make_connection (const gchar *name, const gchar *url, const gchar *key,
    const gchar *secret, const gchar *identity, const gchar *room)
{
  LkConnection *conn = lk_connection_new (name);
  const gchar *local[] = { "127.0.0.1", NULL };

  g_object_set (conn, "url", url, "api-key", key, "api-secret", secret,
      "identity", identity, "room", room, "local-addresses", local, "latency",
      50, NULL);
  return conn;
}

static void
video_handoff (GstElement *sink, GstBuffer *buffer, GstPad *pad, Media *m)
{
  GstMapInfo map;
  gint64 now = g_get_monotonic_time ();

  if (gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    if (m->split_pattern
            ? test_picture_shows_split (map.data, map.size, WIDTH, HEIGHT)
            : test_picture_shows_bars (map.data, map.size, WIDTH, HEIGHT))
      g_atomic_int_inc (&m->video_good);
    gst_buffer_unmap (buffer, &map);
  }
  g_mutex_lock (&m->lock);
  if (m->first_video_us == 0)
    m->first_video_us = now;
  m->last_video_us = now;
  g_mutex_unlock (&m->lock);
  g_atomic_int_inc (&m->video_frames);
}

static void
audio_handoff (GstElement *sink, GstBuffer *buffer, GstPad *pad, Media *m)
{
  g_atomic_int_inc (&m->audio_buffers);
}

static GstPadProbeReturn
check_untouched_probe (GstPad *pad, GstPadProbeInfo *info, Media *m)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMapInfo map;

  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gchar *sum
        = g_compute_checksum_for_data (G_CHECKSUM_SHA256, map.data, map.size);
    g_mutex_lock (&m->lock);
    if (g_hash_table_contains (m->sent_frames, sum))
      m->frames_matched++;
    else
      m->frames_unmatched++;
    g_mutex_unlock (&m->lock);
    g_free (sum);
    gst_buffer_unmap (buf, &map);
  }
  return GST_PAD_PROBE_OK;
}

void
lkt_on_track_added (LkConnection *conn, const gchar *identity,
    const gchar *participant_sid, const gchar *track_sid, const gchar *source,
    const gchar *kind, gboolean encrypted, GstPad *pad, Media *m)
{
  GstElement *depay, *dec, *conv = NULL, *filter = NULL, *sink;
  GstPad *sinkpad;

  GST_INFO ("track-added %s %s %s %s %s enc %d", identity, participant_sid,
      track_sid, source, kind, encrypted);
  if (m->only_identity && g_strcmp0 (identity, m->only_identity) != 0)
    return;
  g_atomic_int_inc (&m->tracks);
  if (encrypted)
    g_atomic_int_inc (&m->encrypted_tracks);
  if (encrypted) {
    /* frames stay opaque: depayload and compare with what was sent */
    GstPad *src;

    depay = gst_element_factory_make ("rtpvp8depay", NULL);
    g_object_set (depay, "request-keyframe", TRUE, NULL);
    sink = gst_element_factory_make ("fakesink", NULL);
    g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
    src = gst_element_get_static_pad (depay, "src");
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER,
        (GstPadProbeCallback)check_untouched_probe, m, NULL);
    gst_object_unref (src);
    gst_bin_add_many (GST_BIN (m->pipeline), depay, sink, NULL);
    if (m->e2ee_key != NULL) {
      /* decrypt and decode: the frames must show the bars again */
      GstElement *fdec = gst_element_factory_make ("matrixrtcframedec", NULL);

      fail_unless (fdec != NULL, "matrixrtcframedec is missing");
      g_object_set (fdec, "key", m->e2ee_key, NULL);
      dec = gst_element_factory_make ("vp8dec", NULL);
      conv = gst_element_factory_make ("videoconvert", NULL);
      filter = gst_element_factory_make ("capsfilter", NULL);
      gst_util_set_object_arg (
          G_OBJECT (filter), "caps", "video/x-raw,format=RGB");
      g_object_set (sink, "signal-handoffs", TRUE, NULL);
      g_signal_connect (sink, "handoff", G_CALLBACK (video_handoff), m);
      gst_bin_add_many (GST_BIN (m->pipeline), fdec, dec, conv, filter, NULL);
      fail_unless (
          gst_element_link_many (depay, fdec, dec, conv, filter, sink, NULL));
      gst_element_sync_state_with_parent (sink);
      gst_element_sync_state_with_parent (filter);
      gst_element_sync_state_with_parent (conv);
      gst_element_sync_state_with_parent (dec);
      gst_element_sync_state_with_parent (fdec);
    } else {
      fail_unless (gst_element_link (depay, sink));
      gst_element_sync_state_with_parent (sink);
    }
    gst_element_sync_state_with_parent (depay);
    sinkpad = gst_element_get_static_pad (depay, "sink");
    fail_unless_equals_int (gst_pad_link (pad, sinkpad), GST_PAD_LINK_OK);
    gst_object_unref (sinkpad);
    return;
  }
  if (g_str_equal (kind, "video")) {
    depay = gst_element_factory_make ("rtpvp8depay", NULL);
    g_object_set (
        depay, "request-keyframe", TRUE, "wait-for-keyframe", TRUE, NULL);
    dec = gst_element_factory_make ("vp8dec", NULL);
    conv = gst_element_factory_make ("videoconvert", NULL);
    filter = gst_element_factory_make ("capsfilter", NULL);
    gst_util_set_object_arg (
        G_OBJECT (filter), "caps", "video/x-raw,format=RGB");
    sink = gst_element_factory_make ("fakesink", NULL);
    g_object_set (
        sink, "signal-handoffs", TRUE, "sync", FALSE, "async", FALSE, NULL);
    g_signal_connect (sink, "handoff", G_CALLBACK (video_handoff), m);
  } else {
    depay = gst_element_factory_make ("rtpopusdepay", NULL);
    dec = gst_element_factory_make ("opusdec", NULL);
    sink = gst_element_factory_make ("fakesink", NULL);
    g_object_set (
        sink, "signal-handoffs", TRUE, "sync", FALSE, "async", FALSE, NULL);
    g_signal_connect (sink, "handoff", G_CALLBACK (audio_handoff), m);
  }
  gst_bin_add_many (GST_BIN (m->pipeline), depay, dec, sink, NULL);
  if (conv) {
    gst_bin_add_many (GST_BIN (m->pipeline), conv, filter, NULL);
    fail_unless (gst_element_link_many (depay, dec, conv, filter, sink, NULL));
  } else {
    fail_unless (gst_element_link_many (depay, dec, sink, NULL));
  }
  gst_element_sync_state_with_parent (sink);
  if (conv) {
    gst_element_sync_state_with_parent (filter);
    gst_element_sync_state_with_parent (conv);
  }
  gst_element_sync_state_with_parent (dec);
  gst_element_sync_state_with_parent (depay);
  sinkpad = gst_element_get_static_pad (depay, "sink");
  fail_unless_equals_int (gst_pad_link (pad, sinkpad), GST_PAD_LINK_OK);
  gst_object_unref (sinkpad);
}

static GstPadProbeReturn
record_sent_probe (GstPad *pad, GstPadProbeInfo *info, Media *m)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMapInfo map;

  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gchar *sum
        = g_compute_checksum_for_data (G_CHECKSUM_SHA256, map.data, map.size);
    g_mutex_lock (&m->lock);
    g_hash_table_add (m->sent_frames, sum);
    g_mutex_unlock (&m->lock);
    gst_buffer_unmap (buf, &map);
  }
  return GST_PAD_PROBE_OK;
}

/* Stands in for matrixrtcframeenc: appends a frame-cryptor-like trailer
 * (IV with a frame counter, key index, trailer length) to each encoded
 * frame. The transport must deliver these frames byte for byte. */
static GstPadProbeReturn
scramble_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  static guint32 counter;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  guint8 *trailer = g_malloc0 (14);
  guint32 n = g_atomic_int_add (&counter, 1);

  memcpy (trailer, "MRTC", 4);
  GST_WRITE_UINT32_BE (trailer + 4, n);
  GST_WRITE_UINT32_BE (trailer + 8, g_random_int ());
  trailer[12] = 0;  /* key index */
  trailer[13] = 12; /* IV length */
  buf = gst_buffer_make_writable (buf);
  gst_buffer_append_memory (
      buf, gst_memory_new_wrapped (0, trailer, 14, 0, 14, trailer, g_free));
  GST_PAD_PROBE_INFO_DATA (info) = buf;
  return GST_PAD_PROBE_OK;
}

/* Adds videotestsrc ! vp8enc ! rtpvp8pay and audiotestsrc ! opusenc !
 * rtpopuspay feeding @pub's tracks. */
void
lkt_add_publisher_media (GstElement *pipeline, LkConnection *pub,
    gboolean with_audio, gboolean encrypted, Media *m)
{
  GstElement *vsrc, *vcaps, *venc, *vpay, *asrc, *aenc, *apay;
  GstCaps *raw, *vp8, *opus;
  GstPad *pad, *src;

  vsrc = gst_element_factory_make ("videotestsrc", NULL);
  g_object_set (vsrc, "is-live", TRUE, "pattern", 0, NULL);
  vcaps = gst_element_factory_make ("capsfilter", NULL);
  raw = gst_caps_new_simple ("video/x-raw", "width", G_TYPE_INT, WIDTH,
      "height", G_TYPE_INT, HEIGHT, "framerate", GST_TYPE_FRACTION, 15, 1,
      NULL);
  g_object_set (vcaps, "caps", raw, NULL);
  gst_caps_unref (raw);
  venc = gst_element_factory_make ("vp8enc", NULL);
  g_object_set (venc, "deadline", (gint64)1, "keyframe-max-dist", 15,
      "target-bitrate", 600000, NULL);
  vpay = gst_element_factory_make ("rtpvp8pay", NULL);
  g_object_set (vpay, "pt", 96, NULL);
  gst_bin_add_many (GST_BIN (pipeline), vsrc, vcaps, venc, NULL);
  fail_unless (gst_element_link_many (vsrc, vcaps, venc, NULL));
  if (encrypted && m != NULL && m->e2ee_key != NULL) {
    /* the real thing: matrixrtcframeenc, and its payloader that does not
     * parse the encrypted frames */
    GstElement *fenc = gst_element_factory_make ("matrixrtcframeenc", NULL);

    fail_unless (fenc != NULL, "matrixrtcframeenc is missing");
    gst_object_unref (vpay);
    vpay = gst_element_factory_make ("matrixrtcvp8pay", NULL);
    fail_unless (vpay != NULL, "matrixrtcvp8pay is missing");
    g_object_set (vpay, "pt", 96, NULL);
    g_object_set (fenc, "key", m->e2ee_key, NULL);
    gst_bin_add_many (GST_BIN (pipeline), fenc, vpay, NULL);
    fail_unless (gst_element_link_many (venc, fenc, vpay, NULL));
    src = gst_element_get_static_pad (fenc, "src");
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER,
        (GstPadProbeCallback)record_sent_probe, m, NULL);
    gst_object_unref (src);
  } else {
    gst_bin_add (GST_BIN (pipeline), vpay);
    fail_unless (gst_element_link (venc, vpay));
  }
  if (encrypted && (m == NULL || m->e2ee_key == NULL)) {
    src = gst_element_get_static_pad (venc, "src");
    gst_pad_add_probe (
        src, GST_PAD_PROBE_TYPE_BUFFER, scramble_probe, NULL, NULL);
    gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER,
        (GstPadProbeCallback)record_sent_probe, m, NULL);
    gst_object_unref (src);
  }

  vp8 = gst_caps_from_string ("application/x-rtp,media=video,"
                              "encoding-name=VP8,payload=96,clock-rate=90000");
  pad = lk_connection_add_track (pub, "camera", "video",
      LKPROTO__TRACK_SOURCE__CAMERA, vp8, WIDTH, HEIGHT, encrypted);
  gst_caps_unref (vp8);
  src = gst_element_get_static_pad (vpay, "src");
  fail_unless_equals_int (gst_pad_link (src, pad), GST_PAD_LINK_OK);
  gst_object_unref (src);

  if (!with_audio)
    return;
  asrc = gst_element_factory_make ("audiotestsrc", NULL);
  g_object_set (asrc, "is-live", TRUE, "wave", 0, NULL);
  aenc = gst_element_factory_make ("opusenc", NULL);
  apay = gst_element_factory_make ("rtpopuspay", NULL);
  g_object_set (apay, "pt", 111, NULL);
  gst_bin_add_many (GST_BIN (pipeline), asrc, aenc, apay, NULL);
  fail_unless (gst_element_link_many (asrc, aenc, apay, NULL));
  opus = gst_caps_from_string (
      "application/x-rtp,media=audio,"
      "encoding-name=OPUS,payload=111,clock-rate=48000");
  pad = lk_connection_add_track (pub, "microphone", "audio",
      LKPROTO__TRACK_SOURCE__MICROPHONE, opus, 0, 0, FALSE);
  gst_caps_unref (opus);
  src = gst_element_get_static_pad (apay, "src");
  fail_unless_equals_int (gst_pad_link (src, pad), GST_PAD_LINK_OK);
  gst_object_unref (src);
}

void
lkt_check_bus (GstElement *pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    GError *err = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    fail ("pipeline error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
        err->message, dbg);
  }
  gst_object_unref (bus);
}

void
lkt_media_init (Media *m, GstElement *pipeline)
{
  memset (m, 0, sizeof (*m));
  g_mutex_init (&m->lock);
  m->pipeline = pipeline;
}

void
lkt_media_clear (Media *m)
{
  g_mutex_clear (&m->lock);
  if (m->sent_frames)
    g_hash_table_unref (m->sent_frames);
}

void
lkt_stop_pipeline (GstElement *pipeline)
{
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}
