/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_H26X_PAY_H__
#define __GST_MATRIX_RTC_H26X_PAY_H__

#include <gst/gst.h>
#include <gst/rtp/gstrtpbasepayload.h>

G_BEGIN_DECLS

#define GST_TYPE_MATRIX_RTC_H26X_PAY (gst_matrix_rtc_h26x_pay_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstMatrixRtcH26xPay, gst_matrix_rtc_h26x_pay, GST,
    MATRIX_RTC_H26X_PAY, GstRTPBasePayload);

/**
 * GstMatrixRtcH26xPayClass:
 * @h265: %TRUE for H.265 (RFC 7798), %FALSE for H.264 (RFC 6184).
 * @encoding_name: the RTP encoding name.
 *
 * Shared packetiser of matrixrtch264pay and matrixrtch265pay.
 */
struct _GstMatrixRtcH26xPayClass
{
  GstRTPBasePayloadClass parent_class;

  gboolean h265;
  const gchar *encoding_name;
};

G_END_DECLS

#endif /* __GST_MATRIX_RTC_H26X_PAY_H__ */
