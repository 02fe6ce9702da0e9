/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_FRAME_DEC_H__
#define __GST_MATRIX_RTC_FRAME_DEC_H__

#include "gstmatrixrtcframecryptor.h"

G_BEGIN_DECLS

#define GST_TYPE_MATRIX_RTC_FRAME_DEC (gst_matrix_rtc_frame_dec_get_type ())
G_DECLARE_FINAL_TYPE (GstMatrixRtcFrameDec, gst_matrix_rtc_frame_dec, GST,
    MATRIX_RTC_FRAME_DEC, GstMatrixRtcFrameCryptor);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_FRAME_DEC_H__ */
