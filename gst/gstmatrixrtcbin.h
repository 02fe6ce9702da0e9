/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_BIN_H__
#define __GST_MATRIX_RTC_BIN_H__

#include "gstmatrixrtccallbin.h"

G_BEGIN_DECLS

#define GST_TYPE_MATRIX_RTC_BIN (gst_matrix_rtc_bin_get_type ())
G_DECLARE_FINAL_TYPE (GstMatrixRtcBin, gst_matrix_rtc_bin, GST, MATRIX_RTC_BIN,
    GstMatrixRtcCallBin)

G_END_DECLS

#endif /* __GST_MATRIX_RTC_BIN_H__ */
