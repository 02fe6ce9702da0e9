/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcframedec
 * @title: matrixrtcframedec
 *
 * Decrypts frames encrypted with LiveKit end-to-end encryption (by Element
 * Call, the LiveKit SDKs or matrixrtcframeenc). The key index is read from
 * each frame; a frame that does not authenticate is retried with up to
 * #GstMatrixRtcFrameCryptor:ratchet-window ratchets of the key. A frame that
 * still cannot be decrypted is dropped, never forwarded to the decoder; it
 * is counted in #GstMatrixRtcFrameCryptor:stats and reported by a
 * rate-limited warning and a `matrixrtc-frame-crypto-error` element message
 * naming the key index; the next frame is marked DISCONT and, for video, a
 * key frame is requested upstream (rtpsession sends a PLI). Empty frames
 * pass through, and so do the blank frames the LiveKit server injects when
 * they end in #GstMatrixRtcFrameCryptor:sif-trailer (any other frame ending
 * in it is dropped). Truncated frames and failures right after lost data
 * (DISCONT from the depayloader) do not count toward
 * #GstMatrixRtcFrameCryptor:failure-tolerance. Place it right after the RTP
 * depayloader.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 ... ! rtpvp8depay ! matrixrtcframedec key=000102030405060708090a0b0c0d0e0f ! vp8dec ! autovideosink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcframedec.h"
#include "gstmatrixrtcelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_frame_dec_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_frame_dec_debug

struct _GstMatrixRtcFrameDec
{
  GstMatrixRtcFrameCryptor parent;
};

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_MATRIX_RTC_FRAME_CRYPTOR_CAPS));

static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_MATRIX_RTC_FRAME_CRYPTOR_CAPS));

G_DEFINE_TYPE (GstMatrixRtcFrameDec, gst_matrix_rtc_frame_dec,
    GST_TYPE_MATRIX_RTC_FRAME_CRYPTOR);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (matrixrtcframedec, "matrixrtcframedec",
    GST_RANK_NONE, GST_TYPE_MATRIX_RTC_FRAME_DEC,
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_frame_dec_debug,
        "matrixrtcframedec", 0, "MatrixRTC frame decryptor"));

static void
gst_matrix_rtc_frame_dec_init (GstMatrixRtcFrameDec *self)
{
}

static void
gst_matrix_rtc_frame_dec_class_init (GstMatrixRtcFrameDecClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  GST_MATRIX_RTC_FRAME_CRYPTOR_CLASS (klass)->encrypt = FALSE;
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "MatrixRTC frame decryptor", "Codec/Decoder/Network",
      "Decrypts encoded frames encrypted with LiveKit end-to-end "
      "encryption (as Element Call uses it)",
      "The gst-matrixrtc authors");
}
