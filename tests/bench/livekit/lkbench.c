/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Benchmark of the LiveKit transport on loopback against SFU A of the local
 * stack (tests/env/up):
 *  - join time: from the subscriber's connect to its first decoded frame of
 *    a remote publisher that is already sending (median of --runs), and
 *    with publisher and subscriber connecting at the same time;
 *  - CPU per received stream: process CPU with the subscriber receiving and
 *    decoding one VP8 + Opus stream, minus the CPU of the publisher alone.
 * Usage: lkbench [--runs N] [--seconds S] [--width W --height H --fps F] */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "stackenv.h"
#include "lkconnection.h"

static gint width = 320, height = 240, fps = 15;

typedef struct
{
  GstElement *pipeline;
  gint64 first_frame_us;
  gint frames;
} Run;

static void
handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, Run *r)
{
  if (g_atomic_int_add (&r->frames, 1) == 0)
    r->first_frame_us = g_get_monotonic_time ();
}

static void
on_track_added (LkConnection *conn, const gchar *identity, const gchar *psid,
    const gchar *tsid, const gchar *source, const gchar *kind,
    gboolean encrypted, GstPad *pad, Run *r)
{
  gboolean video = g_str_equal (kind, "video");
  gchar *desc = g_strdup_printf ("%s ! fakesink name=sink sync=false "
                                 "async=false signal-handoffs=%s",
      video ? "rtpvp8depay request-keyframe=true ! vp8dec"
            : "rtpopusdepay ! opusdec",
      video ? "true" : "false");
  GstElement *bin = gst_parse_bin_from_description (desc, TRUE, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (bin), "sink");
  GstPad *sinkpad;

  if (video)
    g_signal_connect (sink, "handoff", G_CALLBACK (handoff), r);
  gst_object_unref (sink);
  gst_bin_add (GST_BIN (r->pipeline), bin);
  gst_element_sync_state_with_parent (bin);
  sinkpad = gst_element_get_static_pad (bin, "sink");
  gst_pad_link (pad, sinkpad);
  gst_object_unref (sinkpad);
  g_free (desc);
}

static LkConnection *
make_connection (const gchar *name, const gchar *identity, const gchar *room)
{
  LkConnection *conn = lk_connection_new (name);
  const gchar *local[] = { "127.0.0.1", NULL };

  g_object_set (conn, "url", stack_env_get ("MATRIXRTC_SFU_A_URL"), "api-key",
      stack_env_get ("MATRIXRTC_SFU_A_KEY"), "api-secret",
      stack_env_get ("MATRIXRTC_SFU_A_SECRET"), "identity", identity, "room",
      room, "local-addresses", local, "latency", 50, NULL);
  return conn;
}

static void
add_publisher (GstElement *pipeline, LkConnection *pub)
{
  gchar *desc = g_strdup_printf (
      "videotestsrc is-live=true ! "
      "video/x-raw,width=%d,height=%d,framerate=%d/1 ! vp8enc deadline=1 "
      "keyframe-max-dist=%d ! rtpvp8pay pt=96 name=vpay "
      "audiotestsrc is-live=true ! opusenc ! rtpopuspay pt=111 name=apay",
      width, height, fps, fps);
  GstElement *bin = gst_parse_bin_from_description (desc, FALSE, NULL);
  GstElement *vpay = gst_bin_get_by_name (GST_BIN (bin), "vpay");
  GstElement *apay = gst_bin_get_by_name (GST_BIN (bin), "apay");
  GstCaps *vcaps
      = gst_caps_from_string ("application/x-rtp,media=video,"
                              "encoding-name=VP8,payload=96,clock-rate=90000");
  GstCaps *acaps = gst_caps_from_string (
      "application/x-rtp,media=audio,"
      "encoding-name=OPUS,payload=111,clock-rate=48000");
  GstPad *vpad, *apad, *src;

  gst_bin_add (GST_BIN (pipeline), bin);
  vpad = lk_connection_add_track (pub, "camera", "video",
      LKPROTO__TRACK_SOURCE__CAMERA, vcaps, width, height, FALSE);
  apad = lk_connection_add_track (pub, "microphone", "audio",
      LKPROTO__TRACK_SOURCE__MICROPHONE, acaps, 0, 0, FALSE);
  src = gst_element_get_static_pad (vpay, "src");
  gst_element_add_pad (bin, gst_ghost_pad_new ("vsrc", src));
  gst_object_unref (src);
  src = gst_element_get_static_pad (apay, "src");
  gst_element_add_pad (bin, gst_ghost_pad_new ("asrc", src));
  gst_object_unref (src);
  gst_pad_link (gst_element_get_static_pad (bin, "vsrc"), vpad);
  gst_pad_link (gst_element_get_static_pad (bin, "asrc"), apad);
  gst_object_unref (vpay);
  gst_object_unref (apay);
  gst_caps_unref (vcaps);
  gst_caps_unref (acaps);
  g_free (desc);
}

static gdouble
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static gboolean
wait_until (gint *counter, gint value, gint seconds)
{
  gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;

  while (g_atomic_int_get (counter) < value && g_get_monotonic_time () < end)
    g_usleep (5000);
  return g_atomic_int_get (counter) >= value;
}

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *)a, y = *(const gdouble *)b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  gint runs = 7, seconds = 10, i;
  GArray *joins = g_array_new (FALSE, FALSE, sizeof (gdouble));
  GArray *cold_joins = g_array_new (FALSE, FALSE, sizeof (gdouble));
  GError *error = NULL;
  gdouble cpu_pub = 0, cpu_both = 0;
  gboolean ok;

  gst_init (&argc, &argv);
  for (i = 1; i < argc; i++) {
    if (g_str_equal (argv[i], "--runs") && i + 1 < argc)
      runs = atoi (argv[++i]);
    else if (g_str_equal (argv[i], "--seconds") && i + 1 < argc)
      seconds = atoi (argv[++i]);
    else if (g_str_equal (argv[i], "--width") && i + 1 < argc)
      width = atoi (argv[++i]);
    else if (g_str_equal (argv[i], "--height") && i + 1 < argc)
      height = atoi (argv[++i]);
    else if (g_str_equal (argv[i], "--fps") && i + 1 < argc)
      fps = atoi (argv[++i]);
  }
  if (!stack_env_load (&error)) {
    g_printerr ("%s\n", error->message);
    return 1;
  }

  /* runs [0, runs): the subscriber joins a publisher already sending;
   * [runs, 2 runs): both connect at once; the last one measures CPU */
  for (i = 0; i < 2 * runs + 1; i++) {
    gchar *room = g_strdup_printf ("bench-%08x", g_random_int ());
    Run r = { 0 };
    LkConnection *pub = make_connection ("pub", "bench-pub", room);
    LkConnection *sub = make_connection ("sub", "bench-sub", room);
    gboolean cold = i >= runs && i < 2 * runs;
    gint64 t0;
    gdouble cpu0 = 0, cpu1;

    r.pipeline = gst_pipeline_new (NULL);
    gst_bin_add_many (
        GST_BIN (r.pipeline), GST_ELEMENT (pub), GST_ELEMENT (sub), NULL);
    g_signal_connect (sub, "track-added", G_CALLBACK (on_track_added), &r);
    add_publisher (r.pipeline, pub);
    gst_element_set_state (r.pipeline, GST_STATE_PLAYING);
    t0 = g_get_monotonic_time ();
    lk_connection_connect (pub);
    if (!cold) {
      /* the publisher is up and sending before the subscriber joins */
      g_usleep (2 * G_USEC_PER_SEC);
      if (i == 2 * runs) {
        cpu0 = cpu_seconds ();
        g_usleep (seconds * G_USEC_PER_SEC);
        cpu_pub = (cpu_seconds () - cpu0) / seconds;
      }
      t0 = g_get_monotonic_time ();
    }
    lk_connection_connect (sub);
    if (!wait_until (&r.frames, 1, 20)) {
      g_printerr ("run %d: no frame within 20 s\n", i);
    } else if (i < 2 * runs) {
      gdouble ms = (r.first_frame_us - t0) / 1000.0;
      g_array_append_val (cold ? cold_joins : joins, ms);
      g_print ("run %d (%s): first decoded frame %.0f ms after connect\n",
          i + 1, cold ? "both connect" : "publisher up", ms);
    } else {
      wait_until (&r.frames, fps, 10);
      cpu0 = cpu_seconds ();
      g_usleep (seconds * G_USEC_PER_SEC);
      cpu1 = cpu_seconds ();
      cpu_both = (cpu1 - cpu0) / seconds;
    }
    gst_element_set_state (r.pipeline, GST_STATE_NULL);
    gst_object_unref (r.pipeline);
    g_free (room);
  }

  g_array_sort (cold_joins, compare_doubles);
  if (cold_joins->len > 0) {
    g_print ("join, publisher and subscriber connecting together: median "
             "%.0f ms, min %.0f ms, max %.0f ms over %u runs\n",
        g_array_index (cold_joins, gdouble, cold_joins->len / 2),
        g_array_index (cold_joins, gdouble, 0),
        g_array_index (cold_joins, gdouble, cold_joins->len - 1),
        cold_joins->len);
  }
  g_array_unref (cold_joins);
  g_array_sort (joins, compare_doubles);
  if (joins->len > 0) {
    g_print ("join, publisher already sending: median %.0f ms, min %.0f ms, "
             "max %.0f ms over %u runs "
             "(%dx%d@%d VP8 + Opus, loopback, jitter buffer 50 ms)\n",
        g_array_index (joins, gdouble, joins->len / 2),
        g_array_index (joins, gdouble, 0),
        g_array_index (joins, gdouble, joins->len - 1), joins->len, width,
        height, fps);
  }
  g_print ("cpu: publisher alone %.1f%% of a core, with one received "
           "stream %.1f%%: %.1f%% per received VP8 + Opus stream (incl. "
           "decoding)\n",
      cpu_pub * 100, cpu_both * 100, (cpu_both - cpu_pub) * 100);
  ok = joins->len > 0;
  g_array_unref (joins);
  return ok ? 0 : 1;
}
