/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_PAD_H__
#define __GST_MATRIX_RTC_PAD_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MATRIX_RTC_PAD (gst_matrix_rtc_pad_get_type ())
G_DECLARE_FINAL_TYPE (
    GstMatrixRtcPad, gst_matrix_rtc_pad, GST, MATRIX_RTC_PAD, GstGhostPad)

/* A source pad carrying one remote member's track, with who it comes from
 * as read-only properties. */
GstPad *gst_matrix_rtc_pad_new (const gchar *name, GstPadTemplate *templ,
    const gchar *user_id, const gchar *device_id, const gchar *member_id,
    const gchar *kind, const gchar *source);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_PAD_H__ */
