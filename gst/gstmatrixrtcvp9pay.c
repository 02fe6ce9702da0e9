/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcvp9pay
 * @title: matrixrtcvp9pay
 *
 * RTP payloader for end-to-end encrypted VP9 frames (RFC 9628), as
 * matrixrtcframeenc produces them. LiveKit encryption leaves no VP9 byte in
 * clear, so stock rtpvp9pay, which parses the uncompressed header, fails.
 * This payloader never reads the frame: it writes a non-flexible-mode
 * payload descriptor with a 15-bit PictureID incremented per frame, B and E
 * on the first and last packet, and P (inter-picture predicted) from the
 * buffer's delta-unit flag, so key frames stay visible to the SFU; marker bit
 * on the last packet.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! vp9enc ! matrixrtcframeenc key=000102030405060708090a0b0c0d0e0f ! matrixrtcvp9pay ! udpsink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcvp9pay.h"
#include "gstmatrixrtcelements.h"

#include "gstmatrixrtcvpxpay.h"

#include <gst/rtp/gstrtpbuffer.h>

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_vp9_pay_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_vp9_pay_debug

/* I|P|L|F|B|E|V|Z byte, M=1 and 15-bit PictureID */
#define DESCRIPTOR_LEN 3
#define FLAG_I 0x80
#define FLAG_P 0x40
#define FLAG_B 0x08
#define FLAG_E 0x04

enum
{
  PROP_0,
  PROP_PICTURE_ID,
};

struct _GstMatrixRtcVp9Pay
{
  GstRTPBasePayload parent;

  /* 15-bit PictureID of the next frame */
  gint picture_id;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-vp9"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("application/x-rtp, media = (string) video, "
                     "payload = (int) " GST_RTP_PAYLOAD_DYNAMIC_STRING ", "
                     "clock-rate = (int) 90000, encoding-name = (string) VP9"));

G_DEFINE_TYPE (
    GstMatrixRtcVp9Pay, gst_matrix_rtc_vp9_pay, GST_TYPE_RTP_BASE_PAYLOAD);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (matrixrtcvp9pay, "matrixrtcvp9pay",
    GST_RANK_NONE, GST_TYPE_MATRIX_RTC_VP9_PAY,
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_vp9_pay_debug, "matrixrtcvp9pay", 0,
        "MatrixRTC VP9 payloader for encrypted frames"));

static gboolean
gst_matrix_rtc_vp9_pay_set_caps (GstRTPBasePayload *payload, GstCaps *caps)
{
  gst_rtp_base_payload_set_options (payload, "video", TRUE, "VP9", 90000);
  return gst_rtp_base_payload_set_outcaps (payload, NULL);
}

/* I, P, B and E flags, then M=1 and the 15-bit PictureID. */
static void
write_vp9_descriptor (
    guint8 *p, gboolean first, gboolean last, gboolean delta, guint picture_id)
{
  p[0] = FLAG_I | (delta ? FLAG_P : 0) | (first ? FLAG_B : 0)
         | (last ? FLAG_E : 0);
  p[1] = 0x80 | ((picture_id >> 8) & 0x7f);
  p[2] = picture_id & 0xff;
}

/* the frame is encrypted: the encoder's flag says key or delta */
static gboolean
vp9_is_delta (const guint8 *data, gsize size, GstBuffer *buffer)
{
  return GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DELTA_UNIT);
}

static GstFlowReturn
gst_matrix_rtc_vp9_pay_handle_buffer (
    GstRTPBasePayload *payload, GstBuffer *buffer)
{
  GstMatrixRtcVp9Pay *self = GST_MATRIX_RTC_VP9_PAY (payload);

  return gst_matrix_rtc_vpx_pay_fragment (payload, buffer, DESCRIPTOR_LEN,
      write_vp9_descriptor, vp9_is_delta, &self->picture_id);
}

static void
gst_matrix_rtc_vp9_pay_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcVp9Pay *self = GST_MATRIX_RTC_VP9_PAY (object);

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
gst_matrix_rtc_vp9_pay_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcVp9Pay *self = GST_MATRIX_RTC_VP9_PAY (object);

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
gst_matrix_rtc_vp9_pay_init (GstMatrixRtcVp9Pay *self)
{
  self->picture_id = g_random_int_range (0, 0x8000);
}

static void
gst_matrix_rtc_vp9_pay_class_init (GstMatrixRtcVp9PayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstRTPBasePayloadClass *pay_class = GST_RTP_BASE_PAYLOAD_CLASS (klass);

  gobject_class->set_property = gst_matrix_rtc_vp9_pay_set_property;
  gobject_class->get_property = gst_matrix_rtc_vp9_pay_get_property;
  pay_class->set_caps = gst_matrix_rtc_vp9_pay_set_caps;
  pay_class->handle_buffer = gst_matrix_rtc_vp9_pay_handle_buffer;

  /**
   * GstMatrixRtcVp9Pay:picture-id:
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
      "MatrixRTC VP9 payloader", "Codec/Payloader/Network/RTP",
      "Payloads end-to-end encrypted VP9 frames in RTP (RFC 9628) without "
      "parsing them",
      "The gst-matrixrtc authors");
}
