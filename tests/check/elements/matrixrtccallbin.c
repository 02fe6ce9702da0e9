/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* matrixrtcbin, matrixrtcsrc and matrixrtcsink without a network: pad
 * templates, request pads, matrixrtcsrc's member pads, the stats
 * structure, and errors on NULL->READY. (The call itself is tested on the
 * local stack in tests/integration/bin/.) */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

GST_START_TEST (test_templates_and_request_pads)
{
  GstElement *bin = gst_element_factory_make ("matrixrtcbin", NULL);
  GstElement *sink = gst_element_factory_make ("matrixrtcsink", NULL);
  GstElement *src = gst_element_factory_make ("matrixrtcsrc", NULL);
  GstPad *v0, *v1, *a0;

  fail_unless (bin && sink && src);
  fail_unless (gst_element_get_pad_template (bin, "video_%u") != NULL);
  fail_unless (gst_element_get_pad_template (bin, "audio_%u") != NULL);
  fail_unless (gst_element_get_pad_template (bin, "src_%s") != NULL);
  fail_unless (gst_element_get_pad_template (sink, "video_%u") != NULL);
  fail_unless (gst_element_get_pad_template (sink, "src_%s") == NULL);
  fail_unless (gst_element_get_pad_template (src, "video_%u") == NULL);
  fail_unless (gst_element_get_pad_template (src, "src_%s") != NULL);
  fail_unless (gst_element_get_pad_template (src, "video") != NULL);

  v0 = gst_element_request_pad_simple (bin, "video_%u");
  v1 = gst_element_request_pad_simple (bin, "video_%u");
  a0 = gst_element_request_pad_simple (bin, "audio_%u");
  fail_unless_equals_string (GST_PAD_NAME (v0), "video_0");
  fail_unless_equals_string (GST_PAD_NAME (v1), "video_1");
  fail_unless_equals_string (GST_PAD_NAME (a0), "audio_0");
  fail_unless (gst_element_request_pad_simple (src, "video_%u") == NULL);
  /* raw, VP8, H.264 and Opus are accepted before anything is linked */
  {
    GstCaps *caps = gst_pad_query_caps (v0, NULL);
    GstCaps *vp8 = gst_caps_from_string ("video/x-vp8");

    fail_unless (gst_caps_can_intersect (caps, vp8));
    gst_caps_unref (caps);
    gst_caps_unref (vp8);
    caps = gst_caps_from_string ("video/x-h264,stream-format=avc");
    fail_unless (gst_pad_query_accept_caps (v0, caps));
    gst_caps_unref (caps);
    caps = gst_caps_from_string ("audio/x-raw");
    fail_if (gst_pad_query_accept_caps (v0, caps));
    fail_unless (gst_pad_query_accept_caps (a0, caps));
    gst_caps_unref (caps);
  }
  gst_element_release_request_pad (bin, v0);
  gst_element_release_request_pad (bin, v1);
  gst_element_release_request_pad (bin, a0);
  gst_object_unref (v0);
  gst_object_unref (v1);
  gst_object_unref (a0);
  fail_unless (GST_ELEMENT (bin)->numsinkpads == 0);
  gst_object_unref (bin);
  gst_object_unref (sink);
  gst_object_unref (src);
}

GST_END_TEST;

GST_START_TEST (test_src_member_pads)
{
  GstElement *src = gst_element_factory_make ("matrixrtcsrc", NULL);
  gboolean decode = FALSE;
  GstPad *video, *audio;

  g_object_get (src, "decode", &decode, NULL);
  fail_unless (decode);
  fail_unless (gst_element_get_static_pad (src, "video") == NULL);
  g_object_set (src, "decode", FALSE, "member", "@alice:localhost:8448",
      "width", 320, "height", 240, NULL);
  video = gst_element_get_static_pad (src, "video");
  audio = gst_element_get_static_pad (src, "audio");
  fail_unless (video != NULL && audio != NULL);
  /* member pads are always decoded */
  g_object_get (src, "decode", &decode, NULL);
  fail_unless (decode);
  gst_object_unref (video);
  gst_object_unref (audio);
  gst_object_unref (src);
}

GST_END_TEST;

GST_START_TEST (test_stats_and_validation)
{
  GstElement *bin = gst_element_factory_make ("matrixrtcbin", NULL);
  GstStructure *stats = NULL;
  gboolean joined = TRUE;
  guint members = 1;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;

  g_object_get (bin, "stats", &stats, NULL);
  fail_unless (stats != NULL);
  fail_unless (gst_structure_get_boolean (stats, "joined", &joined));
  fail_if (joined);
  fail_unless (gst_structure_get_uint (stats, "members", &members));
  fail_unless_equals_int (members, 0);
  gst_structure_free (stats);

  /* nothing set: a clear error, no network */
  gst_element_set_bus (bin, bus);
  fail_unless_equals_int (
      gst_element_set_state (bin, GST_STATE_READY), GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    fail_unless (strstr (err->message, "homeserver") != NULL);
    g_error_free (err);
  }
  gst_message_unref (msg);
  gst_element_set_bus (bin, NULL);
  gst_object_unref (bus);
  gst_element_set_state (bin, GST_STATE_NULL);
  gst_object_unref (bin);
}

GST_END_TEST;

static Suite *
matrixrtccallbin_suite (void)
{
  Suite *s = suite_create ("matrixrtccallbin");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_templates_and_request_pads);
  tcase_add_test (tc, test_src_member_pads);
  tcase_add_test (tc, test_stats_and_validation);
  return s;
}

GST_CHECK_MAIN (matrixrtccallbin);
