/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcvp8pay
 * @title: matrixrtcvp8pay
 *
 * RTP payloader for end-to-end encrypted VP8 frames (RFC 7741), as
 * matrixrtcframeenc produces them. Stock rtpvp8pay parses the first
 * partition of every frame to find partition boundaries and fails on
 * encrypted frames; this payloader never looks past the 3-byte frame tag
 * (which stays clear). It writes what libwebrtc writes: a payload descriptor
 * with X=1, a 15-bit PictureID incremented per frame, S=1 and PID=0 on the
 * first packet of each frame, and the marker bit on the last. The SFU sees
 * key frames (the P bit of the clear frame tag right after the descriptor
 * with S=1) and valid descriptors; any RFC 7741 depayloader (rtpvp8depay,
 * libwebrtc) reassembles the frame.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! vp8enc ! matrixrtcframeenc key=000102030405060708090a0b0c0d0e0f ! matrixrtcvp8pay ! udpsink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcvp8pay.h"
#include "gstmatrixrtcelements.h"

#include <gst/rtp/gstrtpbuffer.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_vp8_pay_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_vp8_pay_debug

/* X byte, I byte with M=1 and 15-bit PictureID */
#define DESCRIPTOR_LEN 4

enum
{
  PROP_0,
  PROP_PICTURE_ID,
};

struct _GstMatrixRtcVp8Pay
{
  GstRTPBasePayload parent;

  /* 15-bit PictureID of the next frame; streaming thread only, read
   * atomically by the property. */
  gint picture_id;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-vp8"));

static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS ("application/x-rtp, media = (string) video, "
                         "payload = (int) " GST_RTP_PAYLOAD_DYNAMIC_STRING ", "
                         "clock-rate = (int) 90000, encoding-name = (string) { "
                         "VP8, VP8-DRAFT-IETF-01 }"));

G_DEFINE_TYPE (
    GstMatrixRtcVp8Pay, gst_matrix_rtc_vp8_pay, GST_TYPE_RTP_BASE_PAYLOAD);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (matrixrtcvp8pay, "matrixrtcvp8pay",
    GST_RANK_NONE, GST_TYPE_MATRIX_RTC_VP8_PAY,
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_vp8_pay_debug, "matrixrtcvp8pay", 0,
        "MatrixRTC VP8 payloader for encrypted frames"));

static gboolean
gst_matrix_rtc_vp8_pay_set_caps (GstRTPBasePayload *payload, GstCaps *caps)
{
  gst_rtp_base_payload_set_options (payload, "video", TRUE, "VP8", 90000);
  return gst_rtp_base_payload_set_outcaps (payload, NULL);
}

static GstFlowReturn
gst_matrix_rtc_vp8_pay_handle_buffer (
    GstRTPBasePayload *payload, GstBuffer *buffer)
{
  GstMatrixRtcVp8Pay *self = GST_MATRIX_RTC_VP8_PAY (payload);
  GstBufferList *list;
  GstMapInfo map;
  gsize offset = 0;
  guint max_chunk, picture_id;
  gboolean delta;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  if (map.size == 0) {
    /* nothing to send (an empty frame has no RTP form) */
    gst_buffer_unmap (buffer, &map);
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }

  max_chunk = gst_rtp_buffer_calc_payload_len (
      GST_RTP_BASE_PAYLOAD_MTU (payload), 0, 0);
  if (max_chunk <= DESCRIPTOR_LEN) {
    gst_buffer_unmap (buffer, &map);
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, ENCODE, (NULL), ("MTU too small"));
    return GST_FLOW_ERROR;
  }
  max_chunk -= DESCRIPTOR_LEN;
  /* key frame: P bit of the (clear) frame tag */
  delta = (map.data[0] & 0x01) != 0;
  picture_id = (guint)g_atomic_int_get (&self->picture_id);

  list = gst_buffer_list_new_sized (map.size / max_chunk + 1);
  while (offset < map.size) {
    guint chunk = MIN (max_chunk, map.size - offset);
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    GstBuffer *out;
    guint8 *p;

    out = gst_rtp_base_payload_allocate_output_buffer (
        payload, DESCRIPTOR_LEN + chunk, 0, 0);
    gst_rtp_buffer_map (out, GST_MAP_WRITE, &rtp);
    p = gst_rtp_buffer_get_payload (&rtp);
    /* X=1, N=0, S on the first packet, PID=0 */
    p[0] = 0x80 | (offset == 0 ? 0x10 : 0x00);
    /* I=1 */
    p[1] = 0x80;
    /* M=1, 15-bit PictureID */
    p[2] = 0x80 | ((picture_id >> 8) & 0x7f);
    p[3] = picture_id & 0xff;
    memcpy (p + DESCRIPTOR_LEN, map.data + offset, chunk);
    offset += chunk;
    gst_rtp_buffer_set_marker (&rtp, offset == map.size);
    gst_rtp_buffer_unmap (&rtp);

    GST_BUFFER_PTS (out) = GST_BUFFER_PTS (buffer);
    GST_BUFFER_DTS (out) = GST_BUFFER_DTS (buffer);
    GST_BUFFER_DURATION (out) = GST_BUFFER_DURATION (buffer);
    if (delta)
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DELTA_UNIT);
    if (gst_buffer_list_length (list) == 0
        && GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DISCONT))
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    gst_buffer_list_add (list, out);
  }
  g_atomic_int_set (&self->picture_id, (picture_id + 1) & 0x7fff);
  gst_buffer_unmap (buffer, &map);
  gst_buffer_unref (buffer);
  return gst_rtp_base_payload_push_list (payload, list);
}

static void
gst_matrix_rtc_vp8_pay_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcVp8Pay *self = GST_MATRIX_RTC_VP8_PAY (object);

  switch (prop_id) {
    case PROP_PICTURE_ID:
      g_atomic_int_set (&self->picture_id, g_value_get_uint (value) & 0x7fff);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_vp8_pay_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcVp8Pay *self = GST_MATRIX_RTC_VP8_PAY (object);

  switch (prop_id) {
    case PROP_PICTURE_ID:
      g_value_set_uint (value, (guint)g_atomic_int_get (&self->picture_id));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_vp8_pay_init (GstMatrixRtcVp8Pay *self)
{
  self->picture_id = g_random_int_range (0, 0x8000);
}

static void
gst_matrix_rtc_vp8_pay_class_init (GstMatrixRtcVp8PayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstRTPBasePayloadClass *pay_class = GST_RTP_BASE_PAYLOAD_CLASS (klass);

  gobject_class->set_property = gst_matrix_rtc_vp8_pay_set_property;
  gobject_class->get_property = gst_matrix_rtc_vp8_pay_get_property;
  pay_class->set_caps = gst_matrix_rtc_vp8_pay_set_caps;
  pay_class->handle_buffer = gst_matrix_rtc_vp8_pay_handle_buffer;

  /**
   * GstMatrixRtcVp8Pay:picture-id:
   *
   * The 15-bit PictureID of the next frame (random at start).
   */
  g_object_class_install_property (gobject_class, PROP_PICTURE_ID,
      g_param_spec_uint ("picture-id", "PictureID",
          "15-bit PictureID of the next frame", 0, 0x7fff, 0,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "MatrixRTC VP8 payloader", "Codec/Payloader/Network/RTP",
      "Payloads end-to-end encrypted VP8 frames in RTP (RFC 7741) without "
      "parsing them",
      "The gst-matrixrtc authors");
}
