/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-matrixrtcbin
 * @title: matrixrtcbin
 * @short_description: a full MatrixRTC call participant
 *
 * Joins a MatrixRTC call (the calling layer of Element Call) in a Matrix
 * room, publishes the media of its request sink pads and outputs every
 * remote member's media.
 *
 * - Request sink pads `video_%u` / `audio_%u`: raw media is encoded
 *   inside (VP8 and Opus by default, as Element Call; H.264 with
 *   video-codec=h264), pre-encoded VP8, H.264 and Opus pass through. Each
 *   pad is a track on our own transport, end-to-end encrypted with
 *   e2ee-mode=per-member (our key goes Olm-encrypted to every member's
 *   device) or with a shared passphrase; the default e2ee-mode=auto picks
 *   the passphrase if set, else per-member keys in an encrypted room, else
 *   none (stats field `e2ee-mode`). EOS on a pad unpublishes its track.
 * - Source pads `<kind>_<user>_<device>_<source>` (#GstMatrixRtcPad, with
 *   the properties user-id, device-id, member-id, kind and source), one per
 *   remote member and track, carrying decrypted encoded frames (VP8, H.264
 *   or Opus). They come and go as members join, leave, publish and
 *   unpublish (the call's membership decides who is shown), stay the same
 *   across reconnects, and members publishing on another SFU are
 *   subscribed there. Linking a video pad asks for a key frame.
 * - Element messages: matrixrtc-member-joined, matrixrtc-member-left,
 *   matrixrtc-key-changed, matrixrtc-decrypt-failure; the `stats`
 *   property.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 matrixrtcbin name=call homeserver=http://127.0.0.1:8008 \
 *     user-id=@alice:localhost:8448 password=... room='!id:localhost:8448' \
 *     token-service=http://127.0.0.1:8080 \
 *   videotestsrc is-live=true ! call.video_0 \
 *   audiotestsrc is-live=true ! call.audio_0 \
 *   call. ! queue ! rtpvp8depay ! fakesink
 * ]|
 * (matrixrtcsrc is the easier way to get decoded media.)
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcbin.h"
#include "gstmatrixrtcelements.h"

struct _GstMatrixRtcBin
{
  GstMatrixRtcCallBin parent;
};

G_DEFINE_TYPE (
    GstMatrixRtcBin, gst_matrix_rtc_bin, GST_TYPE_MATRIX_RTC_CALL_BIN);
GST_ELEMENT_REGISTER_DEFINE (
    matrixrtcbin, "matrixrtcbin", GST_RANK_NONE, GST_TYPE_MATRIX_RTC_BIN);

static void
gst_matrix_rtc_bin_class_init (GstMatrixRtcBinClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstMatrixRtcCallBinClass *call_class = GST_MATRIX_RTC_CALL_BIN_CLASS (klass);

  call_class->can_publish = TRUE;
  call_class->can_receive = TRUE;
  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_publish_video_template ());
  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_publish_audio_template ());
  gst_element_class_add_pad_template (
      element_class, gst_matrix_rtc_receive_src_template (FALSE));
  gst_element_class_set_static_metadata (element_class,
      "MatrixRTC call participant", "Filter/Network/RTC",
      "Joins a MatrixRTC call (Element Call), publishes its inputs and "
      "outputs every remote member's media, end-to-end encrypted",
      "The gst-matrixrtc authors");
}

static void
gst_matrix_rtc_bin_init (GstMatrixRtcBin *self)
{
}
