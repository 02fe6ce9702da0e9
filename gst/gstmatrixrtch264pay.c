/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtch264pay
 * @title: matrixrtch264pay
 *
 * RTP payloader (RFC 6184: single NAL unit packets and FU-A) for end-to-end
 * encrypted H.264 access units, as matrixrtcframeenc produces them. Stock
 * rtph264pay trims trailing zero bytes from NAL units, which loses key index
 * 0 at the end of an encrypted frame and changes the authenticated clear
 * header; this one keeps every byte of every NAL unit and splits the access
 * unit as libwebrtc does, so the depayloader rebuilds the frame exactly.
 * Depayload with rtph264depay.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 ... ! video/x-h264,stream-format=byte-stream,alignment=au ! matrixrtcframeenc key=000102030405060708090a0b0c0d0e0f ! matrixrtch264pay ! udpsink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtch264pay.h"
#include "gstmatrixrtcelements.h"

#include <gst/rtp/gstrtpbuffer.h>

struct _GstMatrixRtcH264Pay
{
  GstMatrixRtcH26xPay parent;
};

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS ("video/x-h264, stream-format = (string) byte-stream, "
                         "alignment = (string) au"));

static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (
            "application/x-rtp, media = (string) video, "
            "payload = (int) " GST_RTP_PAYLOAD_DYNAMIC_STRING ", "
            "clock-rate = (int) 90000, encoding-name = (string) H264"));

G_DEFINE_TYPE (
    GstMatrixRtcH264Pay, gst_matrix_rtc_h264_pay, GST_TYPE_MATRIX_RTC_H26X_PAY);
GST_ELEMENT_REGISTER_DEFINE (matrixrtch264pay, "matrixrtch264pay",
    GST_RANK_NONE, GST_TYPE_MATRIX_RTC_H264_PAY);

static void
gst_matrix_rtc_h264_pay_init (GstMatrixRtcH264Pay *self)
{
}

static void
gst_matrix_rtc_h264_pay_class_init (GstMatrixRtcH264PayClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstMatrixRtcH26xPayClass *h26x_class = GST_MATRIX_RTC_H26X_PAY_CLASS (klass);

  h26x_class->h265 = FALSE;
  h26x_class->encoding_name = "H264";
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "MatrixRTC H.264 payloader", "Codec/Payloader/Network/RTP",
      "Payloads end-to-end encrypted H.264 access units in RTP (RFC 6184) "
      "keeping every byte",
      "The gst-matrixrtc authors");
}
