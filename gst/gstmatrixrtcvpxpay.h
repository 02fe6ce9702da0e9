/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_VPX_PAY_H__
#define __GST_MATRIX_RTC_VPX_PAY_H__

#include <gst/gst.h>
#include <gst/rtp/gstrtpbasepayload.h>

G_BEGIN_DECLS

/* Writes the payload descriptor of one packet of a frame into @descriptor
 * (the length given to gst_matrix_rtc_vpx_pay_fragment()). */
typedef void (*GstMatrixRtcVpxDescriptorFunc) (guint8 *descriptor,
    gboolean first, gboolean last, gboolean delta, guint picture_id);

/* Whether the frame @data (@size > 0 bytes) of @buffer is a delta frame. */
typedef gboolean (*GstMatrixRtcVpxDeltaFunc) (
    const guint8 *data, gsize size, GstBuffer *buffer);

/* The payloading shared by matrixrtcvp8pay and matrixrtcvp9pay: splits the
 * (encrypted, so unparsed) frame @buffer into MTU-sized packets, each a
 * descriptor from @write_descriptor and a chunk of the frame, with the marker
 * bit on the last packet and the frame's timestamps, DISCONT on the first and
 * DELTA_UNIT on all when @is_delta says so; advances the 15-bit *@picture_id
 * (read and written atomically). Takes @buffer. An empty frame sends nothing. */
GstFlowReturn gst_matrix_rtc_vpx_pay_fragment (GstRTPBasePayload *payload,
    GstBuffer *buffer, guint descriptor_len,
    GstMatrixRtcVpxDescriptorFunc write_descriptor,
    GstMatrixRtcVpxDeltaFunc is_delta, gint *picture_id);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_VPX_PAY_H__ */
