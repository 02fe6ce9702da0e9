/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcframeenc
 * @title: matrixrtcframeenc
 *
 * Encrypts encoded frames the way LiveKit end-to-end encryption does, so
 * that Element Call and the LiveKit SDKs can decrypt them: AES-128-GCM with
 * the codec's leading bytes in clear (Opus 1, VP8 key frame 10, delta 3,
 * VP9 0, H.264/H.265 up to 2 bytes into the first slice NAL unit), followed
 * by tag, IV, 0x0C and the key index. H.264/H.265 clear headers go out with
 * 4-byte start codes and without leading zero bytes, as receivers rebuild
 * them after RTP. The key index sent is the current one: the last
 * #GstMatrixRtcFrameCryptor:key-index set, or the index of the last
 * #GstMatrixRtcFrameCryptor::set-key. Without a key at that index frames are
 * dropped and counted (a key is never copied to another index); when frames
 * flow again a key frame is requested from the encoder and the first one is
 * marked DISCONT. Place it after the encoder (and parser) and before an RTP
 * payloader that does not parse the frame: matrixrtcvp8pay for VP8,
 * matrixrtch264pay for H.264, rtpopuspay for Opus.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! vp8enc ! matrixrtcframeenc key=000102030405060708090a0b0c0d0e0f ! matrixrtcframedec key=000102030405060708090a0b0c0d0e0f ! vp8dec ! autovideosink
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcframeenc.h"
#include "gstmatrixrtcelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_frame_enc_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_frame_enc_debug

struct _GstMatrixRtcFrameEnc
{
  GstMatrixRtcFrameCryptor parent;
};

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_MATRIX_RTC_FRAME_CRYPTOR_CAPS));

static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS (GST_MATRIX_RTC_FRAME_CRYPTOR_CAPS));

G_DEFINE_TYPE (GstMatrixRtcFrameEnc, gst_matrix_rtc_frame_enc,
    GST_TYPE_MATRIX_RTC_FRAME_CRYPTOR);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (matrixrtcframeenc, "matrixrtcframeenc",
    GST_RANK_NONE, GST_TYPE_MATRIX_RTC_FRAME_ENC,
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_frame_enc_debug,
        "matrixrtcframeenc", 0, "MatrixRTC frame encryptor"));

static void
gst_matrix_rtc_frame_enc_init (GstMatrixRtcFrameEnc *self)
{
}

static void
gst_matrix_rtc_frame_enc_class_init (GstMatrixRtcFrameEncClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  GST_MATRIX_RTC_FRAME_CRYPTOR_CLASS (klass)->encrypt = TRUE;
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "MatrixRTC frame encryptor", "Codec/Encoder/Network",
      "Encrypts encoded frames with LiveKit end-to-end encryption "
      "(as Element Call uses it)",
      "The gst-matrixrtc authors");
}
