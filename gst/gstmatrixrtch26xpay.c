/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:gstmatrixrtch26xpay
 * @title: GstMatrixRtcH26xPay
 * @short_description: base of the payloaders for encrypted H.264/H.265
 *
 * Packetises one access unit per buffer (Annex-B byte stream) into single
 * NAL unit packets and fragmentation units (H.264 FU-A, RFC 6184; H.265 FU,
 * RFC 7798), marker bit on the last packet of the access unit. Unlike stock
 * rtph264pay/rtph265pay it never trims zero bytes at the end of a NAL unit:
 * an encrypted frame ends in the key index, and key index 0 (Element Call's
 * first key) is a zero byte; and the clear header of an encrypted frame is
 * authenticated, so it must come out of the depayloader exactly as it went
 * in. NAL units are split as libwebrtc does (only the one zero byte of a
 * 4-byte start code is not part of the unit before it; bytes before the
 * first start code are skipped), so every receiver rebuilds the same frame.
 * NAL unit headers stay clear in encrypted frames, so the SFU still sees
 * SPS/PPS/IDR and key frames.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtch26xpay.h"

#include <gst/rtp/gstrtpbuffer.h>
#include <string.h>

#include "fcformat.h"

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_h26x_pay_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_h26x_pay_debug

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (GstMatrixRtcH26xPay, gst_matrix_rtc_h26x_pay,
    GST_TYPE_RTP_BASE_PAYLOAD,
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_h26x_pay_debug, "matrixrtch26xpay",
        0, "MatrixRTC H.264/H.265 payloader base"));

static gboolean
gst_matrix_rtc_h26x_pay_set_caps (GstRTPBasePayload *payload, GstCaps *caps)
{
  GstMatrixRtcH26xPayClass *klass = GST_MATRIX_RTC_H26X_PAY_GET_CLASS (payload);

  gst_rtp_base_payload_set_options (
      payload, "video", TRUE, klass->encoding_name, 90000);
  if (klass->h265)
    return gst_rtp_base_payload_set_outcaps (payload, NULL);
  return gst_rtp_base_payload_set_outcaps (
      payload, "packetization-mode", G_TYPE_STRING, "1", NULL);
}

static GstBuffer *
new_packet (GstRTPBasePayload *payload, GstBuffer *in, const guint8 *nal,
    const FcRtpFragment *fragment)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  GstBuffer *out;
  guint8 *p;

  out = gst_rtp_base_payload_allocate_output_buffer (
      payload, fragment->header_len + fragment->size, 0, 0);
  gst_rtp_buffer_map (out, GST_MAP_WRITE, &rtp);
  p = gst_rtp_buffer_get_payload (&rtp);
  if (fragment->header_len > 0)
    memcpy (p, fragment->header, fragment->header_len);
  memcpy (p + fragment->header_len, nal + fragment->offset, fragment->size);
  gst_rtp_buffer_set_marker (&rtp, FALSE);
  gst_rtp_buffer_unmap (&rtp);
  GST_BUFFER_PTS (out) = GST_BUFFER_PTS (in);
  GST_BUFFER_DTS (out) = GST_BUFFER_DTS (in);
  if (GST_BUFFER_FLAG_IS_SET (in, GST_BUFFER_FLAG_DELTA_UNIT))
    GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DELTA_UNIT);
  return out;
}

static GstFlowReturn
gst_matrix_rtc_h26x_pay_handle_buffer (
    GstRTPBasePayload *payload, GstBuffer *buffer)
{
  GstMatrixRtcH26xPayClass *klass = GST_MATRIX_RTC_H26X_PAY_GET_CLASS (payload);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  GstBufferList *list;
  GstBuffer *last;
  GstMapInfo map;
  gsize pos = 0;
  FcNal nal;
  guint max, i;

  max = gst_rtp_buffer_calc_payload_len (
      GST_RTP_BASE_PAYLOAD_MTU (payload), 0, 0);
  if (max < 8) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (payload, STREAM, ENCODE, (NULL), ("MTU too small"));
    return GST_FLOW_ERROR;
  }
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (payload, RESOURCE, READ, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }

  list = gst_buffer_list_new ();
  while (fc_annexb_next_nal (map.data, map.size, &pos, &nal)) {
    const guint8 *data = map.data + nal.offset;
    gsize fragment_pos = 0;
    FcRtpFragment fragment;

    if (gst_buffer_list_length (list) == 0 && nal.start_code > 0) {
      for (i = 0; i < nal.start_code && map.data[i] == 0; i++)
        ;
      if (i < nal.start_code)
        GST_WARNING_OBJECT (payload,
            "skipping %" G_GSIZE_FORMAT " bytes before the first start code",
            nal.start_code);
    }
    /* an empty unit has no RTP form; every other byte is kept, including
     * trailing zero bytes (only the zero of a 4-byte start code goes) */
    while (fc_h26x_next_fragment (
        klass->h265, data, nal.size, max, &fragment_pos, &fragment))
      gst_buffer_list_add (list, new_packet (payload, buffer, data, &fragment));
  }
  gst_buffer_unmap (buffer, &map);

  if (gst_buffer_list_length (list) == 0) {
    GST_DEBUG_OBJECT (payload, "no NAL unit in buffer");
    gst_buffer_list_unref (list);
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }
  /* the marker bit goes on the last packet of the access unit */
  last = gst_buffer_list_get (list, gst_buffer_list_length (list) - 1);
  gst_rtp_buffer_map (last, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_marker (&rtp, TRUE);
  gst_rtp_buffer_unmap (&rtp);
  if (GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DISCONT))
    GST_BUFFER_FLAG_SET (
        gst_buffer_list_get (list, 0), GST_BUFFER_FLAG_DISCONT);
  gst_buffer_unref (buffer);
  return gst_rtp_base_payload_push_list (payload, list);
}

static void
gst_matrix_rtc_h26x_pay_init (GstMatrixRtcH26xPay *self)
{
}

static void
gst_matrix_rtc_h26x_pay_class_init (GstMatrixRtcH26xPayClass *klass)
{
  GstRTPBasePayloadClass *pay_class = GST_RTP_BASE_PAYLOAD_CLASS (klass);

  pay_class->set_caps = gst_matrix_rtc_h26x_pay_set_caps;
  pay_class->handle_buffer = gst_matrix_rtc_h26x_pay_handle_buffer;
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_H26X_PAY, 0);
}
