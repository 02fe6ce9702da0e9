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
 * rtph264pay/rtph265pay it never trims the trailing zero bytes of the last
 * NAL unit of an access unit: an encrypted frame ends in the key index, and
 * key index 0 (Element Call's first key) is a zero byte. Zero bytes before a
 * following start code are trimmed as usual (they belong to the start
 * code). NAL unit headers stay clear in encrypted frames, so the SFU still
 * sees SPS/PPS/IDR and key frames.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtch26xpay.h"

#include <gst/rtp/gstrtpbuffer.h>
#include <string.h>

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

/* Position of the next 00 00 01 at or after @from, or @size. */
static gsize
next_start_code (const guint8 *data, gsize size, gsize from)
{
  gsize i;

  for (i = from; i + 2 < size; i++) {
    if (data[i + 2] > 1) {
      i += 2;
      continue;
    }
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1)
      return i;
  }
  return size;
}

static GstBuffer *
new_packet (GstRTPBasePayload *payload, GstBuffer *in, const guint8 *hdr,
    guint hdr_len, const guint8 *data, gsize len, gboolean marker)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  GstBuffer *out;
  guint8 *p;

  out = gst_rtp_base_payload_allocate_output_buffer (
      payload, hdr_len + len, 0, 0);
  gst_rtp_buffer_map (out, GST_MAP_WRITE, &rtp);
  p = gst_rtp_buffer_get_payload (&rtp);
  memcpy (p, hdr, hdr_len);
  memcpy (p + hdr_len, data, len);
  gst_rtp_buffer_set_marker (&rtp, marker);
  gst_rtp_buffer_unmap (&rtp);
  GST_BUFFER_PTS (out) = GST_BUFFER_PTS (in);
  GST_BUFFER_DTS (out) = GST_BUFFER_DTS (in);
  if (GST_BUFFER_FLAG_IS_SET (in, GST_BUFFER_FLAG_DELTA_UNIT))
    GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DELTA_UNIT);
  return out;
}

/* Adds the packets of one NAL unit to @list. */
static void
payload_nal (GstRTPBasePayload *payload, GstBufferList *list, GstBuffer *in,
    const guint8 *nal, gsize len, gboolean last_of_au, guint max)
{
  GstMatrixRtcH26xPayClass *klass = GST_MATRIX_RTC_H26X_PAY_GET_CLASS (payload);
  guint nal_hdr_len = klass->h265 ? 2 : 1;
  guint8 hdr[3];
  gsize offset;

  if (len <= max) {
    gst_buffer_list_add (
        list, new_packet (payload, in, NULL, 0, nal, len, last_of_au));
    return;
  }

  /* fragmentation units: the NAL header goes into the FU headers */
  if (klass->h265) {
    /* PayloadHdr with type 49 (F, LayerId, TID kept), then FU header */
    hdr[0] = (nal[0] & 0x81) | (49 << 1);
    hdr[1] = nal[1];
    hdr[2] = (nal[0] >> 1) & 0x3f;
  } else {
    /* FU indicator (F, NRI, type 28), then FU header */
    hdr[0] = (nal[0] & 0xe0) | 28;
    hdr[1] = nal[0] & 0x1f;
  }
  offset = nal_hdr_len;
  while (offset < len) {
    guint fu_hdr_len = nal_hdr_len + 1;
    gsize chunk = MIN (max - fu_hdr_len, len - offset);
    guint8 fu[3];
    gboolean end = offset + chunk == len;

    memcpy (fu, hdr, fu_hdr_len);
    if (offset == nal_hdr_len)
      fu[fu_hdr_len - 1] |= 0x80;
    if (end)
      fu[fu_hdr_len - 1] |= 0x40;
    gst_buffer_list_add (list, new_packet (payload, in, fu, fu_hdr_len,
                                   nal + offset, chunk, end && last_of_au));
    offset += chunk;
  }
}

static GstFlowReturn
gst_matrix_rtc_h26x_pay_handle_buffer (
    GstRTPBasePayload *payload, GstBuffer *buffer)
{
  GstMatrixRtcH26xPayClass *klass = GST_MATRIX_RTC_H26X_PAY_GET_CLASS (payload);
  GstBufferList *list;
  GstMapInfo map;
  gsize start, next;
  guint max;

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
  start = next_start_code (map.data, map.size, 0);
  if (start != 0 && start < map.size)
    GST_WARNING_OBJECT (payload,
        "skipping %" G_GSIZE_FORMAT " bytes before "
        "the first start code",
        start);
  while (start < map.size) {
    gsize nal = start + 3, end;
    gboolean last;

    next = next_start_code (map.data, map.size, nal);
    last = next == map.size;
    end = next;
    if (!last) {
      /* zero bytes before a start code belong to it */
      while (end > nal && map.data[end - 1] == 0)
        end--;
    }
    if (end - nal >= (klass->h265 ? 2u : 1u))
      payload_nal (payload, list, buffer, map.data + nal, end - nal, last, max);
    start = next;
  }
  gst_buffer_unmap (buffer, &map);

  if (gst_buffer_list_length (list) == 0) {
    GST_DEBUG_OBJECT (payload, "no NAL unit in buffer");
    gst_buffer_list_unref (list);
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }
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
