/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcsink
 * @title: matrixrtcsink
 * @short_description: publishes media into a MatrixRTC call
 *
 * Joins a MatrixRTC call in a Matrix room and publishes the media of its
 * request sink pads `video_%u` / `audio_%u` (raw media is encoded to VP8
 * and Opus, or H.264 with video-codec=h264; pre-encoded VP8, H.264 and Opus
 * pass through), end-to-end encrypted (e2ee-mode=per-member or a
 * passphrase). It receives nothing (it still answers LiveKit's subscriber
 * connection). EOS on a pad unpublishes its track; when all pads are at EOS
 * the element posts EOS.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e matrixrtcsink name=call homeserver=http://127.0.0.1:8008 \
 *     user-id=@alice:localhost:8448 password=... room='#call:localhost:8448' \
 *   videotestsrc is-live=true ! call.video_0 \
 *   audiotestsrc is-live=true ! call.audio_0
 * ]|
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcsink.h"
#include "gstmatrixrtcelements.h"

struct _GstMatrixRtcSink
{
  GstMatrixRtcCallBin parent;
};

G_DEFINE_TYPE (
    GstMatrixRtcSink, gst_matrix_rtc_sink, GST_TYPE_MATRIX_RTC_CALL_BIN);
GST_ELEMENT_REGISTER_DEFINE (
    matrixrtcsink, "matrixrtcsink", GST_RANK_NONE, GST_TYPE_MATRIX_RTC_SINK);

static void
gst_matrix_rtc_sink_class_init (GstMatrixRtcSinkClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstMatrixRtcCallBinClass *call_class = GST_MATRIX_RTC_CALL_BIN_CLASS (klass);

  call_class->can_publish = TRUE;
  call_class->can_receive = FALSE;
  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_publish_video_template ());
  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_publish_audio_template ());
  gst_element_class_set_static_metadata (element_class, "MatrixRTC call sink",
      "Sink/Network/RTC",
      "Publishes its inputs into a MatrixRTC call (Element Call), end-to-end "
      "encrypted",
      "The gst-matrixrtc authors");
}

static void
gst_matrix_rtc_sink_init (GstMatrixRtcSink *self)
{
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}
