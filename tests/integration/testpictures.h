/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __MATRIXRTC_TEST_PICTURES_H__
#define __MATRIXRTC_TEST_PICTURES_H__

#include <glib.h>

G_BEGIN_DECLS

/* What a decoded RGB frame (@width x @height, rows padded to 4 bytes)
 * shows, to tell real pictures from garbage after a trip through the SFU:
 *   test_picture_shows_bars: videotestsrc's SMPTE colour bars (the senders
 *     of our own pipelines);
 *   test_picture_shows_split: left half red, right half blue (the Node
 *     peers' picture). */
gboolean test_picture_shows_bars (
    const guint8 *rgb, gsize size, guint width, guint height);
gboolean test_picture_shows_split (
    const guint8 *rgb, gsize size, guint width, guint height);

G_END_DECLS

#endif /* __MATRIXRTC_TEST_PICTURES_H__ */
