/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#include "testpictures.h"

/* The colour bars of videotestsrc's SMPTE pattern (top two thirds), RGB. */
static const guint8 smpte[7][3]
    = { { 255, 255, 255 }, { 255, 255, 0 }, { 0, 255, 255 }, { 0, 255, 0 },
        { 255, 0, 255 }, { 255, 0, 0 }, { 0, 0, 255 } };

gboolean
test_picture_shows_bars (
    const guint8 *rgb, gsize size, guint width, guint height)
{
  guint stride = (width * 3 + 3) & ~3u;
  guint y = height / 3, i, c;

  if (size < (gsize)stride * height)
    return FALSE;
  for (i = 0; i < 7; i++) {
    guint x = (2 * i + 1) * width / 14;
    const guint8 *px = rgb + y * stride + x * 3;
    for (c = 0; c < 3; c++) {
      if (ABS ((gint)px[c] - (gint)smpte[i][c]) > 48)
        return FALSE;
    }
  }
  return TRUE;
}

gboolean
test_picture_shows_split (
    const guint8 *rgb, gsize size, guint width, guint height)
{
  guint stride = (width * 3 + 3) & ~3u;
  const guint8 *l, *r;

  if (size < (gsize)stride * height)
    return FALSE;
  l = rgb + (height / 2) * stride + (width / 4) * 3;
  r = rgb + (height / 2) * stride + (3 * width / 4) * 3;
  return l[0] > 180 && l[1] < 70 && l[2] < 70 && r[0] < 70 && r[1] < 70
         && r[2] > 180;
}
