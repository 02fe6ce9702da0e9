/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_BASE_BIN_H__
#define __GST_MATRIX_RTC_BASE_BIN_H__

#include <gst/gst.h>

#include "gstmatrixrtcsettings.h"

G_BEGIN_DECLS

#define GST_TYPE_MATRIX_RTC_BASE_BIN (gst_matrix_rtc_base_bin_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstMatrixRtcBaseBin, gst_matrix_rtc_base_bin, GST,
    MATRIX_RTC_BASE_BIN, GstBin)

/**
 * GstMatrixRtcBaseBinClass:
 * @start: called on READY→PAUSED with the validated settings: log in, join
 *   the slot and connect the transports. Returns FALSE and posts an error
 *   message when it cannot.
 * @stop: called on PAUSED→READY: leave the call cleanly (the delayed leave is
 *   sent) and drop the transports.
 *
 * The machinery shared by matrixrtcbin, matrixrtcsrc and matrixrtcsink: the
 * properties that configure a call participant, their validation on
 * NULL→READY, and the hooks through which the subclass runs the call.
 */
struct _GstMatrixRtcBaseBinClass
{
  GstBinClass parent_class;

  gboolean (*start) (
      GstMatrixRtcBaseBin *self, const GstMatrixRtcSettings *settings);
  void (*stop) (GstMatrixRtcBaseBin *self);

  gpointer _gst_reserved[GST_PADDING];
};

/* A copy of the current settings (under the object lock); clear it with
 * gst_matrix_rtc_settings_clear(). */
void gst_matrix_rtc_base_bin_get_settings (
    GstMatrixRtcBaseBin *self, GstMatrixRtcSettings *settings);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_BASE_BIN_H__ */
