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

#include "gstmatrixrtcvpxpay.h"

#include <gst/rtp/gstrtpbuffer.h>

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

/* X=1, N=0, S on the first packet, PID=0; I=1; M=1 and the 15-bit
 * PictureID. */
static void
write_vp8_descriptor (
    guint8 *p, gboolean first, gboolean last, gboolean delta, guint picture_id)
{
  p[0] = 0x80 | (first ? 0x10 : 0x00);
  p[1] = 0x80;
  p[2] = 0x80 | ((picture_id >> 8) & 0x7f);
  p[3] = picture_id & 0xff;
}

/* key frame or not: the P bit of the (clear) frame tag */
static gboolean
vp8_is_delta (const guint8 *data, gsize size, GstBuffer *buffer)
{
  return (data[0] & 0x01) != 0;
}

static GstFlowReturn
gst_matrix_rtc_vp8_pay_handle_buffer (
    GstRTPBasePayload *payload, GstBuffer *buffer)
{
  GstMatrixRtcVp8Pay *self = GST_MATRIX_RTC_VP8_PAY (payload);

  return gst_matrix_rtc_vpx_pay_fragment (payload, buffer, DESCRIPTOR_LEN,
      write_vp8_descriptor, vp8_is_delta, &self->picture_id);
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
